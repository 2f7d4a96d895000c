"""Reading a channel's mean or one position of a map, with gradients in the map's memory format.

Autograd's own mean and indexing send back dense NCHW gradients; on a channels-last map every
backward operation below then pays for the mismatch (5-7 % of a render step on the CPU).
"""

from __future__ import annotations

import torch


class AtPosition(torch.autograd.Function):
    """a[:, :, y, x], whose gradient keeps the map's memory format."""

    @staticmethod
    def forward(ctx, a, y, x):
        fmt = torch.channels_last if channels_last(a) else torch.contiguous_format
        ctx.like = (a.shape, a.dtype, a.device, fmt)
        ctx.yx = (y, x)
        return a[:, :, y, x].clone()

    @staticmethod
    def backward(ctx, grad):
        shape, dtype, device, fmt = ctx.like
        out = torch.empty(shape, dtype=dtype, device=device, memory_format=fmt).zero_()
        out[:, :, ctx.yx[0], ctx.yx[1]] = grad
        return out, None, None


class SpatialMean(torch.autograd.Function):
    """a.mean((2, 3)), whose gradient reaches the map as a broadcast view.

    A broadcast lets the backward operation below write its output in the map's own memory
    format (and lets a 1x1 convolution take its shortcut, see ``models.fast.frozen_conv``).
    """

    @staticmethod
    def forward(ctx, a):
        ctx.shape = a.shape
        return a.mean((2, 3))

    @staticmethod
    def backward(ctx, grad):
        n, c, h, w = ctx.shape
        return (grad / (h * w)).view(n, c, 1, 1).expand(n, c, h, w)


def channels_last(a):
    """Whether a 4-d tensor is stored channels-last (and is not also contiguous)."""
    return (
        a.dim() == 4
        and a.is_contiguous(memory_format=torch.channels_last)
        and not a.is_contiguous()
    )
