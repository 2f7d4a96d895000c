"""Run directories: what a command leaves behind, written atomically."""

from __future__ import annotations

import os
import platform
import re
import sys

import numpy as np
import torch

from .. import __version__
from .images import save_grid, save_json, save_npz, save_png


def environment():
    """Versions that, with the configuration, reproduce a run."""
    import torchvision

    return {
        "preimage": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def safe_name(label):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "image"


def save_render(result, out_dir, config, extra_metrics=None):
    """grid.png, images/NNN_label.png, result.npz and metrics.json for a RenderResult.

    metrics.json is written last, so its presence marks a complete run.
    """
    os.makedirs(out_dir, exist_ok=True)
    names = []
    for i, (image, label) in enumerate(zip(result.images, result.labels)):
        name = os.path.join("images", f"{i:03d}_{safe_name(label)}.png")
        save_png(os.path.join(out_dir, name), image)
        names.append(name)
    save_grid(os.path.join(out_dir, "grid.png"), result.images)
    save_npz(
        os.path.join(out_dir, "result.npz"),
        images=result.images,
        inputs=result.inputs,
        activations=result.activations,
        objective=result.objective,
        trace=result.trace,
        labels=result.labels,
    )
    metrics = {
        "config": {**config, **result.config},
        "labels": result.labels,
        "final_objective": result.objective.tolist(),
        "activations": result.activations.tolist(),
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "images": names,
        "grid": "grid.png",
        "environment": environment(),
    }
    metrics.update(extra_metrics or {})
    save_json(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics


def save_preimages(
    result, out_dir, config, originals=None, labels=None, box=None, extra_metrics=None
):
    """A PreimageResult (inversion, caricature, maximization) as PNGs, result.npz and metrics.json.

    originals: the source images, shown first in the grid. box: (top, bottom,
    left, right) drawn on every reconstruction, such as the receptive field of
    a masked window.
    """
    from PIL import Image, ImageDraw

    from .images import atomic_write, png_bytes, to_uint8

    os.makedirs(out_dir, exist_ok=True)
    labels = labels or [str(i) for i in range(result.images.shape[0])]
    shown = result.images
    names = []
    for i, (image, label) in enumerate(zip(shown, labels)):
        array = to_uint8(image)
        if box is not None:
            im = Image.fromarray(array)
            top, bottom, left, right = box
            ImageDraw.Draw(im).rectangle(
                [left, top, right - 1, bottom - 1], outline=(255, 255, 255)
            )
            array = np.asarray(im)
        name = os.path.join("images", f"{i:03d}_{safe_name(label)}.png")
        atomic_write(os.path.join(out_dir, name), png_bytes(array))
        names.append(name)
    tiles = shown if originals is None else torch.cat([originals.cpu(), shown.cpu()])
    save_grid(
        os.path.join(out_dir, "grid.png"),
        tiles,
        columns=(
            None
            if originals is None
            else max(originals.shape[0], len(shown) // max(1, originals.shape[0]))
        ),
    )
    arrays = dict(
        images=result.images,
        canvas=result.canvas,
        inputs=result.render.inputs,
        scores=result.scores,
        trace=result.render.trace,
        objective=result.render.objective,
    )
    if originals is not None:
        arrays["originals"] = originals
    save_npz(os.path.join(out_dir, "result.npz"), **arrays)
    metrics = {
        "config": {**config, **result.config, "render": result.render.config},
        "labels": labels,
        "elements": result.meta,
        "steps": result.render.steps,
        "seconds": round(result.render.seconds, 3),
        "images": names,
        "grid": "grid.png",
        "environment": environment(),
    }
    metrics.update(extra_metrics or {})
    save_json(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics


def save_diverse(sweeps, out_dir, config, baseline=None):
    """A λ sweep per unit: grid.png, tradeoff.png, result.npz, metrics.json (and per-unit folders for several units).

    baseline: the same sweeps on another model (the random-weights twin), saved
    under baseline/ and compared in gains.png.
    """
    from . import figures

    os.makedirs(out_dir, exist_ok=True)
    single = len(sweeps) == 1
    if single:
        figures.sweep_grid(sweeps[0], os.path.join(out_dir, "grid.png"))
    else:
        for s in sweeps:
            sub = os.path.join(out_dir, "units", safe_name(f"{s.layer}_{s.channel}"))
            os.makedirs(sub, exist_ok=True)
            figures.sweep_grid(s, os.path.join(sub, "grid.png"))
            figures.tradeoff([s], os.path.join(sub, "tradeoff.png"), title=f"{s.layer}:{s.channel}")
        chosen = torch.stack(
            [s.images[s.chosen if s.chosen is not None else 0] for s in sweeps]
        )  # units x n x ...
        save_grid(
            os.path.join(out_dir, "grid.png"),
            chosen.reshape(-1, *chosen.shape[2:]),
            columns=chosen.shape[1],
        )
    figures.tradeoff(
        sweeps,
        os.path.join(out_dir, "tradeoff.png"),
        title=None if single else f"{sweeps[0].layer}: {len(sweeps)} units",
    )
    stack = (
        (lambda attr: getattr(sweeps[0], attr))
        if single
        else (lambda attr: torch.stack([getattr(s, attr) for s in sweeps]))
    )
    # the fixed norm does not bound pixels: for display they are clipped to [0, 1], as Cadena et al.
    # clip to 0-255; `inputs` keeps what the network saw
    raw = stack("images")
    save_npz(
        os.path.join(out_dir, "result.npz"),
        images=raw.clamp(0, 1),
        inputs=stack("inputs"),
        activations=stack("activations"),
        min_distance=stack("min_distance"),
        lambdas=np.array(sweeps[0].lambdas),
        channels=np.array([s.channel for s in sweeps]),
    )
    gains = [s.diversity_gain for s in sweeps]
    metrics = {
        "config": config,
        "units": [s.as_dict() for s in sweeps],
        "summary": _gain_summary(gains),
        "clipped_pixel_fraction": float(((raw < 0) | (raw > 1)).float().mean()),
        "layout": (
            "images: lambda x n x 3 x H x W" if single else "images: unit x lambda x n x 3 x H x W"
        ),
        "environment": environment(),
    }
    if baseline is not None:
        base_dir = os.path.join(out_dir, "baseline")
        base_metrics = save_diverse(
            baseline["sweeps"], base_dir, {**config, "model_weights": baseline["weights"]}
        )
        metrics["baseline"] = {
            "weights": baseline["weights"],
            "folder": "baseline",
            "summary": base_metrics["summary"],
            "trained_greater": _gain_test(gains, [s.diversity_gain for s in baseline["sweeps"]]),
        }
        figures.histograms(
            {"trained": gains, baseline["label"]: [s.diversity_gain for s in baseline["sweeps"]]},
            os.path.join(out_dir, "gains.png"),
            xlabel="diversity gain: min distance at the chosen λ / at λ = 0",
            title=f"{sweeps[0].layer}: trained vs {baseline['label']}",
        )
    elif not single:
        figures.histograms(
            {"units": gains},
            os.path.join(out_dir, "gains.png"),
            xlabel="diversity gain: min distance at the chosen λ / at λ = 0",
        )
    save_json(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics


def _gain_test(gains, baseline_gains):
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


def _gain_summary(gains):
    valid = [g for g in gains if g is not None]
    return {
        "units": len(gains),
        "units_never_active": len(gains) - len(valid),
        "median_diversity_gain": float(np.median(valid)) if valid else None,
    }


def save_invariance(runs, out_dir, config, seconds):
    """Invariance indices of one or two models: per-unit panels, histograms, scatter, result.npz, metrics.json.

    runs: [(label, units)] with units from ``invariance.invariance``; the first
    is the model asked for, a second one the comparison.
    """
    from . import figures
    from ..methods.cadena.invariance import spearman

    os.makedirs(out_dir, exist_ok=True)
    summary = {}
    for label, units in runs:
        sub = os.path.join(out_dir, "units" if len(runs) == 1 else f"units-{safe_name(label)}")
        os.makedirs(sub, exist_ok=True)
        for u in units:
            figures.invariance_panel(
                u, os.path.join(sub, safe_name(f"{u.layer}_{u.channel}") + ".png")
            )
        sii = [u.shift_invariance_index for u in units if u.shift_invariance_index is not None]
        lci = [u.linear_combination_index for u in units if u.linear_combination_index is not None]
        summary[label] = {
            "units": len(units),
            "units_never_active": sum(u.shift_invariance_index is None for u in units),
            "median_shift_invariance_index": float(np.median(sii)) if sii else None,
            "median_linear_combination_index": float(np.median(lci)) if lci else None,
            "spearman": spearman(units),
        }
        prefix = "" if len(runs) == 1 else safe_name(label) + "_"
        save_npz(
            os.path.join(out_dir, f"{prefix}result.npz"),
            textures=torch.stack([u.texture for u in units]),
            templates=torch.stack([u.templates for u in units]).clamp(0, 1),
            pairs=torch.stack([u.pairs for u in units]).clamp(0, 1),
            shift_invariance_index=np.array(
                [
                    np.nan if u.shift_invariance_index is None else u.shift_invariance_index
                    for u in units
                ]
            ),
            linear_combination_index=np.array(
                [
                    np.nan if u.linear_combination_index is None else u.linear_combination_index
                    for u in units
                ]
            ),
            channels=np.array([u.channel for u in units]),
        )
    figures.invariance_plots(
        {
            label: [(u.shift_invariance_index, u.linear_combination_index) for u in units]
            for label, units in runs
        },
        out_dir,
    )
    metrics = {
        "config": config,
        "wall_seconds": round(seconds, 1),
        "summary": summary,
        "units": {label: [u.as_dict() for u in units] for label, units in runs},
        "files": [*figures.INVARIANCE_PLOTS, "result.npz", "units/"],
        "environment": environment(),
    }
    save_json(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics


def save_reliability(rel, out_dir, config):
    """Repeats of one target: grid.png, images/, logits.png, result.npz (images, logits) and metrics.json."""
    from . import figures

    os.makedirs(out_dir, exist_ok=True)
    result = rel.result
    names = []
    for i, image in enumerate(result.images):
        name = os.path.join("images", f"{i:03d}_repeat.png")
        save_png(os.path.join(out_dir, name), image)
        names.append(name)
    save_grid(os.path.join(out_dir, "grid.png"), result.images)
    figures.logits_plot(
        rel.logits,
        os.path.join(out_dir, "logits.png"),
        title=f"{rel.config['target']}: {rel.stats['repeats']} repeats through {rel.classifier}",
    )
    save_npz(
        os.path.join(out_dir, "result.npz"),
        images=result.images,
        inputs=result.inputs,
        logits=rel.logits,
        activations=result.activations,
        trace=result.trace,
    )
    metrics = {
        "config": {**config, **rel.config, "render": result.config},
        **rel.stats,
        "activations": result.activations.tolist(),
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "images": names,
        "files": ["grid.png", "logits.png", "result.npz"],
        "environment": environment(),
    }
    save_json(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics


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


def save_study(studies, out_dir, config, shown=5):
    """A design-choice study: one folder per (model, condition), summary.csv/.md, conditions.png, metrics.json.

    studies: [(model name, target, {condition: Reliability}, between-condition correlations)].
    """
    import csv
    import io

    from . import figures
    from .images import atomic_write

    os.makedirs(out_dir, exist_ok=True)
    rows, figure_rows, folders = [], [], {}
    several = len(studies) > 1
    for model, target, runs, _ in studies:
        for condition, rel in runs.items():
            sub = (
                os.path.join(safe_name(model), safe_name(condition))
                if several
                else safe_name(condition)
            )
            save_reliability(
                rel, os.path.join(out_dir, sub), {**config, "condition": condition, "model": model}
            )
            folders[f"{model}/{condition}"] = sub
            rows.append(
                _summary_row(model, target, condition, rel.stats, rel.result.activations.numpy())
            )
            label = f"{model}\n{condition}" if several else condition
            figure_rows.append((label, [(None, image) for image in rel.result.images[:shown]]))
    header = list(rows[0])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header)
    w.writeheader()
    w.writerows(rows)
    atomic_write(os.path.join(out_dir, "summary.csv"), buf.getvalue().encode())
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    between = [{"model": model, **pair} for model, _, _, pairs in studies for pair in pairs]
    if between:
        lines += [
            "",
            "| model | condition A | condition B | Spearman ρ of mean logits | p |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {b['model']} | {b['a']} | {b['b']} | {b['rho']:.3f} | {b['p']:.2g} |"
            for b in between
        ]
    atomic_write(os.path.join(out_dir, "summary.md"), ("\n".join(lines) + "\n").encode())
    figures.image_rows(figure_rows, os.path.join(out_dir, "conditions.png"))
    metrics = {
        "config": config,
        "summary": rows,
        "between_conditions": between,
        "folders": folders,
        "files": ["summary.csv", "summary.md", "conditions.png"],
        "environment": environment(),
    }
    save_json(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics
