"""Throughput of an atlas campaign on Ray: 2 workers against 1, on the same CPU-bound jobs.

Each worker gets one torch thread, so 1 worker uses one core and 2 workers
both cores of this machine. Both runs start a local Ray cluster of their own
(its start-up and a first pass over the jobs, which starts the worker
processes and loads the model in each, are not timed) and run the same jobs into a fresh campaign
folder; rounds alternate the two so that drifts of a noisy machine hit both.
A one-process run with 2 torch threads (the local executor) is the third line:
what intra-op threading gives on the same cores.

    python benchmarks/bench_atlas_ray.py [--jobs 8] [--steps 200] [--size 128] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import ray

import preimage
from preimage.atlas import Campaign, LocalExecutor, RayExecutor, Settings, plan, run_campaign


def timed(specs, executor):
    with tempfile.TemporaryDirectory() as folder, Campaign(folder) as campaign:
        t = time.perf_counter()
        summary = run_campaign(campaign, specs, executor, progress=False)
        seconds = time.perf_counter() - t
    assert summary["ran"] == len(specs) and not summary["failed"], summary
    return seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", default="_blocks.4")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    model = preimage.load_model("efficientnet_lite0")
    settings = Settings(model=model.name, steps=args.steps, size=args.size, chunk=2, repeats=2)
    specs = plan(model, [args.layer], str(2 * args.jobs), ["visualize"], settings)
    times = {
        "ray, 1 worker x 1 thread": [],
        "ray, 2 workers x 1 thread": [],
        "local, 1 process x 2 threads": [],
    }
    for _ in range(args.rounds):
        for workers in (1, 2):
            executor = RayExecutor(workers=workers, threads=1)
            timed(
                specs, executor
            )  # untimed: Ray starts its worker processes and each loads the model
            times[f"ray, {workers} worker{'s' if workers > 1 else ''} x 1 thread"].append(
                timed(specs, executor)
            )
            executor.close()
            while ray.is_initialized():
                time.sleep(0.1)
        times["local, 1 process x 2 threads"].append(timed(specs, LocalExecutor(threads=2)))
    print(
        f"{len(specs)} jobs of {args.layer} visualize, 2 units x {args.steps} steps at {args.size}"
        f" px each; {os.cpu_count()} cores; median of {args.rounds} rounds"
    )
    base = statistics.median(times["ray, 1 worker x 1 thread"])
    for name, values in times.items():
        s = statistics.median(values)
        print(
            f"{name:32} {s:7.1f} s  {len(specs) / s * 60:6.1f} jobs/min  throughput x{base / s:.2f}"
            " of 1 worker"
        )


if __name__ == "__main__":
    main()
