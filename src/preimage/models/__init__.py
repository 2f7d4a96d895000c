"""Models: the registry, the VisionModel wrapper, layers and receptive fields."""

from .zoo import handcrafted, v1_cells  # noqa: F401  (they register their models)
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
