"""Mahendran & Vedaldi's natural pre-images: the energy of eq. 1 and its presets (``energy``),
inversion, caricature, activation maximization, and the inversion tables.

The names below are loaded on first use (listing the methods imports no PyTorch). The library
functions ``invert``, ``caricature`` and ``maximize`` are in the modules of those names.
"""

_EXPORTS = {
    "Energy": "energy",
    "preset": "energy",
    "paper_C": "energy",
    "jitter_amount": "energy",
    "bounded_photograph_error": "energy",
    "feature_mask": "invert",
    "window_box": "invert",
    "natural_maximum": "maximize",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
