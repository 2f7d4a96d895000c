"""`preimage models`: every model name."""

from __future__ import annotations


def add(sub):
    p = sub.add_parser("models", help="list the model names")
    p.set_defaults(run=run)


def run(args):
    from ..models import model_names

    print("\n".join(model_names()))
