"""Objective terms on a layer's activations: channels, units, whole layers, directions, inversion.

Each returns an ``Objective`` (role: target) with one value per batch element. Terms that take a
list of channels with a matching ``batch`` gather them in one indexing operation, so "every
channel of a layer" costs one term, not one per channel.
"""

from __future__ import annotations

import torch

from ...errors import PreimageError
from ..fast.gradients import AtPosition, SpatialMean
from .core import Objective, leading, per_element, rows, shared_or_rows


def _once(cache, a, build):
    """What ``build(device, dtype)`` gives for a's device and dtype, built on first use."""
    key = (a.device, a.dtype)
    if key not in cache:
        cache[key] = build(a.device, a.dtype)
    return cache[key]


def _channel_index(channels, idx, device, cache):
    key = (device, None if idx is None else idx.numel())
    if key not in cache:
        cache[key] = torch.as_tensor(channels, dtype=torch.long, device=device)
    return cache[key]


def _pick(a, channels, idx, cache):
    """Column ``channels`` of a (rows x C) tensor: one channel for all, or one per row."""
    if isinstance(channels, (list, tuple)):
        c = _channel_index(channels, idx, a.device, cache)
        return a[torch.arange(a.shape[0], device=a.device), c]
    return a[:, channels]


def channel(layer, channels, batch=None):
    """Mean activation of a channel over space (Finzi's -1/m Σ F term, negated).

    ``channels`` is an int, or a list with one channel per element of ``batch``.
    For a layer with no spatial axes (fc), this is the unit itself.
    """
    cache = {}

    def values(ctx, idx):
        a = rows(ctx.activations[layer], idx)
        if a.dim() == 4:
            a = SpatialMean.apply(a)
        elif a.dim() > 2:
            a = a.mean(dim=tuple(range(2, a.dim())))
        return _pick(a, channels, idx, cache)

    multi = isinstance(channels, (list, tuple))
    name = f"{layer}:[{len(channels)} channels]" if multi else f"{layer}:{channels}"
    return Objective(per_element(values, batch), [layer], name)


def unit(layer, channels, y=None, x=None, batch=None):
    """One unit: channel C at position (Y, X) of a layer. Without y/x, the centre unit; on a layer
    without positions (fc, a model's neurons), the channel itself."""
    cache = {}

    def values(ctx, idx):
        a = rows(ctx.activations[layer], idx)
        if a.dim() == 2:
            if y is not None:
                raise PreimageError(f"layer {layer} has no positions; @{y},{x} does not apply")
            return _pick(a, channels, idx, cache)
        h, w = a.shape[-2], a.shape[-1]
        yy = h // 2 if y is None else y
        xx = w // 2 if x is None else x
        if not (0 <= yy < h and 0 <= xx < w):
            raise PreimageError(f"unit position @{yy},{xx} is outside layer {layer}'s {h}x{w} map")
        a = AtPosition.apply(a, yy, xx) if a.dim() == 4 else a[..., yy, xx]
        return _pick(a, channels, idx, cache)

    where = "centre" if y is None else f"{y},{x}"
    return Objective(per_element(values, batch), [layer], f"{layer}:{channels}@{where}")


def class_token(layer, channels, index=0, batch=None):
    """Feature C of a token layer's class token (prefix token ``index``: 0 is the class token,
    the ones after it registers), where ``channel`` averages the patch tokens."""
    cache = {}
    key = f"{layer}@prefix"

    def values(ctx, idx):
        if key not in ctx.activations:
            raise PreimageError(f"layer {layer} has no class token (it is not a token layer)")
        a = rows(ctx.activations[key], idx)
        return _pick(a[:, :, index], channels, idx, cache)

    return Objective(per_element(values, batch), [layer], f"{layer}:{channels}@cls")


def layer(layer, batch=None):
    """The whole layer, DeepDream style: mean of squared activations."""

    def values(ctx, idx):
        return rows(ctx.activations[layer], idx).pow(2).flatten(1).mean(1)

    return Objective(per_element(values, batch), [layer], f"{layer} (deepdream)")


def class_logit(output_layer, index, batch=None):
    """A class logit: the unit ``index`` of the model's output layer."""
    return channel(output_layer, index, batch=batch)


def direction(layer, vector, batch=None):
    """Dot product of the activations with a vector in channel space, averaged over space."""
    vec = torch.as_tensor(vector, dtype=torch.float32).flatten()
    cache = {}

    def values(ctx, idx):
        a = rows(ctx.activations[layer], idx)
        if a.shape[1] != vec.numel():
            raise PreimageError(
                f"direction has {vec.numel()} components but layer {layer} has {a.shape[1]}"
                " channels"
            )
        v = _once(cache, a, lambda device, dtype: vec.to(device=device, dtype=dtype))
        v = v.view(1, -1, *([1] * (a.dim() - 2)))
        return (a * v).sum(1).reshape(a.shape[0], -1).mean(1)

    return Objective(per_element(values, batch), [layer], f"{layer}·direction")


def over_views(term):
    """The mean of a per-view term over each image's views (a render with a views stage).

    The term reads activations with one row per view; the result has one value per image.
    """

    def fn(ctx):
        return ctx.views.mean(term(ctx))

    return Objective(fn, term.layers, f"{term.name}, mean over views")


def inversion(layer, target, mask=None, weight=1.0, batch=None):
    """Minus the inversion loss of Mahendran & Vedaldi eqs. 2-3, times C, to be maximized.

        ℓ = ‖(Φ(x) - Φ0) ⊙ M‖² / ‖Φ0 ⊙ M‖²

    target: Φ0, one per element (N x C x H x W) or one for all (C x H x W).
    mask: 0/1, broadcastable to Φ0 (a spatial window, a channel subset), or None.
    weight: the constant C, a scalar or one per element.
    """
    cache = {}

    def build(device, dtype, dims):
        t = leading(torch.as_tensor(target).detach().to(device, dtype), dims)
        m = None if mask is None else torch.as_tensor(mask).to(device, dtype)
        t = t if m is None else t * m
        norm = t.pow(2).reshape(t.shape[0], -1).sum(1)
        return t, m, norm, torch.as_tensor(weight, dtype=dtype).reshape(-1).to(device)

    def values(ctx, idx):
        a = rows(ctx.activations[layer], idx)
        t, m, norm, c = _once(cache, a, lambda device, dtype: build(device, dtype, a.dim()))
        diff = (a if m is None else a * m) - shared_or_rows(t, idx)
        loss = diff.pow(2).reshape(a.shape[0], -1).sum(1) / shared_or_rows(norm, idx)
        return -shared_or_rows(c, idx) * loss

    return Objective(per_element(values, batch), [layer], f"inversion({layer})")


def inner_product(layer, weights, Z=1.0, batch=None):
    """⟨Φ(x), Φ0⟩ / Z per element: minus the loss of Mahendran & Vedaldi eq. 4, to be maximized.

    weights: Φ0, one per element (N x ...) or one for all. Z: a scalar or one per element.
    """
    cache = {}

    def build(device, dtype, dims):
        w = leading(torch.as_tensor(weights).detach().to(device, dtype), dims)
        return w, torch.as_tensor(Z, dtype=dtype).reshape(-1).to(device)

    def values(ctx, idx):
        a = rows(ctx.activations[layer], idx)
        w, z = _once(cache, a, lambda device, dtype: build(device, dtype, a.dim()))
        product = (a * shared_or_rows(w, idx)).reshape(a.shape[0], -1).sum(1)
        return product / shared_or_rows(z, idx)

    return Objective(per_element(values, batch), [layer], f"<{layer}, Φ0>/Z")
