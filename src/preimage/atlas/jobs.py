"""Running one atlas job: a spec in, its artifacts (as bytes) and metrics out.

A job never writes into the campaign folder itself: it builds its files in a
private temporary folder and returns their bytes, so it runs the same in this
process, in a local Ray worker or on another machine, and only the driver
commits (see ``run.commit``).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time

import numpy as np
import torch

from ..io.store import environment

_MODELS = {}


def _model(spec):
    """Models are cached per process: a Ray worker loads each network once for all its jobs."""
    from ..models import load_model

    key = (spec["model"], spec["weights"], spec["weights_seed"], spec["device"])
    if key not in _MODELS:
        _MODELS.clear()  # one network at a time keeps a worker's memory bounded
        _MODELS[key] = load_model(
            spec["model"], weights=spec["weights"], seed=spec["weights_seed"], device=spec["device"]
        )
    return _MODELS[key]


def worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(spec, threads=None):
    """Run a job; returns {'files': {relative path: bytes}, 'units': [...], 'metrics': {...},
    'seconds', 'worker'}.
    """
    if threads:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    model = _model(spec)
    run = {
        "visualize": _visualize,
        "diverse": _diverse,
        "invariance": _invariance,
        "reliability": _reliability,
    }[spec["method"]]
    with tempfile.TemporaryDirectory(prefix="preimage-job-") as tmp:
        units, metrics = run(model, spec, tmp)
        files = {}
        for root, _, names in os.walk(tmp):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, tmp)] = f.read()
    metrics["torch_threads"] = torch.get_num_threads()
    seconds = time.perf_counter() - t0
    # the folder describes itself: what ran, where, with which versions (the catalog holds the same)
    record = {
        "spec": spec,
        "metrics": metrics,
        "units": units,
        "seconds": round(seconds, 3),
        "worker": worker_name(),
        "environment": environment(),
    }
    files["job.json"] = (json.dumps(record, indent=1, default=str) + "\n").encode()
    return {
        "files": files,
        "units": units,
        "metrics": metrics,
        "seconds": seconds,
        "worker": record["worker"],
    }


def _unit(spec, unit, method, metrics, artifacts):
    return {
        "layer": spec["layer"],
        "unit": int(unit),
        "method": method,
        "metrics": metrics,
        "artifacts": artifacts,
    }


def _visualize(model, spec, out):
    from ..io.images import save_grid, save_npz, save_png
    from ..methods.visualize import visualize

    size = spec["settings"]["size"]
    targets = [f"{spec['layer']}:{c}" for c in spec["units"]]
    result, _ = visualize(
        model, targets, size=size, steps=spec["steps"], seed=spec["seed"], progress=False
    )
    units = []
    for i, c in enumerate(spec["units"]):
        name = f"u{c}_visualize.png"
        save_png(os.path.join(out, name), result.images[i])
        units.append(
            _unit(
                spec,
                c,
                "visualize",
                {
                    "activation": float(result.activations[i]),
                    "objective": float(result.objective[i]),
                },
                {"image": name},
            )
        )
    save_grid(os.path.join(out, "grid.png"), result.images)
    save_npz(
        os.path.join(out, "result.npz"),
        images=result.images,
        activations=result.activations,
        trace=result.trace,
        units=np.array(spec["units"]),
    )
    return units, {
        "steps": result.steps,
        "mean_activation": float(result.activations.mean()),
        "render": result.config,
    }


def _diverse_kw(spec):
    from ..methods.cadena.diverse import LAMBDAS

    s = spec["settings"]
    return {
        "n": s["n"],
        "lambdas": s["lambdas"] or list(LAMBDAS),
        "steps": spec["steps"],
        "seed": spec["seed"],
        "progress": False,
    }


def _save_sweep(sweep, out):
    """The λ rows, the trade-off curve and the chosen λ's images of one unit."""
    from ..io import figures
    from ..io.images import save_grid

    c = sweep.channel
    names = {
        "lambdas": f"u{c}_lambdas.png",
        "tradeoff": f"u{c}_tradeoff.png",
        "chosen": f"u{c}_chosen.png",
    }
    figures.sweep_grid(sweep, os.path.join(out, names["lambdas"]))
    figures.tradeoff([sweep], os.path.join(out, names["tradeoff"]), title=f"{sweep.layer}:{c}")
    save_grid(
        os.path.join(out, names["chosen"]),
        sweep.images[sweep.chosen if sweep.chosen is not None else 0].clamp(0, 1),
        columns=sweep.images.shape[1],
    )
    d = sweep.as_dict()
    metrics = {
        k: d[k]
        for k in (
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
    }
    metrics.update(size=sweep.extra.get("size"), norm=sweep.extra.get("norm"))
    return metrics, names


def _sweep_arrays(sweeps):
    return {
        "images": torch.stack([s.images for s in sweeps]).clamp(0, 1),
        "activations": torch.stack([s.activations for s in sweeps]),
        "min_distance": torch.stack([s.min_distance for s in sweeps]),
        "lambdas": np.array(sweeps[0].lambdas),
        "units": np.array([s.channel for s in sweeps]),
    }


def _diverse(model, spec, out):
    from ..methods.cadena.diverse import diverse
    from ..io.images import save_npz

    sweeps = diverse(model, spec["layer"], spec["units"], **_diverse_kw(spec))
    units = []
    for s in sweeps:
        metrics, names = _save_sweep(s, out)
        units.append(_unit(spec, s.channel, "diverse", metrics, names))
    save_npz(os.path.join(out, "result.npz"), **_sweep_arrays(sweeps))
    gains = [s.diversity_gain for s in sweeps if s.diversity_gain is not None]
    return units, {"median_diversity_gain": float(np.median(gains)) if gains else None}


def _invariance(model, spec, out):
    """Both indices; the λ sweep they start from is saved as the units' diverse result too."""
    from ..io import figures
    from ..io.images import save_npz
    from ..methods.cadena.invariance import invariance

    kw = _diverse_kw(spec)
    results, sweeps = invariance(
        model,
        spec["layer"],
        spec["units"],
        n=kw["n"],
        steps=kw["steps"],
        seed=kw["seed"],
        progress=False,
        sweep_kwargs={"lambdas": kw["lambdas"]},
    )
    units = []
    for u, s in zip(results, sweeps):
        metrics, names = _save_sweep(s, out)
        units.append(_unit(spec, s.channel, "diverse", metrics, names))
        panel = f"u{u.channel}_invariance.png"
        figures.invariance_panel(u, os.path.join(out, panel))
        d = u.as_dict()
        d.pop("sweep", None)
        units.append(_unit(spec, u.channel, "invariance", d, {"panel": panel}))
    arrays = _sweep_arrays(sweeps)
    arrays.update(
        textures=torch.stack([u.texture for u in results]),
        shift_invariance_index=np.array(
            [
                np.nan if u.shift_invariance_index is None else u.shift_invariance_index
                for u in results
            ]
        ),
        linear_combination_index=np.array(
            [
                np.nan if u.linear_combination_index is None else u.linear_combination_index
                for u in results
            ]
        ),
    )
    save_npz(os.path.join(out, "result.npz"), **arrays)
    sii = [u.shift_invariance_index for u in results if u.shift_invariance_index is not None]
    return units, {"median_shift_invariance_index": float(np.median(sii)) if sii else None}


def _reliability(model, spec, out):
    """Every unit's repeats in one batch, then Finzi's agreement statistics per unit."""
    from ..io import figures
    from ..io.images import save_grid, save_npz
    from ..methods.finzi.reliability import logits_and_features, repeat_statistics
    from ..methods.visualize import visualize

    repeats = spec["settings"]["repeats"]
    targets = [f"{spec['layer']}:{c}" for c in spec["units"] for _ in range(repeats)]
    result, _ = visualize(
        model,
        targets,
        size=spec["settings"]["size"],
        steps=spec["steps"],
        seed=spec["seed"],
        progress=False,
    )
    logits, features = logits_and_features(model, result.images, spec["layer"])
    units = []
    for i, c in enumerate(spec["units"]):
        rows = slice(i * repeats, (i + 1) * repeats)
        stats = repeat_statistics(
            logits[rows], model.classes, images=result.images[rows].numpy(), features=features[rows]
        )
        names = {"repeats": f"u{c}_repeats.png", "logits": f"u{c}_logits.png"}
        save_grid(os.path.join(out, names["repeats"]), result.images[rows], columns=repeats)
        figures.logits_plot(
            logits[rows],
            os.path.join(out, names["logits"]),
            title=f"{spec['layer']}:{c}: {repeats} repeats",
        )
        keep = (
            "repeats",
            "top1_most_common",
            "top1_agreement",
            "top5_shared",
            "spearman",
            "pixel_correlation",
            "feature_correlation",
            "top1_names",
        )
        units.append(_unit(spec, c, "reliability", {k: stats[k] for k in keep}, names))
    save_npz(
        os.path.join(out, "result.npz"),
        images=result.images,
        logits=logits,
        activations=result.activations,
        units=np.repeat(np.array(spec["units"]), repeats),
    )
    return units, {"steps": result.steps, "mean_activation": float(result.activations.mean())}
