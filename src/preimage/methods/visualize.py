"""Activation maximization of targets given as strings: the `visualize` command as a call."""

from __future__ import annotations

import torch

from ..engine import objectives as O
from ..errors import PreimageError
from ..io.images import natural_crops
from ..engine.render import Convergence, render
from ..engine.targets import build_objective, element_values, parse_targets


def visualize(
    model,
    targets,
    size=None,
    steps=256,
    seed=0,
    param="fourier",
    decorrelate=True,
    transforms="finzi",
    optimizer="adam",
    lr=0.05,
    l2=0.0,
    tv=0.0,
    tv_beta=1.0,
    unit_mode=False,
    patience=50,
    progress=True,
    compare_natural=False,
    prior=None,
    prior_weight=0.0005,
):
    """Maximize each target (one batch element per channel or unit) and return (result, extra metrics).

    targets: strings such as '_blocks.2:all', 'conv3:5@6,6', 'class:tabby' (see preimage.targets).
    l2, tv: weights of the L2 and TV^β penalties (Finzi's λ1, λ2; averaged over pixels).
    patience: stop once no element has improved for this many steps (0: run every step).
    compare_natural: also measure each target on natural patches and report the
    ratio of the optimized activation to their 99th percentile.
    prior: a natural-image prior (``preimage.prior.load_prior``) whose log P(x)
    is added with weight ``prior_weight`` (Cadena et al.'s α).
    """
    if steps < 1:
        raise PreimageError(f"bad --steps {steps}; it must be at least 1")
    if lr <= 0:
        raise PreimageError(f"bad --lr {lr}; it must be positive")
    size = int(size or model.input_size)
    if size < 1:
        raise PreimageError(f"bad --size {size}; it must be positive")
    elements = parse_targets(model, targets, size, unit_mode)
    objective = build_objective(elements)
    if l2:
        objective = objective - l2 * O.l2()
    if tv:
        objective = objective - tv * O.tv(beta=tv_beta)
    if prior is not None and prior_weight:
        objective = objective + prior_weight * O.log_prior(prior.to(model.device))
    stop = Convergence(patience=patience) if patience else None
    result = render(
        model,
        objective,
        n=len(elements),
        size=size,
        param=param,
        decorrelate=decorrelate,
        transforms=transforms,
        optimizer=optimizer,
        lr=lr,
        steps=steps,
        seed=seed,
        stop=stop,
        progress=progress,
        desc="visualize",
        labels=[e.label() for e in elements],
    )
    extra = {}
    if prior is not None:
        with torch.no_grad():
            extra["prior"] = {
                **prior.describe(),
                "weight": prior_weight,
                "log_prior": prior(result.images.to(model.device)).tolist(),
            }
    if compare_natural:
        natural = element_values(model, elements, natural_crops(size))
        p99 = torch.quantile(natural, 0.99, dim=0)
        extra.update(
            {
                "natural_images": int(natural.shape[0]),
                "natural_p99": p99.tolist(),
                "ratio_to_natural_p99": (result.activations / p99).tolist(),
            }
        )
    return result, extra
