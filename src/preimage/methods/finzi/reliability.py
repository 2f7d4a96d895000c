"""How far to trust a visualization (Finzi §IV.B.1): repeat it, classify the repeats, compare.

N optimizations of one target from different initial noise are run back through a classifier
(the model's own, or another). Agreement is read off the classifier's logits (``statistics``):
the top-1 labels, how many top-5 labels recur, and Spearman's rank correlation of the logits
between repeats, as Finzi does for AlexNet conv5 channel 6 (25 of 25 "tick", 89 % of top-5
labels shared, ρ = 0.11 with p < .001 for the first two repeats). A target may name several
units (LAYER:A-B): every unit's repeats run in one batch.

Files, whichever command made them (``preimage reliability``, an atlas job, a study):

    units/LABEL/repeats.png, units/LABEL/logits.png   each target's repeats and logits (Fig. 4)
    images/NNN_LABEL_rR.png, grid.png                 every repeat; a row per target
    result.npz   images, inputs (target x repeat x C x H x W), logits (target x repeat x classes),
                 activations (target x repeat), trace (steps x target·repeat)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ...engine.targets import build_objective, parse_targets
from ...errors import PreimageError
from ...io import figures
from ...io.files import safe_name, save_npz, write_metrics
from ...io.images import save_grid
from ...settings import between, setting
from ..base import AtlasUse, Method, ReportUse, Result, Section, fmt
from ..common import (
    RenderSettings,
    finzi_objective,
    finzi_render,
    image_files,
    model_record,
    transforms_of,
)
from ..registry import register
from .statistics import logits_and_features, repeat_statistics

ROW_KEYS = (
    "repeats",
    "top1_most_common",
    "top1_agreement",
    "top5_shared",
    "spearman",
    "pixel_correlation",
    "feature_correlation",
    "top1_names",
)


@dataclass
class ReliabilitySettings(RenderSettings):
    """The settings of `preimage reliability` and of an atlas reliability job; each field's help is
    its flag's.
    """

    target: str = setting(
        None,
        "the target repeated: LAYER:C, LAYER:C@Y,X, class:N|NAME (or several units of one layer:"
        " LAYER:A-B, each repeated)",
        type=str,
    )
    repeats: int = setting(
        25, "optimizations from different noise (Finzi's 25)", check=between(2, 1000)
    )
    classifier: str = setting(
        None,
        "classify the repeats with this model, MODEL or MODEL:WEIGHTS (default: the model itself)",
        type=str,
    )

    def validate(self):
        if not self.target:
            raise PreimageError("bad --target: give one target, such as _blocks.14:6")


def check_classifier(classifier):
    """Refuse a classifier without class names."""
    if not classifier.classes:
        raise PreimageError(
            f"model {classifier.name} has no class names to classify with; give --classifier MODEL"
            " (for example efficientnet_lite0)"
        )


def _atlas_check(model):
    if not model.classes:
        raise PreimageError(
            f"reliability needs class logits, and {model.name} has none; drop it from --methods"
        )


def classifier_of(model, settings, load):
    """The model that classifies the repeats: --classifier loaded with ``load`` (or by name on the
    model's device), else the model itself.
    """
    if not settings.classifier:
        return model
    if load is None:
        from ...models import load_model_spec

        def load(spec, flag):
            return load_model_spec(spec, device=model.device, flag=flag)

    return load(settings.classifier, flag="--classifier")


@dataclass
class ReliabilityResult(Result):
    """Every target's repeats, their logits, and the agreement statistics per target."""

    render: object
    elements: list
    addresses: list
    repeats: int
    logits: object
    stats: list
    classifier: str
    config: dict
    method = "reliability"

    def labels(self):
        return [e.label() for e in self.elements]

    def folder_of(self, i):
        return os.path.join("units", safe_name(self.labels()[i]))

    def save(self, folder, argv=None):
        r, R = self.render, self.repeats
        os.makedirs(folder, exist_ok=True)
        names = image_files(
            folder, r.images, [f"{lab}_r{k}" for lab in self.labels() for k in range(R)]
        )
        save_grid(os.path.join(folder, "grid.png"), r.images, columns=R)
        for i, label in enumerate(self.labels()):
            rows = slice(i * R, (i + 1) * R)
            sub = os.path.join(folder, self.folder_of(i))
            save_grid(os.path.join(sub, "repeats.png"), r.images[rows], columns=R)
            title = f"{label}: {R} repeats through {self.classifier}"
            figures.logits_plot(self.logits[rows], os.path.join(sub, "logits.png"), title=title)
        T = len(self.elements)
        save_npz(
            os.path.join(folder, "result.npz"),
            images=r.images.reshape(T, R, *r.images.shape[1:]),
            inputs=r.inputs.reshape(T, R, *r.inputs.shape[1:]),
            logits=self.logits.reshape(T, R, -1),
            activations=r.activations.reshape(T, R),
            trace=r.trace,
        )
        targets = [{"target": lab, **st} for lab, st in zip(self.labels(), self.stats)]
        return write_metrics(
            folder,
            self.config,
            argv,
            targets=targets,
            activations=r.activations.tolist(),
            steps=r.steps,
            seconds=round(r.seconds, 3),
            images=names,
            files=["grid.png", "units/", "result.npz"],
        )

    def unit_rows(self):
        rows = []
        for i, (e, address) in enumerate(zip(self.elements, self.addresses)):
            if e.kind not in ("channel", "unit", "cls"):
                continue
            sub = self.folder_of(i)
            artifacts = {k: os.path.join(sub, f"{k}.png") for k in ("repeats", "logits")}
            metrics = {k: self.stats[i][k] for k in ROW_KEYS}
            rows.append(
                {
                    "layer": address,
                    "unit": int(e.channel),
                    "method": "reliability",
                    "metrics": metrics,
                    "artifacts": artifacts,
                }
            )
        return rows

    def job_metrics(self):
        r = self.render
        return {"steps": r.steps, "mean_activation": float(r.activations.mean())}

    def summary(self, folder):
        lines = []
        for label, s in zip(self.labels(), self.stats):
            top, sp = s["top1_most_common"], s["spearman"]
            lines += [
                f"{label}: top-1 {top['name']} in {top['count']} of {s['repeats']} repeats"
                f" (agreement {s['top1_agreement']:.2f})",
                f"  top-5 labels shared by at least two repeats: {100 * s['top5_shared']:.0f} %"
                f" ({s['top5_unique_to_one_repeat']} of {s['top5_labels']} unique to one repeat)",
                f"  Spearman ρ of the logits over {sp['pairs']} pairs: mean {sp['mean_rho']:.3f},"
                f" min {sp['min_rho']:.3f}, p < {sp['alpha']:g} in"
                f" {100 * sp['fraction_p_below']:.0f} %; first pair ρ ="
                f" {sp['first_pair']['rho']:.3f} (p = {sp['first_pair']['p']:.2g})",
                f"  mean pairwise correlation: pixels {s['pixel_correlation']:.3f},"
                f" {s['feature_layer']} features {s['feature_correlation']:.3f}",
            ]
        lines.append(f"wrote grid.png, units/, images/, result.npz and metrics.json to {folder}/")
        return lines


def repeat(model, settings, classifier, progress=True):
    """Run ``repeats`` optimizations of every target element (one batch) and measure them."""
    s = settings
    check_classifier(classifier)
    size = int(s.size or model.input_size)
    elements = parse_targets(model, [s.target], size, s.unit)
    expanded = [e for e in elements for _ in range(s.repeats)]
    objective = finzi_objective(s, build_objective(expanded))
    labels = [e.label() for e in expanded]
    result = finzi_render(model, objective, s, len(expanded), size, "reliability", labels, progress)
    layer = elements[0].layer
    logits, features = logits_and_features(model, result.images, layer, classifier)
    stats = []
    for i in range(len(elements)):
        rows = slice(i * s.repeats, (i + 1) * s.repeats)
        st = repeat_statistics(
            logits[rows],
            classifier.classes,
            images=result.images[rows].numpy(),
            features=features[rows],
        )
        stats.append({**st, "feature_layer": layer})
    config = {"method": "reliability", **model_record(model), **s.as_dict(), "size": size}
    config.update(classifier_name=classifier.name, classifier_weights=classifier.weights)
    config["render"] = result.config
    addresses = [model.resolve_layer(e.layer) for e in elements]
    return ReliabilityResult(
        result, elements, addresses, s.repeats, logits, stats, classifier.name, config
    )


def run(model, settings, *, progress=True, load=None):
    """The repeats of the settings' target, classified by the model or the settings' classifier."""
    settings = settings.replace(transforms=transforms_of(model, settings))  # recorded as it ran
    return repeat(model, settings, classifier_of(model, settings, load), progress)


def _section(m):
    sp, top = m.get("spearman", {}), m.get("top1_most_common", {})
    rows = (
        ("repeats", m.get("repeats")),
        ("most common top-1", f"{top.get('name')} ({top.get('count')} of {m.get('repeats')})"),
        ("top-5 labels shared", m.get("top5_shared")),
        (
            "Spearman ρ of logits, mean (min)",
            f"{fmt(sp.get('mean_rho'))} ({fmt(sp.get('min_rho'))})",
        ),
        (
            "pixel / feature correlation",
            f"{fmt(m.get('pixel_correlation'))} / {fmt(m.get('feature_correlation'))}",
        ),
    )
    return [
        Section(
            "Reliability",
            rows=rows,
            images=(("repeats", "repeats", False), ("logits", "logits", False)),
        )
    ]


METHOD = register(
    Method(
        name="reliability",
        help="repeat one visualization and measure how much the repeats agree (Finzi §IV.B.1)",
        settings=ReliabilitySettings,
        run=run,
        atlas=AtlasUse(
            fields=("steps", "seed", "size", "repeats"),
            target=lambda layer, units: {"target": f"{layer}:{','.join(map(str, units))}"},
            images_per_step=lambda s, units: units * s.repeats,
            image_size=lambda model, layer, s: int(s.size or model.input_size),
            check=_atlas_check,
        ),
        report=ReportUse(sections=_section, thumbnail="repeats"),
    )
)
