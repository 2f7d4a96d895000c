"""Objectives: what an optimization maximizes, one value per batch element.

Compose terms with ``+``, ``-``, ``*`` and ``/`` by scalars; a Finzi-style loss reads::

    channel("_blocks.2", 5) - 1e-4 * l2() - 0.5 * tv()

``core`` holds the algebra and the roles, ``activations`` the terms on a layer (targets),
``images`` those on the images (regularizers and the prior), ``diversity`` Cadena et al.'s
diversity term.
"""

from .activations import (
    channel,
    class_logit,
    class_token,
    direction,
    inner_product,
    inversion,
    layer,
    over_views,
    unit,
)
from .core import REGULARIZER, TARGET, Context, Objective
from .diversity import closest_distances, min_distance, pairwise_distances
from .images import bounded_range, l2, log_prior, tv

__all__ = [
    "Context",
    "Objective",
    "TARGET",
    "REGULARIZER",
    "channel",
    "unit",
    "class_token",
    "layer",
    "class_logit",
    "direction",
    "over_views",
    "inversion",
    "inner_product",
    "l2",
    "tv",
    "bounded_range",
    "log_prior",
    "min_distance",
    "closest_distances",
    "pairwise_distances",
]
