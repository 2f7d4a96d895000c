"""The method protocol: settings in one dataclass, a run that returns a result that saves itself.

A method is one module. It defines

- a settings dataclass (a ``Settings``), each field declared with ``setting``: its default, its
  help text and its check, written once; the command line builds its flags from them, and a
  Python user gets the same defaults and the same checks;
- ``run(model, settings, *, progress=True, load=None)``, returning a ``Result``;
- a ``Result``: ``save(folder)`` writes its arrays, PNGs, figures and ``metrics.json`` with the full
  configuration, ``unit_rows()`` yields one row per unit for the atlas catalog and the report,
  ``summary()`` the lines the command line prints;

and registers a ``Method`` (``preimage.methods.register``). Nothing outside the module tests the
method's name: the command line, the atlas and the report read what the ``Method`` declares.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

from ..errors import PreimageError


def setting(default, help, *, check=None, flag=None, type=None, parse=None, choices=None, cli=True):
    """A settings field: its default, the help text of its flag, and the check its value must pass.

    check: a callable (flag, value) raising PreimageError, such as ``at_least(1)``. type: the
    command line's type where the default does not say it (a default of None). parse: a function
    turning the command line's text into the value (a comma list into numbers, say). flag: the
    command line's flag, by default ``--`` and the name with dashes. cli: False for a field the
    command line does not offer.
    """
    meta = {"help": help, "check": check, "flag": flag, "type": type, "parse": parse}
    meta.update(choices=choices, cli=cli)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type_copy(default), metadata=meta)
    return field(default=default, metadata=meta)


def type_copy(value):
    return list(value) if isinstance(value, list) else dict(value)


def flag_of(f):
    """The command line's flag of a settings field."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


@dataclass
class Settings:
    """Every default and check of a method in one place: fields declared with ``setting``."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            value = getattr(self, f.name)
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


def _number(flag, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
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


def positive(flag, value):
    """Values > 0 (and finite)."""
    _number(flag, value)
    if not value > 0:
        raise PreimageError(f"bad {flag} {value}; it must be positive")


def finite(flag, value):
    _number(flag, value)


def numbers(text):
    """'0,0.5,1' -> [0.0, 0.5, 1.0], for flags that take a comma list; a list passes through."""
    if isinstance(text, (list, tuple)):
        return [float(v) for v in text]
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise PreimageError(
            f"bad list {text!r}; expected numbers separated by commas, such as 1,20,100,300"
        )
    return values


# -- results -----------------------------------------------------------------------------------


class Result:
    """What a method's run returns: it saves itself and describes its units.

    config: the full configuration that produced it (method, model, weights, settings and what
    was derived from them), written into ``metrics.json`` by ``save``.
    """

    method = "method"
    config: dict = {}

    def save(self, folder, argv=None):
        """Write the result into ``folder``; returns the metrics written to metrics.json."""
        raise NotImplementedError

    def unit_rows(self):
        """[{layer, unit, method, metrics, artifacts}]: one row per unit and method, with the
        artifacts as paths relative to the folder ``save`` wrote."""
        return []

    def job_metrics(self):
        """A few numbers that describe the whole run, for the atlas catalog's job row."""
        return {}

    def summary(self):
        """The lines the command line prints after saving."""
        return []


# -- what a method declares ----------------------------------------------------------------------


@dataclass(frozen=True)
class AtlasUse:
    """How an atlas job runs a method on a chunk of units of one layer.

    fields: the campaign settings it takes (steps, seed, size, n, lambdas, repeats), by name.
    target: (layer, units) -> the settings that name those units.
    images_per_step: (settings, number of units) -> images through the network at each step.
    image_size: (model, layer, settings) -> the side of the optimized images.
    """

    fields: tuple
    target: Callable
    images_per_step: Callable
    image_size: Callable


@dataclass(frozen=True)
class Section:
    """A part of a unit's page in the atlas report: a title, a line, a table and pictures.

    images: (artifact role, alt text, large) for each picture, in order.
    """

    title: str
    text: str = ""
    rows: tuple = ()
    images: tuple = ()


@dataclass(frozen=True)
class ReportUse:
    """How the atlas report shows a method's unit rows.

    sections: metrics -> [Section]. thumbnail: the artifact role shown as the unit's tile (the
    first method that has one wins). note: metrics -> a few words under the tile.
    layer_figures: (metrics of every unit of a layer, folder, path prefix) -> [(path, alt)].
    """

    sections: Callable
    thumbnail: str | None = None
    note: Callable | None = None
    layer_figures: Callable | None = None


@dataclass(frozen=True)
class Method:
    """A registered method: its name, its settings class, its run, and what it offers.

    models: 1 for one model (the command line's --model), or "many" for a comma list of them
    (a study, an inversion table). covers: methods whose unit rows this one's result includes,
    so that an atlas asking for both runs only this one (the invariance sweep is the diverse
    result).
    """

    name: str
    help: str
    settings: type
    run: Callable
    models: object = 1
    atlas: AtlasUse | None = None
    report: ReportUse | None = None
    covers: tuple = ()
