"""`preimage report DIR`: the static HTML report of an atlas folder."""

from __future__ import annotations

HELP = "a static HTML report of an atlas folder: DIR/index.html"


def add(sub):
    """The `preimage report` subcommand: the atlas folder."""
    p = sub.add_parser("report", help=HELP, description=HELP)
    p.add_argument("dir", help="the atlas folder (--out of preimage atlas)")
    p.set_defaults(run=run)


def run(args):
    """Write the atlas folder's report and print where its index is."""
    from ..atlas.report import write_report

    index, counts = write_report(args.dir)
    print(f"wrote {counts['unit_pages']} unit pages over {counts['layers']} layers; open {index}")
