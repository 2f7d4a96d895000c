"""Activation maximization of targets given as strings: one image per channel, unit, layer,
class or direction, all in one batch (Finzi's method, with Lucid's parameterization)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from ..engine.targets import build_objective, element_values, parse_targets
from ..errors import PreimageError
from ..io.files import write_metrics
from ..io.samples import natural_crops
from ..settings import positive, setting
from .base import AtlasUse, Method, ReportUse, Result, Section, fmt
from .common import (
    RenderSettings,
    check_prior,
    finzi_objective,
    finzi_render,
    image_files,
    image_name,
    model_record,
    neuron_checks,
    prior_fields,
    save_render_arrays,
    transforms_of,
    with_prior,
)
from .registry import register

PRIOR_WEIGHT = 0.0005  # Cadena et al.'s α of eq. 1, on log P in nats per image
_prior, _prior_weight = prior_fields(PRIOR_WEIGHT)


@dataclass
class VisualizeSettings(RenderSettings):
    """The settings of `preimage visualize` and of an atlas visualize job; each field's help is its
    flag's.
    """

    targets: list = setting(
        [],
        "LAYER, LAYER:C, LAYER:C@Y,X, LAYER:all, LAYER:A-B, LAYER:dir=FILE.npy, class:N|NAME;"
        " repeatable, every target one image of the batch",
        flag="--target",
    )
    compare_natural: bool = setting(
        False, "also report activation / 99th percentile over natural image patches"
    )
    norm: float = setting(
        None,
        "fix each image's L2 norm (channel means removed, input units) (default: free; a model of"
        " recorded neurons: its training images' mean norm)",
        type=float,
        check=positive,
    )
    prior: str = _prior
    prior_weight: float = _prior_weight

    def validate(self):
        if isinstance(self.targets, str):  # one target given as a string
            self.targets = [self.targets]
        if not self.targets:
            raise PreimageError("bad --target: give at least one target, such as _blocks.2:0")
        check_prior(self)


@dataclass
class VisualizeResult(Result):
    """The render of every target, one image each, and what was measured beside it."""

    render: object
    elements: list
    addresses: list
    config: dict
    extra: dict = field(default_factory=dict)
    method = "visualize"

    def save(self, folder, argv=None):
        r = self.render
        os.makedirs(folder, exist_ok=True)
        names = image_files(folder, r.images, r.labels)
        units = {}
        if "data_scale" in self.extra:  # a model of neurons: the images as the data holds them
            units["images_data_units"] = r.images * self.extra["data_scale"]
        save_render_arrays(folder, r, labels=r.labels, **units)
        return write_metrics(
            folder,
            self.config,
            argv,
            labels=r.labels,
            final_objective=r.objective.tolist(),
            activations=r.activations.tolist(),
            steps=r.steps,
            seconds=round(r.seconds, 3),
            images=names,
            grid="grid.png",
            **self.extra,
        )

    def unit_rows(self):
        rows = []
        for i, (e, address) in enumerate(zip(self.elements, self.addresses)):
            if e.kind not in ("channel", "unit"):
                continue
            name = image_name(i, self.render.labels[i])
            metrics = {
                "activation": float(self.render.activations[i]),
                "objective": float(self.render.objective[i]),
            }
            rows.append(_row(address, e.channel, metrics, {"image": name}))
        return rows

    def job_metrics(self):
        r = self.render
        return {
            "steps": r.steps,
            "mean_activation": float(r.activations.mean()),
            "render": r.config,
        }

    def labelled_grid(self):
        return self.render.picture()

    def summary(self, folder):
        r = self.render
        lines = [
            f"wrote {len(r.labels)} images to {os.path.join(folder, 'images')}/, the grid"
            f" {os.path.join(folder, 'grid.png')}, result.npz and metrics.json",
            f"steps {r.steps}, {r.seconds:.1f} s; mean activation"
            f" {float(r.activations.mean()):.4g}",
        ]
        for key, name in (
            ("relative_to_best_training", "response / best training image's"),
            ("held_out_relative_to_best_training", "held-out member's response / its best"),
        ):
            values = sorted(v for v in self.extra.get(key, []) if v is not None)
            if values:
                lines.append(
                    f"{name}: median {values[len(values) // 2]:.3g}, min {values[0]:.3g}"
                    f" over {len(values)} neurons"
                )
        if "ratio_to_natural_p99" in self.extra:
            ratios = self.extra["ratio_to_natural_p99"]
            lines.append(
                f"activation / natural 99th percentile: median"
                f" {sorted(ratios)[len(ratios) // 2]:.3g}, min {min(ratios):.3g} over"
                f" {self.extra['natural_images']} natural patches"
            )
        return lines


def _row(layer, unit, metrics, artifacts, method="visualize"):
    return {
        "layer": layer,
        "unit": int(unit),
        "method": method,
        "metrics": metrics,
        "artifacts": artifacts,
    }


def run(model, settings, *, progress=True, load=None):
    """Maximize each target (one batch element per channel or unit); a VisualizeResult."""
    s = settings.replace(transforms=transforms_of(model, settings))  # recorded as it ran
    size = int(s.size or model.input_size)
    elements = parse_targets(model, s.targets, size, s.unit)
    objective = finzi_objective(s, build_objective(elements))
    objective, prior, prior_record = with_prior(model, objective, s, PRIOR_WEIGHT)
    labels = [e.label() for e in elements]
    result = finzi_render(model, objective, s, len(elements), size, "visualize", labels, progress)
    extra = {}
    if prior is not None:
        with torch.no_grad():
            log_p = prior(result.images.to(model.device)).tolist()
        extra["prior"] = {**prior_record, "log_prior": log_p}
    if s.compare_natural:
        natural = element_values(model, elements, natural_crops(size, channels=model.channels))
        p99 = torch.quantile(natural, 0.99, dim=0)
        extra.update(
            natural_images=int(natural.shape[0]),
            natural_p99=p99.tolist(),
            ratio_to_natural_p99=(result.activations / p99).tolist(),
        )
    config = {"method": "visualize", **model_record(model), **s.as_dict(), "size": size}
    config["render"] = result.config
    addresses = [model.resolve_layer(e.layer) for e in elements]
    extra.update(neuron_checks(model, elements, addresses, result.images, result.activations))
    return VisualizeResult(result, elements, addresses, config, extra)


def _section(metrics):
    return [
        Section(
            "Visualization",
            text=f"activation {fmt(metrics.get('activation'))}",
            images=(("image", "visualization", True),),
        )
    ]


METHOD = register(
    Method(
        name="visualize",
        help="activation maximization of channels, units, layers, classes or directions",
        settings=VisualizeSettings,
        run=run,
        atlas=AtlasUse(
            fields=("steps", "seed", "size"),
            target=lambda layer, units: {"targets": [f"{layer}:{','.join(map(str, units))}"]},
            images_per_step=lambda settings, units: units,
            image_size=lambda model, layer, settings: int(settings.size or model.input_size),
        ),
        report=ReportUse(sections=_section, thumbnail="image"),
    )
)
