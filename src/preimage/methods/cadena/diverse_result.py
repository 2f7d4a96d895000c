"""The result of a diverse sweep: each unit's λ rows, and the files, rows and pages made of them.

One layout whichever command made it (``preimage diverse``, an atlas job, an invariance run):

    units/LAYER_C/lambdas.png   one row of n images per λ (Fig. 2B / 3B)
    units/LAYER_C/tradeoff.png  activation and distance against λ (Fig. 2A / 3A)
    units/LAYER_C/chosen.png    the images at the chosen λ
    grid.png                    every unit's images at its chosen λ, a row per unit
    tradeoff.png                the trade-off of all units (median and quartiles)
    gains.png                   the diversity gains' histogram (several units, or a baseline)
    result.npz                  images, inputs (unit x λ x n x C x H x W), activations
                                (unit x λ x n), min_distance (unit x λ), lambdas, channels
    baseline/                   the same for the random-weights twin, with --baseline random
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ...io import figures
from ...io.files import safe_name, save_npz, write_metrics
from ...io.images import save_grid
from ..base import Result, Section
from .setting import PIXELS

GAIN = "diversity gain: min distance at the chosen λ / at λ = 0"
ROW_KEYS = (
    "lambdas",
    "mean_activation",
    "min_distance",
    "normalized_activation",
    "normalized_distance",
    "threshold",
    "chosen_lambda",
    "diversity_gain",
    "distance_layer",
)


@dataclass
class UnitSweep:
    """One unit's λ sweep: images, inputs λ x n x C x H x W; activations λ x n; min_distance λ."""

    layer: str
    channel: int
    lambdas: list
    images: torch.Tensor
    inputs: torch.Tensor
    activations: torch.Tensor
    min_distance: torch.Tensor
    threshold: float
    distance_layer: str | None
    extra: dict = field(default_factory=dict)

    @property
    def mean_activation(self):
        return self.activations.mean(1)

    @property
    def normalized_activation(self):
        return self.mean_activation / self.mean_activation[0]

    @property
    def normalized_distance(self):
        return self.min_distance / self.min_distance[0]

    @property
    def chosen(self):
        """Index of the largest λ whose mean activation is at least threshold x the λ = 0 one
        (None if the unit never activates)."""
        base = float(self.mean_activation[0])
        if not base > 0:
            return None
        ok = [
            k
            for k in range(len(self.lambdas))
            if float(self.mean_activation[k]) >= self.threshold * base
        ]
        return max(ok)

    @property
    def chosen_lambda(self):
        k = self.chosen
        return None if k is None else self.lambdas[k]

    @property
    def diversity_gain(self):
        """The normalized minimum distance at the chosen λ (Fig. 5)."""
        k = self.chosen
        return None if k is None else float(self.normalized_distance[k])

    def as_dict(self):
        return {
            "layer": self.layer,
            "channel": self.channel,
            "lambdas": list(self.lambdas),
            "mean_activation": self.mean_activation.tolist(),
            "min_distance": self.min_distance.tolist(),
            "normalized_activation": self.normalized_activation.tolist(),
            "normalized_distance": self.normalized_distance.tolist(),
            "activations": self.activations.tolist(),
            "threshold": self.threshold,
            "chosen_lambda": self.chosen_lambda,
            "diversity_gain": self.diversity_gain,
            "distance_layer": self.distance_layer or PIXELS,
            **self.extra,
        }

    def folder(self):
        """The unit's own folder in a result: units/LAYER_C."""
        return os.path.join("units", safe_name(f"{self.layer}_{self.channel}"))


