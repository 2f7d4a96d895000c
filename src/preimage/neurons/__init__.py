"""Recorded neurons (Cadena et al. 2018 §6): from a recording to a model of its neurons.

``load_recording`` reads and checks a recording (an .npz of images and responses) and splits it;
``fit`` fits a model of its neurons (``preimage neurons fit``), whose ``model()`` is a VisionModel
like any other (its layer ``neurons``); ``feve`` and the correlations say how well it predicts.
``simulate`` draws simple and complex cells and their Poisson responses to natural patches, the
data with known ground truth a fitted model is validated on (``preimage neurons simulate``).
"""

import importlib

from .data import Recording, load_recording
from .metrics import average_correlation, feve, trial_correlation
from .simulate import NATURAL_SCENES, Population, draw_population, simulate

# the fit needs PyTorch, which the command line's parser (`preimage --help`) must not import
_LAZY = {"fit": "fitting", "FittedNeurons": "fit_result", "NeuronNet": "network", "load": "network"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
