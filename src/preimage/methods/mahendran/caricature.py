"""Caricature (Mahendran & Vedaldi §7): exaggerate what a layer sees in an image.

Starting from the image x0, minimize the energy of eq. 1 with the loss of eq. 4 and
Φ0 = max(0, Φ(x0)). Z is read as ‖Φ0‖², so ℓ = -⟨Φ(x), Φ0⟩ / ‖Φ0‖² is -1 at x0 itself and
falls as the caricature exaggerates (the text's Z = 1/‖Φ0‖ would scale the loss with the size
of the code). The score is the final ⟨Φ(x*), Φ0⟩ / ‖Φ0‖², the exaggeration factor.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...engine import objectives as O
from ...errors import PreimageError
from ...settings import positive, setting
from ..base import Method, Result
from ..common import model_record
from ..registry import register
from .energy import EnergySettings, preset
from .result import PreimageResult


def caricature(
    model,
    layer,
    images,
    C=1.0,
    seed=0,
    progress=True,
    **preset_kw,
):
    """Caricatures of images at a layer; a PreimageResult whose scores are the exaggeration.

    preset_kw: energy, jitter, prior and prior_weight, as ``preset`` takes them.
    """
    images = images.to(model.device)
    size = images.shape[-1]
    pre = preset(model, layer, size, **preset_kw)
    with torch.no_grad():
        phi0 = model.activations(images, [layer])[layer].float().clamp_min(0)
    z = phi0.pow(2).reshape(phi0.shape[0], -1).sum(1).clamp_min(1e-12)
    loss = float(C) * O.inner_product(layer, phi0, Z=z)
    margin = pre.canvas - size
    start = images
    if margin:
        pad = (margin // 2, margin - margin // 2, margin // 2, margin - margin // 2)
        start = F.pad(images, pad, mode="replicate")
    result = pre.render(model, loss, images.shape[0], seed, progress, f"caricature {layer}", start)
    factor = pre.per_pixel(result.activations) / float(C)
    config = {
        "method": "caricature",
        "layer": layer,
        "C": float(C),
        "seed": seed,
        "Z": "squared norm of Φ0",
        **pre.describe(),
    }
    meta = [{"image": i, "C": float(C)} for i in range(images.shape[0])]
    return PreimageResult(
        pre.window(result.images), result.images, factor, result, pre, meta, config
    )


@dataclass
class CaricatureSettings(EnergySettings):
    """The settings of `preimage caricature`; each field's help is its flag's."""

    layer: str = setting(
        None, "a layer, or several separated by commas (one folder each)", type=str
    )
    image: str = setting(None, "an image file, or sample:NAME", type=str)
    C: float = setting(1.0, "weight of the loss", check=positive)

    def validate(self):
        super().validate()
        if not self.layers():
            raise PreimageError("bad --layer: give a layer, or several separated by commas")
        if not self.image:
            raise PreimageError("bad --image: it is required")

    def layers(self):
        return [x for x in (self.layer or "").split(",") if x]


@dataclass
class CaricatureResult(Result):
    """One caricature per layer: [(layer, PreimageResult)]; several layers, one folder each."""

    runs: list
    config: dict
    method = "caricature"

    def folder_of(self, folder, layer):
        if len(self.runs) == 1:
            return folder
        return os.path.join(folder, layer.replace(".", "_").replace("#", "_"))

    def save(self, folder, argv=None):
        return {layer: r.save(self.folder_of(folder, layer), argv) for layer, r in self.runs}

    def summary(self, folder):
        return [
            f"{layer}: caricature in {self.folder_of(folder, layer)}/ (⟨Φ(x*), Φ0⟩/‖Φ0‖² ="
            f" {float(r.scores[0]):.2f}, 1 at the original)"
            for layer, r in self.runs
        ]


def run(model, settings, *, progress=True, load=None):
    """Caricatures of the settings' image at each of its layers."""
    from ...io.images import load_image_arg

    s = settings
    size = int(s.size or model.input_size)
    image = load_image_arg(s.image, size, model.channels, model.interpolation)
    for layer in s.layers():
        model.layer_info(layer, size)  # every layer checked before the first run
    energy = s.energy(model, image)
    config = {"method": "caricature", **model_record(model), **s.as_dict(), "size": size}
    runs, preset_kw = [], s.preset_kw(model, energy)  # the prior loaded once for every layer
    for layer in s.layers():
        r = caricature(
            model,
            layer,
            image,
            C=s.C,
            seed=s.seed,
            progress=progress,
            **preset_kw,
        )
        r = dataclasses.replace(
            r,
            config={**config, **r.config},
            originals=image,
            labels=[layer],
            extra={"exaggeration": float(r.scores[0])},
        )
        runs.append((layer, r))
    return CaricatureResult(runs, config)


METHOD = register(
    Method(
        name="caricature",
        help="exaggerate what layers see in an image (Mahendran & Vedaldi §7)",
        settings=CaricatureSettings,
        run=run,
    )
)
