"""What a saved run holds for a comparison: per layer and unit, the λ sweep's normalized curves,
the diversity gain and the invariance indices.

Three kinds of folder are read: an atlas campaign (its ``catalog.sqlite``: the diverse and
invariance rows of its done jobs), and the folder of ``preimage diverse`` or ``preimage
invariance`` (its ``metrics.json``; the other model of ``--baseline``/``--compare`` is the run in
``baseline/`` or ``compare/``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..errors import PreimageError


@dataclass
class UnitRecord:
    """One unit: its sweep's λs and normalized curves, its gain and indices (None where a run did
    not measure them or the unit was never active)."""

    unit: int
    lambdas: list = None
    normalized_activation: list = None
    normalized_distance: list = None
    diversity_gain: float = None
    shift_invariance_index: float = None
    linear_combination_index: float = None

    def update(self, metrics):
        for key in (
            "lambdas",
            "normalized_activation",
            "normalized_distance",
            "diversity_gain",
            "shift_invariance_index",
            "linear_combination_index",
        ):
            if key in metrics:
                setattr(self, key, metrics[key])


@dataclass
class Run:
    """A run's label (model and weights), where it was read from, and {layer: {unit: record}}."""

    label: str
    path: str
    layers: dict = field(default_factory=dict)

    def record(self, layer, unit):
        return self.layers.setdefault(layer, {}).setdefault(int(unit), UnitRecord(int(unit)))

    def index_pairs(self, layer):
        """(shift invariance indices, linear combination indices) of the units with both."""
        units = [self.layers.get(layer, {})[u] for u in sorted(self.layers.get(layer, {}))]
        both = [
            (u.shift_invariance_index, u.linear_combination_index)
            for u in units
            if u.shift_invariance_index is not None and u.linear_combination_index is not None
        ]
        return [s for s, _ in both], [c for _, c in both]

    def values(self, layer, key):
        """The defined values of one field over the layer's units, in unit order."""
        units = self.layers.get(layer, {})
        return [getattr(units[u], key) for u in sorted(units) if getattr(units[u], key) is not None]


def load_run(path, label=None):
    """The Run saved in ``path``: an atlas folder or a diverse or invariance result folder."""
    if os.path.exists(os.path.join(path, "catalog.sqlite")):
        return _from_catalog(path, label)
    if os.path.exists(os.path.join(path, "metrics.json")):
        return _from_metrics(path, label)
    raise PreimageError(
        f"bad run {path!r}: not an atlas folder (catalog.sqlite) or a diverse or invariance"
        " result folder (metrics.json)"
    )


def _weights(weights):
    return str(weights).split(" ")[0]


def _from_catalog(path, label):
    import sqlite3

    from ..atlas.catalog import Catalog

    try:
        catalog = Catalog.reader(os.path.join(path, "catalog.sqlite"))
        try:
            network, rows = catalog.network(), catalog.unit_results()
        finally:
            catalog.close()
    except (sqlite3.Error, KeyError, ValueError) as e:
        raise PreimageError(f"bad run {path!r}: cannot read its catalog ({e})") from None
    if network is None or not rows:
        raise PreimageError(f"bad run {path!r}: the campaign has no finished jobs yet")
    model, weights, seed = network
    seed_part = f", seed {seed}" if _weights(weights) == "random" else ""
    run = Run(label or f"{model} ({_weights(weights)}{seed_part})", path)
    for row in rows:  # in order of precedence: a later job's row wins
        if row["method"] in ("diverse", "invariance"):
            run.record(row["layer"], row["unit"]).update(row["metrics"])
    return run


def _from_metrics(path, label):
    try:
        with open(os.path.join(path, "metrics.json")) as f:
            m = json.load(f)
    except ValueError as e:
        raise PreimageError(f"bad run {path!r}: its metrics.json is not JSON ({e})") from None
    config = m.get("config", {})
    method = config.get("method")
    if method not in ("diverse", "invariance"):
        raise PreimageError(
            f"bad run {path!r}: its metrics.json is of {method!r}; compare reads diverse and"
            " invariance results and atlas folders"
        )
    run = Run(label or f"{config.get('model')} ({_weights(config.get('weights'))})", path)
    units = m.get("units") or []
    if method == "invariance":  # {label: units}: the run's own model first, --compare's after
        units = next(iter(units.values()), []) if units else []
    if not units:
        raise PreimageError(f"bad run {path!r}: its metrics.json holds no units")
    for u in units:
        record = run.record(u["layer"], u["channel"])
        record.update(u.get("sweep", {}))
        record.update(u)
    return run
