"""The whole VGG-19 Cadena atlas planned on this device, and one of its jobs timed against the plan.

    python benchmarks/gpu_atlas_check.py --device cuda [--layer conv3_1] [--steps 1000]

The plan (``preimage atlas --plan``) times a forward and backward pass of the truncated network
per layer, image size and batch, and multiplies by each job's image-steps at full steps. One job
of the plan (the first diverse job of ``--layer``, all its steps, no early stopping) is then run
for real here and its time set against the plan's estimate for it: the estimate counts the
network alone, so the measured time is expected above it by the parameterization, the pairwise
distances and Adam.
"""

from __future__ import annotations

import argparse
import time

import torch

import preimage
from preimage.atlas import Settings, estimate, jobs, plan, run_job

VGG19_CONVS = [
    f"conv{b}_{k}"
    for b, count in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for k in range(1, count + 1)
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--layer", default="conv3_1", help="the layer of the job timed for real")
    ap.add_argument("--steps", type=int, default=1000, help="the timed job's steps (the paper's)")
    args = ap.parse_args()
    model = preimage.load_model("vgg19", weights="random", device=args.device)
    settings = Settings(model="vgg19", weights="random", device=args.device)
    specs = plan(model, VGG19_CONVS, "all", ["diverse", "invariance"], settings)
    table, total, rates = estimate(model, specs)
    print(f"VGG-19 Cadena atlas (diverse + invariance, every channel of {len(VGG19_CONVS)} convs)")
    for r in table:
        name = r["alias"] or r["layer"]
        print(f"{name:>8} {r['units']:>4} units {r['jobs']:>4} jobs {r['seconds'] / 3600:8.2f} h")
    print(
        f"total: {total['jobs']} jobs, {total['image_steps']:,} image-steps, "
        f"{total['seconds'] / 3600:.1f} device-hours on one {_name(args.device)}",
        flush=True,
    )

    address = model.resolve_layer(args.layer)
    [job] = plan(model, [args.layer], "8", ["diverse"], settings)
    job["settings"] = {**job["settings"], "steps": args.steps, "patience": 0}
    # the estimate of this job, from the rate the plan measured for its layer, size and batch
    rate = next(v for k, v in rates.items() if k.startswith(f"{address}@"))
    estimated = job["batch"] * args.steps * rate
    jobs._model(job)  # the worker's network loaded before the clock starts, as in a campaign
    start = time.perf_counter()
    result = run_job(job)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(
        f"one job ({args.layer}, diverse, 8 units x {job['batch'] // 8} images,"
        f" {args.steps} steps):"
        f" estimated {estimated:.1f} s, measured {seconds:.1f} s (in the worker"
        f" {result['seconds']:.1f} s), measured / estimated {seconds / estimated:.2f}"
    )


def _name(device):
    return torch.cuda.get_device_name() if str(device).startswith("cuda") else "CPU worker"


if __name__ == "__main__":
    main()
