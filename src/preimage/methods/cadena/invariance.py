"""Invariance indices of Cadena et al. 2018 (§4.4, §4.5): texture units and shape units.

Shift invariance index (§4.4, Fig. 8A 1-4). An image twice as large as the
unit's receptive field ρ is optimized so that the average activation of its
windowed crops of size ρ is as high as possible; the window is
exp(-(r/σ)^4) with ρ/σ = 2.5, applied around the mean colour. The index is
the mean activation over all crops of that texture divided by the mean
activation of the unit's diverse templates at the chosen λ. A phase-invariant
(texture) unit keeps its activation wherever the crop falls; a unit that wants
a shape at one place in its field cannot.

Linear combination index (§4.5, Fig. 8A 5). The pixel-space averages of all
15 pairs of the 6 templates, rescaled to the templates' norm: their mean
activation over the templates' mean activation. Units tolerant to local
deformations keep responding to such blends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import torch

from ...engine import objectives as O
from .diverse import diverse, natural_patch_norm
from ...engine.params import ImageParam, NormalizedParam
from ...engine.render import Convergence, render
from ...engine.transforms import Pipeline

SIGMA_RATIO = 2.5  # receptive field / σ of the window


def crop_window(size, sigma=None):
    """exp(-(r/σ)^4), r the distance from the crop's centre, σ = size / 2.5."""
    sigma = sigma or size / SIGMA_RATIO
    c = (size - 1) / 2
    y, x = torch.meshgrid(
        torch.arange(size, dtype=torch.float64) - c,
        torch.arange(size, dtype=torch.float64) - c,
        indexing="ij",
    )
    r = torch.sqrt(x**2 + y**2)
    return torch.exp(-((r / sigma) ** 4)).float()


class WindowedCrops(Pipeline):
    """N normalized images -> N*K windowed crops of side ``size``, K random positions per image per step.

    Normalized images are zero at the model's mean colour, so multiplying by the
    window fades each crop to the mean. ``final_view`` takes a fixed grid of K
    positions instead of random ones.
    """

    def __init__(self, size, k=16):
        super().__init__([], output_size=None)
        self.size, self.k = int(size), int(k)
        self.fill = 0.0
        self._window = {}

    def __bool__(self):
        return True

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
        """images N x C x H x W, positions (N x K each) -> (N*K) x C x size x size, windowed."""
        n, c, h, w = images.shape
        s = self.size
        ar = torch.arange(s, device=images.device)
        rows = (ys.to(images.device)[..., None] + ar).view(n, -1, s, 1)  # N x K x s x 1
        cols = (xs.to(images.device)[..., None] + ar).view(n, -1, 1, s)  # N x K x 1 x s
        flat = images.view(n, c, h * w)
        index = (rows * w + cols).view(n, 1, -1).expand(n, c, -1)  # N x C x (K*s*s)
        out = torch.gather(flat, 2, index).view(n, c, -1, s, s).transpose(1, 2)  # N x K x C x s x s
        return (out * self.window(images)).reshape(-1, c, s, s)

    def __call__(self, images, generator=None, fill_value=None, affine=None, channels_last=False):
        # channels_last: the render loop converts the crops itself (model.memory_format)
        if affine is not None:  # the model's normalization first: the window fades to its zero
            images = torch.addcmul(affine[1], images, affine[0])
        n, _, h, w = images.shape
        ys = torch.randint(0, h - self.size + 1, (n, self.k), generator=generator)
        xs = torch.randint(0, w - self.size + 1, (n, self.k), generator=generator)
        return self.crops(images, ys, xs)

    def grid(self, n, h, w, k=None):
        """A regular grid of about k positions (the same for every image)."""
        k = k or self.k
        side = max(1, int(round(math.sqrt(k))))
        ys = torch.linspace(0, h - self.size, side).round().long()
        xs = torch.linspace(0, w - self.size, side).round().long()
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return yy.reshape(1, -1).expand(n, -1), xx.reshape(1, -1).expand(n, -1)

    def final_view(self, images):
        n, _, h, w = images.shape
        return self.crops(images, *self.grid(n, h, w))


def crop_mean(layer, channels, k):
    """The mean over each image's K crops of its unit's activation (the centre unit of the crop)."""
    per_crop = O.unit(layer, [c for c in channels for _ in range(k)])

    def fn(ctx):
        return per_crop(ctx).view(-1, k).mean(1)

    return O.Objective(fn, [layer], f"{layer}: mean over windowed crops")


