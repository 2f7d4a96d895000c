"""Invariance indices of Cadena et al. 2018 (§4.4, §4.5): texture units and shape units.

Shift invariance index (§4.4, Fig. 8A 1-4). An image twice as large as the
unit's receptive field ρ is optimized so that the average activation of its
windowed crops of size ρ is as high as possible; the window is
exp(-(r/σ)^4) with ρ/σ = 2.5, applied around the mean colour. The texture is
periodic, its crops start anywhere and wrap around, and they carry the
templates' norm (see invariance_texture for why both). The index is
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

from dataclasses import dataclass
from itertools import combinations

import torch

from ...errors import PreimageError
from ...settings import STEPS, Settings, between, numbers, seed_check, setting
from ..base import AtlasUse, Method, ReportUse
from ..common import model_record
from ..registry import register
from .diverse import DiverseSettings, _lambdas, sweep, sweep_setup, units_of
from .invariance_result import InvarianceResult, UnitInvariance, layer_figures, report_sections
from .invariance_texture import CROPS_PER_STEP, PeriodicCrops, all_crops_activation, textures
from .setting import LAMBDAS, sweep_size


@dataclass
class InvarianceSettings(Settings):
    """The settings of `preimage invariance` and of an atlas invariance job; each field's help is
    its flag's.
    """

    target: str = setting(None, "LAYER:C, LAYER:A-B or LAYER:all", type=str)
    n: int = setting(6, "templates per unit", check=between(2, 256))
    lambdas: list = setting(
        list(LAMBDAS),
        "the λ sweep of the templates, starting at 0",
        parse=numbers,
        check=_lambdas,
    )
    steps: int = setting(1000, "maximum steps of each optimization", check=STEPS)
    seed: int = setting(0, "seed of the initial noise and of the crops", check=seed_check)
    compare: str = setting(
        None,
        "another model to run side by side: MODEL or MODEL:WEIGHTS (e.g."
        " efficientnet_lite0:random)",
        type=str,
    )
    compare_target: str = setting(
        None, "the other model's units (default: the same target)", type=str
    )

    def validate(self):
        if not self.target:
            raise PreimageError("bad --target: give LAYER:C, LAYER:A-B or LAYER:all")
        self.lambdas = [float(v) for v in self.lambdas]


def pair_averages(templates, model):
    """All pair averages of n templates in pixel space (centred), rescaled to the templates'
    mean norm."""
    scale, shift = model.centering(templates)
    centred = templates * scale + shift
    target = centred.flatten(1).norm(dim=1).mean()
    pairs = torch.stack(
        [(centred[i] + centred[j]) / 2 for i, j in combinations(range(templates.shape[0]), 2)]
    )
    pairs = pairs * (target / pairs.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, 1, 1, 1)
    return (pairs - shift) / scale


def unit_activation(model, layer, images, channel):
    """The centre unit of ``channel`` at ``layer`` on each display-space image: a CPU tensor of
    N values.
    """
    with torch.no_grad():
        a = model.activations(images.to(model.device), [layer])[layer]
    return centre_unit(a, channel).float().cpu()


def centre_unit(a, channel):
    """The centre unit of a channel of N x C x H x W activations; the channel of N x C ones."""
    if a.dim() == 2:
        return a[:, channel]
    h, w = a.shape[-2:]
    return a[:, channel, h // 2, w // 2]


def indices(model, layer, sweeps, tex, norm, size):
    """Both indices of every unit from its sweep and its texture."""
    channels = [s.channel for s in sweeps]
    crop_act = all_crops_activation(model, layer, tex.images, channels, size, centre_unit)
    views = PeriodicCrops(size, 16)
    out = []
    for i, s in enumerate(sweeps):
        k = s.chosen if s.chosen is not None else 0
        templates = s.images[k]
        template_act = float(s.activations[k].mean())
        pairs = pair_averages(templates, model)
        pair_act = float(unit_activation(model, layer, pairs, s.channel).mean())
        ok = s.chosen is not None and template_act > 0
        with torch.no_grad():
            grid, _ = views.final(model.normalize(tex.images[i : i + 1]))
        scale, shift = model.affine(grid)
        extra = {
            "texture_norm": norm,
            "template_norm": s.extra["norm"],
            "texture_steps": tex.steps,
            "sweep": s.as_dict(),
        }
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
                crops=((grid - shift) / scale).cpu(),
                templates=templates,
                pairs=pairs.cpu(),
                extra=extra,
            )
        )
    return out


def measure(model, target, settings, progress=True):
    """The sweep, the textures and both indices of one model's units: (units, sweeps)."""
    layer, channels = units_of(model, target, "invariance")
    sweep_settings = DiverseSettings(
        target=target,
        n=settings.n,
        lambdas=settings.lambdas,
        steps=settings.steps,
        seed=settings.seed,
    )
    setup = sweep_setup(model, layer, sweep_settings)
    sweeps = sweep(model, setup, channels, progress)
    tex, norm = textures(
        model,
        layer,
        channels,
        setup.size,
        setup.norm,
        steps=settings.steps,
        seed=settings.seed,
        progress=progress,
    )
    return indices(model, layer, sweeps, tex, norm, setup.size), sweeps


def run(model, settings, *, progress=True, load=None):
    """Both indices for units of a layer (and of another model's, with ``compare``)."""
    import time

    start = time.perf_counter()
    units_of(model, settings.target, "invariance")
    other, other_target = None, settings.compare_target or settings.target
    if settings.compare:  # loaded and its target checked before any optimization
        from ...models import load_model_spec

        load = load or (lambda spec, flag: load_model_spec(spec, device=model.device, flag=flag))
        other = load(settings.compare, flag="--compare")
        units_of(other, other_target, "invariance")
    units, sweeps = measure(model, settings.target, settings, progress)
    compare = None
    if other is not None:
        begun = time.perf_counter()
        other_units, other_sweeps = measure(other, other_target, settings, progress)
        config, seconds = _config(other, settings), time.perf_counter() - begun
        compare = InvarianceResult(other_units, other_sweeps, config, None, seconds)
    config = _config(model, settings)
    return InvarianceResult(units, sweeps, config, compare, time.perf_counter() - start)


def _config(model, settings):
    return {"method": "invariance", **model_record(model), **settings.as_dict()}


METHOD = register(
    Method(
        name="invariance",
        help="shift invariance and linear combination indices per unit (Cadena et al. §4.4-4.6)",
        settings=InvarianceSettings,
        run=run,
        covers=("diverse",),
        atlas=AtlasUse(
            fields=("steps", "seed", "n", "lambdas"),
            target=lambda layer, units: {"target": f"{layer}:{','.join(map(str, units))}"},
            images_per_step=lambda s, units: units * (len(s.lambdas) * s.n + CROPS_PER_STEP),
            image_size=lambda model, layer, s: sweep_size(model, layer),
        ),
        report=ReportUse(
            sections=report_sections,
            note=lambda m: _note(m.get("shift_invariance_index")),
            layer_figures=layer_figures,
        ),
    )
)


def _note(sii):
    return "SII n/a" if sii is None else f"SII {sii:.2g}"
