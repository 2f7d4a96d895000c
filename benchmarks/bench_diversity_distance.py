"""The diversity term's pairwise distances: the Gram form against the n² differences it replaced.

    python benchmarks/bench_diversity_distance.py [--rounds 5]

Forward and backward of the closest distance of every group, at the shape of a population of
neurons' λ sweep (34 neurons x 12 λ, six images each, the cnn core's 16 x 24 x 24 output) and at
that of a network layer's (24 units x 12 λ, 24 x 10 x 10), medians of alternating rounds in one
process. Prints the seconds of each form and their ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from preimage.engine.objectives.diversity import pairwise_distances


def differences(f):
    """The form before: every difference, squared and summed."""
    diff = f[:, :, None, :] - f[:, None, :, :]
    return torch.sqrt(diff.pow(2).sum(-1) + 1e-12)


def timed(form, f):
    x = f.clone().requires_grad_(True)
    eye = torch.eye(f.shape[1], dtype=torch.bool)
    start = time.perf_counter()
    d = form(x).masked_fill(eye, float("inf")).flatten(1).amin(1)
    d.sum().backward()
    return time.perf_counter() - start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    for groups, n, dim in ((408, 6, 9216), (288, 6, 2400)):
        f = torch.randn(groups, n, dim, generator=torch.Generator().manual_seed(0))
        times = {"differences": [], "gram": []}
        for _ in range(args.rounds):
            times["differences"].append(timed(differences, f))
            times["gram"].append(timed(pairwise_distances, f))
        old, new = (sorted(v)[len(v) // 2] for v in times.values())
        print(
            f"{groups} groups x {n} x {dim}: differences {old:.3f} s, Gram {new:.3f} s,"
            f" {old / new:.1f}x faster"
        )


if __name__ == "__main__":
    main()
