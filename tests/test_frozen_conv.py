"""The frozen network's fast copy: convolutions whose input gradient is a forward convolution,
TF padding absorbed into the kernel, tensors shared with the original, and malloc kept warm."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from preimage.models.fast.frozen_conv import frozen_conv2d
from preimage.models.layers import capture

CONFIGS = [
    # cin, cout, groups, kernel, stride, padding (top, bottom, left, right), size
    (3, 8, 1, 3, 2, (0, 1, 0, 1), 16),  # EfficientNet's stem: TF "same" padding
    (6, 6, 6, 3, 1, (1, 1, 1, 1), 12),  # depthwise
    (6, 6, 6, 5, 2, (1, 2, 1, 2), 15),  # stride-2 depthwise, odd size
    (3, 4, 1, 11, 4, (2, 2, 2, 2), 35),  # AlexNet's conv1
    (4, 6, 2, 4, 3, (2, 0, 1, 3), 13),  # grouped, stride 3, uneven padding
    (5, 7, 1, 1, 1, (0, 0, 0, 0), 9),  # pointwise
    (4, 4, 4, 3, 1, (4, 0, 0, 4), 10),  # padding wider than the kernel
    (4, 4, 4, 3, 1, (1, 0, 1, 0), 8),  # more padding at the top than at the bottom
    (3, 8, 1, 4, 4, (0, 0, 0, 0), 6),  # patch embedding: the last rows and columns are never read
    (1, 16, 1, 13, 1, (0, 0, 0, 0), 22),  # a grey cnn core's first layer: the blocked correlation
    (3, 8, 1, 7, 1, (3, 3, 2, 4), 13),  # RGB, 7 x 7, uneven padding, blocks past the edge
]


@pytest.mark.parametrize("cin,cout,groups,k,stride,pad,size", CONFIGS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_input_gradient_is_autograds(cin, cout, groups, k, stride, pad, size, channels_last):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, cin, size, size + 1, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin // groups, k, k, generator=g, dtype=torch.float64)
    b = torch.randn(cout, generator=g, dtype=torch.float64)
    top, bottom, left, right = pad
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1 = F.conv2d(F.pad(x1, (left, right, top, bottom)), w, b, stride, 0, 1, groups)
    y2 = frozen_conv2d(x2, w, b, (stride, stride), pad, groups)
    grad_out = torch.randn(y1.shape, generator=g, dtype=torch.float64)
    (r1,) = torch.autograd.grad(y1, x1, grad_out)
    (r2,) = torch.autograd.grad(y2, x2, grad_out)
    assert torch.equal(y1, y2)
    assert r2.shape == x.shape
    assert torch.allclose(r2, r1, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block", [2, 4, 5])
@pytest.mark.parametrize(
    "shape",
    [
        # out channels, in channels, kernel (kh, kw), input (h, w), padding (ph, pw)
        (1, 16, (13, 13), (28, 28), (12, 12)),  # a first layer's input gradient: 4-aligned
        (1, 16, (13, 15), (40, 43), (0, 1)),
        (2, 9, (7, 9), (17, 20), (3, 4)),
        (4, 8, (9, 11), (11, 14), (8, 9)),
        (1, 8, (9, 9), (20, 20), (4, 4)),  # 2- and 4-aligned
        (1, 8, (5, 5), (9, 9), (6, 7)),  # more padding than the full correlation's
    ],
)
def test_blocked_correlation_is_conv2d(block, shape):
    from preimage.models.fast.blocked_conv import blocked_conv2d

    o, c, k, size, pad = shape
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, c, *size, generator=g, dtype=torch.float64)
    w = torch.randn(o, c, *k, generator=g, dtype=torch.float64)
    want = F.conv2d(x, w, padding=pad)
    crop = (want.shape[2] - 1, want.shape[3])
    got = blocked_conv2d(x, w, pad, crop, block=block)
    assert got.shape == (2, o, *crop)
    assert torch.allclose(got, want[:, :, : crop[0], : crop[1]], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("phase_kernels", [True, False])
@pytest.mark.parametrize("clamp", [(0.0, 6.0), (0.0, float("inf"))], ids=["relu6", "relu"])
def test_fused_activation_values_and_gradient(phase_kernels, clamp):
    from preimage.models.fast.frozen_conv import _FrozenConv2d, _phase_kernel

    g = torch.Generator().manual_seed(3)
    x = (3 * torch.randn(2, 4, 9, 9, generator=g)).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(4, 1, 3, 3, generator=g), torch.randn(4, generator=g)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1 = F.conv2d(x1, w, b, 2, 1, 1, 4).clamp(*clamp)
    kernel = _phase_kernel(w, 4, (2, 2)) if phase_kernels else None
    y2 = _FrozenConv2d.apply(x2, w, b, (2, 2), (1, 1, 1, 1), 4, kernel, clamp)
    assert 0 < float((y1 == 0).float().mean()) < 1 and (
        clamp[1] == float("inf") or float((y1 == 6).float().mean()) > 0
    )
    grad_out = torch.randn(y1.shape, generator=g)
    (r1,) = torch.autograd.grad(y1, x1, grad_out)
    (r2,) = torch.autograd.grad(y2, x2, grad_out)
    assert torch.allclose(y2, y1, atol=1e-5)
    assert torch.allclose(r2, r1, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_pointwise_gradient_of_a_spatial_mean_is_one_broadcast_product(channels_last):
    from preimage.models.fast.frozen_conv import _FrozenConv2d

    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 5, 7, 6, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w, b = (
        torch.randn(4, 5, 1, 1, generator=g, dtype=torch.float64),
        torch.randn(4, generator=g, dtype=torch.float64),
    )
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    pick = torch.randn(3, 4, generator=g, dtype=torch.float64)

    # a spatial mean's gradient reaches the map as a broadcast (stride 0 over rows and columns)
    def mean_of(y):
        return (pick * y.mean((2, 3))).sum()

    (r1,) = torch.autograd.grad(mean_of(F.conv2d(x1, w, b)), x1)
    y2 = _FrozenConv2d.apply(x2, w, b, (1, 1), (0, 0, 0, 0), 1, None, None)
    grad_out = (pick / 42).view(3, 4, 1, 1).expand(3, 4, 7, 6)
    (r2,) = torch.autograd.grad(y2, x2, grad_out)
    assert r2.stride()[2:] == (0, 0)  # the shortcut ran: no pass over the map
    assert torch.allclose(r2, r1, rtol=1e-12, atol=1e-12)
    # a gradient that varies over the map takes the full backward pass
    dense = torch.randn(3, 4, 7, 6, generator=g, dtype=torch.float64)
    (r3,) = torch.autograd.grad(F.conv2d(x1, w, b), x1, dense)
    (r4,) = torch.autograd.grad(
        _FrozenConv2d.apply(x2, w, b, (1, 1), (0, 0, 0, 0), 1, None, None), x2, dense
    )
    assert torch.allclose(r4, r3, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer", ["_blocks.0", "_blocks.2"])
def test_lite0_channel_gradients_through_the_pointwise_shortcut(lite0, layer, monkeypatch):
    from preimage import objectives as O
    from preimage.engine.objectives import Context
    from preimage.models.fast import frozen_conv

    taken = []
    check = frozen_conv._constant_over_space
    monkeypatch.setattr(
        frozen_conv, "_constant_over_space", lambda t: taken.append(check(t)) or taken[-1]
    )

    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    obj = O.channel(layer, [0, 3, 5, 7])
    grads = []
    for module in (lite0.runner([layer]), lite0.module):
        xi = x.clone().requires_grad_()
        with capture(module, [layer]) as c:
            acts = c.run(lite0.memory_format(lite0.preprocess(xi)))
        (grad,) = torch.autograd.grad(obj(Context(acts, xi, None)).sum(), xi)
        grads.append(grad)
    assert taken.count(True) == 1  # the block's projection, through the fast copy only
    assert torch.allclose(grads[0], grads[1], rtol=1e-3, atol=1e-5 * grads[1].abs().max())


def _value_and_input_gradient(module, model, x, layer):
    x = x.clone().requires_grad_()
    with capture(module, [layer]) as c:
        out = c.run(model.preprocess(x))[layer]
    (grad,) = torch.autograd.grad(
        (out * torch.linspace(-1, 1, out.shape[1]).view(1, -1, 1, 1)).square().mean(), x
    )
    return out.detach(), grad


@pytest.mark.parametrize(
    "layer", ["_blocks.0", "_blocks.1._swish", "_blocks.2", "_blocks.5", "_blocks.12", "_swish#1"]
)
def test_lite0_fast_copy_has_the_original_values_and_gradients(lite0, layer):
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    fast = lite0.runner([layer])
    assert fast is not lite0.module
    v1, g1 = _value_and_input_gradient(fast, lite0, x, layer)
    v2, g2 = _value_and_input_gradient(lite0.module, lite0, x, layer)
    assert torch.allclose(v1, v2, rtol=1e-4, atol=1e-5 * v2.abs().max())
    assert torch.allclose(g1, g2, rtol=1e-3, atol=1e-5 * g2.abs().max())


@pytest.mark.parametrize("name", ["lite0", "alexnet"])
def test_every_address_the_fast_copy_serves_has_the_original_value(name, request):
    model = request.getfixturevalue(name)
    size = 64 if name == "lite0" else 99
    addresses = [info.name for info in model.layers(size)]
    served = [a for a in addresses if model.runner([a]) is not model.module]
    assert len(served) > len(addresses) // 2
    x = model.preprocess(torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        with capture(model.runner(served), served) as c:
            fast = c.run(x)
        with capture(model.module, served) as c:
            plain = c.run(x)
    for a in served:
        scale = float(plain[a].abs().max()) + 1e-6
        assert torch.allclose(fast[a], plain[a], rtol=1e-4, atol=1e-5 * scale), a


def test_lite0_fast_copy_absorbs_tf_padding_and_routes_convolutions(lite0):
    fast = lite0.runner(["_blocks.2"])
    dw = fast.get_submodule("_blocks.1._depthwise_conv")
    # stride 2, padding (0, 1): a 4 x 4 kernel with a leading zero row and column, padded by 1
    assert dw.weight.shape[-2:] == (4, 4) and dw.padding == (1, 1)
    assert torch.all(dw.weight[:, :, 0] == 0) and torch.all(dw.weight[:, :, :, 0] == 0)
    routed = {
        n: (m._phase_kernels, m._fused_clamp)
        for n, m in fast.named_modules()
        if "forward" in m.__dict__
    }
    assert routed["_conv_stem"] == (True, (0.0, 6.0)) and routed["_blocks.0._depthwise_conv"] == (
        True,
        (0.0, 6.0),
    )
    # stride-2 depthwise keeps oneDNN's backward, with the ReLU6 fused in
    assert routed["_blocks.1._depthwise_conv"] == (False, (0.0, 6.0))
    # the ReLU6 modules run inside the convolutions; their addresses still see their outputs
    assert (
        type(fast.get_submodule("_blocks.1._swish")).__name__ == "Identity"
        and type(fast._swish).__name__ == "Identity"
    )


def test_alexnet_copy_shares_the_weights_and_keeps_the_gradients(alexnet):
    fast = alexnet.runner(["features.3"])
    assert fast is not alexnet.module  # conv1 (3 input channels, stride 4) is routed
    originals = {id(t) for t in alexnet.module.parameters()}
    assert all(id(p) in originals for p in fast.parameters())
    x = torch.rand(1, 3, 127, 127, generator=torch.Generator().manual_seed(2))
    v1, g1 = _value_and_input_gradient(fast, alexnet, x, "features.3")
    v2, g2 = _value_and_input_gradient(alexnet.module, alexnet, x, "features.3")
    assert torch.equal(v1, v2)
    assert torch.allclose(g1, g2, rtol=1e-4, atol=1e-6 * g2.abs().max())


FAULTS = """
import resource, statistics, sys, torch
import preimage
from preimage.engine.fast.cpu_memory import keep_freed_memory
from preimage.models.layers import capture
if sys.argv[1] == "keep":
    assert keep_freed_memory()
