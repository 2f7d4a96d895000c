"""The compiled affine resampling against grid_sample, the reference it replaces on the CPU."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from grid_theta import affine_grid_theta

from preimage.engine.fast import affine_warp
from preimage.engine.transforms import Pipeline, parse_transforms


def _maps(n, seed):
    """Random affine maps between centred pixel coordinates: zoom, rotation, shear, shifts far
    enough to leave the image.
    """
    rng = np.random.default_rng(seed)
    m = np.repeat(np.eye(3)[None], n, axis=0)
    angle = rng.uniform(-0.6, 0.6, n)
    zoom = rng.uniform(0.6, 1.5, n)
    m[:, 0, 0], m[:, 0, 1] = zoom * np.cos(angle), zoom * np.sin(angle) + rng.uniform(-0.2, 0.2, n)
    m[:, 1, 0], m[:, 1, 1] = -zoom * np.sin(angle), zoom * np.cos(angle)
    m[:, :2, 2] = rng.uniform(-9, 9, (n, 2))
    return m


def _reference(x, coef, out, scale=None, shift=None):
    if scale is not None:
        x = x * torch.as_tensor(scale, dtype=x.dtype).view(1, -1, 1, 1) + torch.as_tensor(
            shift, dtype=x.dtype
        ).view(1, -1, 1, 1)
    g = affine_warp.grid(coef, x.shape[-2:], out, x.dtype)
    return F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)


@pytest.mark.parametrize(
    "n, in_hw, out_hw", [(5, (17, 23), (19, 14)), (1, (16, 16), (16, 16)), (3, (8, 30), (12, 12))]
)
@pytest.mark.parametrize("affine", [None, ([2.0, 0.5, -1.5], [-0.25, 1.0, 0.3])])
def test_values_and_gradient_equal_grid_sample_in_float64(n, in_hw, out_hw, affine):
    # affine: a per-channel x * scale + shift applied before the resampling (a model's
    # normalization)
    assert affine_warp._kernels() is not None  # the test is about the compiled path
    coef = affine_warp.coefficients(_maps(n, 1), in_hw, out_hw)
    x = torch.rand(
        n,
        3,
        *in_hw,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(2),
        requires_grad=True,
    )
    scale, shift = affine or (None, None)
    got, want = (
        affine_warp.warp(x, coef, out_hw, scale, shift),
        _reference(x, coef, out_hw, scale, shift),
    )
    assert got.shape == (n, 3, *out_hw)
    assert (want == 0).any() and (want != 0).any()  # some pixels sample outside the image
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    g = torch.randn(got.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    (mine,) = torch.autograd.grad(got, x, g)
    (ref,) = torch.autograd.grad(want, x, g)
    assert torch.allclose(mine, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("compiled", [True, False])
def test_channels_last_output_and_gradient_are_the_same_numbers(compiled, monkeypatch):
    # the render loop asks for the network's channels-last layout; the gradient then comes back in
    # it
    if compiled:
        assert affine_warp._kernels() is not None  # the compiled path is the one under test
    else:
        monkeypatch.setitem(affine_warp._KERNELS, "k", None)
    coef = affine_warp.coefficients(_maps(3, 5), (18, 21), (18, 21))
    x = torch.rand(
        3,
        3,
        18,
        21,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(6),
        requires_grad=True,
    )
    dense = affine_warp.warp(x, coef, (18, 21), [2.0, 1.0, 0.5], [0.1, -0.2, 0.3])
    last = affine_warp.warp(
        x, coef, (18, 21), [2.0, 1.0, 0.5], [0.1, -0.2, 0.3], channels_last=True
    )
    assert last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()
    assert torch.equal(last, dense)
    g = torch.randn(dense.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    (from_dense,) = torch.autograd.grad(dense, x, g)
    (from_last,) = torch.autograd.grad(last, x, g.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(from_last, from_dense, rtol=0, atol=1e-12)


def test_float32_and_the_grid_sample_fallback_agree(monkeypatch):
    coef = affine_warp.coefficients(_maps(4, 7), (20, 20), (20, 20))
    x = torch.rand(4, 3, 20, 20, generator=torch.Generator().manual_seed(4), requires_grad=True)
    scale, shift = torch.tensor([1.5, 2.0, 2.5]), torch.tensor([-0.5, 0.0, 0.5])
    fast = affine_warp.warp(x, coef, (20, 20), scale, shift)
    (g_fast,) = torch.autograd.grad(fast.square().sum(), x)
    monkeypatch.setitem(affine_warp._KERNELS, "k", None)  # as without Numba
    slow = affine_warp.warp(x, coef, (20, 20), scale, shift)
    (g_slow,) = torch.autograd.grad(slow.square().sum(), x)
    assert slow.grad_fn.name() != fast.grad_fn.name()
    assert torch.allclose(fast, slow, atol=1e-5) and torch.allclose(g_fast, g_slow, atol=1e-4)


def test_the_adjoint_is_bit_reproducible_and_respects_the_thread_count():
    coef = affine_warp.coefficients(_maps(6, 3), (32, 32), (32, 32))
    x = torch.rand(6, 3, 32, 32, requires_grad=True)
    g = torch.randn(6, 3, 32, 32)
    grads = []
    threads = torch.get_num_threads()
    try:
        for t in (2, 1, 2):
            torch.set_num_threads(t)
            grads.append(torch.autograd.grad(affine_warp.warp(x, coef, (32, 32)), x, g)[0])
    finally:
        torch.set_num_threads(threads)
    # one thread per image: the same sums in the same order whatever the thread count
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2])


def test_scale_and_shift_need_one_value_or_one_per_channel():
    coef = affine_warp.coefficients(_maps(2, 1), (10, 12), (10, 12))
    with pytest.raises(ValueError, match="3 values for 4 channels"):
        affine_warp.warp(torch.rand(2, 4, 10, 12), coef, (10, 12), [1.0, 2.0, 3.0], [0.0, 0.0, 0.0])


def test_pipeline_coefficients_match_its_affine_grid_matrices():
    # the pipeline's two descriptions of one draw (pixel coefficients, grid_sample's theta) agree
    pipe = Pipeline(parse_transforms("finzi").steps, output_size=None)
    total, out = pipe.matrices(5, (40, 40), torch.Generator().manual_seed(8))
    theta, out2 = affine_grid_theta(pipe, 5, (40, 40), torch.Generator().manual_seed(8))
    assert out == out2 == (40 + 24 - 8 - 4,) * 2
    g = affine_warp.grid(affine_warp.coefficients(total, (40, 40), out), (40, 40), out)
    want = F.affine_grid(theta, (5, 3, *out), align_corners=False)
    assert torch.allclose(g, want, atol=1e-5)


def test_pipeline_with_normalization_and_fill_equals_normalizing_first():
    # what the render loop does (normalization inside the resampling) against the plain composition
    pipe = parse_transforms("finzi")
    x = torch.rand(4, 3, 24, 24, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([4.0, 4.1, 4.2], dtype=torch.float64).view(1, 3, 1, 1)
    shift = torch.tensor([-2.0, -1.9, -1.8], dtype=torch.float64).view(1, 3, 1, 1)
    for fill in (None, [0.3, -0.2, 0.1]):
        got = pipe(x, torch.Generator().manual_seed(6), fill, (scale, shift))
        theta, out = affine_grid_theta(pipe, 4, (24, 24), torch.Generator().manual_seed(6))
        grid = F.affine_grid(theta.double(), (4, 3, *out), align_corners=False)
        f = (
            torch.zeros(1, 3, 1, 1, dtype=torch.float64)
            if fill is None
            else torch.tensor(fill, dtype=torch.float64).view(1, 3, 1, 1)
        )
        want = F.grid_sample(x * scale + shift - f, grid, align_corners=False) + f
        assert torch.allclose(got, want, atol=1e-5)  # theta is float32
        g = torch.randn_like(got)
        assert torch.allclose(
            torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0], atol=1e-4
        )
    assert torch.equal(Pipeline([])(x, None, None, (scale, shift)), torch.addcmul(shift, x, scale))


def test_first_use_leaves_torch_thread_count_alone():
    # Numba's OpenMP start-up set the process's thread count: a Ray worker asked for one thread got
    # two
    import subprocess
    import sys

    code = (
        "import numpy as np, torch\ntorch.set_num_threads(1)\n"
        "from preimage.engine.fast import affine_warp as W\n"
        "x = torch.rand(2, 3, 8, 8, requires_grad=True)\nW.warp(x,"
        " W.coefficients(np.repeat(np.eye(3)[None], 2, 0), (8, 8), (8, 8)), (8,"
        " 8)).sum().backward()\nprint(torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1"]


def test_a_forked_child_resamples_with_grid_sample():
    # Numba's GNU OpenMP layer kills a forked child that starts a parallel loop the parent started
    import multiprocessing

    coef = affine_warp.coefficients(_maps(2, 9), (12, 12), (12, 12))
    x = torch.rand(2, 3, 12, 12)
    want = affine_warp.warp(x, coef, (12, 12))  # the parent's kernels are running now
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_warp_into, args=(queue, x, coef))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and torch.allclose(torch.from_numpy(got), want, atol=1e-5)


def _warp_into(queue, x, coef):
    queue.put(
        affine_warp.warp(x, coef, (12, 12)).numpy()
    )  # a tensor would travel as a file descriptor of the exiting child
