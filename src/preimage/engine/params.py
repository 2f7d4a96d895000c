"""Image parameterizations and the constraints projected after each step.

An ``ImageParam`` holds the optimized tensor ``theta`` and maps it to
display-space images (N x C x H x W, nominally in [0, 1]; C = 3 for RGB, 1 for grey):

    theta --basis--> raw --colour--> decorrelated --output--> images

* basis ``pixel``: raw = theta; ``fourier``: raw = irfft2(theta * 1/f^d), so
  each spatial frequency f starts, and moves, with an amplitude 1/f^d.
* colour ``decorrelate``: raw is expressed in ImageNet's decorrelated colour
  basis (the square root of the colour covariance), as in Lucid. It is a basis of RGB only:
  images of other channel counts are not decorrelated (``describe`` says so).
* output ``sigmoid`` squashes into (0, 1); ``linear`` is raw * value_scale +
  offset (0.5, or per channel, such as the model's mean colour), so theta can
  live in whatever units an optimizer was tuned for (Mahendran & Vedaldi's
  0-255 scale).

Every stage is invertible, so ``set_images`` can start from given images
(caricature starts from the image itself) and constraints can project in
image space and write the projection back into theta.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import PreimageError

# Square root of ImageNet's RGB covariance (Lucid's color_correlation_svd_sqrt),
# normalised so its largest column has unit norm.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


def _mix(matrix, images):
    """Mix colour channels: out[:, d] = Σ_c matrix[d, c] images[:, c] (a batched matmul, faster than
    einsum).
    """
    n, c, h, w = images.shape
    return torch.matmul(matrix, images.reshape(n, c, h * w)).view(n, -1, h, w)


def fourier_scale(h, w, decay=1.0):
    """Amplitude 1/f^d per rfft2 coefficient, f in cycles per image, floored at 1/max(h, w)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    f = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / torch.clamp(f, min=1.0 / max(h, w)) ** decay


class ImageParam(nn.Module):
    """N images of size H x W as an optimizable parameterization."""

    def __init__(
        self,
        n,
        size,
        basis="fourier",
        decorrelate=True,
        output="sigmoid",
        decay=1.0,
        init_std=0.01,
        generator=None,
        device="cpu",
        value_scale=1.0,
        offset=0.5,
        channels=3,
    ):
        super().__init__()
        h, w = (size, size) if isinstance(size, int) else size
        if basis not in ("pixel", "fourier"):
            raise PreimageError(f"unknown parameterization {basis!r}; valid: pixel, fourier")
        if output not in ("sigmoid", "linear"):
            raise PreimageError(f"unknown output mapping {output!r}; valid: sigmoid, linear")
        if int(channels) < 1:
            raise PreimageError(f"bad channels {channels!r}; images have at least one channel")
        self.n, self.h, self.w, self.channels = n, h, w, int(channels)
        # ImageNet's colour covariance says nothing of a grey (or any non-RGB) channel
        self.decorrelate_off = bool(decorrelate) and self.channels != 3
        if self.decorrelate_off:
            decorrelate = False
        self.basis, self.decorrelate, self.output, self.decay = basis, decorrelate, output, decay
        self.value_scale = float(value_scale)
        device = torch.device(device)
        self.register_buffer(
            "offset",
            torch.as_tensor(offset, dtype=torch.float32)
            .reshape(1, -1, 1, 1)
            .expand(1, self.channels, 1, 1)
            .clone()
            .to(device),
        )
        if basis == "fourier":
            self.register_buffer("scale", (fourier_scale(h, w, decay) / 4.0).to(device))
            shape = (n, self.channels, h, w // 2 + 1, 2)
        else:
            shape = (n, self.channels, h, w)
        init = torch.randn(shape, generator=generator) * init_std
        self.theta = nn.Parameter(init.to(device))
        self.register_buffer("color", _COLOR.to(device))
        self.register_buffer("color_inv", torch.linalg.inv(_COLOR).to(device))

    def forward(self):
        if self.basis == "fourier":
            spectrum = torch.view_as_complex(self.theta) * self.scale
            raw = torch.fft.irfft2(spectrum, s=(self.h, self.w), norm="ortho")
        else:
            raw = self.theta
        if self.decorrelate:
            raw = _mix(self.color, raw)
        if self.output == "sigmoid":
            return torch.sigmoid(raw)
        return (raw * self.value_scale if self.value_scale != 1.0 else raw) + self.offset

    @torch.no_grad()
    def set_images(self, images):
        """Set theta so that forward() returns ``images`` (clamped into (0, 1) for sigmoid)."""
        images = images.to(self.theta.device, self.theta.dtype)
        if self.output == "sigmoid":
            raw = torch.logit(images.clamp(1e-4, 1 - 1e-4))
        else:
            raw = (images - self.offset) / self.value_scale
        if self.decorrelate:
            raw = _mix(self.color_inv, raw)
        if self.basis == "fourier":
            spectrum = torch.fft.rfft2(raw, norm="ortho") / self.scale
            self.theta.copy_(torch.view_as_real(spectrum))
        else:
            self.theta.copy_(raw)

    def describe(self):
        out = {
            "basis": self.basis,
            "decorrelate": self.decorrelate,
            "output": self.output,
            "decay": self.decay,
        }
        if self.output == "linear":
            out.update(value_scale=self.value_scale, offset=self.offset.flatten().tolist())
        if self.channels != 3:
            out["channels"] = self.channels
        if self.decorrelate_off:
            out["decorrelate_off"] = f"colour decorrelation is for RGB; {self.channels} channel(s)"
        return out


class NormalizedParam(nn.Module):
    """Another parameterization's images rescaled to a fixed L2 norm (centred input units), inside
    the graph.

    A norm fixed by projection after each step stalls Adam: on a linear
    objective the gradient never shrinks, Adam's per-coordinate step becomes
    its sign, and the images settle on sign(gradient) instead of the optimum.
    Normalizing in the forward pass makes the gradient tangent to the sphere,
    so it vanishes at the optimum.
    """

    def __init__(self, base, norm, model, clip=None):
        super().__init__()
        self.base = base
        self.norm = float(norm)
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))
        self.n, self.h, self.w = base.n, base.h, base.w
        self.channels = getattr(base, "channels", 3)
        scale, shift = model.centering(torch.zeros(1, device=base.theta.device))
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    @property
    def theta(self):
        return self.base.theta

    def forward(self):
        centred = self.base() * self.scale + self.shift
        norms = centred.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        images = (centred * (self.norm / norms) - self.shift) / self.scale
        # a pixel range (the data's) clips what the norm would push out of it
        return images if self.clip is None else images.clamp(*self.clip)

    @torch.no_grad()
    def set_images(self, images):
        self.base.set_images(images)

    def describe(self):
        clip = {} if self.clip is None else {"clip": list(self.clip)}
        return {**self.base.describe(), "fixed_norm": self.norm, **clip}


# -- constraints: projections applied to the images after each optimizer step -----------------


class PixelNormBound:
    """Project each pixel's RGB vector into the ball of radius B+ (Mahendran & Vedaldi eq. 6)."""

    def __init__(self, bound):
        self.bound = float(bound)

    def __call__(self, images, model):
        scale, shift = model.centering(images)
        centred = images * scale + shift
        norms = centred.norm(dim=1, keepdim=True)
        factor = torch.clamp(self.bound / norms.clamp_min(1e-12), max=1.0)
        return (centred * factor - shift) / scale

    def describe(self):
        return {"type": "pixel_norm_bound", "bound": self.bound}
