"""Activation maximization with Mahendran & Vedaldi's energy (§6): one image per channel's unit.

Φ0 is the indicator of the unit (channel c at a position, default the centre) and the loss is
eq. 4 with Z read as M·HW/ρ²: M, the largest value of the channel on natural images, makes
ℓ = -Φ_c(x)/M about -1 for a natural optimum; ρ²/HW, the share of the image inside the unit's
receptive field ρ, weighs the loss like the regularizers, which average over all HW pixels
while only ρ² of them can raise the unit. With the default window of the receptive field's
size, Z = M. (The text's Z = 1/(Mρ²) would make the loss grow with M and ρ instead.) The score
is Φ_c(x*) / M.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ...engine import objectives as O
from ...engine.targets import parse_target
from ...errors import PreimageError
from ...settings import positive, setting
from ..base import Method
from ..common import model_record
from ..registry import register
from .energy import EnergySettings, preset
from .result import PreimageResult


def natural_maximum(model, layer, channels, images, chunk=16):
    """M per channel: the largest value the channel takes on the natural images, anywhere."""
    best = None
    with torch.no_grad():
        for start in range(0, images.shape[0], chunk):
            batch = images[start : start + chunk].to(model.device)
            a = model.activations(batch, [layer])[layer].float()
            flat = a.transpose(0, 1).reshape(a.shape[1], -1).amax(1)
            best = flat if best is None else torch.maximum(best, flat)
    return best[torch.as_tensor(channels, device=best.device)].cpu()


def _rf(info):
    return info.rf_size if not isinstance(info.rf_size, (list, tuple)) else max(info.rf_size)


def unit_image_size(model, layer):
    """The image a unit is maximized on: its receptive field, at most the input size; the input
    size itself for a model that runs at that size only (position embeddings)."""
    if model.fixed_input_size:
        return model.input_size
    return int(min(model.input_size, _rf(model.layer_info(layer, model.input_size))))


def maximize(
    model,
    layer,
    channels,
    natural,
    size=None,
    C=1.0,
    position=None,
    seed=0,
    progress=True,
    **preset_kw,
):
    """One image per channel maximizing its unit; natural: images (N x 3 x H x W) on which M is
    measured. ``scores`` holds Φ_c(x*) / M.
    preset_kw: energy, jitter, prior and prior_weight, as ``preset`` takes them.
    """
    rf = _rf(model.layer_info(layer, size or model.input_size))
    size = int(size or unit_image_size(model, layer))
    channels = [int(c) for c in channels]
    info = model.layer_info(layer, size)
    pre = preset(model, layer, size, **preset_kw)
    M = natural_maximum(model, layer, channels, natural)
    if (M <= 0).any():
        bad = [c for c, m in zip(channels, M.tolist()) if m <= 0]
        raise PreimageError(
            f"channels {bad} of {layer} never become positive on the natural images; M (their"
            " maximum) must be positive"
        )
    seen = min(1.0, (rf * rf) / float(size * size))
    Z = M / seen
    phi0 = torch.zeros((len(channels),) + tuple(info.shape))
    for i, c in enumerate(channels):
        if len(info.shape) == 3:
            h, w = info.shape[1:]
            y, x = position if position is not None else (h // 2, w // 2)
            phi0[i, c, y, x] = 1.0
        else:
            phi0[i, c] = 1.0
    loss = float(C) * O.inner_product(layer, phi0, Z=Z)
    result = pre.render(model, loss, len(channels), seed, progress, desc=f"maximize {layer}")
    over_z = pre.per_pixel(result.activations) / float(C)  # Φ_c(x*) / Z, and Z = M / seen
    config = {
        "method": "maximize",
        "loss": "activation maximization, eq. 4",
        "layer": layer,
        "channels": channels,
        "C": float(C),
        "M": M.tolist(),
        "Z": Z.tolist(),
        "rf": rf,
        "seed": seed,
        **pre.describe(),
    }
    meta = [{"channel": c, "M": float(m)} for c, m in zip(channels, M)]
    return PreimageResult(
        pre.window(result.images), result.images, over_z / seen, result, pre, meta, config
    )


@dataclass
class MaximizeSettings(EnergySettings):
    """The settings of `preimage maximize`; each field's help is its flag's."""

    target: str = setting(
        None,
        "LAYER:C, LAYER:A-B, LAYER:all, or LAYER:C@Y,X (one image per channel)",
        type=str,
    )
    images: str = setting(
        None,
        "folder of natural images on which M is measured (default: the sample photographs)",
        type=str,
    )
    C: float = setting(1.0, "weight of the loss (the paper's)", check=positive)

    def validate(self):
        super().validate()
        if not self.target:
            raise PreimageError("bad --target: give LAYER:C, LAYER:A-B or LAYER:all")


def run(model, settings, *, progress=True, load=None):
    """One image per channel of the settings' target."""
    from ...io.images import load_folder
    from ...io.samples import natural_crops

    s = settings
    elements = parse_target(model, s.target, s.size or model.input_size)
    if len({e.layer for e in elements}) != 1 or any(
        e.kind not in ("channel", "unit") for e in elements
    ):
        raise PreimageError(
            f"bad --target {s.target!r}; maximize takes channels of one layer: LAYER:C,"
            " LAYER:A-B, LAYER:all or LAYER:C@Y,X"
        )
    layer = elements[0].layer
    position = (elements[0].y, elements[0].x) if elements[0].y is not None else None
    size = int(s.size or unit_image_size(model, layer))
    channels = model.channels
    if s.images:
        natural = load_folder(s.images, size, channels=channels)[0]
    else:
        natural = natural_crops(size, channels=channels)
    result = maximize(
        model,
        layer,
        [e.channel for e in elements],
        natural,
        size=size,
        C=s.C,
        position=position,
        seed=s.seed,
        progress=progress,
        **s.preset_kw(model, s.energy(model, natural)),
    )
    ratios = [round(float(r), 3) for r in result.scores]
    config = {**model_record(model), **s.as_dict(), "natural_images": s.images or "samples"}
    return dataclasses.replace(
        result,
        config={**config, **result.config},
        labels=[e.label() for e in elements],
        extra={"activation_over_M": ratios},
        headline=f"activation / natural maximum M: {', '.join(f'{r:.2f}' for r in ratios)}",
    )


METHOD = register(
    Method(
        name="maximize",
        help="activation maximization with Mahendran & Vedaldi's energy (§6)",
        settings=MaximizeSettings,
        run=run,
    )
)
