"""The diversity term of Cadena et al. eq. 1: λ times the smallest distance within a group.

For groups of n images, λ_g · min_{i≠j in g} d(x_i, x_j), d the Euclidean distance between the
flattened activations of a layer (eq. 2), or between the centred images themselves. A reward:
it is added to the objective, with its own λ per group (a whole λ sweep is one batch).
"""

from __future__ import annotations

import torch

from .core import REGULARIZER, Objective


def pairwise_distances(f):
    """G x n x D -> G x n x n Euclidean distances (a finite gradient where two rows coincide).

    From each group's Gram matrix, ‖a‖² + ‖b‖² - 2 a·b, not from the n² differences: those are a
    G x n x n x D tensor, which for a population of neurons' sweep (408 groups of 6 in a 9216-d
    layer) was 135 M values and most of each step. The rows are centred on their group's mean
    first, which leaves the distances as they are and keeps the cancellation to the spread of the
    group rather than the size of its activations.
    """
    c = f - f.mean(1, keepdim=True)
    sq = c.pow(2).sum(-1)
    d2 = sq[:, :, None] + sq[:, None, :] - 2 * (c @ c.transpose(1, 2))
    return torch.sqrt(d2.clamp_min(0) + 1e-12)


def closest_distances(features, groups):
    """(G·n) x ... features -> (G,): the distance between the closest two of each group."""
    n = groups.size
    eye = torch.eye(n, dtype=torch.bool, device=features.device)
    d = pairwise_distances(groups.stack(features))
    return d.masked_fill(eye, float("inf")).flatten(1).amin(1)


def min_distance(layer, groups, lambdas):
    """λ_g · min_{i≠j in g} d(x_i, x_j) for every group g, shared out over the group's elements.

    layer: the layer whose flattened activations define d, or None for the centred images.
    groups: the ``Groups`` (n images each). lambdas: one λ per group. Each element carries
    λ_g·min_g/n, so the batch sum is Σ_g λ_g·min_g. The term also measures, on the final
    images, each group's closest distance (``RenderResult.measurements``).
    """
    cache = {}

    def features(ctx):
        return ctx.centered if layer is None else ctx.activations[layer]

    def fn(ctx):
        feats = features(ctx)
        key = (feats.device, feats.dtype)
        if key not in cache:
            cache[key] = torch.as_tensor(lambdas, dtype=feats.dtype, device=feats.device)
        return groups.share(cache[key] * closest_distances(feats, groups))

    def measure(ctx):  # in double: the λ = 0 distance divides every diversity gain
        return closest_distances(features(ctx).double(), groups).float()

    name = f"λ·min d({layer or 'pixels'})"
    layers = [] if layer is None else [layer]
    return Objective(fn, layers, name, role=REGULARIZER, measure=measure)
