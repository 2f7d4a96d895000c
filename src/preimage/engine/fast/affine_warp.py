"""Bilinear resampling of images through per-image affine maps, with its exact adjoint.

The result is ``F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
align_corners=False)`` for the grid of the affine map, and the gradient is
grid_sample's gradient with respect to the images (tests compare both in
float64). On the CPU it runs as two Numba kernels, because PyTorch's is the
largest cost of a render step after the network itself at shallow layers
(``benchmarks/bench_affine_warp.py``). Here

* sample positions come from six coefficients on the fly: no grid tensor;
* the four weights of an output pixel are computed once for all channels;
* the adjoint accumulates each image in one thread: no atomics, no races, and
  the same sums in the same order on every run, so results stay
  bit-reproducible.

Without Numba (or with ``PREIMAGE_NUMBA=0``), off the CPU, or for dtypes other
than float32/float64, grid_sample does the work; so it does in a process forked
from one that set the kernels up, because Numba's GNU OpenMP threading layer
terminates a forked child that starts a parallel loop.

Coefficients: ``coef[n] = (a, b, c, d, e, f)`` sends output pixel (row i,
column j) to the input position (row ``d*j + e*i + f``, column ``a*j + b*i + c``),
in pixel units with pixel centres at integers.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def coefficients(matrices, in_hw, out_hw):
    """(N, 6) float64 pixel coefficients from (N, 3, 3) maps between centred pixel coordinates.

    matrices[n] sends an output point (x, y, 1), measured from the output
    canvas's centre, to the input point it samples, measured from the input's centre.
    """
    m = np.asarray(matrices, dtype=np.float64)
    (h, w), (ho, wo) = in_hw, out_hw
    x0, y0 = 0.5 - wo / 2.0, 0.5 - ho / 2.0  # centred coordinates of output pixel (0, 0)
    coef = np.empty((m.shape[0], 6))
    for row, size, k in ((0, w, 0), (1, h, 3)):
        coef[:, k] = m[:, row, 0]
        coef[:, k + 1] = m[:, row, 1]
        coef[:, k + 2] = m[:, row, 0] * x0 + m[:, row, 1] * y0 + m[:, row, 2] + size / 2.0 - 0.5
    return coef


def grid(coef, in_hw, out_hw, dtype=torch.float32, device="cpu"):
    """grid_sample's (N, Ho, Wo, 2) grid (align_corners=False) for the coefficients, built on
    ``device``.
    """
    (h, w), (ho, wo) = in_hw, out_hw
    # in grid_sample's units x = (2 col + 1) / w - 1: the same affine form with rescaled
    # coefficients
    norm = 2 * np.asarray(coef, dtype=np.float64) / np.array([w, w, w, h, h, h], dtype=np.float64)
    norm[:, 2] += 1.0 / w - 1.0
    norm[:, 5] += 1.0 / h - 1.0
    t = torch.as_tensor(norm, dtype=dtype).to(device)
    per_j, per_i, offset = (t[:, [k, k + 3]].view(-1, 1, 1, 2) for k in range(3))
    j = torch.arange(wo, dtype=dtype, device=device).view(1, 1, wo, 1)
    i = torch.arange(ho, dtype=dtype, device=device).view(1, ho, 1, 1)
    return torch.addcmul(torch.addcmul(offset, i, per_i), j, per_j)


def warp(images, coef, out_hw, scale=None, shift=None, channels_last=False):
    """Resample N x C x H x W images to N x C x Ho x Wo through the per-image affine maps ``coef``.

    scale, shift: per channel (C values each), applied to the images before the
    resampling, so that outside the image the result is 0 in the shifted units
    (the render loop passes the model's normalization: 0 is its mean colour).
    The kernels apply them in the same pass. channels_last: the result in that
    memory format, written so by the kernel (a network that runs channels-last
    would otherwise copy it, and its gradient back, once more each step).
    """
    out_hw = (int(out_hw[0]), int(out_hw[1]))
    coef = np.ascontiguousarray(coef, dtype=np.float64)
    c = images.shape[1]
    s = np.ones(c) if scale is None else _per_channel(scale, c)
    t = np.zeros(c) if shift is None else _per_channel(shift, c)
    if (
        images.device.type == "cpu"
        and images.dtype in (torch.float32, torch.float64)
        and _kernels() is not None
        and _KERNELS["pid"] == os.getpid()
    ):
        return _Warp.apply(images, coef, out_hw, s, t, channels_last)
    if scale is not None or shift is not None:
        view = (1, c, 1, 1)
        images = torch.addcmul(
            torch.as_tensor(t, dtype=images.dtype, device=images.device).view(view),
            images,
            torch.as_tensor(s, dtype=images.dtype, device=images.device).view(view),
        )
    g = grid(coef, images.shape[-2:], out_hw, images.dtype, images.device)
    out = F.grid_sample(images, g, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def _per_channel(values, channels):
    v = (
        values.detach().double().cpu().flatten().numpy()
        if torch.is_tensor(values)
        else np.asarray(values, dtype=np.float64).ravel()
    )
    if v.size not in (1, channels):  # the kernels do not check bounds
        raise ValueError(
            f"per-channel scale or shift has {v.size} values for {channels} channels; give 1 or"
            f" {channels}"
        )
    return np.ascontiguousarray(np.broadcast_to(v, (channels,)) if v.size == 1 else v)


class _Warp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, images, coef, out_hw, scale, shift, channels_last):
        x = images.detach().contiguous()
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        out = torch.empty((x.shape[0], x.shape[1], *out_hw), dtype=x.dtype, memory_format=fmt)
        forward_kernel, _ = _kernels()
        _run(forward_kernel, x.numpy(), coef, scale, shift, out.numpy())
        ctx.coef, ctx.scale, ctx.in_shape = coef, scale, tuple(x.shape)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        g = grad_out.detach()
        if not (g.is_contiguous() or g.is_contiguous(memory_format=torch.channels_last)):
            g = (
                g.contiguous()
            )  # the kernel reads any strides, but a dense layout keeps its reads local
        grad = torch.empty(ctx.in_shape, dtype=g.dtype)
        _, adjoint_kernel = _kernels()
        _run(adjoint_kernel, g.numpy(), ctx.coef, ctx.scale, grad.numpy())
        return grad, None, None, None, None, None


def _run(kernel, *args):
    """Run a kernel on as many threads as PyTorch uses
    (``torch.set_num_threads`` holds here too).
    """
    import numba

    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    kernel(*args)
    if torch.get_num_threads() != threads:  # Numba's OpenMP start-up sets the count process-wide
        torch.set_num_threads(threads)


_KERNELS = {}


def _kernels():
    """(forward, adjoint) compiled on first use (cached on disk by Numba), or None."""
    if "k" not in _KERNELS:
        _KERNELS["k"], _KERNELS["pid"] = None, os.getpid()
        if os.environ.get("PREIMAGE_NUMBA", "1") != "0":
            try:
                _KERNELS["k"] = _compile()
            except ImportError:  # the library works without Numba, at grid_sample's speed
                pass
    return _KERNELS["k"]


def _compile():
    import numba

    # fused multiply-adds and reordered sums, but NaN and infinity still propagate (the render
    # loop reports a diverged objective by its non-finite value)
    jit = numba.njit(
        parallel=True,
        cache=True,
        boundscheck=False,
        fastmath={"contract", "reassoc", "nsz", "arcp"},
    )
    return _forward_kernel(numba, jit), _adjoint_kernel(numba, jit)


def _forward_kernel(numba, jit):
    """The resampling: each output pixel the bilinear mix of its four taps, scaled and shifted."""

    @jit
    def forward_kernel(x, coef, scale, shift, out):
        n_images, channels, h, w = x.shape
        ho, wo = out.shape[2], out.shape[3]
        for task in numba.prange(n_images * ho):  # one output row each
            n, i = task // ho, task % ho
            a, b, c, d, e, f = (
                coef[n, 0],
                coef[n, 1],
                coef[n, 2],
                coef[n, 3],
                coef[n, 4],
                coef[n, 5],
            )
            col_i, row_i = b * i + c, e * i + f
            for j in range(wo):
                col, row = a * j + col_i, d * j + row_i
                x0, y0 = int(math.floor(col)), int(math.floor(row))
                fx, fy = col - x0, row - y0
                w11 = fx * fy
                w10, w01 = fy - w11, fx - w11
                w00 = 1.0 - fx - w10
                if x0 >= 0 and y0 >= 0 and x0 + 1 < w and y0 + 1 < h:
                    for k in range(channels):
                        v = (
                            w00 * x[n, k, y0, x0]
                            + w01 * x[n, k, y0, x0 + 1]
                            + w10 * x[n, k, y0 + 1, x0]
                            + w11 * x[n, k, y0 + 1, x0 + 1]
                        )
                        out[n, k, i, j] = scale[k] * v + shift[k]  # the weights sum to 1
                else:  # zero padding: taps outside the image add nothing
                    top, bottom = 0 <= y0 < h, 0 <= y0 + 1 < h
                    left, right = 0 <= x0 < w, 0 <= x0 + 1 < w
                    for k in range(channels):
                        v = 0.0
                        inside = 0.0
                        if top and left:
                            v += w00 * x[n, k, y0, x0]
                            inside += w00
                        if top and right:
                            v += w01 * x[n, k, y0, x0 + 1]
                            inside += w01
                        if bottom and left:
                            v += w10 * x[n, k, y0 + 1, x0]
                            inside += w10
                        if bottom and right:
                            v += w11 * x[n, k, y0 + 1, x0 + 1]
                            inside += w11
                        out[n, k, i, j] = scale[k] * v + shift[k] * inside

    return forward_kernel


def _adjoint_kernel(numba, jit):
    """The adjoint: each output pixel's gradient spread back onto its four taps."""

    @jit
    def adjoint_kernel(g, coef, scale, out):
        n_images, channels, h, w = out.shape
        ho, wo = g.shape[2], g.shape[3]
        # one image each: its pixels are written by this thread only
        for n in numba.prange(n_images):
            a, b, c, d, e, f = (
                coef[n, 0],
                coef[n, 1],
                coef[n, 2],
                coef[n, 3],
                coef[n, 4],
                coef[n, 5],
            )
            out[n] = 0.0
            for i in range(ho):
                col_i, row_i = b * i + c, e * i + f
                for j in range(wo):
                    col, row = a * j + col_i, d * j + row_i
                    x0, y0 = int(math.floor(col)), int(math.floor(row))
                    fx, fy = col - x0, row - y0
                    w11 = fx * fy
                    w10, w01 = fy - w11, fx - w11
                    w00 = 1.0 - fx - w10
                    if x0 >= 0 and y0 >= 0 and x0 + 1 < w and y0 + 1 < h:
                        for k in range(channels):
                            v = scale[k] * g[n, k, i, j]
                            out[n, k, y0, x0] += w00 * v
                            out[n, k, y0, x0 + 1] += w01 * v
                            out[n, k, y0 + 1, x0] += w10 * v
                            out[n, k, y0 + 1, x0 + 1] += w11 * v
                    else:
                        top, bottom = 0 <= y0 < h, 0 <= y0 + 1 < h
                        left, right = 0 <= x0 < w, 0 <= x0 + 1 < w
                        for k in range(channels):
                            v = scale[k] * g[n, k, i, j]
                            if top and left:
                                out[n, k, y0, x0] += w00 * v
                            if top and right:
                                out[n, k, y0, x0 + 1] += w01 * v
                            if bottom and left:
                                out[n, k, y0 + 1, x0] += w10 * v
                            if bottom and right:
                                out[n, k, y0 + 1, x0 + 1] += w11 * v

    return adjoint_kernel
