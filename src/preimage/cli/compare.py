"""`preimage compare A B [A2 B2 ...]`: saved runs or atlas campaigns compared in pairs."""

from __future__ import annotations

HELP = (
    "compare saved runs or atlas campaigns in pairs (A B, e.g. trained then random): diversity"
    " gains with bootstrap intervals and Mann-Whitney p, invariance indices, Figs. 5A/5B/8E"
)


def add(sub):
    """The `preimage compare` subcommand: the runs, --labels, --seed, --out, --overwrite."""
    p = sub.add_parser("compare", help=HELP, description=HELP)
    p.add_argument(
        "runs",
        nargs="+",
        help="atlas folders or diverse/invariance result folders, in pairs: A B [A2 B2 ...]",
    )
    p.add_argument(
        "--labels",
        default=None,
        help="names of the runs, separated by commas (default: model and weights of each)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    p.add_argument("--out", required=True, help="output folder: table.md, comparison.json, PNGs")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what --out holds (by default a folder holding files is refused)",
    )
    p.set_defaults(run=run)


def run(args):
    """Compare, write the folder whole, print the table."""
    from ..comparison import compare
    from ..comparison.table import check_out
    from ..io.rundir import RunFolder

    labels = None if args.labels is None else [s.strip() for s in args.labels.split(",")]
    check_out(args.out, args.runs)  # before --overwrite could replace a run with the comparison
    with RunFolder(args.out, args.overwrite) as folder:
        _, text = compare(args.runs, folder, labels=labels, seed=args.seed)
    print(text)
    print(f"wrote table.md, comparison.json and the figures to {args.out}/")
