"""Recorded neurons (Cadena et al. 2018 §6): a simulated V1 population with known ground truth.

``simulate`` draws simple and complex cells and their Poisson responses to natural patches, the
data a fitted model of neurons is validated on (``preimage neurons simulate``); ``load_recording``
reads and checks a recording (an .npz of images and responses) and splits it; ``feve`` and the
correlations say how well a model predicts it.
"""

from .data import Recording, load_recording
from .metrics import average_correlation, feve, trial_correlation
from .simulate import NATURAL_SCENES, Population, draw_population, simulate

__all__ = [
    "NATURAL_SCENES",
    "Population",
    "draw_population",
    "simulate",
    "Recording",
    "load_recording",
    "trial_correlation",
    "average_correlation",
    "feve",
]
