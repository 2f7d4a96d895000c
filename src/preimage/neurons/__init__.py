"""Recorded neurons (Cadena et al. 2018 §6): from a recording to a model of its neurons.

``load_recording`` reads and checks a recording (an .npz of images and responses) and splits it;
``fit`` fits a model of its neurons (``preimage neurons fit``), whose ``model()`` is a VisionModel
like any other (its layer ``neurons``); ``feve`` and the correlations say how well it predicts.
``simulate`` draws simple and complex cells and their Poisson responses to natural patches, the
data with known ground truth a fitted model is validated on (``preimage neurons simulate``).
"""

from .data import Recording, load_recording
from .fit import fit
from .fit_result import FittedNeurons
from .metrics import average_correlation, feve, trial_correlation
from .network import NeuronNet, load
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
    "fit",
    "FittedNeurons",
    "NeuronNet",
    "load",
]
