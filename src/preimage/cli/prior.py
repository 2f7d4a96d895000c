"""`preimage prior train|evaluate`: a PixelCNN++ prior, trained on patches or evaluated."""

from __future__ import annotations

import os
import sys

from ..priors.settings import EvaluateSettings, TrainSettings
from .args import add_settings, settings_from

HELP = (
    "a PixelCNN++ natural-image prior: train it on patches, or evaluate it against Gaussian"
    " baselines"
)


def add(sub):
    """The `preimage prior` subcommand: the action, the train and evaluate settings, --device,
    --quiet and --out.
    """
    p = sub.add_parser("prior", help=HELP, description=HELP)
    p.add_argument(
        "action",
        choices=("train", "evaluate"),
        help="train a prior on natural images, or evaluate one's bits per dimension",
    )
    add_settings(p, TrainSettings)
    add_settings(p, EvaluateSettings, skip=("images", "seed"))
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--out",
        required=True,
        help="train: the checkpoint (resumed if it exists); evaluate: a folder for metrics.json",
    )
    p.set_defaults(run=run)


def run(args):
    """Train the prior into the checkpoint --out (resumed if it exists), or evaluate one and write
    --out/metrics.json; print the bits per dimension.
    """
    from ..io.files import write_metrics
    from ..priors import evaluate, export, load_prior, train

    if args.action == "train":
        s = settings_from(args, TrainSettings)
        prior, history = train(
            args.out,
            images=s.images,
            patch=s.patch,
            steps=s.steps,
            batch=s.batch,
            lr=s.lr,
            network=s.network(),
            seed=s.seed,
            device=args.device,
            progress=not args.quiet,
            eval_every=s.eval_every,
            save_every=s.eval_every,
        )
        if s.export:
            export(args.out, s.export)
        bpd = (history[-1] if history else {}).get("held_out_bpd", float("nan"))
        also = f" and {s.export}" if s.export else ""
        print(f"wrote {args.out} (step {prior.steps}; held-out {bpd:.3f} bpd){also}")
        return
    s = settings_from(args, EvaluateSettings)
    prior = load_prior(s.prior, args.device)
    result = evaluate(
        prior,
        images=s.images,
        train_count=s.train_patches,
        test_count=s.test_patches,
        components=s.components,
        seed=s.seed,
    )
    os.makedirs(args.out, exist_ok=True)
    config = {"command": "prior evaluate", **s.as_dict(), **prior.describe()}
    write_metrics(args.out, config, getattr(args, "argv", None) or sys.argv[1:], **result)
    print(
        f"held-out bits per dimension on {result['patch']}x{result['patch']} patches: PixelCNN++"
        f" {result['pixelcnn_bpd']:.3f}, Gaussian {result['gaussian_bpd']:.3f}, Gaussian mixture"
        f" {result['gmm_bpd']:.3f}"
    )
    print(f"wrote {os.path.join(args.out, 'metrics.json')}")
