"""Models: the registry, the VisionModel wrapper, layers and receptive fields; the zoo.

The names below are loaded on first use, so that listing the models does not import PyTorch.
"""

_EXPORTS = {
    "VisionModel": "base",
    "LayerInfo": "layers",
    "capture": "layers",
    "Layout": "layout",
    "parse_layout": "layout",
    "DEFAULT_MODEL": "registry",
    "load_model": "registry",
    "load_model_spec": "registry",
    "model_names": "registry",
    "register": "registry",
    "register_family": "registry",
    "wrap_model": "registry",
    "imagenet_classes": "zoo.torchvision",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'preimage.models' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
