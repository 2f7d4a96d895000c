"""Command-line flags built from a method's settings: each default and help text written once."""

from __future__ import annotations

import argparse
import dataclasses

from ..settings import flag_of


def _kind(f):
    """(argparse keywords) for a settings field, from its default, type and metadata."""
    meta = f.metadata
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    help_text = meta.get("help") or ""
    if isinstance(default, bool):
        action = "store_false" if default else "store_true"
        return {"action": action, "help": help_text}
    if default is not None and default != [] and default != ():
        help_text += f" (default: {_shown(default)})"
    kind = {"help": help_text, "default": argparse.SUPPRESS}
    if meta.get("choices"):
        kind["choices"] = meta["choices"]
    if isinstance(default, list) and meta.get("parse") is None:
        kind["action"] = "append"
        return kind
    # text the settings parse themselves (so their error names the flag) stays text here
    kind["type"] = str if meta.get("parse") else meta.get("type") or type(default)
    return kind


def _shown(value):
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return value


def add_settings(parser, settings_cls, skip=()):
    """One flag per settings field (but those in ``skip`` and those marked cli=False)."""
    for f in dataclasses.fields(settings_cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        parser.add_argument(flag_of(f), dest=f.name, **_kind(f))


def settings_from(args, settings_cls, **given):
    """The settings the flags name (every flag not given keeps the settings' default)."""
    values = dict(given)
    for f in dataclasses.fields(settings_cls):
        if f.name in vars(args) and f.name not in values:
            values[f.name] = getattr(args, f.name)
    return settings_cls(**values)
