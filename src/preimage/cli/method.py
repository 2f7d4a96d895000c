"""Every registered method as a subcommand: flags from its settings, then run, save, print."""

from __future__ import annotations

import sys

from .args import add_settings, settings_from
from .common import check_device, load, load_many, loader, model_args


def add(sub, method):
    """The subcommand of a method: the model flags, the settings' flags, --quiet, --out and
    --overwrite."""
    p = sub.add_parser(method.name, help=method.help, description=method.help)
    model_args(p, many=method.models == "many")
    add_settings(p, method.settings)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="output folder, written whole once the run is done")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run --out holds (by default a folder holding files is refused)",
    )
    p.set_defaults(run=lambda args: run(method, args))
    return p


def run(method, args):
    """Check the settings and the output folder, load the model(s), run, save whole, print."""
    from ..io.rundir import RunFolder

    settings = settings_from(args, method.settings)  # every check before any model is loaded
    check_device(args.device)
    with RunFolder(args.out, args.overwrite) as folder:  # nothing of it stays if the run fails
        model = load_many(args) if method.models == "many" else load(args)
        result = method.run(model, settings, progress=not args.quiet, load=loader(args))
        result.save(folder, argv=getattr(args, "argv", None) or sys.argv[1:])
    for line in result.summary(args.out):
        print(line)
