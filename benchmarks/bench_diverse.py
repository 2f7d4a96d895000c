"""Throughput of the diverse search (Cadena et al.) for every channel of one layer.

One batch holds every channel x every λ x n images at the unit's receptive
field size. The script times optimization steps of that batch and a bare
forward + backward of the truncated model (to the target layer, reading the
preceding layer too) on a batch of the same shape, in alternating rounds in
one process, and prints image-steps per second and the overhead of the search
over the bare pass (the parameterization, the norm, the pairwise distances,
Adam).

    python benchmarks/bench_diverse.py [--layer _blocks.2] [--steps 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import preimage
from preimage.methods.cadena import diverse as D
from preimage.methods.cadena.setting import LAMBDAS, preceding_layer
from preimage.models.layers import capture


def search(model, layer, channels, steps):
    """The whole search, the paper's setting included (the natural-patch norm), in one batch."""
    t = time.perf_counter()
    settings = D.DiverseSettings(target=f"{layer}:all", steps=steps, patience=0)
    D.sweep(model, D.sweep_setup(model, layer, settings), channels, False, max_pixels=10**12)
    return time.perf_counter() - t


def bare(model, layers, n, size, steps):
    x = torch.rand(n, 3, size, size, requires_grad=True)
    with capture(model.runner(layers), layers) as c:
        t = time.perf_counter()
        for _ in range(steps):
            acts = c.run(model.preprocess(x))
            sum(a.float().mean() for a in acts.values()).backward()
    return (time.perf_counter() - t) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--layer", default="_blocks.2")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    model = preimage.load_model(args.model)
    info = model.layer_info(args.layer)
    channels = list(range(info.channels))
    size = info.rf_size
    n_images = len(channels) * len(LAMBDAS) * 6
    layers = [model.resolve_layer(args.layer), preceding_layer(model, args.layer)]
    # the search's fixed cost (the natural-patch norm, building the batch) is measured with 1 step
    # and taken out
    search(model, args.layer, channels, 1)
    bare(model, layers, n_images, size, 1)
    t_search, t_bare = [], []
    for _ in range(args.rounds):
        once = search(model, args.layer, channels, 1)
        many = search(model, args.layer, channels, args.steps + 1)
        t_search.append((many - once) / args.steps)
        t_bare.append(bare(model, layers, n_images, size, args.steps))
    s, b = statistics.median(t_search), statistics.median(t_bare)
    print(
        f"{args.model} {args.layer}: {len(channels)} channels x {len(LAMBDAS)} λ x 6 images ="
        f" {n_images} images of {size}x{size} px, one batch"
    )
    print(
        f"search step {1000 * s:.1f} ms = {n_images / s:.0f} image-steps/s; bare forward+backward"
        f" {1000 * b:.1f} ms; overhead {100 * (s / b - 1):.1f} %"
    )


if __name__ == "__main__":
    main()
