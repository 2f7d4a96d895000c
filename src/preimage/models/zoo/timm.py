"""timm's models as ``timm/NAME``: random weights offline, timm's pretrained download when online,
or a local state-dict file; the preprocessing from the model's pretrained configuration.

The slash (not a colon) keeps ``MODEL:WEIGHTS`` unambiguous where a command takes a model and its
weights in one string (``--compare timm/deit_tiny_patch16_224:random``).
"""

from __future__ import annotations

from ...errors import PreimageError, suggest
from ..base import VisionModel
from ..weights import load_into, seeded

PREFIX = "timm/"


def _timm():
    try:
        import timm
    except ImportError:
        raise PreimageError(
            "timm models need timm: pip install 'preimage[timm]' (or pip install timm)"
        ) from None
    return timm


def load_timm(name, weights, seed):
    """A timm model: ``weights`` 'imagenet' (timm's pretrained download; the default), 'random'
    (initialized from ``seed``) or a state-dict file (loaded with weights_only=True)."""
    timm = _timm()
    arch = name[len(PREFIX) :]  # NAME, or NAME.TAG for one of its pretrained variants
    if arch.partition(".")[0] not in timm.list_models():
        raise PreimageError(
            f"unknown timm model {arch!r}; valid: {suggest(arch, timm.list_models())}"
            " (timm.list_models() lists them)"
        )
    weights = weights or "imagenet"
    if weights in ("imagenet", "pretrained"):
        try:
            module = timm.create_model(arch, pretrained=True)
        except Exception as e:  # no network, no such tag on the hub, a hash mismatch
            raise PreimageError(
                f"could not get timm's pretrained weights for {arch} ({type(e).__name__}:"
                f" {str(e).splitlines()[0][:120] if str(e) else ''}); offline, use --weights"
                " random or --weights PATH to a state-dict file"
            ) from None
        source = f"pretrained ({module.pretrained_cfg.get('tag') or 'default'}, timm)"
    else:
        module = seeded(lambda: timm.create_model(arch, pretrained=False), seed)
        if weights == "random":
            source = f"random (seed {seed})"
        else:
            load_into(module, weights, name)
            source = str(weights)
    cfg = dict(module.pretrained_cfg or {})
    channels, height, width = cfg.get("input_size", (3, 224, 224))
    if channels != 3:
        raise PreimageError(f"timm model {arch} takes {channels} input channels; preimage takes 3")
    classes = None
    if getattr(module, "num_classes", 0) == 1000:
        from .torchvision import imagenet_classes

        classes = imagenet_classes()
    return VisionModel(
        module,
        name=name,
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        input_size=int(height),
        classes=classes,
        weights=source,
        fixed_input_size=bool(cfg.get("fixed_input_size", False)),
        interpolation=str(cfg.get("interpolation", "bicubic")),
    )
