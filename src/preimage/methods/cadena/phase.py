"""The phase of a grating in an image, by projection on a quadrature pair (the phase figures)."""

from __future__ import annotations

import math

import torch


def phase(images, wavelength, orientation=0.0, sigma=None):
    """The phase of the grating in each image (radians), by projection on a quadrature pair.

    images: N x 3 x H x W centred (mean removed); the grey image is projected on
    a cosine and a sine carrier of the given wavelength and orientation under a
    Gaussian envelope, and the phase is atan2(-⟨x, sin⟩, ⟨x, cos⟩).
    """
    grey = images.mean(1)
    h, w = grey.shape[-2:]
    c_y, c_x = (h - 1) / 2, (w - 1) / 2
    y, x = torch.meshgrid(
        torch.arange(h, dtype=torch.float64) - c_y,
        torch.arange(w, dtype=torch.float64) - c_x,
        indexing="ij",
    )
    xr = x * math.cos(orientation) + y * math.sin(orientation)
    env = torch.exp(-(x**2 + y**2) / (2 * (sigma or wavelength / 2) ** 2))
    carrier = 2 * math.pi * xr / wavelength
    cos = (env * torch.cos(carrier)).to(grey.dtype)
    sin = (env * torch.sin(carrier)).to(grey.dtype)
    a = (grey * cos).sum((-2, -1))
    b = (grey * sin).sum((-2, -1))
    return torch.atan2(-b, a)
