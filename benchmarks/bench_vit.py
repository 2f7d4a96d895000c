"""Step time of a vision transformer against a bare forward and backward of the truncated model.

ViT-S/16 (timm's ``vit_small_patch16_224``, random weights: the weights do not change the time),
224 px, a batch of 8 channels of one block, two threads. Printed, as medians over alternating
rounds in one process (these machines are noisy, so only ratios within a round are compared):

- ours: one step of ``render`` (Fourier parameterization, decorrelated colour, Finzi's transforms,
  Adam), steady state: the time of 3 x STEPS minus that of STEPS steps, over 2 x STEPS;
- bare: a forward to the block and a backward to the input with the gradient a channel objective
  sends (each feature's mean over the patch tokens), through the same truncated pass;
- whole: the same forward and backward through the whole network (the head included), what a
  loop without truncation would pay;
- overhead = ours / bare - 1 (the issue's target: at most 25 %), and the truncation's saving,
  whole / bare.

    python benchmarks/bench_vit.py [--layer blocks.6] [--rounds 5] [--steps 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import preimage
from preimage import objectives as O
from preimage.models.layers import capture


def ours(model, layer, channels, size, steps):
    t = time.perf_counter()
    preimage.render(
        model,
        O.channel(layer, channels, batch=list(range(len(channels)))),
        preimage.ImageParam(len(channels), size, generator=torch.Generator().manual_seed(0)),
        transforms=preimage.parse_transforms("finzi"),
        steps=steps,
        progress=False,
    )
    return time.perf_counter() - t


def steady(run, *args, steps):
    short, long = run(*args, steps), run(*args, 3 * steps)
    return (long - short) / (2 * steps)


def bare(model, layer, n, size, steps, whole=False):
    """Forward and backward only: to the layer (truncated), or through the whole network."""
    x = torch.rand(n, 3, size, size, requires_grad=True)
    address = model.resolve_layer(layer)
    with capture(model.runner([address]), [address], model.layout_at) as c:
        t = time.perf_counter()
        for _ in range(steps):
            inputs = model.preprocess(x)
            if whole:
                found = {}
                module = dict(model.module.named_modules())[address]
                hook = module.register_forward_hook(lambda m, i, o: found.setdefault("out", o))
                model.module(inputs)
                hook.remove()
                out = model.layout_at(address, (size, size)).canonical(found["out"])
            else:
                out = c.run(inputs)[address]
            grad = torch.full(out.shape[:2] + (1, 1), 1.0 / out[0, 0].numel())
            out.backward(grad.expand_as(out))
    return (time.perf_counter() - t) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="timm/vit_small_patch16_224")
    ap.add_argument("--layer", default="blocks.6")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = preimage.load_model(args.model, weights="random")
    size, n = model.input_size, args.batch
    channels = list(range(n))
    info = model.layer_info(args.layer)
    print(
        f"{args.model} {args.layer} ({info.layout}, {info.shape[0]} features), {size} px,"
        f" batch {n}, {args.threads} threads, {args.rounds} rounds"
    )
    ours(model, args.layer, channels, size, 2)  # warm: the fast copy, the kernels, the caches
    bare(model, args.layer, n, size, 2)
    bare(model, args.layer, n, size, 2, whole=True)
    t = {"ours": [], "bare": [], "whole": []}
    for _ in range(args.rounds):
        t["ours"].append(steady(ours, model, args.layer, channels, size, steps=args.steps))
        t["bare"].append(bare(model, args.layer, n, size, args.steps))
        t["whole"].append(bare(model, args.layer, n, size, args.steps, whole=True))
    med = {k: statistics.median(v) * 1000 for k, v in t.items()}
    overhead = [o / b - 1 for o, b in zip(t["ours"], t["bare"])]
    saving = [w / b for w, b in zip(t["whole"], t["bare"])]
    print(
        f"ours {med['ours']:.1f} ms a step, bare {med['bare']:.1f} ms, whole {med['whole']:.1f} ms"
    )
    print(
        f"overhead (ours / bare - 1): {statistics.median(overhead) * 100:.1f} %"
        f" (rounds {min(overhead) * 100:.1f} to {max(overhead) * 100:.1f} %; target at most 25 %)"
    )
    print(
        f"truncation at {args.layer}: the whole network's pass costs"
        f" {statistics.median(saving):.2f}x the truncated one"
        f" (rounds {min(saving):.2f} to {max(saving):.2f})"
    )


if __name__ == "__main__":
    main()
