"""The fused transform pipeline against plain tensor operations."""

import torch
from grid_theta import affine_grid_theta

from preimage.engine.transforms import FINZI, Jitter, Pad, Pipeline, Rotate, Scale, parse_transforms


def test_identity_steps_change_nothing():
    x = torch.rand(3, 3, 16, 16)
    pipe = Pipeline([Pad(0), Jitter(0), Scale([1.0]), Rotate([0.0])])
    assert torch.allclose(pipe(x, torch.Generator().manual_seed(0)), x, atol=1e-6)


def test_pad_then_jitter_is_a_shifted_crop_with_fill():
    x = torch.rand(4, 3, 10, 10)
    g = torch.Generator().manual_seed(5)
    pipe = Pipeline([Pad(3), Jitter(6)], output_size=None)
    out = pipe(x, g, fill_value=(0.5, 0.5, 0.5))
    assert out.shape[-2:] == (10, 10)
    # replay the offsets the pipeline drew, then crop by hand
    theta, _ = affine_grid_theta(
        Pipeline([Pad(3), Jitter(6)], output_size=None),
        4,
        (10, 10),
        torch.Generator().manual_seed(5),
    )
    padded = torch.nn.functional.pad(x, (3, 3, 3, 3), value=0.5)
    for i in range(4):
        dx = int(round(float(theta[i, 0, 2]) * 5)) + 3  # normalised shift -> pixels; crop origin
        dy = int(round(float(theta[i, 1, 2]) * 5)) + 3
        assert torch.allclose(out[i], padded[i, :, dy : dy + 10, dx : dx + 10], atol=1e-5)


def test_rotation_by_90_degrees_is_rot90():
    x = torch.rand(2, 3, 9, 9)
    out = Pipeline([Rotate([90.0])])(x)
    assert torch.allclose(out, torch.rot90(x, k=1, dims=(2, 3)), atol=1e-5) or torch.allclose(
        out, torch.rot90(x, k=-1, dims=(2, 3)), atol=1e-5
    )


def test_zoom_by_two_samples_the_centre():
    x = torch.arange(16.0).view(1, 1, 4, 4).expand(1, 3, 4, 4).contiguous()
    out = Pipeline([Scale([2.0])])(x)
    # the centre 2x2 block, each pixel spread over 2x2 (bilinear at quarter offsets)
    assert torch.allclose(out.mean(), x[..., 1:3, 1:3].mean(), atol=1e-5)


def test_seeded_and_per_element():
    x = torch.rand(6, 3, 20, 20)
    pipe = parse_transforms("finzi")
    a = pipe(x, torch.Generator().manual_seed(1))
    b = pipe(x, torch.Generator().manual_seed(1))
    c = pipe(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    theta, _ = affine_grid_theta(pipe, 6, (20, 20), torch.Generator().manual_seed(1))
    assert (
        len({tuple(t.flatten().tolist()) for t in theta}) > 1
    )  # elements get their own transforms


def test_finzi_preset_and_spec_strings():
    assert [s.describe() for s in parse_transforms("finzi").steps] == [s.describe() for s in FINZI]
    spec = parse_transforms("pad:12,jitter:8,scale:0.9:1.1:0.02,rotate:-10:10:1,jitter:4")
    assert [s.describe() for s in spec.steps] == [s.describe() for s in FINZI]
    assert len(FINZI[2].factors) == 11 and len(FINZI[3].angles) == 21
    assert not parse_transforms("none")


def test_gradients_flow():
    x = torch.rand(2, 3, 12, 12, requires_grad=True)
    parse_transforms("finzi")(x, torch.Generator().manual_seed(0)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
