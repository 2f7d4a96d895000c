"""What several methods share: Finzi's render settings, the prior, the result of a render."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..engine import objectives as O
from ..engine.optim import OPTIMIZERS, Optimizer
from ..engine.params import ImageParam
from ..engine.stopping import convergence
from ..engine.transforms import parse_transforms
from ..errors import PreimageError
from ..io.files import safe_name, save_npz
from ..io.images import save_grid, save_png
from ..settings import IMAGE_SIZE, STEPS, Settings, at_least, positive, seed_check, setting


def _transforms(flag, value):
    if value is not None:
        parse_transforms(value)  # a bad spec fails here, before any work


def transforms_of(model, settings):
    """The transform list: the settings', else 'finzi', or 'none' for a model of neurons (an
    MEI is as large as the data's images, where pad 12 and jitter 8 would move the neuron)."""
    if settings.transforms is not None:
        return settings.transforms
    return "none" if model.image_norm is not None else "finzi"


@dataclass
class RenderSettings(Settings):
    """Finzi's method with Lucid's defaults, as visualize, reliability and study take it."""

    steps: int = setting(256, "maximum optimization steps", check=STEPS)
    size: int = setting(
        None, "image size in pixels (default: the model's input size)", type=int, check=IMAGE_SIZE
    )
    seed: int = setting(0, "seed of the initial noise and the random transforms", check=seed_check)
    param: str = setting(
        "fourier",
        "image parameterization (fourier: amplitudes scaled by 1/f)",
        choices=("pixel", "fourier"),
    )
    decorrelate: bool = setting(
        True, "optimize RGB directly instead of decorrelated colour", flag="--no-decorrelate"
    )
    transforms: str = setting(
        None,
        "'none', 'finzi' (pad 12, jitter 8, scale .9-1.1, rotate ±10, jitter 4), or a list like"
        " 'jitter:4,rotate:-5:5:1' (default: finzi; none for a model of recorded neurons)",
        type=str,
        check=_transforms,
    )
    optimizer: str = setting("adam", "the optimizer", choices=OPTIMIZERS)
    lr: float = setting(0.05, "learning rate (Finzi's)", check=positive)
    l2: float = setting(0.0, "weight of the L2 image penalty (Finzi's λ1)", check=at_least(0))
    tv: float = setting(
        0.0, "weight of the total-variation penalty (Finzi's λ2)", check=at_least(0)
    )
    tv_beta: float = setting(
        1.0, "exponent β of TV^β (1: Finzi; 2: Mahendran & Vedaldi)", check=positive
    )
    unit: bool = setting(False, "LAYER:C means the centre unit instead of the channel mean")
    patience: int = setting(
        50,
        "stop once no image has improved for this many steps; 0 runs every step",
        check=at_least(0),
    )


def finzi_objective(settings, base):
    """The target terms plus Finzi's penalties: base - l2·L2 - tv·TV^β."""
    objective = base
    if settings.l2:
        objective = objective - settings.l2 * O.l2()
    if settings.tv:
        objective = objective - settings.tv * O.tv(beta=settings.tv_beta)
    return objective


def finzi_render(model, objective, settings, n, size, desc, labels=None, progress=True):
    """One batch of ``n`` images of side ``size`` optimized with the render settings."""
    from ..engine.render import render

    spec = transforms_of(model, settings)
    transforms = parse_transforms(spec)
    transforms.check((size, size), spec)  # before the first step
    generator = torch.Generator().manual_seed(int(settings.seed))
    param = render_param(model, settings, n, size, generator)
    return render(
        model,
        objective,
        param,
        transforms=transforms,
        optimizer=Optimizer(settings.optimizer, settings.lr),
        steps=settings.steps,
        stop=convergence(settings.patience),
        seed=settings.seed,
        generator=generator,
        progress=progress,
        desc=desc,
        labels=labels,
    )


def render_param(model, settings, n, size, generator):
    """Lucid's parameterization; for a model that fixes its images' norm (a model of neurons),
    linear images at that norm, clipped to its pixel range (the MEI convention)."""
    from ..engine.params import NormalizedParam

    norm = getattr(settings, "norm", None) or model.image_norm
    if norm is None:
        return ImageParam(
            n, size, basis=settings.param, decorrelate=settings.decorrelate,
            generator=generator, device=model.device, channels=model.channels,
        )  # fmt: skip
    base = ImageParam(
        n, size, basis=settings.param, decorrelate=False, output="linear", decay=0.5,
        offset=model.display_mean(), generator=generator, device=model.device,
        channels=model.channels,
    )  # fmt: skip
    return NormalizedParam(base, norm, model, clip=model.pixel_range)