def save_unit_figures(sweep, folder):
    """units/LAYER_C/{lambdas,tradeoff,chosen}.png; returns {role: path relative to folder}."""
    sub = sweep.folder()
    names = {role: os.path.join(sub, f"{role}.png") for role in ("lambdas", "tradeoff", "chosen")}
    figures.sweep_grid(sweep, os.path.join(folder, names["lambdas"]))
    title = f"{sweep.layer}:{sweep.channel}"
    figures.tradeoff([sweep], os.path.join(folder, names["tradeoff"]), title=title)
    k = sweep.chosen if sweep.chosen is not None else 0
    chosen = sweep.images[k].clamp(0, 1)
    save_grid(os.path.join(folder, names["chosen"]), chosen, columns=sweep.images.shape[1])
    return names


def unit_row(sweep, artifacts):
    """The catalog row of one unit's sweep."""
    d = sweep.as_dict()
    metrics = {k: d[k] for k in ROW_KEYS}
    metrics.update(size=sweep.extra.get("size"), norm=sweep.extra.get("norm"))
    return {
        "layer": sweep.layer,
        "unit": int(sweep.channel),
        "method": "diverse",
        "metrics": metrics,
        "artifacts": artifacts,
    }


def sweep_arrays(sweeps):
    """The arrays of result.npz; pixels are clipped to [0, 1] for display (the fixed norm does not
    bound them, as Cadena et al. clip to 0-255), ``inputs`` keeps what the network saw."""
    return {
        "images": torch.stack([s.images for s in sweeps]).clamp(0, 1),
        "inputs": torch.stack([s.inputs for s in sweeps]),
        "activations": torch.stack([s.activations for s in sweeps]),
        "min_distance": torch.stack([s.min_distance for s in sweeps]),
        "lambdas": np.array(sweeps[0].lambdas),
        "channels": np.array([s.channel for s in sweeps]),
    }


def gain_summary(gains):
    """The units' count, how many were never active (gain None), and the median diversity gain
    of the others (None if there are none).
    """
    valid = [g for g in gains if g is not None]
    return {
        "units": len(gains),
        "units_never_active": len(gains) - len(valid),
        "median_diversity_gain": float(np.median(valid)) if valid else None,
    }


def gain_test(gains, baseline_gains):
    """One-sided Mann-Whitney U test (scipy.stats) that the units' gains exceed the baseline's."""
    from scipy.stats import mannwhitneyu

    a = [g for g in gains if g is not None]
    b = [g for g in baseline_gains if g is not None]
    if len(a) < 2 or len(b) < 2:
        return None
    r = mannwhitneyu(a, b, alternative="greater")
    return {
        "test": "Mann-Whitney U, one-sided",
        "U": float(r.statistic),
        "p": float(r.pvalue),
        "mean": float(np.mean(a)),
        "baseline_mean": float(np.mean(b)),
    }


