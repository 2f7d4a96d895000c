"""Recorded neurons (Cadena et al. 2018 §6): a simulated V1 population with known ground truth.

``simulate`` draws simple and complex cells and their Poisson responses to natural patches, the
data a fitted model of neurons is validated on (``preimage neurons simulate``).
"""

from .simulate import NATURAL_SCENES, Population, draw_population, simulate

__all__ = ["NATURAL_SCENES", "Population", "draw_population", "simulate"]