model = preimage.load_model("efficientnet_lite0")
x = torch.rand(12, 3, 128, 128, requires_grad=True)
module = model.module  # the network as loaded: PyTorch's own kernels and allocations

def step():
    with capture(module, ["_blocks.2"]) as c:
        c.run(model.preprocess(x))["_blocks.2"].mean().backward()

step()
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(statistics.median(faults))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_kept_memory_is_not_faulted_in_again():
    """A forward + backward step of 12 images to _blocks.2 pages its buffers in anew each time,
    unless kept.
    """

    def faults(mode):
        out = subprocess.run(
            [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
        )
        return float(out.stdout.strip().splitlines()[-1])

    # the median over six steps: malloc's heap takes a few steps to reach its peak, this machine's
    # memory reclaim may take back idle pages now and then, and glibc's adaptive mmap threshold
    # can spare the default one step (a clean-clone run saw one step of 191 pages)
    default = faults("default")
    assert default > 5000  # measured: 25,000 to 45,000 pages (100-180 MB) every step
    # up to three fresh processes: once, in a full test run, the kernel took pages back from a
    # kept heap for several steps (a median of 2,304); kept memory that did not work would fault
    # like the default in every one
    kept = []
    while len(kept) < 3 and (not kept or kept[-1] >= 0.02 * default):
        kept.append(faults("keep"))
    assert kept[-1] < 0.02 * default, kept  # measured: 0


def test_new_weights_loaded_in_place_make_a_new_fast_copy():
    import preimage

    model = preimage.load_model("efficientnet_lite0")
    first = model.runner(["_blocks.2"])
    other = preimage.load_model("efficientnet_lite0", weights="random", seed=4)
    model.module.load_state_dict(other.module.state_dict())
    fast = model.runner(["_blocks.2"])
    assert fast is not first  # the folded weights of the first copy are the old ones
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    v1, g1 = _value_and_input_gradient(fast, model, x, "_blocks.2")
    v2, g2 = _value_and_input_gradient(other.module, other, x, "_blocks.2")
    assert torch.allclose(v1, v2, rtol=1e-4, atol=1e-5 * v2.abs().max())
    assert torch.allclose(g1, g2, rtol=1e-3, atol=1e-5 * g2.abs().max())


@pytest.mark.parametrize("how", ["data", "parameter"])
def test_weights_replaced_without_an_in_place_write_make_a_new_fast_copy(how):
    # ``.data =`` and a new Parameter leave every version counter where it was
    import preimage

    model = preimage.load_model("alexnet", weights="random", seed=0)
    layer = model.resolve_layer("conv2")
    first = model.runner([layer])
    conv = model.module.features[3]
    new = torch.randn(conv.weight.shape, generator=torch.Generator().manual_seed(9)) * 0.05
    if how == "data":
        conv.weight.data = new
    else:
        conv.weight = torch.nn.Parameter(new, requires_grad=False)
    fast = model.runner([layer])
    assert fast is not first
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    v1, g1 = _value_and_input_gradient(fast, model, x, layer)
    v2, g2 = _value_and_input_gradient(model.module, model, x, layer)
    assert torch.allclose(v1, v2, rtol=1e-4, atol=1e-5 * v2.abs().max())
    assert torch.allclose(g1, g2, rtol=1e-3, atol=1e-5 * g2.abs().max())


def test_a_module_that_cannot_be_copied_runs_as_it_is():
    import threading

    import preimage

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.lock = threading.Lock()  # deepcopy cannot copy a lock

        def forward(self, x):
            return self.conv(x).relu()

    model = preimage.wrap_model(Net(), input_size=16)
    assert model.runner(["conv"]) is model.module
    result = preimage.render(
        model,
        preimage.objectives.channel("conv", 1),
        preimage.ImageParam(1, 16),
        steps=3,
        progress=False,
    )
    assert result.steps == 3


def test_cnn_core_fast_copy_runs_elu_in_place_with_the_original_gradients():
    # a recorded-neurons core (conv, batch norm, ELU x 3 from one grey channel): its copy folds the
    # batch norms, runs the ELUs in place and the first layer's input gradient blocked, and keeps
    # every value it serves and the input gradient; the convolutions' own addresses it does not
    # serve (the ELU overwrote their outputs)
    from preimage.models.fast.fusion import fuse
    from preimage.neurons.cores import CNNCore

    core = CNNCore(1, 16, (13, 3, 3), seed=2).eval()
    with torch.no_grad():  # batch-norm statistics other than the defaults
        for bn in core.layers[1::3]:
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    core.requires_grad_(False)
    x = torch.randn(3, 1, 40, 40, generator=torch.Generator().manual_seed(3))
    fast, changed = fuse(core, x)
    elus = [m for m in fast.layers if isinstance(m, torch.nn.ELU)]
    assert len(elus) == 3 and all(m.inplace for m in elus)
    assert {"layers.0", "layers.3", "layers.6"} <= changed and "layers.2" not in changed
    for layer in ("layers.2", "layers.5", "output"):
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        with capture(fast, [layer]) as c:
            a = c.run(x1)[layer]
        with capture(core, [layer]) as c:
            b = c.run(x2)[layer]
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
        weights = torch.linspace(-1, 1, a.shape[1]).view(1, -1, 1, 1)
        (g1,) = torch.autograd.grad((a * weights).square().mean(), x1)
        (g2,) = torch.autograd.grad((b * weights).square().mean(), x2)
        assert torch.allclose(g1, g2, rtol=1e-3, atol=1e-5 * g2.abs().max())
