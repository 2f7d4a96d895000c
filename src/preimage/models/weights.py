"""Loading weights: seeded random init, a local state-dict file, or a download."""

from __future__ import annotations

import os

import torch

from ..errors import PreimageError

WEIGHT_CHOICES = "'imagenet', 'random', or a path to a state-dict file"


def seeded(build, seed):
    """Run a constructor with torch's global generator seeded, then restore it.

    torchvision initialises weights from the global generator; forking keeps
    a user's own random stream untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


def why_unreadable(error):
    """Why torch.load refused a file, in our own words: never the advice, which torch gives, to
    load it unsafely."""
    text = str(error)
    if "Weights only load failed" in text or "weights_only" in text:
        return (
            "it holds pickled Python objects (a whole model saved with torch.save(model)?), which"
            " are never loaded, for safety; save the model's state_dict() instead"
        )
    if "zip" in text.lower() or "magic number" in text.lower() or "pickle" in text.lower():
        return "it is not a file written by torch.save"
    return f"it could not be read ({type(error).__name__})"


def safe_load(path):
    """torch.load with weights_only=True; PreimageError('... ' + why) for a file it refuses."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and weights_only errors all mean "not a file we read"
        raise PreimageError(f"{path!r}: {why_unreadable(e)}") from None


def non_finite(state):
    """The first key whose tensor holds NaN or infinity, or None."""
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return key
    return None


def read_state_dict(path):
    """A state dict from a file, loaded with weights_only=True.

    Accepts a bare state dict, a checkpoint holding one under 'state_dict' or
    'model', and keys prefixed with 'module.' (nn.DataParallel).
    """
    if not os.path.isfile(path):
        raise PreimageError(
            f"weights file {path!r} does not exist; --weights takes {WEIGHT_CHOICES}"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and weights_only errors all mean "not a state dict"
        raise PreimageError(
            f"weights file {path!r} is not a readable PyTorch state dict: {why_unreadable(e)}"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PreimageError(
            f"weights file {path!r} holds a {type(obj).__name__}, not a state dict of tensors"
        )
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    bad = non_finite(obj)
    if bad is not None:
        raise PreimageError(f"weights file {path!r} holds NaN or infinite values in {bad!r}")
    return obj


def load_into(module, path, model_name):
    """Load a state-dict file into a module, strictly, with a one-line error on mismatch."""
    state = read_state_dict(path)
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)}, model"
                f" {tuple(own[k].shape)})"
            )
        raise PreimageError(
            f"weights file {path!r} does not match model {model_name}: {'; '.join(parts)}"
        )
    module.load_state_dict(state)
    return module
