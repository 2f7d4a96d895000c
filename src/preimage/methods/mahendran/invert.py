"""Inversion (Mahendran & Vedaldi §5): reconstruct an image from its code at a layer.

Starting from noise, minimize the energy of eq. 1 with the loss of eqs. 2-3,
ℓ = ‖(Φ(x) - Φ0) ⊙ M‖² / ‖Φ0 ⊙ M‖², C chosen by depth (§5.2.1) unless given, over the whole
code or a mask of it: a central window of the feature map (Fig. 9) or a range of channels
(Fig. 10). The score of a reconstruction is its normalized error ‖Φ(x*) - Φ0‖/‖Φ0‖ (§5.1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ...engine import objectives as O
from ...errors import PreimageError
from ...settings import at_least, between, positive, setting
from ..base import Method
from ..common import model_record
from ..registry import register
from .energy import EnergySettings, paper_C, preset
from .result import PreimageResult


def feature_mask(shape, window=None, channels=None):
    """A 0/1 mask over a layer's output (C x H x W or C): a central window and/or a channel
    range (A, B), half-open."""
    mask = torch.ones(shape)
    if channels is not None:
        a, b = channels
        if not (0 <= a < b <= shape[0]):
            raise PreimageError(
                f"bad --mask-channels {a}:{b}; the layer has channels 0..{shape[0] - 1} (A:B is"
                " half-open, A < B)"
            )
        keep = torch.zeros(shape[0], dtype=torch.bool)
        keep[a:b] = True
        mask[~keep] = 0
    if window is not None:
        if len(shape) != 3:
            raise PreimageError("--mask-window needs a layer with a spatial map")
        h, w = shape[1:]
        k = int(window)
        if not 1 <= k <= min(h, w):
            raise PreimageError(f"bad --mask-window {k}; the layer's map is {h}x{w}")
        top, left = (h - k) // 2, (w - k) // 2
        spatial = torch.zeros(h, w)
        spatial[top : top + k, left : left + k] = 1
        mask = mask * spatial
    return mask


def window_box(info, window):
    """Input pixels (top, bottom, left, right) seen by the central window x window units."""
    h, w = info.shape[1:]
    top, left = (h - window) // 2, (w - window) // 2
    t, _, left_edge, _ = info.receptive_box(top, left)
    _, b, _, r = info.receptive_box(top + window - 1, left + window - 1)
    return t, b, left_edge, r


def invert(
    model,
    layer,
    images,
    C=None,
    mask_window=None,
    mask_channels=None,
    seeds=1,
    seed=0,
    progress=True,
    **preset_kw,
):
    """Reconstruct images from their code at a layer, starting from noise (§5).

    images: K x 3 x S x S in [0, 1] (S is the network's window). C: a number, a list (every
    image is inverted at every C), or None for the paper's choice. seeds: reconstructions per
    image and C, each from its own noise (Fig. 8). Returns a PreimageResult whose ``scores``
    are the normalized reconstruction errors of §5.1, over the masked components when a mask
    is given. preset_kw: energy, jitter, prior and prior_weight, as ``preset`` takes them.
    """
    images = images.to(model.device)
    k, size = images.shape[0], images.shape[-1]
    if seeds < 1:
        raise PreimageError(f"bad --seeds {seeds}; it must be at least 1")
    pre = preset(model, layer, size, **preset_kw)
    if C is None:
        Cs = [paper_C(model, layer, size)]
    else:
        Cs = [float(c) for c in (C if isinstance(C, (list, tuple)) else [C])]
    for c in Cs:
        if c <= 0:
            raise PreimageError(f"bad C {c}; it must be positive")
    with torch.no_grad():
        target = model.activations(images, [layer])[layer].float()
    mask = None
    if mask_window is not None or mask_channels is not None:
        mask = feature_mask(tuple(target.shape[1:]), mask_window, mask_channels).to(target.device)
    meta = [{"image": i, "C": c, "seed": s} for i in range(k) for c in Cs for s in range(seeds)]
    index = torch.tensor([m["image"] for m in meta], device=target.device)
    weights = torch.tensor([m["C"] for m in meta])
    loss = O.inversion(layer, target.index_select(0, index), mask=mask, weight=weights)
    result = pre.render(model, loss, len(meta), seed, progress, desc=f"invert {layer}")
    # the render's target value is -C ℓ per pixel; the error of §5.1 is sqrt(ℓ)
    errors = torch.sqrt(torch.clamp(-pre.per_pixel(result.activations) / weights, min=0))
    config = {
        "method": "invert",
        "loss": "inversion, eqs. 2-3",
        "layer": layer,
        "C": Cs,
        "mask_window": mask_window,
        "mask_channels": mask_channels,
        "seeds": seeds,
        "seed": seed,
        **pre.describe(),
    }
    return PreimageResult(
        pre.window(result.images), result.images, errors, result, pre, meta, config
    )


def _channel_range(flag, text):
    a, sep, b = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        int(a), int(b)
    except ValueError:
        raise PreimageError(f"bad {flag} {text!r}; expected A:B, channels A to B-1") from None


@dataclass
class InvertSettings(EnergySettings):
    """The settings of `preimage invert`; each field's help is its flag's."""

    layer: str = setting(None, "the layer whose code is inverted", type=str)
    image: str = setting(
        None, "an image file, or sample:NAME (astronaut, chelsea, coffee, ...)", type=str
    )
    C: float = setting(
        None,
        "weight of the loss (default: the paper's choice by depth)",
        type=float,
        check=positive,
    )
    mask_window: int = setting(
        None,
        "invert only the central K x K window of the feature map",
        type=int,
        check=at_least(1),
    )
    mask_channels: str = setting(
        None, "invert only channels A to B-1, given as A:B", type=str, check=_channel_range
    )
    seeds: int = setting(1, "reconstructions from different noise", check=between(1, 100))

    def validate(self):
        super().validate()
        for name in ("layer", "image"):
            if not getattr(self, name):
                raise PreimageError(f"bad --{name}: it is required")


def run(model, settings, *, progress=True, load=None):
    """Invert the settings' image at the settings' layer; a PreimageResult with its files."""
    from ...io.images import load_image_arg

    s = settings
    size = int(s.size or model.input_size)
    image = load_image_arg(s.image, size, model.channels, model.interpolation)
    info = model.layer_info(s.layer, size)
    channels = None
    if s.mask_channels:
        a, _, b = s.mask_channels.partition(":")
        channels = (int(a), int(b))
    if s.mask_window is not None or channels is not None:
        feature_mask(info.shape, s.mask_window, channels)  # checked before the run
    energy = s.energy(model, image)
    result = invert(
        model,
        s.layer,
        image,
        C=s.C,
        mask_window=s.mask_window,
        mask_channels=channels,
        seeds=s.seeds,
        seed=s.seed,
        progress=progress,
        **s.preset_kw(model, energy),
    )
    box = window_box(info, s.mask_window) if s.mask_window else None
    errors = [round(float(e), 5) for e in result.scores]
    extra = {"reconstruction_error": errors}
    if box:
        extra["window_receptive_field"] = dict(zip(("top", "bottom", "left", "right"), box))
    shown = ", ".join(f"{100 * e:.1f} %" for e in errors)
    return dataclasses.replace(
        result,
        config={**model_record(model), **s.as_dict(), "size": size, **result.config},
        originals=image,
        box=box,
        labels=[f"seed{m['seed']}_C{m['C']:g}" for m in result.meta],
        extra=extra,
        headline=f"reconstruction error ‖Φ(x*) - Φ0‖/‖Φ0‖ at {s.layer}: {shown} (C ="
        f" {result.config['C'][0]:g}, {result.render.steps} steps)",
    )


METHOD = register(
    Method(
        name="invert",
        help="reconstruct an image from its code at a layer (Mahendran & Vedaldi §5)",
        settings=InvertSettings,
        run=run,
    )
)