def all_crops_activation(model, layer, textures, channels, size, chunk=256):
    """The mean activation of each unit over every windowed crop (stride 1) of its texture."""
    pipe = WindowedCrops(size)
    n, _, h, w = textures.shape
    ys, xs = torch.meshgrid(torch.arange(h - size + 1), torch.arange(w - size + 1), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    out = []
    with torch.no_grad():
        for i in range(n):
            image = model.normalize(textures[i : i + 1].to(model.device))
            total, count = 0.0, 0
            for start in range(0, len(ys), chunk):
                crops = pipe.crops(
                    image, ys[None, start : start + chunk], xs[None, start : start + chunk]
                )
                a = model.activations_of_inputs(model.memory_format(crops), [layer])[layer]
                hh, ww = a.shape[-2:]
                total += float(a[:, channels[i], hh // 2, ww // 2].sum())
                count += crops.shape[0]
            out.append(total / count)
    return torch.tensor(out)


def textures(
    model,
    layer,
    channels,
    size,
    steps=1000,
    lr=0.1,
    crops_per_step=16,
    norm=None,
    seed=0,
    patience=50,
    progress=True,
):
    """Optimize one texture of side 2ρ per unit, maximizing the mean activation of its windowed crops."""
    big = 2 * size
    norm = 0.5 * natural_patch_norm(model, big) if norm is None else norm
    n = len(channels)
    base = ImageParam(
        n,
        big,
        basis="fourier",
        decorrelate=False,
        output="linear",
        decay=0.5,
        offset=model.display_mean(),
        generator=torch.Generator().manual_seed(int(seed)),
        device=model.device,
    )
    pipe = WindowedCrops(size, crops_per_step)
    result = render(
        model,
        crop_mean(layer, channels, crops_per_step),
        n=n,
        size=big,
        param=NormalizedParam(base, norm, model),
        transforms=pipe,
        optimizer="adam",
        lr=lr,
        steps=steps,
        seed=seed,
        stop=Convergence(patience=patience) if patience else None,
        progress=progress,
        desc=f"textures {layer} x{n}",
    )
    return result, norm


def pair_averages(templates, model):
    """All pair averages of n templates in pixel space (centred), rescaled to the templates' mean norm."""
    scale, shift = model.centering(templates)
    centred = templates * scale + shift
    target = centred.flatten(1).norm(dim=1).mean()
    pairs = torch.stack(
        [(centred[i] + centred[j]) / 2 for i, j in combinations(range(templates.shape[0]), 2)]
    )
    pairs = pairs * (target / pairs.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, 1, 1, 1)
    return (pairs - shift) / scale


def unit_activation(model, layer, images, channel):
    with torch.no_grad():
        a = model.activations(images.to(model.device), [layer])[layer]
    h, w = a.shape[-2:]
    return a[:, channel, h // 2, w // 2].float().cpu()


@dataclass
class UnitInvariance:
    layer: str
    channel: int
    shift_invariance_index: float | None
    linear_combination_index: float | None
    template_activation: float
    crop_activation: float
    pair_activation: float
    chosen_lambda: float | None
    texture: torch.Tensor  # 3 x 2ρ x 2ρ
    crops: torch.Tensor  # a grid of windowed crops of the texture, display space
    templates: torch.Tensor  # n x 3 x ρ x ρ at the chosen λ
    pairs: torch.Tensor  # 15 x 3 x ρ x ρ
    extra: dict = field(default_factory=dict)

    def as_dict(self):
        return {
            "layer": self.layer,
            "channel": self.channel,
            "shift_invariance_index": self.shift_invariance_index,
            "linear_combination_index": self.linear_combination_index,
            "template_activation": self.template_activation,
            "crop_activation": self.crop_activation,
            "pair_activation": self.pair_activation,
            "chosen_lambda": self.chosen_lambda,
            **self.extra,
        }


def invariance(
    model,
    layer,
    channels,
    n=6,
    steps=1000,
    seed=0,
    progress=True,
    sweep_kwargs=None,
    crops_per_step=16,
):
    """Both indices for units of a layer: the diverse sweep, the textures, the pair averages."""
    sweeps = diverse(
        model,
        layer,
        channels,
        n=n,
        steps=steps,
        seed=seed,
        progress=progress,
        **(sweep_kwargs or {}),
    )
    size = sweeps[0].extra["size"]
    tex, norm = textures(
        model,
        layer,
        channels,
        size,
        steps=steps,
        seed=seed,
        crops_per_step=crops_per_step,
        progress=progress,
    )
    crop_act = all_crops_activation(model, layer, tex.images, channels, size)
    pipe = WindowedCrops(size, 16)
    out = []
    for i, s in enumerate(sweeps):
        k = s.chosen if s.chosen is not None else 0
        templates = s.images[k]
        template_act = float(s.activations[k].mean())
        pairs = pair_averages(templates, model)
        pair_act = float(unit_activation(model, layer, pairs, s.channel).mean())
        ok = s.chosen is not None and template_act > 0
        with torch.no_grad():
            grid = pipe.final_view(model.normalize(tex.images[i : i + 1]))
        scale, shift = model.affine(grid)
        crops = (grid - shift) / scale
        out.append(
            UnitInvariance(
                layer=s.layer,
                channel=s.channel,
                shift_invariance_index=float(crop_act[i]) / template_act if ok else None,
                linear_combination_index=pair_act / template_act if ok else None,
                template_activation=template_act,
                crop_activation=float(crop_act[i]),
                pair_activation=pair_act,
                chosen_lambda=s.chosen_lambda,
                texture=tex.images[i],
                crops=crops.cpu(),
                templates=templates,
                pairs=pairs.cpu(),
                extra={
                    "texture_norm": norm,
                    "template_norm": s.extra["norm"],
                    "texture_steps": tex.steps,
                    "sweep": s.as_dict(),
                },
            )
        )
    return out, sweeps


def spearman(units):
    """Spearman's rank correlation between the two indices over units (scipy.stats), with its p-value."""
    from scipy.stats import spearmanr

    pairs = [
        (u.shift_invariance_index, u.linear_combination_index)
        for u in units
        if u.shift_invariance_index is not None and u.linear_combination_index is not None
    ]
    if len(pairs) < 3:
        return {"rho": None, "p": None, "units": len(pairs)}
    a, b = np.array(pairs).T
    result = spearmanr(a, b)
    return {"rho": float(result.statistic), "p": float(result.pvalue), "units": len(pairs)}