# -- the prior -------------------------------------------------------------------------------


def prior_fields(default_weight):
    """The --prior and --prior-weight settings, with a method's default weight."""
    prior = setting(
        None,
        "a natural-image prior: 'default' (the packaged PixelCNN++) or a file from `preimage prior"
        " train`",
        type=str,
    )
    weight = setting(
        None,
        f"weight of log P(x) in nats per image (default {default_weight:g})",
        type=float,
        check=at_least(0),
    )
    return prior, weight


def check_prior(settings):
    """Refuse --prior-weight without --prior."""
    if settings.prior is None and settings.prior_weight is not None:
        raise PreimageError(
            f"bad --prior-weight {settings.prior_weight}: it weighs a prior, so give --prior"
            " default or --prior FILE too"
        )


def prior_term(model, settings, default_weight):
    """(the prior module, its weight, its record for the configuration) when the settings name
    a prior, else (None, 0.0, None)."""
    if settings.prior is None:
        return None, 0.0, None
    from ..priors import load_prior

    if model.channels != 3:  # the PixelCNN++ models RGB patches
        raise PreimageError(
            f"bad --prior {settings.prior!r}: the prior is of RGB images and model {model.name}"
            f" takes {model.channels} channel(s); leave the prior out"
        )
    weight = default_weight if settings.prior_weight is None else settings.prior_weight
    prior = load_prior(settings.prior, model.device).to(model.device)
    return prior, weight, {**prior.describe(), "weight": weight}


def with_prior(model, objective, settings, default_weight):
    """objective + w·log P(x) (nats per image) when the settings name a prior: (objective, the
    prior module or None, its record or None)."""
    prior, weight, record = prior_term(model, settings, default_weight)
    if prior is not None and weight:
        objective = objective + weight * O.log_prior(prior)
    return objective, prior, record


# -- the files of a batch of images ----------------------------------------------------------


def image_name(i, label):
    """The file of the i-th image of a batch: images/NNN_label.png."""
    return os.path.join("images", f"{i:03d}_{safe_name(label)}.png")


def image_files(folder, images, labels, writer=None):
    """images/NNN_label.png for every image; returns their paths relative to the folder."""
    names = []
    for i, (image, label) in enumerate(zip(images, labels)):
        name = image_name(i, label)
        (writer or save_png)(os.path.join(folder, name), image)
        names.append(name)
    return names


def save_render_arrays(folder, render, **extra):
    """grid.png and result.npz (images, inputs, activations, objective, trace) of a render."""
    save_grid(os.path.join(folder, "grid.png"), render.images)
    save_npz(
        os.path.join(folder, "result.npz"),
        images=render.images,
        inputs=render.inputs,
        activations=render.activations,
        objective=render.objective,
        trace=render.trace,
        **extra,
    )


def model_record(model):
    """The model's name and weights, for a configuration."""
    return {"model": model.name, "weights": model.weights}


# -- a model of recorded neurons: how its images compare ------------------------------------


def neuron_checks(model, elements, addresses, images, activations):
    """For the channels of a layer with a reference (a model of neurons): each image's activation
    relative to the neuron's best training image, and, where the model holds a member out of the
    optimization, that member's response and its ratio too (Walker et al. 2019's in-silico
    check). {} for other models."""
    rows = [
        (i, a, e.channel)
        for i, (e, a) in enumerate(zip(elements, addresses))
        if a in model.reference and e.kind in ("channel", "unit")
    ]
    if not rows:
        return {}
    out = {"relative_to_best_training": [None] * len(elements)}
    for i, a, c in rows:
        out["relative_to_best_training"][i] = float(activations[i]) / model.reference[a][c]
    held = {a: model.held_out[a] for _, a, _ in rows if a in model.held_out}
    if held:
        with torch.no_grad():
            acts = model.activations(images.to(model.device), sorted(set(held.values())))
        out["held_out_activation"] = [None] * len(elements)
        out["held_out_relative_to_best_training"] = [None] * len(elements)
        for i, a, c in rows:
            if a in held:
                value = float(acts[held[a]][i, c])
                best = model.reference.get(held[a], model.reference[a])[c]  # its own best
                out["held_out_activation"][i] = value
                out["held_out_relative_to_best_training"][i] = value / best
    out["data_scale"] = model.data_scale  # result.npz also holds the images in the data's units
    return out
