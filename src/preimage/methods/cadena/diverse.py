"""Diverse feature visualizations (Cadena et al. 2018, §3.2): a unit's invariant subspace.

For a unit k, a batch of n images maximizes eq. 1,

    Σ_i y_ik + α Σ_i log P(x_i) + λ min_{i≠j} d(x_i, x_j),

so that every image drives the unit while the closest two are as far apart as possible. d is
the Euclidean distance between the flattened activations of the preceding layer (eq. 2), or
between the images themselves. The setting is the paper's (``setting``): the image is as large
as the unit's receptive field, its norm (with the channel means removed) is fixed to half the
average norm of natural patches of that size, the Fourier coefficients are optimized with
amplitudes 1/√f, by Adam at 0.1 for up to 1000 steps. The norm is fixed inside the
parameterization (``NormalizedParam``), not by projection after each step, which stalls Adam.

λ is swept over 0, 0.02, 0.04, ..., 20.48; the chosen λ is the largest whose mean activation
stays at or above a threshold (the model's hint, 0.9 by default) times the λ = 0 activation.
Every (unit, λ) group of n images is independent, so all groups of a layer run as one batch,
and each group leaves the batch once it has converged (``GroupConvergence``): the batch shrinks
as the sweep goes on instead of running every group as long as the slowest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...engine import objectives as O
from ...engine.optim import Optimizer
from ...engine.params import ImageParam, NormalizedParam
from ...engine.render import render
from ...engine.stopping import GroupConvergence
from ...engine.targets import parse_target
from ...engine.views import Groups
from ...errors import PreimageError
from ...settings import (
    IMAGE_SIZE,
    STEPS,
    Settings,
    at_least,
    between,
    numbers,
    positive,
    seed_check,
    setting,
)
from ..base import AtlasUse, Method, ReportUse
from ..common import check_prior, model_record, prior_fields, prior_term
from ..registry import register
from .diverse_result import DiverseResult, UnitSweep, report_sections, sweep_figures
from .setting import LAMBDAS, PIXELS, natural_patch_norm, preceding_layer, sweep_size

PRIOR_WEIGHT = 0.0005  # Cadena et al.'s α of eq. 1, on log P in nats per image
MAX_PIXELS = 4_000_000  # images per batch (units x λ x n x size²); more units run in more batches
# where a step runs in parts of whole groups (the CPU, groups retiring: engine/retirement.py) the
# parts bound a step's memory, and a batch holds only the parameters, Adam's state and the final
# evaluation: a population's whole sweep (40 neurons at 40 px: 4.6 M) runs as one batch
IN_PARTS_PIXELS = 32_000_000
_prior, _prior_weight = prior_fields(PRIOR_WEIGHT)


def _lambdas(flag, values):
    if not values or values[0] != 0.0 or any(v < 0 for v in values):
        raise PreimageError(
            f"bad {flag} {','.join(f'{v:g}' for v in values)}; they must start at 0 (the"
            " reference) and be non-negative"
        )


def _threshold(flag, value):
    if not 0 < value <= 1:
        raise PreimageError(f"bad {flag} {value}; it must be a share in (0, 1]")


@dataclass
class DiverseSettings(Settings):
    """The settings of `preimage diverse` and of an atlas diverse job; each field's help is its
    flag's.
    """

    target: str = setting(
        None, "LAYER:C, LAYER:A-B or LAYER:all (the centre unit of each channel)", type=str
    )
    n: int = setting(6, "images per unit and λ", check=between(2, 256))
    lambdas: list = setting(
        list(LAMBDAS), "λ values separated by commas, starting at 0", parse=numbers, check=_lambdas
    )
    threshold: float = setting(
        None,
        "keep λ while the mean activation is at least this share of the λ=0 one (default: the"
        " model's hint, 0.9; 0.8 for the toy complex cells)",
        type=float,
        check=_threshold,
    )
    steps: int = setting(1000, "maximum steps", check=STEPS)
    lr: float = setting(0.1, "Adam's learning rate", check=positive)
    patience: int = setting(
        50,
        "a (unit, λ) group stops, and leaves the batch, once none of its images has improved for"
        " this many steps; 0 runs every step",
        check=at_least(0),
    )
    distance: str = setting("auto", "'auto' (the preceding layer), 'pixels', or a layer name")
    size: int = setting(
        None, "image size (default: the unit's receptive field)", type=int, check=IMAGE_SIZE
    )
    images: str = setting(
        None,
        "folder of natural images for the image norm (default: the sample photographs)",
        type=str,
    )
    norm: float = setting(
        None,
        "fix each image's L2 norm (channel means removed, input units) (default: half the natural"
        " patches' norm; a model of recorded neurons: its training images' mean norm)",
        type=float,
        check=positive,
    )
    baseline: str = setting(
        "none",
        "also run the same architecture with random weights and compare",
        choices=("none", "random"),
    )
    prior: str = _prior
    prior_weight: float = _prior_weight
    seed: int = setting(0, "seed of the initial noise", check=seed_check)

    def validate(self):
        if not self.target:
            raise PreimageError("bad --target: give LAYER:C, LAYER:A-B or LAYER:all")
        self.lambdas = [float(v) for v in self.lambdas]
        check_prior(self)


def units_of(model, target, method="diverse"):
    """(layer, channels) of a target naming channels of one layer, by their centre units."""
    elements = parse_target(model, target, None, unit_mode=True)
    one_layer = len({e.layer for e in elements}) == 1
    if not one_layer or any(e.kind not in ("channel", "unit") for e in elements):
        raise PreimageError(
            f"bad --target {target!r}; {method} takes channels of one layer: LAYER:C, LAYER:A-B or"
            " LAYER:all"
        )
    if any(e.y is not None for e in elements):
        raise PreimageError(
            f"bad --target {target!r}; {method} always uses the centre unit of an image as large as"
            " its receptive field, so @Y,X does not apply"
        )
    return elements[0].layer, [e.channel for e in elements]


@dataclass
class Sweep:
    """What every batch of a layer's sweep shares."""

    layer: str
    n: int
    lambdas: list
    steps: int
    lr: float
    patience: int
    distance_layer: str | None
    size: int
    norm: float
    seed: int
    threshold: float
    prior: object = None
    prior_weight: float = 0.0
    extra: dict = field(default_factory=dict)


