"""Parameterizations invert exactly; constraints project; Algorithm 1 step by step."""

import math

import pytest
import torch

import preimage
from preimage.engine.optim import AdaGradMomentum
from preimage.engine.params import ImageParam, PixelNormBound, fourier_scale


@pytest.mark.parametrize("basis", ["pixel", "fourier"])
@pytest.mark.parametrize("decorrelate", [False, True])
@pytest.mark.parametrize("output", ["linear", "sigmoid"])
def test_set_images_round_trip(basis, decorrelate, output):
    images = torch.rand(2, 3, 12, 10) * 0.9 + 0.05
    p = ImageParam(
        2,
        (12, 10),
        basis=basis,
        decorrelate=decorrelate,
        output=output,
        generator=torch.Generator().manual_seed(0),
    )
    p.set_images(images)
    assert torch.allclose(p(), images, atol=1e-4)


def test_fourier_amplitudes_fall_as_one_over_f():
    scale = fourier_scale(64, 64, decay=1.0)
    # frequency (0, 4/64) has twice the amplitude of (0, 8/64)
    assert math.isclose(float(scale[0, 4] / scale[0, 8]), 2.0, rel_tol=1e-6)
    assert math.isclose(
        float(fourier_scale(64, 64, 0.5)[0, 4] / fourier_scale(64, 64, 0.5)[0, 16]),
        2.0,
        rel_tol=1e-6,
    )


def test_constraints_project(lite0):
    x = torch.rand(3, 3, 8, 8) * 3 - 1
    scale, shift = lite0.centering(x)
    bounded = PixelNormBound(0.5)(x, lite0) * scale + shift
    assert bounded.norm(dim=1).max() <= 0.5 + 1e-5


def test_adagrad_momentum_follows_algorithm_1():
    x = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = AdaGradMomentum([x], lr=0.1, rho=0.9)
    G = torch.zeros(2)
    mu = torch.zeros(2)
    ref = x.detach().clone()
    for _ in range(4):
        opt.zero_grad()
        (x**2).sum().backward()
        g = 2 * ref
        G = 0.9 * G + g * g
        eta = 1 / (1 / 0.1 + G.sqrt())
        mu = 0.9 * mu - eta * g
        ref = ref + mu
        opt.step()
        assert torch.allclose(x.detach(), ref, atol=1e-6)


def test_unknown_choices_are_named():
    with pytest.raises(preimage.PreimageError, match="valid: pixel, fourier"):
        ImageParam(1, 8, basis="wavelet")
    with pytest.raises(preimage.PreimageError, match="adam, adagrad-momentum"):
        preimage.Optimizer("sgd", 0.1)
    with pytest.raises(preimage.PreimageError, match="bad learning rate -1"):
        preimage.Optimizer("adam", -1)
    opt = preimage.Optimizer("adagrad-momentum", 0.5)([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, AdaGradMomentum) and opt.defaults["lr"] == 0.5
