"""`preimage models`: every model name."""

from __future__ import annotations

HELP = "list the model names"


def add(sub):
    """The `preimage models` subcommand."""
    p = sub.add_parser("models", help=HELP, description=HELP)
    p.set_defaults(run=run)


def run(args):
    """Print every model name, one a line."""
    from ..models import model_names

    print("\n".join(model_names()))