def sweep_setup(model, layer, settings):
    """The paper's setting for a layer: image size, distance layer, norm, threshold."""
    s = settings
    size = int(s.size or sweep_size(model, layer))
    if s.distance == "auto":
        dist_layer = preceding_layer(model, layer)
    else:
        dist_layer = None if s.distance == PIXELS else model.resolve_layer(s.distance)
    norm = getattr(s, "norm", None) or model.image_norm
    if norm is None:
        natural = None
        if s.images:
            from ...io.images import load_folder

            natural = load_folder(s.images, model.input_size, channels=model.channels)[0]
        norm = 0.5 * natural_patch_norm(model, size, natural)
    threshold = model.diversity_threshold if s.threshold is None else float(s.threshold)
    return Sweep(
        layer,
        s.n,
        list(s.lambdas),
        s.steps,
        s.lr,
        s.patience,
        dist_layer,
        size,
        norm,
        s.seed,
        threshold,
    )


def sweep(model, setup, channels, progress=True, max_pixels=None):
    """The λ sweep of some units of one layer: a UnitSweep per channel, in batches of at most
    ``max_pixels`` pixels (images x size²; default: ``IN_PARTS_PIXELS`` where a step runs in
    parts, ``MAX_PIXELS`` elsewhere)."""
    if max_pixels is None:
        in_parts = model.device.type == "cpu" and setup.patience > 0
        max_pixels = IN_PARTS_PIXELS if in_parts else MAX_PIXELS
    per_unit = len(setup.lambdas) * setup.n
    units_per_batch = max(1, int(max_pixels // (per_unit * setup.size * setup.size)))
    out = []
    for start in range(0, len(channels), units_per_batch):
        out.extend(_batch(model, setup, list(channels[start : start + units_per_batch]), progress))
    for s in out:
        s.extra.update(
            size=setup.size,
            norm=setup.norm,
            steps_max=setup.steps,
            lr=setup.lr,
            n=setup.n,
            prior_weight=setup.prior_weight,
        )
    return out


def _objective(setup, groups):
    """Eq. 1 for these (unit channel, λ) groups of n images each: the objective and its
    diversity term."""
    n = setup.n
    diversity = O.min_distance(setup.distance_layer, Groups(n), [lam for _, lam in groups])
    objective = O.unit(setup.layer, [c for c, _ in groups for _ in range(n)]) + diversity
    if setup.prior is not None and setup.prior_weight:
        objective = objective + setup.prior_weight * O.log_prior(setup.prior)
    return objective, diversity


def _stop(setup, groups):
    """Each (unit, λ) group stops once it has converged and leaves the batch, so the groups that
    are done early do not run as long as the slowest one."""
    if not setup.patience:
        return None
    return GroupConvergence(
        setup.n,
        lambda kept: _objective(setup, [groups[g] for g in kept])[0],
        patience=setup.patience,
    )


def _batch(model, setup, channels, progress):
    n, lambdas = setup.n, setup.lambdas
    L = len(lambdas)
    total = len(channels) * L * n
    groups = [(c, lam) for c in channels for lam in lambdas]
    objective, diversity = _objective(setup, groups)
    result = render(
        model,
        objective,
        _param(model, setup, total, len(channels) * L),
        optimizer=Optimizer("adam", setup.lr),
        steps=setup.steps,
        stop=_stop(setup, groups),
        seed=setup.seed,
        progress=progress,
        desc=f"diverse {setup.layer} x{len(channels)}",
    )
    closest = result.measurements[diversity.name].reshape(len(channels), L)
    shape = (len(channels), L, n) + tuple(result.images.shape[1:])
    images, inputs = result.images.reshape(shape), result.inputs.reshape(shape)
    acts = result.activations.reshape(len(channels), L, n)
    meta = {"steps": result.steps, "seconds": result.seconds}
    group_steps = result.element_steps.reshape(len(channels), L, n)[:, :, 0]
    return [
        UnitSweep(
            setup.layer,
            int(c),
            list(lambdas),
            images[u],
            inputs[u],
            acts[u],
            closest[u],
            setup.threshold,
            setup.distance_layer,
            extra={**meta, "steps_per_lambda": group_steps[u].tolist()},
        )
        for u, c in enumerate(channels)
    ]


def _param(model, setup, total, groups):
    """Fourier images with amplitudes 1/√f, at a fixed norm; the same starting noise for every λ
    of a unit, so that the sweep varies only λ."""
    kind = dict(
        basis="fourier",
        decorrelate=False,
        output="linear",
        decay=0.5,
        offset=model.display_mean(),
        device=model.device,
        channels=model.channels,
    )
    generator = torch.Generator().manual_seed(int(setup.seed))
    first = ImageParam(setup.n, setup.size, generator=generator, **kind)
    # its own noise is overwritten at once: a throwaway generator leaves the global one alone
    base = ImageParam(total, setup.size, generator=torch.Generator().manual_seed(0), **kind)
    with torch.no_grad():
        base.theta.copy_(first.theta.detach().repeat(groups, *([1] * (first.theta.dim() - 1))))
    return NormalizedParam(base, setup.norm, model, clip=model.pixel_range)


def run(model, settings, *, progress=True, load=None):
    """The λ sweep for units of one layer (the centre unit of each channel); a DiverseResult."""
    layer, channels = units_of(model, settings.target)
    setup = sweep_setup(model, layer, settings)
    setup.prior, setup.prior_weight, prior_record = prior_term(model, settings, PRIOR_WEIGHT)
    sweeps = sweep(model, setup, channels, progress)
    config = {"method": "diverse", **model_record(model), **settings.as_dict()}
    config.update(size=setup.size, norm=setup.norm, threshold=setup.threshold)
    config["natural_images"] = settings.images or "samples"
    if prior_record is not None:
        config["prior"] = prior_record
    baseline = None
    if settings.baseline == "random":
        from ...models import load_model_spec

        load = load or (lambda spec, flag="--baseline": load_model_spec(spec, device=model.device))
        twin = load(f"{model.name}:random", flag="--baseline")
        baseline = run(twin, settings.replace(baseline="none"), progress=progress, load=load)
    return DiverseResult(sweeps, config, baseline)


METHOD = register(
    Method(
        name="diverse",
        help="diverse feature visualizations: a unit's invariances by a λ sweep (Cadena et al."
        " 2018)",
        settings=DiverseSettings,
        run=run,
        atlas=AtlasUse(
            fields=("steps", "seed", "n", "lambdas"),
            target=lambda layer, units: {"target": f"{layer}:{','.join(map(str, units))}"},
            images_per_step=lambda s, units: units * len(s.lambdas) * s.n,
            image_size=lambda model, layer, s: int(s.size or sweep_size(model, layer)),
        ),
        report=ReportUse(
            sections=report_sections,
            thumbnail="chosen",
            note=lambda m: f"gain {_fmt(m.get('diversity_gain'))}",
            layer_figures=sweep_figures,
        ),
    )
)


def _fmt(v):
    return "n/a" if v is None else f"{v:.2g}"
