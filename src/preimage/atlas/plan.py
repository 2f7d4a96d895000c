"""A campaign as jobs: which units, which methods, how they are batched, and how much work each is.

A job is one layer x one method x a chunk of units, described by a plain, JSON-able dict (its
*spec*) that a worker anywhere can run: the model, the layer, the units, and the method's whole
settings. The job id is a hash of everything that changes the result, so running the same
command again finds the same ids (and skips what is done), while changing a setting makes new
jobs next to the old ones. What a method takes from the campaign's settings, how many images a
job puts through the network and how large they are, the method declares (its ``AtlasUse``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..errors import PreimageError
from ..methods import get_method, methods
from ..settings import IMAGE_SIZE, STEPS, at_least, between, numbers, seed_check, setting
from ..settings import Settings as _Settings


@dataclass
class Settings(_Settings):
    """What every job of a campaign shares; each method takes the fields its ``AtlasUse`` names."""

    model: str = setting(None, "the model's name, for the record", type=str, cli=False)
    weights: str = setting(None, "the weights workers load", type=str, cli=False)
    weights_seed: int = setting(0, "the seed of random weights", cli=False)
    device: str = setting("cpu", "where workers run", cli=False)
    steps: int = setting(
        None,
        "optimization steps of every method (default: each method's own, 256 or the paper's 1000)",
        type=int,
        check=STEPS,
    )
    seed: int = setting(0, "seed of every job's optimization", check=seed_check)
    size: int = setting(
        None,
        "image size of visualize and reliability (default: the model's input size)",
        type=int,
        check=IMAGE_SIZE,
    )
    n: int = setting(6, "diverse/invariance: images per unit", check=between(2, 256))
    lambdas: list = setting(
        [],
        "diverse/invariance: the λ sweep, starting at 0 (default: the paper's 0,0.02,...,20.48)",
        parse=numbers,
    )
    repeats: int = setting(8, "reliability: repeats per unit", check=between(2, 1000))
    chunk: int = setting(8, "units per job", check=at_least(1))


def atlas_methods():
    """The names of the methods an atlas can run, in the order they are listed."""
    return [m.name for m in methods() if m.atlas is not None]


def parse_methods(text):
    """--methods 'a,b,...' -> the method names in the order given, without repeats; each must be
    one of ``atlas_methods``.
    """
    names = [m.strip() for m in (text or "").split(",") if m.strip()]
    valid = atlas_methods()
    bad = [m for m in names if m not in valid]
    if not names or bad:
        raise PreimageError(
            f"bad --methods {text!r}; choose from {', '.join(valid)}, separated by commas"
        )
    return list(dict.fromkeys(names))


def parse_units(text, channels, layer, seed=0):
    """'all', N (channels 0..N-1), a list such as 3,7,10-15, or sample:K (K channels drawn
    without replacement by numpy's default_rng(seed), in channel order; all of them when the
    layer has at most K); checked against the layer's channel count.
    """
    text = str(text).strip()
    if text == "all":
        return list(range(channels))
    if text.startswith("sample:"):
        k = text[len("sample:") :]
        if not k.isdigit() or int(k) < 1:
            raise PreimageError(f"bad --units {text!r}; expected sample:K, K a count such as 32")
        if int(k) >= channels:
            return list(range(channels))
        import numpy as np

        drawn = np.random.default_rng(int(seed)).choice(channels, int(k), replace=False)
        return sorted(int(c) for c in drawn)
    try:
        if text.isdigit():
            units = list(range(int(text)))
        else:
            units = []
            for part in text.split(","):
                part = part.strip()
                if not part:
                    continue
                a, dash, b = part.partition("-")
                units.extend(range(int(a), int(b) + 1) if dash else [int(a)])
    except ValueError:
        units = None
    if not units:
        raise PreimageError(
            f"bad --units {text!r}; expected all, a count N (channels 0..N-1), a list such as"
            " 3,7,10-15, or sample:K"
        )
    out = [u for u in dict.fromkeys(units) if 0 <= u < channels]
    if len(out) != len(dict.fromkeys(units)):
        bad = [u for u in units if not 0 <= u < channels]
        raise PreimageError(
            f"bad --units {text!r}: {layer} has channels 0..{channels - 1}, not {bad[0]}"
        )
    return out


def job_id(spec):
    """A job's id, LAYER.METHOD.UNITS.HASH; the hash covers the spec but for the device and the
    derived estimates (image_steps, pixels, batch), so one configuration keeps one id.
    """
    identity = {
        k: v for k, v in spec.items() if k not in ("id", "device", "image_steps", "pixels", "batch")
    }
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    units = spec["units"]
    span = f"{units[0]}" if len(units) == 1 else f"{units[0]}-{units[-1]}"
    safe_layer = "".join(c if c.isalnum() or c in "._-" else "_" for c in spec["layer"])
    return f"{safe_layer}.{spec['method']}.{span}.{digest}"


def loadable_weights(model, settings):
    """(weights, seed) with which a worker loads the same network by name: the settings' if given,
    else read back from the loaded model's record ('imagenet (...)', 'random (seed N)' or a path).
    """
    from ..models import model_names

    if model.name not in model_names():
        raise PreimageError(
            f"the atlas reloads its model by name in every worker, and {model.name!r} is not a"
            " registered model (`preimage models` lists them)"
        )
    if settings.weights is not None:
        return settings.weights, settings.weights_seed
    record = str(model.weights or "")
    if record.startswith("random (seed "):
        return "random", int(record[len("random (seed ") :].rstrip(")"))
    if record.startswith("none"):  # hand-crafted and toy models have no weights to load
        return None, settings.weights_seed
    if record.startswith("imagenet") or not record:
        return "imagenet", settings.weights_seed
    if record == "given":
        raise PreimageError(
            "the atlas reloads its model in every worker: pass Settings(weights=...) for a model"
            " whose weights were given as a module"
        )
    return record, settings.weights_seed


def job_settings(method, settings, layer, units):
    """The method's settings for a chunk of units: the campaign fields it takes, its own defaults
    for the rest, and the target naming the units (checked here, before any job runs)."""
    use = method.atlas
    given = {f: getattr(settings, f) for f in use.fields if getattr(settings, f) not in (None, [])}
    return method.settings(**given, **use.target(layer, units))


def _spec(model, weights, method, settings, address, chunk):
    s = job_settings(method, settings, address, chunk)
    target = method.atlas.target(address, chunk)
    batch = method.atlas.images_per_step(s, len(chunk))
    spec = {
        "model": model.name,
        "weights": weights[0],
        "weights_seed": weights[1],
        "layer": address,
        "method": method.name,
        "units": chunk,
        "settings": {k: v for k, v in s.as_dict().items() if k not in target},
        "device": settings.device,
        "image_steps": batch * getattr(s, "steps", 1),  # a method without steps is one pass
        "pixels": method.atlas.image_size(model, address, s),
        "batch": batch,
    }
    if model.layouts:  # --layout overrides travel to the workers (absent otherwise: ids unchanged)
        from ..models.layout import override_text

        spec["layouts"] = {k: override_text(v) for k, v in sorted(model.layouts.items())}
    spec["id"] = job_id(spec)
    return spec


def plan(model, layers, units_text, names, settings):
    """The job specs of a campaign, in run order (layer by layer).

    A method whose result covers another's (the invariance sweep is the diverse result) makes
    that one's job unnecessary: it is not planned when both are asked for.
    """
    chosen = [get_method(name) for name in parse_methods(",".join(names))]
    for m in chosen:
        if m.atlas.check is not None:
            m.atlas.check(model)
    covered = {c for m in chosen for c in m.covers}
    run = [m for m in chosen if m.name not in covered]
    weights = loadable_weights(model, settings)
    specs = []
    for layer in layers:
        address = model.resolve_layer(layer)
        info = model.layer_info(layer)
        if len(info.shape) not in (1, 3):
            raise PreimageError(
                f"bad layer {layer!r}: the atlas maps channels of convolutional layers"
                f" (C x H x W) or of flat ones (C: a model's neurons), and {layer} is"
                f" {tuple(info.shape)}"
            )
        units = parse_units(units_text, info.shape[0], layer, settings.seed)
        for method in run:
            for start in range(0, len(units), settings.chunk):
                chunk = units[start : start + settings.chunk]
                specs.append(_spec(model, weights, method, settings, address, chunk))
    return specs
