"""What every subcommand shares: the model flags, the device check, loading models."""

from __future__ import annotations

import re

from ..errors import PreimageError

EXIT_USAGE = 2
_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def plain(text):
    """A message as one line of plain text: terminal escape codes and control characters out,
    line breaks folded into spaces."""
    return " ".join(_ESCAPES.sub("", str(text)).split())


def model_args(p, many=False):
    """--model, --weights, --weights-seed, --device."""
    if many:
        p.add_argument(
            "--model",
            default="efficientnet_lite0",
            help="a model, or several separated by commas, each MODEL or MODEL:WEIGHTS (default:"
            " efficientnet_lite0)",
        )
        p.add_argument("--weights", default=None, help="weights of models given without :WEIGHTS")
    else:
        p.add_argument(
            "--model",
            default="efficientnet_lite0",
            help="model name (default: efficientnet_lite0; `preimage models` lists them)",
        )
        p.add_argument(
            "--weights", default=None, help="'imagenet' (default), 'random', or a state-dict file"
        )
    p.add_argument(
        "--weights-seed", type=int, default=0, help="seed of --weights random (default: 0)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument(
        "--layout",
        action="append",
        default=None,
        metavar="LAYER=FORM",
        help="a layer's layout where it cannot be detected: nchw, nhwc, flat, tokens, tokens:P"
        " (P class/register tokens) or tokens:P:HxW; repeat for several layers (default: every"
        " layer's detected layout)",
    )


def check_device(device):
    """Refuse a device that is not one (cpu, cuda, cuda:N), or a CUDA device on a machine
    without one."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise PreimageError(f"bad --device {device!r}; valid: cpu, cuda, cuda:N") from None
    if parsed.type not in ("cpu", "cuda"):
        raise PreimageError(f"bad --device {device!r}; valid: cpu, cuda, cuda:N")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise PreimageError(f"device {device!r} is not available on this machine; valid: cpu")
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise PreimageError(
            f"bad --device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices"
        )


def load(args):
    """The model the flags name."""
    from ..models import load_model

    check_device(args.device)
    model = load_model(args.model, weights=args.weights, seed=args.weights_seed, device=args.device)
    return with_layouts(model, args)


def with_layouts(model, args):
    """The model with the layouts of --layout LAYER=FORM, checked against its layers."""
    given = {}
    for item in getattr(args, "layout", None) or []:
        layer, eq, form = item.partition("=")
        if not eq or not layer or not form:
            raise PreimageError(f"bad --layout {item!r}; give LAYER=FORM, e.g. blocks.3=tokens:1")
        given[layer] = form
    return model.with_layouts(given) if given else model


def load_many(args):
    """The models of --model A,B:WEIGHTS,... (weights from --weights where a model has none)."""
    from ..models import load_model

    specs = [m for m in args.model.split(",") if m]
    if not specs:
        raise PreimageError(
            "bad --model ''; give one model, or several separated by commas (MODEL or"
            " MODEL:WEIGHTS)"
        )
    check_device(args.device)
    models = []
    for spec in specs:
        name, _, weights = spec.partition(":")
        model = load_model(
            name, weights=weights or args.weights, seed=args.weights_seed, device=args.device
        )
        models.append(with_layouts(model, args))
    return models


def loader(args):
    """How a method loads another model it is given as MODEL or MODEL:WEIGHTS (--compare,
    --classifier): with the flags' weights seed and device."""
    from ..models import load_model_spec

    def load_spec(spec, flag="--model"):
        return load_model_spec(spec, seed=args.weights_seed, device=args.device, flag=flag)

    return load_spec
