"""Objective terms on the images themselves: the regularizers of the papers, and a prior.

All are regularizers (not targets): results report the targets' activation apart from them.
``l2``, ``tv`` and ``bounded_range`` measure the image in the network's input units with the
channel means removed, averaged over pixels; they are penalties, added with a negative weight.
``log_prior`` is a reward, added with a positive weight.
"""

from __future__ import annotations

from .core import REGULARIZER, Objective, per_element, rows


def _area(ctx):
    return ctx.images.shape[-1] * ctx.images.shape[-2]


def l2(batch=None):
    """Squared L2 norm of the centred image, per pixel: (1/HW) Σ_{u,v,k} x². Finzi's λ1 term."""

    def values(ctx, idx):
        return rows(ctx.centered, idx).pow(2).sum((1, 2, 3)) / _area(ctx)

    return Objective(per_element(values, batch), name="l2", role=REGULARIZER)


def tv(beta=1.0, V=1.0, batch=None):
    """Total variation TV^β (Mahendran & Vedaldi §3.2.2), normalised by area and V^β.

    (1/(HW V^β)) Σ_{u,v,k} ((x[v,u+1,k]-x[v,u,k])² + (x[v+1,u,k]-x[v,u,k])²)^(β/2).
    β = 1 is Finzi's eq. 1 term (per pixel instead of summed over pixels).
    """

    def values(ctx, idx):
        x = rows(ctx.centered, idx)
        dx = x[..., :-1, 1:] - x[..., :-1, :-1]
        dy = x[..., 1:, :-1] - x[..., :-1, :-1]
        sq = dx * dx + dy * dy
        # the tiny epsilon keeps the β < 2 gradient finite where the image is flat
        g = sq if beta == 2 else (sq + 1e-12).pow(beta / 2)
        return g.sum((1, 2, 3)) / (_area(ctx) * V**beta)

    return Objective(per_element(values, batch), name=f"tv^{beta:g}", role=REGULARIZER)


def bounded_range(alpha=6.0, B=1.0, batch=None):
    """N_α of Mahendran & Vedaldi eq. 5: (1/(HW B^α)) Σ_{v,u} (Σ_k x(v,u,k)²)^(α/2)."""

    def values(ctx, idx):
        x = rows(ctx.centered, idx)
        return x.pow(2).sum(1).pow(alpha / 2).sum((1, 2)) / (_area(ctx) * B**alpha)

    return Objective(per_element(values, batch), name=f"N_{alpha:g}", role=REGULARIZER)


def log_prior(prior, batch=None):
    """log P(x) of the images under a prior module, in nats per image (a reward).

    The one convention of every method: ``weight * log_prior(prior)`` is added to the objective
    the optimizer maximizes, the prior reading the image in display space, before the random
    transforms. Cadena et al.'s eq. 1 uses weight α = 0.0005; Mahendran & Vedaldi's energy,
    summed over pixels, takes 0.1 (log P is about -10 nats per pixel for natural images, so the
    term is then near 1 per pixel, like their other terms).
    """

    def values(ctx, idx):
        return prior(rows(ctx.images, idx).float())

    return Objective(per_element(values, batch), name="log_prior", role=REGULARIZER)
