"""Mahendran & Vedaldi's natural pre-images: the energy of eq. 1 and its presets (``energy``),
inversion, caricature, activation maximization, and the inversion tables."""

from .caricature import caricature
from .energy import Energy, bounded_photograph_error, jitter_amount, paper_C, preset
from .invert import feature_mask, invert, window_box
from .maximize import maximize, natural_maximum

__all__ = [
    "Energy",
    "preset",
    "paper_C",
    "jitter_amount",
    "bounded_photograph_error",
    "invert",
    "feature_mask",
    "window_box",
    "caricature",
    "maximize",
    "natural_maximum",
]