@dataclass
class DiverseResult(Result):
    """The λ sweeps of some units of one layer, and of their random-weights twin if asked for."""

    sweeps: list
    config: dict
    baseline: object = None
    method = "diverse"
    shown_first = ("grid.png", "tradeoff.png", "gains.png", "units/*/lambdas.png")

    @property
    def gains(self):
        return [s.diversity_gain for s in self.sweeps]

    def save(self, folder, argv=None):
        os.makedirs(folder, exist_ok=True)
        for s in self.sweeps:
            save_unit_figures(s, folder)
        chosen = torch.stack(
            [s.images[s.chosen if s.chosen is not None else 0] for s in self.sweeps]
        )
        save_grid(
            os.path.join(folder, "grid.png"),
            chosen.reshape(-1, *chosen.shape[2:]),
            columns=chosen.shape[1],
        )
        several = len(self.sweeps) > 1
        title = f"{self.sweeps[0].layer}: {len(self.sweeps)} units" if several else None
        figures.tradeoff(self.sweeps, os.path.join(folder, "tradeoff.png"), title=title)
        arrays = sweep_arrays(self.sweeps)
        save_npz(os.path.join(folder, "result.npz"), **arrays)
        raw = torch.stack([s.images for s in self.sweeps])
        metrics = {
            "units": [s.as_dict() for s in self.sweeps],
            "summary": gain_summary(self.gains),
            "clipped_pixel_fraction": float(((raw < 0) | (raw > 1)).float().mean()),
            "layout": "images: unit x lambda x n x C x H x W",
        }
        if self.baseline is not None:
            metrics["baseline"] = self._save_baseline(folder)
        elif several:
            figures.histograms(
                {"units": self.gains}, os.path.join(folder, "gains.png"), xlabel=GAIN
            )
        return write_metrics(folder, self.config, argv, **metrics)

    def _save_baseline(self, folder):
        base = self.baseline
        base_metrics = base.save(os.path.join(folder, "baseline"))
        figures.histograms(
            {"trained": self.gains, "random weights": base.gains},
            os.path.join(folder, "gains.png"),
            xlabel=GAIN,
            title=f"{self.sweeps[0].layer}: trained vs random weights",
        )
        return {
            "weights": base.config["weights"],
            "folder": "baseline",
            "summary": base_metrics["summary"],
            "trained_greater": gain_test(self.gains, base.gains),
        }

    def unit_rows(self):
        rows = []
        for s in self.sweeps:
            sub = s.folder()
            artifacts = {
                role: os.path.join(sub, f"{role}.png") for role in ("lambdas", "tradeoff", "chosen")
            }
            rows.append(unit_row(s, artifacts))
        return rows

    def job_metrics(self):
        return {"median_diversity_gain": gain_summary(self.gains)["median_diversity_gain"]}

    def summary(self, folder):
        lines = [f"wrote grid.png, tradeoff.png, units/, result.npz and metrics.json to {folder}/"]
        for s in self.sweeps[:10]:
            k = s.chosen or 0
            gain = s.diversity_gain if s.diversity_gain is None else round(s.diversity_gain, 3)
            lines.append(
                f"{s.layer}:{s.channel}: chosen λ = {s.chosen_lambda}, mean activation"
                f" {float(s.normalized_activation[k]):.2f} of λ=0, diversity gain {gain}"
            )
        median = gain_summary(self.gains)["median_diversity_gain"]
        if len(self.sweeps) > 10:
            lines.append(f"... {len(self.sweeps) - 10} more units; median diversity gain {median}")
        if self.baseline is not None:
            test = gain_test(self.gains, self.baseline.gains)
            p = f"; one-sided Mann-Whitney p = {test['p']:.3g}" if test else ""
            twin = gain_summary(self.baseline.gains)["median_diversity_gain"]
            lines.append(
                f"random-weights twin: median diversity gain {_fmt(twin)} (trained"
                f" {_fmt(median)}){p}; histogram in gains.png"
            )
        return lines


def _fmt(v):
    return "n/a" if v is None else f"{v:.3f}"


def report_sections(m):
    """The diverse part of a unit's page in the atlas report."""
    chosen = Section(
        f"Diverse images at the chosen λ = {_short(m.get('chosen_lambda'))}",
        text=f"diversity gain {_short(m.get('diversity_gain'))} (min distance at the chosen λ / at"
        f" λ = 0); threshold {_short(m.get('threshold'))}; distances in {m.get('distance_layer')};"
        f" image {m.get('size')} px",
        images=(("chosen", "diverse images", False),),
    )
    rows = Section(
        "λ rows and the trade-off",
        images=(("lambdas", "lambda rows", False), ("tradeoff", "trade-off curve", False)),
    )
    return [chosen, rows]


def sweep_figures(metrics, folder, prefix, layer):
    """The layer's histogram of diversity gains, for the report."""
    path = f"{prefix}_diversity_gain.png"
    gains = [m.get("diversity_gain") for m in metrics]
    figures.histograms({"units": gains}, os.path.join(folder, path), xlabel=GAIN, title=layer)
    return [(path, "diversity gain histogram")]


def _short(v):
    if v is None:
        return "n/a"
    return f"{v:.3g}" if isinstance(v, float) else str(v)
