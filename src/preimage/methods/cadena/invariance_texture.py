"""The texture of the shift invariance index (Cadena et al. §4.4): an image twice as large as the
unit's receptive field ρ whose windowed crops of side ρ, at every position, drive the unit.

Two choices make "all possible crops" mean what §4.4 needs, for every unit alike:

* **The texture is periodic and its crops wrap around** (`PeriodicCrops`). Crops that must lie
  inside a 2ρ image all cover its centre and few cover its border, so the optimum is one blob at
  the centre rather than a texture: measured on the energy-model cell, crops inside the image
  range from 0.2 to 18 times each other's activation, and an ideal grating scores 3x lower than
  that blob. On a torus every pixel is covered by as many crops as every other, and the
  Fourier parameterization is periodic already.
* **The crops the unit sees carry the templates' norm** (`texture_norm`). The index compares
  the unit's answer to windowed crops with its answer to templates of the sweep's fixed norm; an
  energy unit is quadratic in contrast, so a crop of lower norm loses the square of the ratio.
  Half the natural norm of a 2ρ patch left the crops at 0.58x the templates' norm before their
  window. With periodic crops at every start the RMS norm of a windowed crop is exactly the
  texture's norm times ‖window‖ / 2ρ, so that is what is fixed.

And the optimization stops on a longer average (`texture_stop`): 16 random crops a step make a
noisy objective, and the render loop's default (a 10-step average, patience 50) stopped the
energy cell's texture at step 120 with 86 % of the ideal grating's crop activation; a 100-step
average stops it near step 700 at 97 %.
"""

from __future__ import annotations

import math

import torch

from ...engine import objectives as O
from ...engine.optim import Optimizer
from ...engine.params import ImageParam, NormalizedParam
from ...engine.render import render
from ...engine.stopping import Convergence
from ...engine.views import Groups, WindowedCrops

CROPS_PER_STEP = 16  # windowed crops of each texture per step
PATIENCE, SMOOTHING = 100, 0.99  # see the module's docstring
MAX_POSITIONS = 64  # crop positions per axis: every position for textures up to 64 px


class PeriodicCrops(WindowedCrops):
    """Windowed crops of side ``size`` from periodic images: a crop may start at any pixel and
    wraps around the border, so every pixel lies in as many crops as any other."""

    def describe(self):
        return {**super().describe(), "periodic": True}

    def crops(self, images, ys, xs):
        """images N x C x H x W, starts (N x K each, any pixel) -> (N·K) x C x size x size."""
        n, c, h, w = images.shape
        s = self.size
        ar = torch.arange(s, device=images.device)
        rows = ((ys.to(images.device)[..., None] + ar) % h).view(n, -1, s, 1)
        cols = ((xs.to(images.device)[..., None] + ar) % w).view(n, -1, 1, s)
        index = (rows * w + cols).view(n, 1, -1).expand(n, c, -1)
        out = torch.gather(images.reshape(n, c, h * w), 2, index).view(n, c, -1, s, s)
        return (out.transpose(1, 2) * self.window(images)).reshape(-1, c, s, s)

    def __call__(self, images, generator=None):
        """K crops per image at random starts anywhere: (views, Groups)."""
        n, _, h, w = images.shape
        ys = torch.randint(0, h, (n, self.k), generator=generator)
        xs = torch.randint(0, w, (n, self.k), generator=generator)
        return self.crops(images, ys, xs), Groups(self.k)

    def grid(self, n, h, w, k=None):
        """About k starts spread evenly over the period (the same for every image)."""
        side = max(1, int(round(math.sqrt(k or self.k))))
        ys, xs = torch.arange(side) * h // side, torch.arange(side) * w // side
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return yy.reshape(1, -1).expand(n, -1), xx.reshape(1, -1).expand(n, -1)


def texture_norm(template_norm, window, side):
    """The norm of a ``side``-px periodic texture whose crops, windowed by ``window``, have the
    templates' norm in RMS over all starts: each texture pixel meets every window pixel once, so
    the crops' mean squared norm is ‖texture‖² ‖window‖² / side²."""
    return float(template_norm) * side / float(window.double().norm())


def starts(extent):
    """Crop starts along one axis of a periodic texture: every pixel, or MAX_POSITIONS spread
    evenly over the period (a ViT's 224 px unit would otherwise take 448² crops)."""
    m = min(int(extent), MAX_POSITIONS)
    return torch.arange(m) * int(extent) // m


def all_crops_activation(model, layer, textures, channels, size, unit, chunk=256):
    """The mean activation of each unit (``unit(activations, channel)``) over the windowed crops of
    its texture at every start."""
    views = PeriodicCrops(size)
    n, _, h, w = textures.shape
    ys, xs = torch.meshgrid(starts(h), starts(w), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    out = []
    with torch.no_grad():
        for i in range(n):
            image = model.normalize(textures[i : i + 1].to(model.device))
            total, count = 0.0, 0
            for begin in range(0, len(ys), chunk):
                crops = views.crops(
                    image, ys[None, begin : begin + chunk], xs[None, begin : begin + chunk]
                )
                a = model.activations_of_inputs(model.memory_format(crops), [layer])[layer]
                total += float(unit(a, channels[i]).sum())
                count += crops.shape[0]
            out.append(total / count)
    return torch.tensor(out)


def texture_stop(patience=PATIENCE):
    """The texture's stop criterion: no unit's 100-step average improved for ``patience`` steps
    (None, every step, for 0)."""
    return Convergence(patience=patience, smoothing=SMOOTHING) if patience else None


def textures(model, layer, channels, size, template_norm, *, steps=1000, lr=0.1,
             k=CROPS_PER_STEP, seed=0, patience=PATIENCE, progress=True):  # fmt: skip
    """One periodic texture of side 2ρ per unit, maximizing the mean activation of its windowed
    crops: (the RenderResult, the texture's norm)."""
    big = 2 * size
    views = PeriodicCrops(size, k)
    norm = texture_norm(template_norm, views.window(torch.zeros(())), big)
    base = ImageParam(
        len(channels),
        big,
        basis="fourier",
        decorrelate=False,
        output="linear",
        decay=0.5,
        offset=model.display_mean(),
        generator=torch.Generator().manual_seed(int(seed)),
        device=model.device,
        channels=model.channels,
    )
    per_view = O.unit(layer, [c for c in channels for _ in range(k)])
    result = render(
        model,
        O.over_views(per_view),
        NormalizedParam(base, norm, model),
        views=views,
        optimizer=Optimizer("adam", lr),
        steps=steps,
        stop=texture_stop(patience),
        seed=seed,
        progress=progress,
        desc=f"textures {layer} x{len(channels)}",
    )
    return result, norm
