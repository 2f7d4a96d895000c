"""Models: the registry, the VisionModel wrapper, layers and receptive fields."""

from . import (
    handcrafted,  # noqa: F401  (registers hog, hogb, dsift)
    v1_cells,  # noqa: F401  (registers simple_cell, energy_complex_cell, hw_complex_cell,
    # corner_cell)
)
from .base import VisionModel
from .layers import LayerInfo, capture
from .registry import DEFAULT_MODEL, imagenet_classes, load_model, model_names, register, wrap_model

__all__ = [
    "VisionModel",
    "LayerInfo",
    "capture",
    "DEFAULT_MODEL",
    "imagenet_classes",
    "load_model",
    "model_names",
    "register",
    "wrap_model",
]
