"""Diverse visualizations of EfficientNet-Lite0 units with and without the PixelCNN++ prior.

    python examples/diverse_with_prior.py --out prior-out [--prior default] [--units 0-7]

Runs the λ sweep of `preimage diverse` for a few units of one layer twice, once
plainly and once with α log P(x) added (Cadena et al. eq. 1, α = 0.0005), from
the same starting noise. At the λ chosen without the prior, it compares for
each unit the mean activation and the prior's bits per dimension of the six
images (lower is more likely), and the time per optimization step. Writes
`comparison.png` (the images side by side), `metrics.json`, and prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

import preimage
from preimage.io.figures import image_rows
from preimage.io.files import save_json
from preimage.models import load_model
from preimage.priors import load_prior


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="prior-out")
    ap.add_argument("--prior", default="default")
    ap.add_argument("--layer", default="_blocks.2")
    ap.add_argument("--units", default="0-7")
    ap.add_argument("--alpha", type=float, default=0.0005)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument(
        "--lambdas", default=None, help="λ values separated by commas (default: the paper's sweep)"
    )
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    model = load_model("efficientnet_lite0")
    prior = load_prior(args.prior)
    kw = dict(target=f"{args.layer}:{args.units}", steps=args.steps, seed=0)
    if args.lambdas:
        kw["lambdas"] = args.lambdas
    quiet = not args.quiet
    plain = preimage.run("diverse", model, progress=quiet, **kw).sweeps
    with_prior = preimage.run(
        "diverse", model, progress=quiet, prior=args.prior, prior_weight=args.alpha, **kw
    ).sweeps

    rows, units = [], []
    for p, q in zip(plain, with_prior):
        k = p.chosen if p.chosen is not None else 0
        x0, x1 = p.images[k].clamp(0, 1), q.images[k].clamp(0, 1)
        with torch.no_grad():
            bpd0, bpd1 = float(prior.bits_per_dim(x0).mean()), float(prior.bits_per_dim(x1).mean())
        act0, act1 = float(p.activations[k].mean()), float(q.activations[k].mean())
        units.append(
            {
                "channel": p.channel,
                "lambda": p.lambdas[k],
                "activation": act0,
                "activation_with_prior": act1,
                "activation_ratio": act1 / act0,
                "bpd": bpd0,
                "bpd_with_prior": bpd1,
            }
        )
        rows.append((f"{p.layer}:{p.channel}\nplain", [(None, im) for im in x0]))
        rows.append((f"λ={p.lambdas[k]:g}\nwith prior", [(None, im) for im in x1]))

    def per_step(sweeps):
        return sum(s.as_dict()["seconds"] for s in sweeps[:1]) / max(
            1, sweeps[0].as_dict()["steps"]
        )

    summary = {
        "median_activation_ratio": float(np.median([u["activation_ratio"] for u in units])),
        "min_activation_ratio": float(np.min([u["activation_ratio"] for u in units])),
        "median_bpd": float(np.median([u["bpd"] for u in units])),
        "median_bpd_with_prior": float(np.median([u["bpd_with_prior"] for u in units])),
        "units_more_likely_with_prior": int(sum(u["bpd_with_prior"] < u["bpd"] for u in units)),
        "seconds_per_step": per_step(plain),
        "seconds_per_step_with_prior": per_step(with_prior),
    }
    os.makedirs(args.out, exist_ok=True)
    image_rows(rows, os.path.join(args.out, "comparison.png"))
    save_json(
        os.path.join(args.out, "metrics.json"),
        {
            "config": {**vars(args), "prior_description": prior.describe()},
            "units": units,
            "summary": summary,
        },
    )
    print("| unit | λ | activation (with prior / plain) | bpd plain | bpd with prior |")
    print("|---|---|---|---|---|")
    for u in units:
        print(
            f"| {args.layer}:{u['channel']} | {u['lambda']:g} | {u['activation_ratio']:.3f} |"
            f" {u['bpd']:.2f} | {u['bpd_with_prior']:.2f} |"
        )
    print(
        f"median activation ratio {summary['median_activation_ratio']:.3f} (min"
        f" {summary['min_activation_ratio']:.3f}); median bpd {summary['median_bpd']:.2f} ->"
        f" {summary['median_bpd_with_prior']:.2f}; {summary['seconds_per_step'] * 1000:.1f} ms per"
        f" step -> {summary['seconds_per_step_with_prior'] * 1000:.1f} ms with the prior"
    )
    print(f"wrote comparison.png and metrics.json to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
