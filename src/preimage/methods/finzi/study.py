"""Finzi's design-choice studies (§IV.B.2-3, §IV.C): the same target under several conditions.

A study is a list of conditions, each a set of overrides of the visualization method (TV weight,
transforms). Every condition runs the same repeats and gets the same reliability statistics;
the conditions are then compared with each other by Spearman's ρ between their mean logits, as
Finzi compares one image with and without preprocessing (ρ = 0.07, p = .02). The depth study
(one channel at every depth, Fig. 8) is ``depths``; ``--study depths`` runs it.

Files: one folder per (model, condition), each a reliability result; summary.csv and
summary.md (a row per condition, and the correlations between conditions); conditions.png.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass

import numpy as np

from ...engine import objectives as O
from ...engine.targets import parse_targets
from ...errors import PreimageError
from ...io import figures
from ...io.files import atomic_write, safe_name, write_metrics
from ...settings import at_least, between, positive, setting
from ..base import Method, Result
from ..common import RenderSettings, model_record
from ..registry import register
from .reliability import ReliabilitySettings, check_classifier, classifier_of, repeat
from .statistics import condition_correlation

STUDIES = ("tv", "preprocessing", "depths")
TV_WEIGHTS = tuple(round(0.1 * k, 1) for k in range(11))  # Fig. 7: 0 to 1 in steps of 0.1


@dataclass
class StudySettings(RenderSettings):
    """The settings of `preimage study`; each field's help is its flag's."""

    study: str = setting(
        None,
        "tv: TV weight 0 to 1 by 0.1 (Fig. 7); preprocessing: with and without transforms and TV"
        " (Figs. 5, 6); depths: one channel at every depth (Fig. 8)",
        type=str,
        choices=STUDIES,
    )
    targets: list = setting(
        [],
        "tv and preprocessing: the target, once for all models or once per model",
        flag="--target",
    )
    repeats: int = setting(10, "repeats per condition", check=between(2, 1000))
    classifier: str = setting(
        None, "classify with this model instead of each model itself", type=str
    )
    tv_with: float = setting(
        0.5,
        "the relative TV weight of the 'with TV' conditions of the preprocessing study",
        check=at_least(0),
    )
    tv_scale: float = setting(
        None,
        "absolute TV weight = relative weight x this (default: the first condition's activation /"
        " its TV, so 1 balances them)",
        type=float,
        check=positive,
    )
    channel: int = setting(0, "depths: the channel shown at every depth", check=at_least(0))
    layers: str = setting(
        None,
        "depths: the layers of a single model, separated by commas (default: every block, or every"
        " convolution)",
        type=str,
    )

    def validate(self):
        if isinstance(self.targets, str):
            self.targets = [self.targets]
        if self.study is None:
            raise PreimageError(f"bad --study: give one of {', '.join(STUDIES)}")


def conditions(study, tv_with=0.5):
    """[(name, overrides of the visualization method)] of a study; the first has no TV.

    TV weights here are relative (see ``run_conditions``). tv_with: the weight of
    the conditions "with TV" in the preprocessing study.
    """
    if study == "tv":
        return [(f"tv={w:g}", {"tv": w}) for w in TV_WEIGHTS]
    if study == "preprocessing":
        # Fig. 6 is the first pair; Fig. 5 adds the two without TV
        return [
            ("transforms", {"transforms": "finzi", "tv": 0.0}),
            ("transforms+tv", {"transforms": "finzi", "tv": tv_with}),
            ("no-transforms+tv", {"transforms": "none", "tv": tv_with}),
            ("no-transforms", {"transforms": "none", "tv": 0.0}),
        ]
    raise PreimageError(f"bad --study {study!r}; valid studies: {', '.join(STUDIES)}")


def tv_value(model, images, beta=1.0):
    """The TV^β term of the objective (per pixel, input units) of display-space images."""
    scale, shift = model.centering(images)
    ctx = O.Context(activations={}, images=images, centered=images * scale + shift)
    return O.tv(beta=beta)(ctx)


def run_conditions(model, settings, target, classifier, tv_scale=None, progress=True, log=None):
    """Run every condition of a study on one target: ({condition name: ReliabilityResult},
    tv_scale).

    Finzi's TV weights (0 to 1) are relative to his loss, a channel's activation against TV
    summed over pixels; ours is averaged over pixels in input units, so the same numbers would
    do nothing. A condition's TV weight w is therefore applied as w * tv_scale, where tv_scale
    (unless given) makes the TV of the first condition's images, which are optimized without TV,
    equal to their mean activation: at w = 1 the penalty is as large as the objective it
    regularizes, and the sweep spans none to strong smoothing.
    """
    if log is None:  # a line per condition is progress too: silenced with the bars
        log = print if progress else (lambda line: None)
    common = {k: v for k, v in settings.as_dict().items() if k in RENDER_FIELDS}
    runs = {}
    for name, overrides in conditions(settings.study, settings.tv_with):
        kw = {**common, "tv": 0.0, **overrides}
        if kw.get("tv"):
            kw["tv"] = kw["tv"] * tv_scale
        s = ReliabilitySettings(**kw, target=target, repeats=settings.repeats)
        runs[name] = run = repeat(model, s, classifier, progress)
        # how smooth the images came out, in the same units whatever the condition's weight
        images = run.render.images
        run.stats[0]["image_tv"] = float(tv_value(model, images.to(model.device), s.tv_beta).mean())
        if tv_scale is None:
            penalty = float(tv_value(model, images, s.tv_beta).mean())
            tv_scale = abs(float(run.render.activations.mean())) / max(penalty, 1e-12)
        st = run.stats[0]
        log(
            f"{model.name} {target} [{name}]: top-1 {st['top1_most_common']['name']} in"
            f" {st['top1_most_common']['count']}/{settings.repeats}, top-5 shared"
            f" {100 * st['top5_shared']:.0f} %, mean ρ {st['spearman']['mean_rho']:.3f},"
            f" activation {float(run.render.activations.mean()):.3g}"
        )
    return runs, tv_scale


RENDER_FIELDS = tuple(f for f in RenderSettings.__dataclass_fields__)


def between_conditions(runs, reference=None):
    """Spearman's ρ and p between conditions' mean logits: every pair, or each condition
    against ``reference``."""
    names = list(runs)
    pairs = (
        [(reference, b) for b in names if b != reference]
        if reference
        else [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    )
    return [
        {
            "a": a,
            "b": b,
            **dict(zip(("rho", "p"), condition_correlation(runs[a].logits, runs[b].logits))),
        }
        for a, b in pairs
    ]


def _summary_row(model, target, condition, stats, activations):
    sp = stats["spearman"]
    return {
        "model": model,
        "target": target,
        "condition": condition,
        "top1": stats["top1_most_common"]["name"],
        "top1_agreement": round(stats["top1_agreement"], 3),
        "top5_shared": round(stats["top5_shared"], 3),
        "mean_rho": round(sp["mean_rho"], 3),
        "min_rho": round(sp["min_rho"], 3),
        "fraction_p_below_0.05": round(sp["fraction_p_below"], 3),
        "pixel_correlation": round(stats["pixel_correlation"], 3),
        "feature_correlation": round(stats["feature_correlation"], 3),
        "mean_activation": round(float(np.mean(activations)), 4),
        "image_tv": round(stats["image_tv"], 4) if "image_tv" in stats else None,
    }


def _tables(rows, between):
    """summary.csv and summary.md."""
    header = list(rows[0])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header)
    w.writeheader()
    w.writerows(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    if between:
        lines += ["", "| model | condition A | condition B | Spearman ρ of mean logits | p |"]
        lines += ["|---|---|---|---|---|"]
        lines += [
            f"| {b['model']} | {b['a']} | {b['b']} | {b['rho']:.3f} | {b['p']:.2g} |"
            for b in between
        ]
    return buf.getvalue(), "\n".join(lines) + "\n"


@dataclass
class StudyResult(Result):
    """studies: [(model name, target, {condition: ReliabilityResult}, between conditions)]."""

    studies: list
    config: dict
    shown: int = 5
    method = "study"

    def save(self, folder, argv=None):
        os.makedirs(folder, exist_ok=True)
        rows, figure_rows, folders = [], [], {}
        several = len(self.studies) > 1
        for model, target, runs, _ in self.studies:
            for condition, rel in runs.items():
                sub = safe_name(condition)
                sub = os.path.join(safe_name(model), sub) if several else sub
                rel.save(os.path.join(folder, sub))
                folders[f"{model}/{condition}"] = sub
                acts = rel.render.activations.numpy()
                rows.append(_summary_row(model, target, condition, rel.stats[0], acts))
                label = f"{model}\n{condition}" if several else condition
                shown = rel.render.images[: self.shown]
                figure_rows.append((label, [(None, image) for image in shown]))
        between = [{"model": m, **pair} for m, _, _, pairs in self.studies for pair in pairs]
        table_csv, table_md = _tables(rows, between)
        atomic_write(os.path.join(folder, "summary.csv"), table_csv.encode())
        atomic_write(os.path.join(folder, "summary.md"), table_md.encode())
        figures.image_rows(figure_rows, os.path.join(folder, "conditions.png"))
        return write_metrics(
            folder,
            self.config,
            argv,
            summary=rows,
            between_conditions=between,
            folders=folders,
            files=["summary.csv", "summary.md", "conditions.png"],
        )

    def summary(self, folder):
        with open(os.path.join(folder, "summary.md")) as f:
            table = f.read().rstrip()
        done = "summary.csv, summary.md, conditions.png, metrics.json and one folder per condition"
        return [table, f"wrote {done} to {folder}/"]


def _targets(models, settings):
    targets = list(settings.targets)
    if len(targets) not in (1, len(models)):
        raise PreimageError(
            f"bad --target: {len(targets)} given for {len(models)} models; give one target for"
            " all, or one per model in the order of --model"
        )
    return targets * len(models) if len(targets) == 1 else targets


def run(models, settings, *, progress=True, load=None):
    """A study of one target per model (or the depth study): a StudyResult or a DepthsResult."""
    models = models if isinstance(models, (list, tuple)) else [models]
    if settings.study == "depths":
        from .depths import depth_study

        return depth_study(models, settings, progress)
    targets = _targets(models, settings)
    shared = classifier_of(models[0], settings, load) if settings.classifier else None
    classifiers = [shared or m for m in models]  # one classifier loaded once, or each model
    for m, t, c in zip(models, targets, classifiers):  # every check before the first repeat
        check_classifier(c)
        named = parse_targets(m, [t], settings.size or m.input_size, settings.unit)
        if len(named) != 1:
            raise PreimageError(
                f"bad --target {t!r}; a study repeats one target (one channel, unit or class), and"
                f" this names {len(named)}"
            )
    studies, scales = [], {}
    for m, t, c in zip(models, targets, classifiers):
        runs, scales[m.name] = run_conditions(m, settings, t, c, settings.tv_scale, progress)
        # a sweep is read against its unregularized start; the preprocessing conditions pairwise
        reference = next(iter(runs)) if settings.study == "tv" else None
        studies.append((m.name, t, runs, between_conditions(runs, reference=reference)))
    config = {"method": "study", "models": [model_record(m) for m in models], **settings.as_dict()}
    config["tv_scale"] = scales
    return StudyResult(studies, config)


METHOD = register(
    Method(
        name="study",
        help="Finzi's design-choice studies: TV sweep, preprocessing, one channel across depths",
        settings=StudySettings,
        run=run,
        models="many",
    )
)
