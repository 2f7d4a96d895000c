"""Models: the registry, the VisionModel wrapper, layers and receptive fields; the zoo."""

from .base import VisionModel
from .layers import LayerInfo, capture
from .registry import (
    DEFAULT_MODEL,
    load_model,
    load_model_spec,
    model_names,
    register,
    register_family,
    wrap_model,
)
from .zoo import efficientnet_lite, handcrafted, torchvision, v1_cells  # noqa: F401 (registers)
from .zoo.torchvision import imagenet_classes

__all__ = [
    "VisionModel",
    "LayerInfo",
    "capture",
    "DEFAULT_MODEL",
    "imagenet_classes",
    "load_model",
    "load_model_spec",
    "model_names",
    "register",
    "register_family",
    "wrap_model",
]
