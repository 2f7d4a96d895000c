"""Comparing saved runs and campaigns (`preimage compare`): per layer, the diversity gains with
bootstrap intervals and a rank test, both invariance indices, and Cadena et al.'s Figs. 5A, 5B and
8E, all read from what the runs saved."""

from .runs import Run, UnitRecord, load_run
from .table import compare, compare_pair

__all__ = ["Run", "UnitRecord", "compare", "compare_pair", "load_run"]
