"""torchvision's classification architectures: random weights, a local file, or the download."""

from __future__ import annotations

from ...errors import PreimageError
from ..aliases import aliases_for, inversion_C_by_depth
from ..base import VisionModel
from ..weights import load_into, seeded


def torchvision_names():
    """torchvision's classification models (its own list: imports torchvision)."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def imagenet_classes():
    """The 1000 ImageNet class names, in the order of the logits."""
    from torchvision.models import AlexNet_Weights

    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def load_torchvision(name, weights, seed):
    """A torchvision model with its preprocessing and input size: ``weights`` 'imagenet' (the
    default), 'random' (initialized from ``seed``) or a state-dict file.
    """
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
        except Exception as e:  # URLError, HTTPError, a hash mismatch: "could not get them"
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
    aliases = aliases_for(name, module)
    return VisionModel(
        module,
        name=name,
        mean=mean,
        std=std,
        input_size=size,
        aliases=aliases,
        C_by_depth=inversion_C_by_depth(name, aliases),
        classes=imagenet_classes(),
        weights=source,
        fixed_input_size=name.startswith("vit_"),  # its position embedding has one grid
    )
