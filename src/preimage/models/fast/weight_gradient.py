"""A convolution whose weight gradient is a forward convolution, for training a first layer.

oneDNN's backward-weights kernel is slow for a layer with one input channel and a large kernel
(a grey cnn core's 13 x 13 first layer): for 64 images at 40 px on one core, 74 ms against 8 ms
forward. The weight gradient of conv2d(x, w) (stride 1, one group) is itself a correlation, of
the input with the output gradient, the batch summed as channels:

    dW[o, c] = Σ_b x[b, c] ⋆ dY[b, o] = conv2d(xᵀ, dYᵀ)ᵀ, the transposes swapping batch and channel,

which oneDNN runs as a forward convolution in 10 ms: an epoch of the default fit 1.57x faster
(``benchmarks/bench_neurons_fit.py``). On the CPU only (``CNNCore``); cuDNN's kernels are fast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv2d(x, weight, bias, 1, padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, 1, ctx.padding)
        if ctx.needs_input_grad[1]:
            padded = F.pad(x, (ctx.padding[1],) * 2 + (ctx.padding[0],) * 2)
            grad_w = F.conv2d(padded.transpose(0, 1), grad_out.transpose(0, 1)).transpose(0, 1)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


def conv2d(x, weight, bias=None, padding=(0, 0)):
    """F.conv2d(x, weight, bias, stride=1, padding=padding), its weight gradient a forward
    convolution with the batch as channels."""
    return _Conv2d.apply(x, weight, bias, tuple(padding))


def fits(conv):
    """Whether a Conv2d is one this path computes: stride 1, no dilation, one group, zeros for
    padding, a large kernel over few input channels (where oneDNN's own is slow)."""
    kh, kw = conv.kernel_size
    return (
        conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and conv.in_channels <= 4
        and kh * kw >= 49
    )
