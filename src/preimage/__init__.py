"""preimage: what units of vision models respond to, and what they are invariant to.

The names below are loaded on first use, so that ``preimage --help`` does not wait for PyTorch.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "objectives": ("preimage.engine.objectives", None),
    "Objective": ("preimage.engine.objectives", "Objective"),
    "ImageParam": ("preimage.engine.params", "ImageParam"),
    "NormalizedParam": ("preimage.engine.params", "NormalizedParam"),
    "PixelNormBound": ("preimage.engine.params", "PixelNormBound"),
    "Convergence": ("preimage.engine.stopping", "Convergence"),
    "Optimizer": ("preimage.engine.optim", "Optimizer"),
    "RenderResult": ("preimage.engine.render", "RenderResult"),
    "render": ("preimage.engine.render", "render"),
    "parse_transforms": ("preimage.engine.transforms", "parse_transforms"),
    "WindowedCrops": ("preimage.engine.views", "WindowedCrops"),
    "Groups": ("preimage.engine.views", "Groups"),
    "PreimageError": ("preimage.errors", "PreimageError"),
    "VisionModel": ("preimage.models", "VisionModel"),
    "load_model": ("preimage.models", "load_model"),
    "wrap_model": ("preimage.models", "wrap_model"),
    "run": ("preimage.methods", "run"),
    "show": ("preimage.io.display", "show"),
    "get_method": ("preimage.methods", "get_method"),
    # the package of the methods (``preimage.methods.methods()`` lists them): a function of that
    # name here would be replaced by the package as soon as the package is imported
    "methods": ("preimage.methods", None),
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'preimage' has no attribute {name!r}")
    import importlib

    module, attr = _EXPORTS[name]
    value = importlib.import_module(module)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
