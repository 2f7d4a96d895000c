"""A campaign as jobs: which units, which methods, how they are batched, and how much work each is.

A job is one layer x one method x a chunk of units, described by a plain,
JSON-able dict (its *spec*) that a worker anywhere can run. The job id is a
hash of everything that changes the result, so running the same command again
finds the same ids (and skips what is done), while changing a setting makes
new jobs next to the old ones.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

from ..errors import PreimageError

METHODS = ("visualize", "diverse", "invariance", "reliability")
# each method's own default step count (the papers'): Cadena et al. ran up to 1000 steps
DEFAULT_STEPS = {"visualize": 256, "diverse": 1000, "invariance": 1000, "reliability": 256}
CALIBRATION_PIXELS = 2**19  # the largest batch timed by --plan, in pixels
CROPS_PER_STEP = 16  # invariance textures: windowed crops per step (invariance.textures)


@dataclass
class Settings:
    """What every job of a campaign shares."""

    model: str | None = None  # the name, for the record; jobs take it from the loaded model
    weights: str | None = None
    weights_seed: int = 0
    device: str = "cpu"
    steps: int | None = None  # None: each method's default
    seed: int = 0
    size: int | None = None  # visualize/reliability image size (default: the model's input size)
    n: int = 6  # diverse/invariance images per unit
    lambdas: list = field(default_factory=list)  # empty: the paper's sweep
    repeats: int = 8  # reliability repeats per unit
    chunk: int = 8  # units per job

    def steps_for(self, method):
        return int(self.steps or DEFAULT_STEPS[method])


def parse_methods(text):
    methods = [m.strip() for m in (text or "").split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise PreimageError(
            f"bad --methods {text!r}; choose from {', '.join(METHODS)}, separated by commas"
        )
    return list(dict.fromkeys(methods))


def parse_units(text, channels, layer):
    """'all', N (channels 0..N-1) or a list such as 3,7,10-15; checked against the layer's channel
    count.
    """
    text = str(text).strip()
    if text == "all":
        return list(range(channels))
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
            f"bad --units {text!r}; expected all, a count N (channels 0..N-1), or a list such as"
            " 3,7,10-15"
        )
    out = [u for u in dict.fromkeys(units) if 0 <= u < channels]
    if len(out) != len(dict.fromkeys(units)):
        bad = [u for u in units if not 0 <= u < channels]
        raise PreimageError(
            f"bad --units {text!r}: {layer} has channels 0..{channels - 1}, not {bad[0]}"
        )
    return out


def job_id(spec):
    identity = {
        k: v for k, v in spec.items() if k not in ("id", "device", "image_steps", "pixels", "batch")
    }
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    units = spec["units"]
    span = f"{units[0]}" if len(units) == 1 else f"{units[0]}-{units[-1]}"
    safe_layer = "".join(c if c.isalnum() or c in "._-" else "_" for c in spec["layer"])
    return f"{safe_layer}.{spec['method']}.{span}.{digest}"


def image_size(model, layer, method, settings):
    """The side of the optimized images: the unit's receptive field for the Cadena methods, else
    --size.
    """
    if method in ("diverse", "invariance"):
        from ..methods.cadena.diverse import sweep_size

        return sweep_size(model, layer)
    return int(settings.size or model.input_size)


def images_per_step(method, units, settings):
    """Images that go through the network at each step (the cost unit of a job)."""
    from ..methods.cadena.diverse import LAMBDAS

    lambdas = len(settings.lambdas or LAMBDAS)
    per_unit = {
        "visualize": 1,
        "diverse": lambdas * settings.n,
        "invariance": lambdas * settings.n + CROPS_PER_STEP,
        "reliability": settings.repeats,
    }[method]
    return per_unit * len(units)


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


def plan(model, layers, units_text, methods, settings):
    """The job specs of a campaign, in run order (layer by layer).

    When both diverse and invariance are asked for, the invariance job's own
    λ sweep is the diverse result (the same computation), so no separate
    diverse job is made for that layer.
    """
    if settings.chunk < 1:
        raise PreimageError(f"bad --chunk {settings.chunk}; it must be at least 1")
    for name, value in (("--steps", settings.steps), ("--size", settings.size)):
        if value is not None and value < 1:
            raise PreimageError(f"bad {name} {value}; it must be at least 1")
    if settings.n < 2:
        raise PreimageError(f"bad --n {settings.n}; the diversity term needs at least 2 images")
    if settings.repeats < 2:
        raise PreimageError(
            f"bad --repeats {settings.repeats}; reliability needs at least 2 repeats"
        )
    if settings.lambdas and (settings.lambdas[0] != 0 or any(v < 0 for v in settings.lambdas)):
        raise PreimageError(
            f"bad --lambdas {settings.lambdas}; they must start at 0 (the reference) and be"
            " non-negative"
        )
    if "reliability" in methods and not model.classes:
        raise PreimageError(
            f"reliability needs class logits, and {model.name} has none; drop it from --methods"
        )
    weights, weights_seed = loadable_weights(model, settings)
    run = [m for m in methods if not (m == "diverse" and "invariance" in methods)]
    specs = []
    for layer in layers:
        address = model.resolve_layer(layer)
        info = model.layer_info(layer)
        if len(info.shape) != 3:
            raise PreimageError(
                f"bad layer {layer!r}: the atlas maps channels of convolutional layers (C x H x W),"
                f" and {layer} is {tuple(info.shape)}"
            )
        units = parse_units(units_text, info.shape[0], layer)
        for method in run:
            for start in range(0, len(units), settings.chunk):
                chunk = units[start : start + settings.chunk]
                steps = settings.steps_for(method)
                spec = {
                    "model": model.name,
                    "weights": weights,
                    "weights_seed": weights_seed,
                    "layer": address,
                    "method": method,
                    "units": chunk,
                    "steps": steps,
                    "seed": settings.seed,
                    "settings": _method_settings(method, settings),
                    "device": settings.device,
                }
                size = image_size(model, address, method, settings)
                spec["image_steps"] = images_per_step(method, chunk, settings) * steps
                spec["pixels"] = size
                spec["batch"] = images_per_step(method, chunk, settings)
                spec["id"] = job_id(spec)
                specs.append(spec)
    return specs


def _method_settings(method, settings):
    if method in ("diverse", "invariance"):
        return {"n": settings.n, "lambdas": list(settings.lambdas) or None}
    if method == "reliability":
        return {"repeats": settings.repeats, "size": settings.size}
    return {"size": settings.size}


def seconds_per_image_step(model, layer, size, batch=2, repeats=2):
    """Measured forward + backward time of one image through the network up to ``layer`` at size x
    size.
    """
    import torch

    x = torch.rand(batch, 3, size, size, device=model.device, requires_grad=True)

    def once():
        a = model.activations(x, [layer])[layer]
        a.float().mean().backward()

    once()  # warm-up: allocations, the fused copy of the network
    t = time.perf_counter()
    for _ in range(repeats):
        once()
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / (repeats * batch)


def estimate(model, specs, workers=1, progress=None):
    """Per layer and in total: jobs, image-steps and estimated seconds, timed on this machine.

    The time is the network's forward and backward passes at each job's image
    size, measured here, times the job's image-steps; parameterization,
    transforms and early stopping (which shortens runs) are not counted.
    """
    rates, rows = {}, {}
    for spec in specs:
        # timed at the job's own batch where it fits, since small images are cheaper per image in a
        # batch
        batch = max(1, min(spec["batch"], CALIBRATION_PIXELS // spec["pixels"] ** 2))
        key = (spec["layer"], spec["pixels"], batch)
        if key not in rates:
            rates[key] = seconds_per_image_step(model, spec["layer"], spec["pixels"], batch=batch)
            if progress:
                progress(key, rates[key])
        alias = model.layer_info(spec["layer"]).alias
        row = rows.setdefault(
            spec["layer"],
            {
                "layer": spec["layer"],
                "alias": alias or "",
                "units": set(),
                "jobs": 0,
                "image_steps": 0,
                "seconds": 0.0,
            },
        )
        row["units"].update(spec["units"])
        row["jobs"] += 1
        row["image_steps"] += spec["image_steps"]
        row["seconds"] += spec["image_steps"] * rates[key]
    table = [{**r, "units": len(r["units"])} for r in rows.values()]
    total = {
        "jobs": sum(r["jobs"] for r in table),
        "image_steps": sum(r["image_steps"] for r in table),
        "seconds": sum(r["seconds"] for r in table),
    }
    total["seconds_per_worker"] = total["seconds"] / max(1, workers)
    total["workers"] = workers
    return (
        table,
        total,
        {f"{layer}@{size}px x{batch}": rate for (layer, size, batch), rate in rates.items()},
    )
