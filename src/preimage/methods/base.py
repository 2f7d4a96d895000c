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

from dataclasses import dataclass
from typing import Callable

from ..settings import (  # noqa: F401  (the vocabulary of every method's settings)
    Settings,
    at_least,
    finite,
    flag_of,
    numbers,
    positive,
    seed_check,
    setting,
)


def fmt(v, digits=3):
    """A number as a report or a summary shows it ('n/a' for None)."""
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


# -- results -----------------------------------------------------------------------------------


class Result:
    """What a method's run returns: it saves itself and describes its units.

    config: the full configuration that produced it (method, model, weights, settings and what
    was derived from them), written into ``metrics.json`` by ``save``.
    """

    method = "method"
    # the saved pictures a notebook shows first (glob patterns in the result's folder)
    shown_first = ("grid.png",)

    def save(self, folder, argv=None):
        """Write the result into ``folder``; returns the metrics written to metrics.json (for a
        result of several folders, such as a caricature of several layers, a dict of them)."""
        raise NotImplementedError

    def unit_rows(self):
        """[{layer, unit, method, metrics, artifacts}]: one row per unit and method, with the
        artifacts as paths relative to the folder ``save`` wrote."""
        return []

    def job_metrics(self):
        """A few numbers that describe the whole run, for the atlas catalog's job row."""
        return {}

    def summary(self, folder):
        """The lines the command line prints after saving into ``folder``."""
        return []

    def labelled_grid(self):
        """The result's images with their targets and values (a ``Picture``), where it has such
        images; a notebook shows it instead of the plain grid."""
        return None

    def _repr_html_(self):
        from ..io.display import result_html

        return result_html(self)


# -- what a method declares ----------------------------------------------------------------------


@dataclass(frozen=True)
class AtlasUse:
    """How an atlas job runs a method on a chunk of units of one layer.

    fields: the campaign settings it takes (steps, seed, size, n, lambdas, repeats), by name.
    target: (layer, units) -> the settings that name those units.
    images_per_step: (settings, number of units) -> images through the network at each step.
    image_size: (model, layer, settings) -> the side of the optimized images.
    check: model -> None, raising PreimageError where the method cannot run on the model.
    """

    fields: tuple
    target: Callable
    images_per_step: Callable
    image_size: Callable
    check: Callable | None = None


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
    layer_figures: (metrics of every unit of a layer, folder, path prefix, layer) ->
    [(path relative to the folder, alt)].
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
