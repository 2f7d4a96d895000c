"""Every registered method as a subcommand: flags from its settings, then run, save, print."""

from __future__ import annotations

import sys

from .args import add_settings, settings_from
from .common import load, load_many, loader, model_args


def add(sub, method):
    """The subcommand of a method: the model flags, the settings' flags, --quiet and --out."""
    p = sub.add_parser(method.name, help=method.help, description=method.help)
    model_args(p, many=method.models == "many")
    add_settings(p, method.settings)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=lambda args: run(method, args))
    return p


def run(method, args):
    """Check the settings, load the model(s), run the method, save into --out and print its
    summary.
    """
    settings = settings_from(args, method.settings)  # every check before any model is loaded
    model = load_many(args) if method.models == "many" else load(args)
    result = method.run(model, settings, progress=not args.quiet, load=loader(args))
    result.save(args.out, argv=sys.argv[1:])
    for line in result.summary(args.out):
        print(line)
