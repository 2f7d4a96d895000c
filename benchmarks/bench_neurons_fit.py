"""The data-driven model's fit with its first layer's weight gradient as a forward convolution.

    python benchmarks/bench_neurons_fit.py [--epochs 3] [--rounds 3]

Fits the default model (three-layer cnn core, factorized readout, batches of 64) to a simulated
population of 40 cells x 5,000 images of 40 px for a few epochs, alternately with oneDNN's own
backward of the 13 x 13 first layer and with ``models/fast/weight_gradient`` (the library's),
and prints the median seconds per epoch of each, their ratio, and the validation correlation
each reached (the two differ by float rounding only).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from preimage.models.fast import weight_gradient
from preimage.neurons import fit, simulate
from preimage.neurons.data import check, split
from preimage.neurons.settings import FitSettings


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    recording = split(*check(simulate(cells=40, images=5000, size=40, seed=3)), seed=0)
    settings = FitSettings(epochs=args.epochs, patience=args.epochs)
    fits = weight_gradient.fits
    times, reached = {"oneDNN": [], "forward convolution": []}, {}
    try:
        for _ in range(args.rounds):
            for name, rule in (("oneDNN", lambda conv: False), ("forward convolution", fits)):
                weight_gradient.fits = rule
                start = time.perf_counter()
                fitted = fit(recording, settings, progress=False)
                times[name].append((time.perf_counter() - start) / args.epochs)
                reached[name] = fitted.history[0][-1][2]
    finally:
        weight_gradient.fits = fits
    base = statistics.median(times["oneDNN"])
    for name, t in times.items():
        t = statistics.median(t)
        print(
            f"{name}: {t:.2f} s an epoch ({base / t:.2f}x), validation correlation after"
            f" {args.epochs} epochs {reached[name]:.4f}"
        )
    print(f"torch threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
