"""Groups of batch elements, and the views stage: each image shown to the network as K views.

``Groups`` names how a batch falls into consecutive groups of equal size: the images of one
(unit, λ) pair in a diverse sweep, or the views of one image. Terms reduce over a group
(``mean``) or hand a group's value to its elements (``share``) through it, never by reshaping
with a size they were not told.

A views stage sits between the images (after the random transforms and the model's
normalization) and the network: N images in, N·K views out, with the groups that map views
back to images. ``WindowedCrops`` is Cadena et al.'s (§4.4): K windowed crops of side ρ per
image per step, at random positions, and a fixed grid of positions for the final evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SIGMA_RATIO = 2.5  # Cadena et al. §4.4: the crop's side over the σ of its window


@dataclass(frozen=True)
class Groups:
    """Consecutive groups of ``size`` elements each."""

    size: int

    def stack(self, t):
        """(G·size) x ... -> G x size x D, each element flattened."""
        return t.reshape(-1, self.size, int(t[0].numel()))

    def mean(self, values):
        """(G·size,) -> (G,): the mean over each group."""
        return values.view(-1, self.size).mean(1)

    def share(self, per_group):
        """(G,) -> (G·size,): each element carries its group's value divided by the group size,
        so the batch sum is the sum over groups."""
        return (per_group / self.size).repeat_interleave(self.size)


def crop_window(size, sigma=None):
    """exp(-(r/σ)^4), r the distance from the crop's centre, σ = size / 2.5."""
    sigma = sigma or size / SIGMA_RATIO
    c = (size - 1) / 2
    axis = torch.arange(size, dtype=torch.float64) - c
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    r = torch.sqrt(x**2 + y**2)
    return torch.exp(-((r / sigma) ** 4)).float()


class WindowedCrops:
    """N normalized images -> N·K windowed crops of side ``size``, K random positions per image.

    Normalized images are zero at the model's mean colour, so multiplying by the window fades
    each crop to the mean. ``final`` takes a fixed grid of about K positions instead.
    """

    def __init__(self, size, k=16):
        self.size, self.k = int(size), int(k)
        self._window = {}

    def describe(self):
        return {
            "windowed_crops": self.size,
            "per_step": self.k,
            "window": f"exp(-(r/σ)^4), σ = size / {SIGMA_RATIO}",
        }

    def window(self, like):
        key = (like.device, like.dtype)
        if key not in self._window:
            self._window[key] = crop_window(self.size).to(like.device, like.dtype)
        return self._window[key]

    def crops(self, images, ys, xs):
        """images N x C x H x W, positions (N x K each) -> (N·K) x C x size x size, windowed."""
        n, c, h, w = images.shape
        s = self.size
        ar = torch.arange(s, device=images.device)
        rows = (ys.to(images.device)[..., None] + ar).view(n, -1, s, 1)  # N x K x s x 1
        cols = (xs.to(images.device)[..., None] + ar).view(n, -1, 1, s)  # N x K x 1 x s
        flat = images.view(n, c, h * w)
        index = (rows * w + cols).view(n, 1, -1).expand(n, c, -1)  # N x C x (K·s·s)
        out = torch.gather(flat, 2, index).view(n, c, -1, s, s).transpose(1, 2)  # N x K x C x s²
        return (out * self.window(images)).reshape(-1, c, s, s)

    def __call__(self, images, generator=None):
        """K crops per image at random positions: (views, Groups)."""
        n, _, h, w = images.shape
        ys = torch.randint(0, h - self.size + 1, (n, self.k), generator=generator)
        xs = torch.randint(0, w - self.size + 1, (n, self.k), generator=generator)
        return self.crops(images, ys, xs), Groups(self.k)

    def grid(self, n, h, w, k=None):
        """A regular grid of about k positions (the same for every image)."""
        k = k or self.k
        side = max(1, int(round(math.sqrt(k))))
        ys = torch.linspace(0, h - self.size, side).round().long()
        xs = torch.linspace(0, w - self.size, side).round().long()
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return yy.reshape(1, -1).expand(n, -1), xx.reshape(1, -1).expand(n, -1)

    def final(self, images):
        """The crops on the fixed grid: (views, Groups)."""
        n, _, h, w = images.shape
        ys, xs = self.grid(n, h, w)
        return self.crops(images, ys, xs), Groups(ys.shape[1])
