"""The compiled affine resampling (``preimage.affine_warp``) against grid_sample, in one process.

1. The resampling alone: Finzi's transforms drawn for N images of 128 px, then
   forward and backward (gradient with respect to the images). grid_sample's
   side includes building its grid tensor, which ours does not need.
2. Whole render steps (Fourier, decorrelated, finzi transforms) of every channel
   of ``_blocks.0`` and ``_blocks.2`` of EfficientNet-Lite0, with each resampler.

Medians of alternating rounds; speed-ups are ratios within a round's pair.

    python benchmarks/bench_affine_warp.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import preimage
from preimage import objectives as O
from preimage.engine.fast import affine_warp
from preimage.engine.fast.cpu_memory import keep_freed_memory
from preimage.engine.transforms import parse_transforms


def resample(n, compiled, reps, generator):
    pipe = parse_transforms("finzi")
    x = torch.rand(n, 3, 128, 128, requires_grad=True)
    g = torch.randn(n, 3, 128, 128)
    fwd = bwd = 0.0
    for _ in range(reps):
        total, out = pipe.matrices(n, (128, 128), generator)
        coef = affine_warp.coefficients(total, (128, 128), out)
        t0 = time.perf_counter()
        if compiled:
            y = affine_warp.warp(x, coef, out)
        else:
            y = F.grid_sample(
                x,
                affine_warp.grid(coef, (128, 128), out),
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )
        t1 = time.perf_counter()
        torch.autograd.grad(y, x, g)
        t2 = time.perf_counter()
        fwd, bwd = fwd + t1 - t0, bwd + t2 - t1
    return fwd / reps * 1000, bwd / reps * 1000


def step(model, layer, n, compiled, steps):
    saved = affine_warp._KERNELS.get("k")
    if not compiled:
        affine_warp._KERNELS["k"] = None
    try:
        t = time.perf_counter()
        preimage.render(
            model,
            O.channel(layer, list(range(n))),
            preimage.ImageParam(n, 128, generator=torch.Generator().manual_seed(0)),
            transforms=parse_transforms("finzi"),
            steps=steps,
            progress=False,
        )
        return (time.perf_counter() - t) / steps * 1000
    finally:
        affine_warp._KERNELS["k"] = saved


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    keep_freed_memory()
    if affine_warp._kernels() is None:
        raise SystemExit("Numba is not installed (or PREIMAGE_NUMBA=0): nothing to compare")
    generator = torch.Generator().manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.rounds}"
        " alternating rounds"
    )
    print(
        f"{'resampling 128 px':24} {'grid_sample fwd':>16} {'bwd':>7} {'ours fwd':>9} {'bwd':>7}"
        f" {'speed-up':>9}"
    )
    for n in (16, 1):
        resample(n, True, 2, generator), resample(n, False, 2, generator)  # warm-up, compilation
        rows = [
            (resample(n, False, 20, generator), resample(n, True, 20, generator))
            for _ in range(args.rounds)
        ]
        ref = [statistics.median(r[0][k] for r in rows) for k in (0, 1)]
        ours = [statistics.median(r[1][k] for r in rows) for k in (0, 1)]
        ratio = statistics.median(sum(r[0]) / sum(r[1]) for r in rows)
        print(
            f"{f'N = {n}, fwd + bwd':24} {ref[0]:>13.2f} ms {ref[1]:>7.2f} {ours[0]:>9.2f}"
            f" {ours[1]:>7.2f} {ratio:>8.2f}x"
        )
    model = preimage.load_model("efficientnet_lite0")
    print(f"\n{'render step, 128 px':24} {'grid_sample ms':>16} {'ours ms':>9} {'speed-up':>9}")
    for layer, n in (("_blocks.0", 16), ("_blocks.2", 24)):
        step(model, layer, n, True, 2), step(model, layer, n, False, 2)
        rows = [
            (step(model, layer, n, False, 8), step(model, layer, n, True, 8))
            for _ in range(args.rounds)
        ]
        ref, ours = (statistics.median(r[k] for r in rows) for k in (0, 1))
        ratio = statistics.median(r[0] / r[1] for r in rows)
        print(f"{f'{layer}, {n} channels':24} {ref:>16.2f} {ours:>9.2f} {ratio:>8.2f}x")


if __name__ == "__main__":
    main()
