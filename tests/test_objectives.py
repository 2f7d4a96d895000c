"""Objective algebra, per-element batches, and the penalties' closed forms."""

import math

import pytest
import torch

from preimage import objectives as O


def _ctx(acts, images=None):
    images = torch.zeros(next(iter(acts.values())).shape[0], 3, 4, 4) if images is None else images
    return O.Context(acts, images, images)


def test_algebra_matches_the_terms():
    a = torch.randn(3, 5, 4, 4)
    ctx = _ctx({"L": a})
    ch = a[:, 2].mean((1, 2))
    unit = a[:, 1, 2, 2]
    dd = a.pow(2).mean((1, 2, 3))
    obj = O.channel("L", 2) + 2 * O.unit("L", 1) - O.layer("L") / 4
    assert torch.allclose(obj(ctx), ch + 2 * unit - dd / 4)
    assert obj.layers == {"L"}
    assert len(obj.terms()) == 3
    assert torch.allclose((0.5 * (obj - obj))(ctx), torch.zeros(3), atol=1e-6)
    assert torch.allclose(
        (O.channel("L", 0) - O.channel("L", 1))(ctx), a[:, 0].mean((1, 2)) - a[:, 1].mean((1, 2))
    )


def test_each_element_its_own_channel():
    a = torch.randn(4, 6, 3, 3)
    ctx = _ctx({"L": a})
    got = O.channel("L", [5, 0, 3, 1])(ctx)
    want = torch.stack([a[0, 5], a[1, 0], a[2, 3], a[3, 1]]).mean((1, 2))
    assert torch.allclose(got, want)
    partial = O.channel("L", [2, 4], batch=[1, 3])(ctx)
    assert torch.allclose(
        partial, torch.stack([torch.tensor(0.0), a[1, 2].mean(), torch.tensor(0.0), a[3, 4].mean()])
    )
    units = O.unit("L", [1, 2], y=0, x=2, batch=[0, 2])(ctx)
    assert torch.allclose(
        units, torch.stack([a[0, 1, 0, 2], torch.tensor(0.0), a[2, 2, 0, 2], torch.tensor(0.0)])
    )


@pytest.mark.parametrize("channels_last", [False, True])
def test_unit_and_channel_gradients_are_exact_and_keep_the_memory_format(channels_last):
    a = torch.randn(3, 5, 4, 6)
    if channels_last:
        a = a.contiguous(memory_format=torch.channels_last)
    a.requires_grad_()
    obj = O.unit("L", [1, 4, 0], y=1, x=5) + 2 * O.channel("L", [2, 2, 3])
    (grad,) = torch.autograd.grad(obj(_ctx({"L": a})).sum(), a)
    want = torch.zeros(3, 5, 4, 6)
    for i, (u, c) in enumerate(zip([1, 4, 0], [2, 2, 3])):
        want[i, u, 1, 5] += 1
        want[i, c] += 2 / 24
    assert torch.allclose(grad, want)
    for obj in [O.unit("L", 2), O.channel("L", [2, 2, 3]), obj]:
        (grad,) = torch.autograd.grad(obj(_ctx({"L": a})).sum(), a)
        # a channels-last map never gets a dense NCHW gradient back (each backward op below would
        # pay for the mismatch): it gets its own format, or a broadcast view that takes any
        assert not (channels_last and grad.is_contiguous()), obj


def test_direction_is_a_dot_product_in_channel_space():
    a = torch.randn(2, 3, 2, 2)
    v = torch.tensor([1.0, -2.0, 0.5])
    got = O.direction("L", v)(_ctx({"L": a}))
    assert torch.allclose(got, (a * v.view(1, 3, 1, 1)).sum(1).mean((1, 2)))
    with pytest.raises(Exception, match="3 components"):
        O.direction("L", v)(_ctx({"L": torch.randn(2, 4, 2, 2)}))


def test_tv_of_a_ramp():
    # x(v, u, k) = s*u: every horizontal difference is s, vertical 0, over (H-1)(W-1) pairs per
    # channel
    h = w = 8
    s = 0.25
    ramp = (torch.arange(w, dtype=torch.float32) * s).expand(1, 3, h, w).clone()
    ctx = O.Context({}, ramp, ramp)
    for beta in (1.0, 2.0):
        want = 3 * (h - 1) * (w - 1) * s**beta / (h * w)
        assert math.isclose(float(O.tv(beta)(ctx)), want, rel_tol=1e-4)
    assert math.isclose(float(O.tv(2.0, V=0.5)(ctx)), 3 * 49 * s**2 / (64 * 0.25), rel_tol=1e-4)


