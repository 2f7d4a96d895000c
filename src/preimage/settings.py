"""Settings dataclasses: every default, help text and check of a command written once.

A field declared with ``setting`` carries its default, the help text of its command-line flag,
and the check its value must pass; ``Settings.__post_init__`` runs the checks, so a Python user
and the command line get the same defaults and the same one-line errors, before any work.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from numbers import Integral, Real

from .errors import PreimageError


def setting(default, help, *, check=None, flag=None, type=None, parse=None, choices=None, cli=True):
    """A settings field: its default, the help text of its flag, and the check its value must pass.

    check: a callable (flag, value) raising PreimageError, such as ``at_least(1)``. type: the
    command line's type where the default does not say it (a default of None). parse: a function
    (text, flag) turning text into the value (a comma list into numbers, say), applied to any
    text the field is given. flag: the
    command line's flag, by default ``--`` and the name with dashes. cli: False for a field the
    command line does not offer.
    """
    meta = {"help": help, "check": check, "flag": flag, "type": type, "parse": parse}
    meta.update(choices=choices, cli=cli)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type_copy(default), metadata=meta)
    return field(default=default, metadata=meta)


def type_copy(value):
    """A copy of a list or dict default, so that no two settings share one."""
    return list(value) if isinstance(value, list) else dict(value)


def flag_of(f):
    """The command line's flag of a settings field."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


@dataclass
class Settings:
    """Every default and check of a method in one place: fields declared with ``setting``."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check, parse = f.metadata.get("check"), f.metadata.get("parse")
            value = getattr(self, f.name)
            if value is None and f.default is not None and f.default is not dataclasses.MISSING:
                raise PreimageError(f"bad {flag_of(f)} None; give a value (default {f.default!r})")
            if parse is not None and value is not None:  # text, a number or a list: one form
                value = parse(value, flag_of(f))
            elif isinstance(value, str) and _kind(f) in (int, float):
                value = _coerce(f, value)
            elif type(value).__module__ == "numpy" and hasattr(value, "item"):
                value = value.item()  # a NumPy number as a Python one (JSON, job ids)
            setattr(self, f.name, value)
            if check is not None and value is not None:
                check(flag_of(f), value)
            choices = f.metadata.get("choices")
            if choices and value is not None and value not in choices:
                valid = ", ".join(map(str, choices))
                raise PreimageError(f"bad {flag_of(f)} {value!r}; valid: {valid}")
        self.validate()

    def validate(self):
        """Checks that involve several fields; the single-field ones are in each ``setting``."""

    def as_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# -- checks ------------------------------------------------------------------------------------


def _kind(f):
    """The type a field's values have: its declared command-line type, else its default's."""
    if f.metadata.get("type") is not None:
        return f.metadata["type"]
    return None if f.default in (None, dataclasses.MISSING) else type(f.default)


def _coerce(f, text):
    try:
        return _kind(f)(text)
    except ValueError:
        raise PreimageError(f"bad {flag_of(f)} {text!r}; it must be a number") from None


def _number(flag, value):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise PreimageError(f"bad {flag} {value!r}; it must be a number")
    if not math.isfinite(value):
        raise PreimageError(f"bad {flag} {value!r}; it must be a finite number")


def at_least(low):
    """Values >= low (and finite)."""

    def check(flag, value):
        _number(flag, value)
        if value < low:
            raise PreimageError(f"bad {flag} {value}; it must be at least {low}")

    return check


def between(low, high, unit=""):
    """Values from low to high (and finite); a size or a count with a sane upper bound, so that a
    typo cannot ask for gigabytes."""

    def check(flag, value):
        _number(flag, value)
        if not low <= value <= high:
            raise PreimageError(f"bad {flag} {value}; it must be from {low} to {high}{unit}")

    return check


def positive(flag, value):
    """Values > 0 (and finite)."""
    _number(flag, value)
    if not value > 0:
        raise PreimageError(f"bad {flag} {value}; it must be positive")


def finite(flag, value):
    """Any finite number."""
    _number(flag, value)


def seed_check(flag, value):
    """A seed: a whole number from 0 to 2**63 - 1 (what a torch generator takes)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or not 0 <= value < 2**63:
        raise PreimageError(f"bad {flag} {value!r}; it must be a whole number from 0 to 2**63 - 1")


def numbers(text, flag="list"):
    """'0,0.5,1' -> [0.0, 0.5, 1.0], for flags that take a comma list; a list passes through."""
    if isinstance(text, (list, tuple)):
        if not text:  # an empty list: "not given", as the atlas's lambdas default to
            return []
        text = ",".join(str(v) for v in text)
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise PreimageError(
            f"bad {flag} {text!r}; expected finite numbers separated by commas, such as"
            " 1,20,100,300"
        )
    return values


MAX_IMAGE_SIZE = 4096  # pixels a side: larger is a typo, and would allocate gigabytes
IMAGE_SIZE = between(1, MAX_IMAGE_SIZE, " pixels")
STEPS = between(1, 1_000_000)
