"""Convolutions of a frozen network whose backward pass is itself a forward convolution.

Optimizing an image through a frozen network needs only the gradient with
respect to each convolution's input. On the CPU, oneDNN's backward-data
kernels are far slower than its forward kernels for the shapes mobile
networks use: for 16 images at 128 px a 3 x 3 depthwise convolution takes
0.3 ms forward and 1.7 ms backward, and a stride-2 depthwise one 1.6 ms
forward and 14 ms backward. The input gradient of a convolution is a
convolution of the output gradient, so we compute it with the forward kernels:

* stride 1: a convolution with the kernel flipped in space and its input and
  output channels swapped (within each group);
* stride s: the transposed convolution split into its s x s phases. Output
  pixels of phase (a, b) receive only the kernel taps a + s*m, b + s*l; each
  phase is a stride-1 convolution with that sub-kernel, all phases run as one
  grouped convolution, and the phases are interleaved back into the image
  (pixel shuffle).

Padding may be asymmetric (TensorFlow's "same" padding of a stride-2 layer
pads one pixel more at the bottom and right): the forward pass pads, the
backward pass just reads the window the unpadded input occupies.

The result equals autograd's gradient up to float rounding (tests compare
them). The weights must not need gradients; ``speed_up_convolutions`` only
touches convolutions whose weights are frozen, and only on the CPU.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


def _transposed_kernel(weight, groups):
    """(Cout, Cin/G, kh, kw) -> (Cin, Cout/G, kh, kw): in and out channels swapped within each group."""
    cout, cin_g, kh, kw = weight.shape
    w = weight.reshape(groups, cout // groups, cin_g, kh, kw).transpose(1, 2)
    return w.reshape(groups * cin_g, cout // groups, kh, kw)


def _phase_kernel(weight, groups, stride):
    """The transposed kernel split into stride phases, flipped: (Cin * sh * sw, Cout/G, Mh, Mw).

    With stride 1 this is the kernel flipped in space, in and out channels swapped.

    Output channel c * sh * sw + a * sw + b holds, for input channel c, the
    taps (a + sh*m, b + sw*l) in reverse order, zero where a tap falls off
    the kernel.
    """
    sh, sw = stride
    w = _transposed_kernel(weight, groups)  # (Cin, Cout/G, kh, kw)
    cin, cout_g, kh, kw = w.shape
    mh, mw = -(-kh // sh), -(-kw // sw)
    w = F.pad(w, (0, mw * sw - kw, 0, mh * sh - kh))  # (Cin, Cout/G, mh*sh, mw*sw)
    w = w.reshape(cin, cout_g, mh, sh, mw, sw).permute(0, 3, 5, 1, 2, 4)  # (Cin, sh, sw, Cout/G, mh, mw)
    return w.flip(-2, -1).reshape(cin * sh * sw, cout_g, mh, mw).contiguous()


def input_gradient(grad_out, weight, stride, padding, groups, input_shape, kernel=None):
    """The gradient with respect to the input of conv2d(pad(x), weight, stride, groups).

    padding: (top, bottom, left, right). kernel: ``_phase_kernel(weight, groups, stride)``,
    when precomputed.
    """
    sh, sw = stride
    top, _, left, _ = padding
    n, cin, hin, win = input_shape
    fmt = torch.channels_last if grad_out.is_contiguous(memory_format=torch.channels_last) and not grad_out.is_contiguous() else torch.contiguous_format
    if kernel is None:
        kernel = _phase_kernel(weight, groups, stride)
    mh, mw = kernel.shape[-2:]
    ho, wo = grad_out.shape[-2:]
    if (sh, sw) == (1, 1) and top <= mh - 1 and left <= mw - 1:
        # the full correlation, cropped to the input's window through a smaller padding
        g = F.conv2d(grad_out, kernel, padding=(mh - 1 - top, mw - 1 - left), groups=groups)
        return g[:, :, :hin, :win].contiguous(memory_format=fmt)
    # Phase (a, b) holds the padded input's rows T = sh*q + a and columns sw*r + b, q in
    # [0, ho + mh - 1); the input's row t is T = t + top. Each phase is written straight into
    # its rows and columns of the result.
    hq, wq = ho + mh - 1, wo + mw - 1
    windows = []
    covered = True
    for a in range(sh):
        for b in range(sw):
            t0, s0 = (a - top) % sh, (b - left) % sw
            q0, r0 = (t0 + top - a) // sh, (s0 + left - b) // sw
            rows, cols = len(range(t0, hin, sh)), len(range(s0, win, sw))
            got_rows, got_cols = max(0, min(rows, hq - q0)), max(0, min(cols, wq - r0))
            covered &= (got_rows, got_cols) == (rows, cols)
            windows.append((t0, s0, q0, r0, got_rows, got_cols))
    new = torch.empty if covered else torch.zeros
    g = new((n, cin, hin, win), dtype=grad_out.dtype, device=grad_out.device, memory_format=fmt)
    depthwise = groups == cin == grad_out.shape[1]
    if not depthwise:
        z = F.conv2d(grad_out, kernel, padding=(mh - 1, mw - 1), groups=groups).unflatten(1, (cin, sh * sw))
    for p, (t0, s0, q0, r0, got_rows, got_cols) in enumerate(windows):
        if not (got_rows and got_cols):
            continue
        if depthwise:
            # one depthwise convolution per phase: oneDNN has no fast kernel for a channel
            # multiplier of sh*sw
            phase = F.conv2d(grad_out, kernel[p :: sh * sw].contiguous(), padding=(mh - 1, mw - 1), groups=groups)
        else:
            phase = z[:, :, p]
        g[:, :, t0::sh, s0::sw][:, :, :got_rows, :got_cols] = phase[:, :, q0 : q0 + got_rows, r0 : r0 + got_cols]
    return g


class _FrozenConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, groups, kernel):
        top, bottom, left, right = padding
        if top == bottom and left == right:
            y = F.conv2d(x, weight, bias, stride, (top, left), 1, groups)
        else:
            y = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride, 0, 1, groups)
        ctx.save_for_backward(weight, kernel)
        ctx.conf = (stride, padding, groups, tuple(x.shape))
        return y

    @staticmethod
    def backward(ctx, grad_out):
        weight, kernel = ctx.saved_tensors
        stride, padding, groups, shape = ctx.conf
        grad = input_gradient(grad_out, weight, stride, padding, groups, shape, kernel) if ctx.needs_input_grad[0] else None
        return grad, None, None, None, None, None, None


def frozen_conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), groups=1, kernel=None):
    """conv2d of x padded by (top, bottom, left, right), with the input gradient computed as above."""
    stride = tuple(stride)
    if kernel is None:
        kernel = _phase_kernel(weight, groups, stride)
    return _FrozenConv2d.apply(x, weight, bias, stride, tuple(padding), groups, kernel)


def _eligible(conv):
    pad = getattr(conv, "static_padding", None)
    return (
        isinstance(conv, nn.Conv2d)
        and type(conv).forward in (nn.Conv2d.forward, *_STATIC_SAME_FORWARDS)
        and (pad is None or isinstance(pad, nn.Identity) or type(pad).__name__ == "Identity")
        and not conv.weight.requires_grad
        and (conv.bias is None or not conv.bias.requires_grad)
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and tuple(conv.dilation) == (1, 1)
        # Measured on 2 CPU cores, forward + backward: where oneDNN's own backward is as fast
        # (dense and pointwise convolutions) or faster (stride-2 depthwise, whose phases write
        # the image in four strided passes), keep it.
        and ((conv.groups > 1 and tuple(conv.stride) == (1, 1)) or conv.in_channels <= 4)
    )


def _static_same_forwards():
    try:
        from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding
    except ImportError:  # the embedded model's package is optional for other models
        return ()
    return (Conv2dStaticSamePadding.forward,)


_STATIC_SAME_FORWARDS = _static_same_forwards()


def _fast_forward(self, x):
    # cuDNN's backward kernels are fast: on a GPU the convolution stays as it was
    if not (torch.is_grad_enabled() and x.requires_grad) or self.weight.requires_grad or x.device.type != "cpu":
        return type(self).forward(self, x)
    key = (self.weight.device, self.weight.dtype, self.weight._version)
    if self._frozen_kernel[0] != key:
        with torch.no_grad():
            self._frozen_kernel = (key, _phase_kernel(self.weight, self.groups, tuple(self.stride)))
    ph, pw = self.padding
    return _FrozenConv2d.apply(x, self.weight, self.bias, tuple(self.stride), (ph, ph, pw, pw), self.groups, self._frozen_kernel[1])


def speed_up_convolutions(module):
    """Route the eligible frozen convolutions of ``module`` (in place) through ``frozen_conv2d``.

    Returns the number of convolutions changed. Values, module paths and hooks
    are unchanged; only the backward pass differs, and only in speed.
    """
    count = 0
    for m in module.modules():
        if _eligible(m):
            m._frozen_kernel = (None, None)
            m.forward = types.MethodType(_fast_forward, m)
            count += 1
    return count
