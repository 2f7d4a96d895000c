"""The result of the invariance indices: per unit, the texture, its crops, the templates and
their pair averages, both indices, and the sweep they come from; the files, rows and pages.

One layout whichever command made it (``preimage invariance``, an atlas job):

    units/LAYER_C/{lambdas,tradeoff,chosen}.png   the unit's sweep, as a diverse result has it
    units/LAYER_C/invariance.png                  texture, crops, templates, pairs (Fig. 8A)
    shift_invariance.png, linear_combination.png  both indices' histograms (Fig. 8B-D)
    scatter.png                                   one against the other (Fig. 8E)
    result.npz   the sweep's arrays (images, inputs, activations, min_distance, lambdas,
                 channels) and textures, templates, pairs, shift_invariance_index,
                 linear_combination_index
    compare/     the same for the model of --compare (the plots above show both)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ...io import figures
from ...io.files import save_npz, write_metrics
from ..base import Result, Section, fmt
from .diverse_result import save_unit_figures, sweep_arrays, unit_row


@dataclass
class UnitInvariance:
    """One unit's invariance: both indices (None where they are undefined), the mean activations
    of the templates, the crops and the pairs, and the images they come from.
    """

    layer: str
    channel: int
    shift_invariance_index: float | None
    linear_combination_index: float | None
    template_activation: float
    crop_activation: float
    pair_activation: float
    chosen_lambda: float | None
    texture: torch.Tensor  # C x 2ρ x 2ρ
    crops: torch.Tensor  # a grid of windowed crops of the texture, display space
    templates: torch.Tensor  # n x C x ρ x ρ at the chosen λ
    pairs: torch.Tensor  # n(n-1)/2 x C x ρ x ρ
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


def spearman(units):
    """Spearman's rank correlation of the two indices over units (scipy.stats), with its p."""
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


def _nan(v):
    return np.nan if v is None else v


@dataclass
class InvarianceResult(Result):
    """Both indices for units of one layer, with the sweeps they come from."""

    units: list
    sweeps: list
    config: dict
    compare: object = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    method = "invariance"
    shown_first = (
        "units/*/invariance.png",
        "units/*/chosen.png",
        "shift_invariance.png",
        "linear_combination.png",
        "scatter.png",
    )

    @property
    def label(self):
        return f"{self.config['model']} ({str(self.config['weights']).split(' ')[0]})"

    def results(self):
        return [self] + ([self.compare] if self.compare is not None else [])

    def labels(self):
        """{label: result}, the run's own model first: its label, made longer where --compare's
        would be the same (two random seeds of one network are both 'random' in short), so that
        neither's units replace the other's in metrics.json."""
        runs = self.results()
        short = [r.label for r in runs]
        if len(set(short)) == len(short):
            return dict(zip(short, runs))
        full = [f"{r.config['model']} ({r.config['weights']})" for r in runs]
        if len(set(full)) == len(full):
            return dict(zip(full, runs))
        return {f"{lab} #{i + 1}": r for i, (lab, r) in enumerate(zip(full, runs))}

    def summary_of(self):
        sii = [u.shift_invariance_index for u in self.units if u.shift_invariance_index is not None]
        lci = [
            u.linear_combination_index for u in self.units if u.linear_combination_index is not None
        ]
        return {
            "units": len(self.units),
            "units_never_active": sum(u.shift_invariance_index is None for u in self.units),
            "median_shift_invariance_index": float(np.median(sii)) if sii else None,
            "median_linear_combination_index": float(np.median(lci)) if lci else None,
            "spearman": spearman(self.units),
        }

    def save(self, folder, argv=None):
        os.makedirs(folder, exist_ok=True)
        for s, u in zip(self.sweeps, self.units):
            save_unit_figures(s, folder)
            figures.invariance_panel(u, os.path.join(folder, s.folder(), "invariance.png"))
        arrays = sweep_arrays(self.sweeps)
        arrays.update(
            textures=torch.stack([u.texture for u in self.units]),
            templates=torch.stack([u.templates for u in self.units]).clamp(0, 1),
            pairs=torch.stack([u.pairs for u in self.units]).clamp(0, 1),
            shift_invariance_index=np.array([_nan(u.shift_invariance_index) for u in self.units]),
            linear_combination_index=np.array(
                [_nan(u.linear_combination_index) for u in self.units]
            ),
        )
        save_npz(os.path.join(folder, "result.npz"), **arrays)
        if self.compare is not None:
            self.compare.save(os.path.join(folder, "compare"))
        groups = {
            label: [(u.shift_invariance_index, u.linear_combination_index) for u in r.units]
            for label, r in self.labels().items()
        }
        figures.invariance_plots(groups, folder)
        return write_metrics(
            folder,
            self.config,
            argv,
            wall_seconds=round(self.seconds, 1),
            summary={label: r.summary_of() for label, r in self.labels().items()},
            units={label: [u.as_dict() for u in r.units] for label, r in self.labels().items()},
            files=[*figures.INVARIANCE_PLOTS, "result.npz", "units/"],
        )

    def unit_rows(self):
        rows = []
        for s, u in zip(self.sweeps, self.units):
            sub = s.folder()
            artifacts = {
                r: os.path.join(sub, f"{r}.png") for r in ("lambdas", "tradeoff", "chosen")
            }
            rows.append(unit_row(s, artifacts))
            metrics = u.as_dict()
            metrics.pop("sweep", None)
            panel = {"panel": os.path.join(sub, "invariance.png")}
            rows.append(
                {
                    "layer": u.layer,
                    "unit": int(u.channel),
                    "method": "invariance",
                    "metrics": metrics,
                    "artifacts": panel,
                }
            )
        return rows

    def job_metrics(self):
        return {"median_shift_invariance_index": self.summary_of()["median_shift_invariance_index"]}

    def summary(self, folder):
        lines = []
        for label, r in self.labels().items():
            s = r.summary_of()
            sp = s["spearman"]
            rho = (
                "n/a"
                if sp["rho"] is None
                else f"{sp['rho']:.2f} (p = {sp['p']:.2g}, {sp['units']} units)"
            )
            lines.append(
                f"{label}: median shift invariance {fmt(s['median_shift_invariance_index'])},"
                f" median linear combination {fmt(s['median_linear_combination_index'])};"
                f" Spearman ρ {rho}"
            )
        lines.append(
            "wrote metrics.json, result.npz, shift_invariance.png, linear_combination.png,"
            f" scatter.png and per-unit panels to {folder}/ in {self.seconds:.0f} s"
        )
        return lines


def report_sections(m):
    """The invariance part of a unit's page in the atlas report."""
    rows = (
        ("shift invariance index", m.get("shift_invariance_index")),
        ("linear combination index", m.get("linear_combination_index")),
        (
            "template / crop / pair activation",
            " / ".join(
                _short(m.get(k))
                for k in ("template_activation", "crop_activation", "pair_activation")
            ),
        ),
    )
    return [
        Section("Invariance indices", rows=rows, images=(("panel", "invariance panel", False),))
    ]


def layer_figures(metrics, folder, prefix, layer):
    """The layer's histograms of both indices and their scatter, for the report."""
    pairs = [(m.get("shift_invariance_index"), m.get("linear_combination_index")) for m in metrics]
    paths = figures.invariance_plots({"units": pairs}, folder, prefix=prefix + "_", title=layer)
    alts = ("shift invariance histogram", "linear combination histogram", "index scatter")
    return [(os.path.relpath(p, folder), alt) for p, alt in zip(paths, alts)]


def _short(v):
    if v is None:
        return "n/a"
    return f"{v:.3g}" if isinstance(v, float) else str(v)
