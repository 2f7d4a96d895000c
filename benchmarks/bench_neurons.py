"""Recorded neurons end to end on a simulated V1 population (Cadena et al. 2018 §6, Fig. 11).

Simulates half simple, half complex cells (``preimage.neurons.simulate``), fits the data-driven
model (a three-layer cnn core) and the task-driven one (a frozen EfficientNet-Lite0 layer and
trained readouts), then, on the data-driven model, finds every neuron's MEI and its diverse images
over the λ sweep. It reports:

- prediction: the median test correlation (single trials, trial average, FEVE) and the median
  correlation with the noise-free rates, for both models;
- Fig. 11: the largest gap between the phases of each cell's diverse images at the chosen λ
  (projected on its true quadrature pair), per type, and the simple/complex classification by the
  fixed rule of ``preimage.neurons.ground_truth`` against the true types; the figure fig11.png;
- the MEI: the cosine with the true Gabor within its envelope (simple cells), and each MEI's
  response relative to the best training image's, by the model and by the true cell;
- the wall time of each phase and the process's peak memory.

    python benchmarks/bench_neurons.py [--seed 11] [--cells 40] [--images 5000] [--out DIR]
    python benchmarks/bench_neurons.py --seed 11 --fit-only   # the data-driven fit's time alone
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import torch

from preimage.io.figures import image_rows
from preimage.methods.cadena.diverse import DiverseSettings
from preimage.methods.cadena.diverse import run as diverse
from preimage.methods.visualize import VisualizeSettings
from preimage.methods.visualize import run as visualize
from preimage.models import load_model
from preimage.neurons import Population, fit, simulate
from preimage.neurons.data import check, split
from preimage.neurons.ground_truth import (
    classify,
    envelope,
    envelope_cosine,
    image_phases,
    largest_gap,
    quadrature_gratings,
)
from preimage.neurons.settings import FitSettings


def watch_memory(seconds=30):
    """Print the resident memory every ``seconds`` (a long sweep's memory is seen as it runs)."""
    import threading

    def loop():
        while True:
            time.sleep(seconds)
            with open("/proc/self/statm") as f:
                print(f"\n[memory] {int(f.read().split()[1]) * 4096 / 2**20:.0f} MB", flush=True)

    if os.path.exists("/proc/self/statm"):
        threading.Thread(target=loop, daemon=True).start()


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label, times, fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    times[label] = round(time.perf_counter() - t, 1)
    times[f"{label}_peak_mb"] = round(peak_mb())
    print(f"{label}: {times[label]:.1f} s (peak memory so far {peak_mb():.0f} MB)", flush=True)
    return out


def population(data):
    keys = ("filters", "orientation", "wavelength", "phase", "centre", "sigma", "gain")
    return Population(data["cell_types"], *(data[k] for k in keys))


def prediction(fitted, data):
    true = data["true_test_rates"]
    p = fitted.test_prediction
    r = [np.corrcoef(p[:, k], true[:, k])[0, 1] for k in range(true.shape[1])]
    m = fitted.metrics
    return {
        "median_test_correlation": m["median_test_correlation"],
        "median_average_correlation": m["median_average_correlation"],
        "median_feve": m["median_feve"],
        "median_correlation_with_true_rates": float(np.nanmedian(r)),
        "epochs": m["epochs"],
    }


def phase_invariance(model, data, k):
    """The fitted model's least response to cell k's quadrature gratings over phase (every 10°, at
    the sweep's fixed norm) over its largest: 1 for a perfectly phase-invariant model (the true
    complex cells: 0.98-1.0). A diverse batch can cover the phases only as far as the model
    answers them."""
    x = quadrature_gratings(data["filters"][k], model.image_norm, np.arange(0, 360, 10))
    with torch.no_grad():
        y = model.module.eval()(torch.tensor(x, dtype=torch.float32)[:, None])[:, k].numpy()
    return float(y.min() / y.max())


def fig11(sweeps, data, model):
    """Per cell: the largest phase gap of its diverse images at the chosen λ, the call, and the
    model's own phase invariance."""
    rows = []
    for k, s in enumerate(sweeps):
        chosen = s.chosen if s.chosen is not None else 0
        phases = image_phases(s.inputs[chosen, :, 0].numpy(), data["filters"][k])
        gap = largest_gap(phases)
        rows.append(
            {"cell": k, "type": str(data["cell_types"][k]), "lambda": s.lambdas[chosen],
             "phases": phases.round(1).tolist(), "largest_gap": gap, "call": classify(gap),
             "model_phase_invariance": phase_invariance(model, data, k)}
        )  # fmt: skip
    return rows


def mei_checks(result, data, pop):
    size = data["images"].shape[-1]
    z = result.render.inputs[:, 0].numpy()  # the MEIs as the network sees them (z-scored)
    masks = [envelope(size, data["centre"][k], data["sigma"][k]) for k in range(len(z))]
    cos = [envelope_cosine(z[k], data["filters"][k, 0], masks[k]) for k in range(len(z))]
    mean, std = data["zscore"]
    best_true = pop.rates((data["images"] - mean) / std).max(0)
    true_ratio = np.diagonal(pop.rates(z)) / best_true  # neuron k on its own MEI
    return cos, true_ratio, result.extra["relative_to_best_training"]


def figure(rows, result, sweeps, data, path, shown=3):
    def grey(a):
        a = np.asarray(a, dtype=np.float64)
        return torch.tensor(0.5 + a / (2 * np.abs(a).max() + 1e-12)).clamp(0, 1)[None].float()

    picked = [r for r in rows if r["type"] == "simple"][:shown] + [
        r for r in rows if r["type"] == "complex"
    ][:shown]
    table = []
    for r in picked:
        k, s = r["cell"], sweeps[r["cell"]]
        chosen = s.chosen if s.chosen is not None else 0
        images = [("true filter", grey(data["filters"][k, 0])), ("MEI", result.render.images[k])]
        images += [(f"{p:.0f}°", im) for p, im in zip(r["phases"], s.images[chosen])]
        table.append((f"{r['type']} {k}\ngap {r['largest_gap']:.0f}°\nλ={r['lambda']:g}", images))
    image_rows(table, path)


def fit_both(a, recording, data, times, report):
    """Fit the data-driven and the task-driven model; the data-driven one as a VisionModel."""
    fitted = timed("fit_cnn", times, fit, recording, FitSettings(), progress=False)
    fitted.save(os.path.join(a.out, "fit_cnn"))
    report["cnn"] = prediction(fitted, data)
    print("cnn:", report["cnn"], flush=True)
    if a.task != "none":
        task = timed("fit_task", times, fit, recording, FitSettings(core=a.task), progress=False)
        report["task"] = {"core": a.task, **prediction(task, data)}
        print("task:", report["task"], flush=True)
    return fitted.model()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=11, help="the population's seed (default 11)")
    p.add_argument("--cells", type=int, default=40)
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--size", type=int, default=40)
    p.add_argument("--task", default="efficientnet_lite0:_blocks.2", help="'none' to skip it")
    p.add_argument("--diverse-steps", type=int, default=1000)
    p.add_argument("--out", default="bench-neurons")
    p.add_argument(
        "--units-per-batch", type=int, default=0,
        help="0: the library's batches (on the CPU every neuron in one)",
    )  # fmt: skip
    p.add_argument("--reuse", action="store_true", help="reuse OUT's fits of the same population")
    p.add_argument("--progress", action="store_true", help="progress bars of the optimizations")
    p.add_argument("--fit-only", action="store_true", help="time the data-driven fit only")
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if a.progress:
        watch_memory()
    os.makedirs(a.out, exist_ok=True)
    times, report = {}, {"seed": a.seed, "cells": a.cells, "images": a.images, "size": a.size}
    data = timed(
        "simulate", times, simulate, cells=a.cells, images=a.images, size=a.size, seed=a.seed
    )
    recording = split(*check(data), seed=0)
    if a.fit_only:
        fitted = timed("fit_cnn", times, fit, recording, FitSettings(), progress=a.progress)
        print("cnn:", prediction(fitted, data))
        return
    fits = os.path.join(a.out, "fits.json")
    simulated = {k: getattr(a, k) for k in ("seed", "cells", "images", "size", "task")}
    earlier = None
    if a.reuse and os.path.exists(fits):
        with open(fits) as f:
            earlier = json.load(f)
        if earlier.get("population") != simulated:  # another population's fits: fit again
            print(f"{fits} holds the fits of {earlier.get('population')}; fitting again")
            earlier = None
    if earlier is not None:  # the fits of an earlier run of the same population
        times.update(earlier["times"])
        report.update(earlier["report"])
        model = load_model("neurons", weights=os.path.join(a.out, "fit_cnn", "model.pt"))
    else:
        model = fit_both(a, recording, data, times, report)
        with open(fits, "w") as f:
            json.dump(
                {"population": simulated, "times": times, "report": report},
                f, indent=1, default=float,
            )  # fmt: skip
    meis = timed(
        "meis",
        times,
        visualize,
        model,
        VisualizeSettings(targets=["neurons:all"]),
        progress=a.progress,
    )
    settings = DiverseSettings(target="neurons:all", steps=a.diverse_steps)
    if a.units_per_batch:
        # batches of this many units instead of the library's
        import functools

        import preimage.methods.cadena.diverse as D

        per_unit = len(settings.lambdas) * settings.n * a.size * a.size
        D.sweep = functools.partial(D.sweep, max_pixels=a.units_per_batch * per_unit)
    div = timed("diverse", times, diverse, model, settings, progress=a.progress)
    times["meis_plus_diverse"] = round(times["meis"] + times["diverse"], 1)
    rows = fig11(div.sweeps, data, model)
    cos, true_ratio, model_ratio = mei_checks(meis, data, population(data))
    kinds = data["cell_types"]
    gaps = {t: [r["largest_gap"] for r in rows if r["type"] == t] for t in ("simple", "complex")}
    report["fig11"] = {
        "max_gap_complex": max(gaps["complex"]),
        "median_gap_complex": float(np.median(gaps["complex"])),
        "min_gap_simple": min(gaps["simple"]),
        "median_gap_simple": float(np.median(gaps["simple"])),
        "classification_accuracy": float(np.mean([r["call"] == r["type"] for r in rows])),
        "complex_model_phase_invariance": sorted(
            (round(r["model_phase_invariance"], 3), round(r["largest_gap"]))
            for r in rows if r["type"] == "complex"
        ),
        "cells": rows,
    }  # fmt: skip
    report["mei"] = {
        "median_cosine_simple": float(np.median(np.array(cos)[kinds == "simple"])),
        "cosine": cos,
        "min_model_ratio_to_best_training": float(min(model_ratio)),
        "min_true_ratio_to_best_training": float(true_ratio.min()),
        "median_true_ratio_to_best_training": float(np.median(true_ratio)),
    }
    report["diverse_steps"] = [s.extra.get("steps") for s in div.sweeps[:1]]
    # each (unit, λ) group leaves the batch once it has converged: its steps, and the mean batch
    group_steps = np.array([s.extra["steps_per_lambda"] for s in div.sweeps], dtype=float)
    report["group_steps"] = {
        "quartiles": np.percentile(group_steps, [0, 25, 50, 75, 100]).tolist(),
        "mean_share_of_the_batch": float(group_steps.mean() / group_steps.max()),
    }
    report["times_s"] = times
    figure(rows, meis, div.sweeps, data, os.path.join(a.out, "fig11.png"))
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=float)
    summary = {k: v for k, v in report["fig11"].items() if k != "cells"}
    print("fig11:", summary)
    print("mei:", {k: v for k, v in report["mei"].items() if k != "cosine"})
    print("group steps:", report["group_steps"])
    print("times:", times)


if __name__ == "__main__":
    main()