def test_l2_and_bounded_range_of_a_constant_image():
    x = torch.full((1, 3, 5, 5), 2.0)
    ctx = O.Context({}, x, x)
    assert math.isclose(float(O.l2()(ctx)), 12.0, rel_tol=1e-6)  # Σ_k 2² per pixel
    # N_α = (1/(HW B^α)) Σ (Σ_k x²)^(α/2): every pixel has RGB norm sqrt(12)
    assert math.isclose(float(O.bounded_range(6, B=2.0)(ctx)), 12**3 / 2**6, rel_tol=1e-5)


def test_split_separates_targets_and_penalties():
    a = torch.randn(2, 3, 2, 2)
    x = torch.rand(2, 3, 4, 4)
    ctx = O.Context({"L": a}, x, x)
    obj = O.channel("L", 1) - 0.1 * O.l2()
    targets, penalties = obj.split(ctx)
    assert torch.allclose(targets, a[:, 1].mean((1, 2)))
    assert torch.allclose(penalties, -0.1 * x.pow(2).sum((1, 2, 3)) / 16)
    assert torch.allclose(targets + penalties, obj(ctx))


def test_inversion_loss_is_eq_2_and_eq_3():
    a = torch.randn(3, 4, 5, 5)
    target = torch.randn(3, 4, 5, 5)
    ctx = _ctx({"L": a})
    full = ((a - target) ** 2).sum((1, 2, 3)) / (target**2).sum((1, 2, 3))
    assert torch.allclose(O.inversion("L", target, weight=20.0)(ctx), -20.0 * full, rtol=1e-5)
    mask = torch.zeros(1, 4, 5, 5)
    mask[:, 1:3, 1:4, 1:4] = 1
    masked = (((a - target) * mask) ** 2).sum((1, 2, 3)) / ((target * mask) ** 2).sum((1, 2, 3))
    c = torch.tensor([1.0, 100.0, 300.0])
    assert torch.allclose(
        O.inversion("L", target, mask=mask, weight=c)(ctx), -c * masked, rtol=1e-5
    )
    # one shared target, and a term on some elements only
    shared = O.inversion("L", target[0], batch=[2])(ctx)
    assert shared[0] == 0 and shared[1] == 0
    assert torch.allclose(
        shared[2], -((a[2] - target[0]) ** 2).sum() / (target[0] ** 2).sum(), rtol=1e-5
    )
    assert torch.allclose(O.inversion("L", a)(ctx), torch.zeros(3))


def test_inner_product_is_eq_4():
    a = torch.randn(2, 3, 4, 4)
    w = torch.rand(2, 3, 4, 4)
    z = torch.tensor([2.0, 5.0])
    got = O.inner_product("L", w, Z=z)(_ctx({"L": a}))
    assert torch.allclose(got, (a * w).sum((1, 2, 3)) / z, rtol=1e-5)


def test_a_unit_of_a_layer_without_positions_is_the_channel():
    """On a flat layer (fc, a model's neurons) the centre unit is the channel itself, so the
    commands that take the centre unit (diverse, invariance, maximize) work there too."""
    from torch import nn

    import preimage
    from preimage.engine.targets import element_values, parse_target

    net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 12 * 12, 3))
    model = preimage.wrap_model(net, channels=1, input_size=16)
    images = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    elements = parse_target(model, "3:0-2", unit_mode=True)
    with torch.no_grad():
        expected = net(model.preprocess(images))
    unit = O.unit("3", [0, 1, 2], batch=[0, 1, 2])
    ctx = O.Context(model.activations(images[:3], ["3"]), images[:3], images[:3])
    assert torch.allclose(unit(ctx), expected[:3].diagonal(), atol=1e-6)
    assert torch.allclose(element_values(model, elements, images), expected, atol=1e-6)
    result = preimage.run("diverse", model, target="3:0-1", n=2, lambdas=[0, 1], steps=3,
                          progress=False)  # fmt: skip
    assert result.sweeps[0].images.shape == (2, 2, 1, 16, 16)
    inv = preimage.run("invariance", model, target="3:0", n=2, lambdas=[0, 1], steps=2,
                       progress=False)  # fmt: skip
    sii = inv.units[0].shift_invariance_index
    assert sii is not None and sii == sii  # computed (not NaN) on a layer without positions
