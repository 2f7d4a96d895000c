"""`preimage atlas`: a resumable campaign of many units x layers x methods, or its plan."""

from __future__ import annotations

import os
import sys

from ..errors import PreimageError
from .args import add_settings, settings_from
from .common import check_device, model_args

HELP = (
    "a resumable campaign: many units x layers x methods as jobs, here or on Ray, in an SQLite"
    " catalog"
)


def add(sub):
    """The `preimage atlas` subcommand: the model flags, --layers, --units, --methods, the
    campaign's settings, --executor, --ray-address, --workers, --threads, --plan, --quiet and
    --out.
    """
    from ..atlas import Settings, atlas_methods

    p = sub.add_parser("atlas", help=HELP, description=HELP)
    model_args(p)
    p.add_argument("--layers", required=True, help="layer names separated by commas")
    p.add_argument(
        "--units",
        default="all",
        help="all, N (channels 0..N-1), a list such as 3,7,10-15, or sample:K (K channels of"
        " each layer drawn with --seed) (default: all)",
    )
    p.add_argument(
        "--methods",
        default="visualize,diverse,invariance",
        help=f"{', '.join(atlas_methods())}, separated by commas (default:"
        " visualize,diverse,invariance)",
    )
    add_settings(p, Settings)
    p.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="local: one job at a time in this process (default); ray: Ray tasks",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="join this Ray cluster (auto, or such as 10.0.0.1:6379) instead of starting one here",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="ray: jobs at once (default: 2 on a local cluster)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per worker (default: the cores divided by the workers)",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="dry run: print the jobs, image-steps and estimated time per worker, and run nothing",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--out", default=None, help="the campaign folder (catalog.sqlite, jobs/); rerunning resumes"
    )
    p.set_defaults(run=run)


def _campaign_settings(args):
    from ..atlas import Settings

    for flag, value in (("--workers", args.workers), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise PreimageError(f"bad {flag} {value}; it must be at least 1")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise PreimageError(f"bad --out {args.out!r}: it is a file; the campaign needs a folder")
    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    if not layers:
        raise PreimageError(
            f"bad --layers {args.layers!r}; expected layer names separated by commas (`preimage"
            " layers` lists them)"
        )
    model = {"model": args.model, "weights": args.weights, "weights_seed": args.weights_seed}
    return layers, settings_from(args, Settings, **model, device=args.device)


def run(args):
    """Print the plan of the campaign (--plan), or run it into --out and print what was done."""
    from ..atlas.plan import parse_methods

    methods = parse_methods(args.methods)
    layers, settings = _campaign_settings(args)
    if args.plan:
        return _plan(args, layers, methods, settings)
    if not args.out:
        raise PreimageError("bad arguments: --out DIR is required (or --plan for a dry run)")
    _run(args, layers, methods, settings)


def _plan(args, layers, methods, settings):
    import torch

    from ..atlas import estimate, plan
    from ..atlas.executors import default_threads
    from ..models import load_model

    check_device(args.device)
    # the plan times the architecture; the weights do not change the time, and need not be at hand
    model = load_model(args.model, weights="random", seed=0, device=args.device)
    specs = plan(model, layers, args.units, methods, settings)
    workers = args.workers or 1
    torch.set_num_threads(args.threads or default_threads(1))

    def timed(key, rate):
        line = f"timed {key[0]} at {key[1]} px, batch {key[2]}: {rate * 1000:.2f} ms per image-step"
        print(line, file=sys.stderr)

    table, total, _ = estimate(
        model, specs, workers=workers, progress=None if args.quiet else timed
    )
    width = max(len(r["layer"]) for r in table)
    print(f"plan: {args.model}, methods {','.join(methods)}, {settings.chunk} units per job")
    print(
        f"{'layer':{width}} {'alias':8} {'units':>6} {'jobs':>6} {'image-steps':>14} {'hours':>9}"
    )
    for r in table:
        print(
            f"{r['layer']:{width}} {r['alias']:8} {r['units']:>6} {r['jobs']:>6}"
            f" {r['image_steps']:>14,} {r['seconds'] / 3600:>9.1f}"
        )
    print(
        f"total: {total['jobs']} jobs, {total['image_steps']:,} image-steps,"
        f" {total['seconds'] / 3600:.1f} hours of one worker ({torch.get_num_threads()} threads"
        f" on {args.device}, forward+backward timed here, at full steps without early"
        f" stopping); {total['seconds_per_worker'] / 3600:.1f} hours per worker with {workers}"
        " workers"
    )


def _run(args, layers, methods, settings):
    from ..atlas import Campaign, make_executor, plan, run_campaign
    from ..atlas.executors import default_threads
    from ..atlas.run import CATALOG
    from ..models import load_model

    if args.executor == "local":
        check_device(args.device)
    Campaign.check(args.out)  # a second driver, or a folder it cannot write, before the model loads
    # the driver only plans (layer shapes, classes); workers load the network on --device, so a
    # CPU-only driver can run a campaign on a GPU cluster
    model = load_model(args.model, weights=args.weights, seed=args.weights_seed, device="cpu")
    specs = plan(model, layers, args.units, methods, settings)
    threads = args.threads or default_threads(args.workers or (2 if args.executor == "ray" else 1))
    executor = make_executor(
        args.executor,
        workers=args.workers,
        threads=threads,
        address=args.ray_address,
        device=args.device,
    )
    config = {
        "command": "atlas",
        "model": model.name,
        "weights": model.weights,
        "layers": layers,
        "units": args.units,
        "methods": methods,
        "settings": settings.as_dict(),
        "executor": args.executor,
        "workers": args.workers,
        "threads": threads,
    }
    try:
        with Campaign(args.out) as campaign:
            try:
                summary = run_campaign(
                    campaign,
                    specs,
                    executor,
                    progress=not args.quiet,
                    argv=getattr(args, "argv", None) or sys.argv[1:],
                    config=config,
                )
            except KeyboardInterrupt:
                campaign.catalog.reset_interrupted()  # the job it stopped is pending again
                done = campaign.catalog.counts().get("done", 0)
                print(
                    f"preimage: interrupted with {done} of {len(specs)} jobs done; run the same"
                    " command to resume",
                    file=sys.stderr,
                )
                raise SystemExit(130) from None
    finally:
        executor.close()
    redone, missing = summary["interrupted_reset"], summary["missing_redone"]
    print(
        f"{summary['jobs']} jobs: {summary['done_before']} were done, ran {summary['ran']} in"
        f" {summary['wall_seconds']:.0f} s"
        + (f", {redone} interrupted earlier and redone" if redone else "")
        + (f", {missing} whose files were missing redone" if missing else "")
        + f"; failed {len(summary['failed'])}"
    )
    print(f"catalog: {os.path.join(args.out, CATALOG)}; browse with `preimage report {args.out}`")
    if summary["failed"]:
        raise SystemExit(1)
