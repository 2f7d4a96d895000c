"""The blocked correlation for a first layer's input gradient, ELU in place, and a population
sweep's step.

    python benchmarks/bench_blocked_conv.py [--images 2880] [--rounds 5]

1. The input gradient of a grey cnn core's first layer (16 channels from one, 13 x 13, 40 px):
   oneDNN's own convolution against ``blocked_conv2d`` (the same correlation between 4 x 4
   space-to-depth blocks), on 720 images.
2. One optimization step (forward and backward to the image) of the recorded-neurons model that
   a 40-neuron λ sweep runs (40 neurons x 12 λ x 6 images = 2,880 images of 40 px, the default
   three-layer core and factorized readout, through the model's fast copy): as before (oneDNN's
   input gradient, ELU out of place), with the blocked path, and with the ELUs in place too.

Medians of alternating rounds in one process, and their ratios (these machines are noisy).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import preimage.models.fast.blocked_conv as bc
import preimage.models.fast.fusion as fusion
from preimage.models.zoo.neurons import vision_model
from preimage.neurons.network import build

CONFIG = dict(
    ensemble=1, neurons=40, seed=0, grid=[16, 24, 24], core="cnn", channels=1, core_channels=16,
    kernels=[13, 3, 3], readout="factorized", zscore=[0.45, 0.2], size=[40, 40],
    image_norm=30.0, pixel_range=[0.0, 1.0],
)  # fmt: skip


def seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def first_layer(rounds):
    g = torch.Generator().manual_seed(0)
    kernel = torch.randn(1, 16, 13, 13, generator=g)  # the transposed, flipped 16 -> 1 kernel
    grad_out = torch.randn(720, 16, 28, 28, generator=g)
    plain = lambda: F.conv2d(grad_out, kernel, padding=12)  # noqa: E731
    blocked = lambda: bc.blocked_conv2d(grad_out, kernel, (12, 12), (40, 40))  # noqa: E731
    assert torch.allclose(plain(), blocked(), atol=1e-3)
    times = {"oneDNN": [], "blocked": []}
    for _ in range(rounds):
        times["oneDNN"].append(seconds(plain))
        times["blocked"].append(seconds(blocked))
    return {k: statistics.median(v) for k, v in times.items()}


def sweep_step(images, rounds):
    """Seconds of a step: as before this round (oneDNN's input gradient, ELU out of place), with
    the blocked first layer, and with the ELUs in place too."""
    net = build(CONFIG)
    with_elu = vision_model(net, CONFIG).runner(["neurons"])
    original_elu = fusion._in_place_activations
    fusion._in_place_activations = lambda *a: []
    try:
        without_elu = vision_model(net, CONFIG).runner(["neurons"])
    finally:
        fusion._in_place_activations = original_elu
    x0 = torch.randn(images, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    unit = torch.arange(images) * CONFIG["neurons"] // images

    def step(fast):
        x = x0.clone().requires_grad_(True)
        fast(x)[torch.arange(images), unit].sum().backward()

    original = bc.pays
    times = {"before": [], "blocked": [], "blocked + ELU in place": []}
    try:
        for _ in range(rounds):
            bc.pays = lambda *a: False
            times["before"].append(seconds(lambda: step(without_elu)))
            bc.pays = original
            times["blocked"].append(seconds(lambda: step(without_elu)))
            times["blocked + ELU in place"].append(seconds(lambda: step(with_elu)))
    finally:
        bc.pays = original
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2880)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    layer = first_layer(args.rounds)
    a, b = layer["oneDNN"], layer["blocked"]
    print(f"first layer's input gradient, 720 images: oneDNN {a:.3f} s, blocked {b:.3f} s,"
          f" {a / b:.2f}x", flush=True)  # fmt: skip
    step = sweep_step(args.images, args.rounds)
    base = step["before"]
    print(
        f"sweep step, {args.images} images: "
        + ", ".join(f"{k} {v:.3f} s ({base / v:.2f}x)" for k, v in step.items()),
        flush=True,
    )


if __name__ == "__main__":
    main()
