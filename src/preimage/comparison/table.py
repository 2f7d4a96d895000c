"""`preimage compare`: runs in pairs (A, B), each layer both measured: A's diversity gains against
B's, and both invariance indices; the table (Markdown and JSON) and the figures."""

from __future__ import annotations

import json
import os

import numpy as np

from ..errors import PreimageError
from . import figures
from .runs import load_run
from .statistics import (
    LEVEL,
    RESAMPLES,
    difference_interval,
    greater_test,
    median_interval,
    rank_correlation,
)

FIGURES = {
    "curves.png": figures.curves,  # Fig. 5A
    "gains.png": figures.gain_histograms,  # Fig. 5B
    "indices.png": figures.index_scatter,  # Fig. 8E
}


def _median(values):
    return float(np.median(values)) if values else None


def _row(a, b, layer, seed):
    """One layer of a pair: gains with intervals, their difference, the test, the indices."""
    ga, gb = a.values(layer, "diversity_gain"), b.values(layer, "diversity_gain")
    sa, sb = a.values(layer, "shift_invariance_index"), b.values(layer, "shift_invariance_index")
    la, lb = (
        a.values(layer, "linear_combination_index"),
        b.values(layer, "linear_combination_index"),
    )
    return {
        "layer": layer,
        "units": [len(a.layers[layer]), len(b.layers[layer])],
        "units_with_gain": [len(ga), len(gb)],
        "gain": [median_interval(ga, seed), median_interval(gb, seed)],
        "gain_difference": difference_interval(ga, gb, seed),
        "gain_test": greater_test(ga, gb),
        "median_shift_invariance_index": [_median(sa), _median(sb)],
        "shift_invariance_test": greater_test(sa, sb),
        "median_linear_combination_index": [_median(la), _median(lb)],
        "index_correlation": [rank_correlation(*r.index_pairs(layer)) for r in (a, b)],
    }


def compare_pair(a, b, seed=0):
    """{'runs', 'layers', 'summary'} for runs A and B over the layers both measured (A's order);
    the summary pools every unit of those layers."""
    layers = [layer for layer in a.layers if layer in b.layers]
    if not layers:
        raise PreimageError(
            f"bad pair: {a.path!r} and {b.path!r} share no layer (they have"
            f" {', '.join(a.layers) or 'none'} and {', '.join(b.layers) or 'none'})"
        )

    def pooled(run, key):
        return [v for layer in layers for v in run.values(layer, key)]

    summary = {
        key: [median_interval(pooled(r, key), seed) for r in (a, b)]
        for key in ("diversity_gain", "shift_invariance_index")
    }
    summary["shift_invariance_test"] = greater_test(
        pooled(a, "shift_invariance_index"), pooled(b, "shift_invariance_index")
    )
    return {
        "runs": [{"label": r.label, "path": r.path} for r in (a, b)],
        "layers": [_row(a, b, layer, seed) for layer in layers],
        "summary": summary,
    }


def compare(paths, out, labels=None, seed=0):
    """Read the runs, compare them in pairs, write ``out``/comparison.json, table.md and per pair
    the figures ``pairK_{curves,gains,indices}.png``; returns (the pairs, the Markdown)."""
    if len(paths) < 2 or len(paths) % 2:
        raise PreimageError(
            f"bad runs: {len(paths)} given; give them in pairs, A B [A2 B2 ...] (such as trained"
            " then random weights)"
        )
    if labels is not None and len(labels) != len(paths):
        raise PreimageError(f"bad --labels: {len(labels)} labels for {len(paths)} runs")
    from ..io.files import atomic_write  # imports torch: not at import time

    check_out(out, paths)
    runs = [load_run(p, None if labels is None else labels[i]) for i, p in enumerate(paths)]
    pairs = [compare_pair(runs[i], runs[i + 1], seed) for i in range(0, len(runs), 2)]
    os.makedirs(out, exist_ok=True)
    for k, (pair, i) in enumerate(zip(pairs, range(0, len(runs), 2)), start=1):
        layers = [row["layer"] for row in pair["layers"]]
        pair["figures"] = {}
        for name, draw in FIGURES.items():
            draw(runs[i : i + 2], layers, os.path.join(out, f"pair{k}_{name}"))
            pair["figures"][name.split(".")[0]] = f"pair{k}_{name}"
    text = markdown(pairs)
    atomic_write(os.path.join(out, "table.md"), text.encode())
    record = {
        "runs": list(paths),
        "labels": [r.label for r in runs],
        "bootstrap": {"seed": seed, "resamples": RESAMPLES, "level": LEVEL, "method": "percentile"},
        "pairs": pairs,
    }
    atomic_write(os.path.join(out, "comparison.json"), json.dumps(record, indent=1).encode())
    return pairs, text


def check_out(out, paths):
    """--out must not be, or hold, one of the runs: --overwrite would replace it."""
    where = os.path.realpath(out)
    for p in paths:
        run = os.path.realpath(p)
        if run == where or run.startswith(where + os.sep):
            raise PreimageError(f"bad --out {out!r}: it holds the run {p!r}; give another folder")


def _ci(d, key="median"):
    if d[key] is None:
        return "n/a"
    if d["low"] is None:
        return f"{d[key]:.2f}"
    return f"{d[key]:.2f} [{d['low']:.2f}, {d['high']:.2f}]"


def _p(test):
    return "n/a" if test["p"] is None else f"{test['p']:.2g}"


def _rho(c):
    return "n/a" if c["rho"] is None else f"{c['rho']:.2f} (p = {c['p']:.2g})"


def _pair_of(values):
    return " / ".join("n/a" if v is None else f"{v:.2f}" for v in values)


def markdown(pairs):
    """The table: a row per layer of each pair and a summary row pooling its layers."""
    lines = []
    for pair in pairs:
        a, b = (r["label"] for r in pair["runs"])
        lines += [
            f"**A = {a}, B = {b}**",
            "",
            "| layer | units A / B | median gain A [95 % CI] | median gain B [95 % CI] |"
            " A − B [95 % CI] | Mann-Whitney p (A > B) | median SII A / B | p (SII A > B) |"
            " median LCI A / B | Spearman ρ (SII, LCI) A / B |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in pair["layers"]:
            lines.append(
                f"| `{row['layer']}` | {row['units'][0]} / {row['units'][1]} |"
                f" {_ci(row['gain'][0])} | {_ci(row['gain'][1])} |"
                f" {_ci(row['gain_difference'], 'difference')} | {_p(row['gain_test'])} |"
                f" {_pair_of(row['median_shift_invariance_index'])} |"
                f" {_p(row['shift_invariance_test'])} |"
                f" {_pair_of(row['median_linear_combination_index'])} |"
                f" {' / '.join(_rho(c) for c in row['index_correlation'])} |"
            )
        s = pair["summary"]
        lines += [
            f"| all ({len(pair['layers'])} layers) | | {_ci(s['diversity_gain'][0])} |"
            f" {_ci(s['diversity_gain'][1])} | | | {_ci(s['shift_invariance_index'][0])} /"
            f" {_ci(s['shift_invariance_index'][1])} | {_p(s['shift_invariance_test'])} | | |",
            "",
        ]
    return "\n".join(lines)
