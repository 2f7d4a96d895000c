"""`preimage layers`: every addressable layer with its shape and receptive field."""

from __future__ import annotations

import json

from .common import load, model_args

HELP = "every addressable layer with its shape and receptive field"


def add(sub):
    """The `preimage layers` subcommand: the model flags, --size and --json."""
    p = sub.add_parser("layers", help=HELP, description=HELP)
    model_args(p)
    p.add_argument(
        "--size", type=int, default=None, help="input size in pixels (default: the model's)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list with name, shape, layout, rf_size, rf_stride",
    )
    p.set_defaults(run=run)


def run(args):
    """Print the model's layers: a table of name, alias, shape and receptive field, or JSON."""
    # shapes and receptive fields are the architecture's: no weights need loading (or downloading)
    if args.weights is None:
        args.weights = "random"
    table = load(args).layers(args.size)
    if args.json:
        print(json.dumps([info.as_dict() for info in table], indent=1))
        return
    width = max(len(info.name) for info in table)
    print(
        f"{'layer':{width}}  {'alias':8} {'layout':>14} {'shape':>16} {'rf_size':>8}"
        f" {'rf_stride':>9}"
    )
    for info in table:
        # the canonical shape: C x H x W whatever the module returns (tokens: D x grid)
        shape = "x".join(str(s) for s in info.shape)
        layout = "?" if info.layout is None else str(info.layout)
        rf = f"{info.rf_size}{'*' if info.mixed else ''}"
        print(
            f"{info.name:{width}}  {info.alias or '':8} {layout:>14} {shape:>16} {rf:>8}"
            f" {str(info.rf_stride):>9}"
        )
    if any(info.mixed for info in table):
        print("* every position sees the whole receptive field (after attention)")
    if any(info.layout is None for info in table):
        print("? layout unknown: give it with --layout LAYER=FORM to target the layer")
