"""Convolutions of a frozen network whose backward pass is itself a forward convolution.

Optimizing an image through a frozen network needs only the gradient with
respect to each convolution's input. On the CPU, oneDNN's backward-data
kernels are far slower than its forward kernels for the shapes mobile
networks use, and for few input channels: for 16 images at 128 px a 3 x 3
depthwise convolution takes 0.3 ms forward and 1.7 ms backward, and AlexNet's
conv1 (8 images at 224 px) 35 ms forward + backward, 14 ms the way below. The
input gradient of a convolution is a convolution of the output gradient, so
we compute it with the forward kernels:

* stride 1: a convolution with the kernel flipped in space and its input and
  output channels swapped (within each group);
* stride s: the transposed convolution split into its s x s phases. Input
  pixels of phase (a, b) (rows a, a + s, ...; columns b, b + s, ...) receive
  only the kernel taps a + s*m, b + s*l; each phase is a stride-1 convolution
  of the output gradient with that sub-kernel, written straight into its rows
  and columns of the result. Dense layers run all phases as one convolution;
  depthwise ones one depthwise convolution per phase.

A 1 x 1 convolution (stride 1, no padding, one group) whose output gradient
is the same at every position, as a spatial mean sends back (the channel
objective, read at the projection that ends a mobile block), has an input
gradient that is the same at every position too: one small matrix product,
broadcast, instead of a backward pass over the whole map. That gradient is
a stride-0 view (``expand``); the next backward op reads it like any other,
but a tensor hook that edits it in place must clone it first.

A ReLU or ReLU6 that follows the convolution can run inside it (``clamp``):
on the CPU as a oneDNN post-op, the way PyTorch's compiler fuses it, and its
backward masks the output gradient with the clamped output.

Padding may be asymmetric (TensorFlow's "same" padding of a stride-2 layer
pads one pixel more at the bottom and right): the forward pass pads, the
backward pass just reads the window the unpadded input occupies.

The result equals autograd's gradient up to float rounding (tests compare
them). The weights must not need gradients; ``speed_up_convolutions`` only
touches convolutions whose weights are frozen, and their patched forward runs
the plain convolution (with the fused clamp, if any) off the CPU, where
cuDNN's backward kernels are fast.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from . import blocked_conv


def _transposed_kernel(weight, groups):
    """(Cout, Cin/G, kh, kw) -> (Cin, Cout/G, kh, kw): in and out channels swapped within each
    group.
    """
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
    w = w.reshape(cin, cout_g, mh, sh, mw, sw).permute(
        0, 3, 5, 1, 2, 4
    )  # (Cin, sh, sw, Cout/G, mh, mw)
    return w.flip(-2, -1).reshape(cin * sh * sw, cout_g, mh, mw).contiguous()


def input_gradient(grad_out, kernel, stride, padding, groups, input_shape):
    """The gradient with respect to the input of conv2d(pad(x), weight, stride, groups).

    kernel: ``_phase_kernel(weight, groups, stride)``. padding: (top, bottom, left, right).
    """
    sh, sw = stride
    top, bottom, left, right = padding
    n, cin, hin, win = input_shape
    fmt = (
        torch.channels_last
        if grad_out.is_contiguous(memory_format=torch.channels_last)
        and not grad_out.is_contiguous()
        else torch.contiguous_format
    )
    mh, mw = kernel.shape[-2:]
    ho, wo = grad_out.shape[-2:]
    if (sh, sw) == (1, 1) and top <= mh - 1 and left <= mw - 1 and bottom >= top and right >= left:
        # the full correlation, cropped to the input's window through a smaller padding
        # (it is hin + bottom - top rows high: at least hin)
        pad = (mh - 1 - top, mw - 1 - left)
        if blocked_conv.pays(grad_out, kernel, groups):
            g = blocked_conv.blocked_conv2d(grad_out, kernel, pad, (hin, win))
        else:
            g = F.conv2d(grad_out, kernel, padding=pad, groups=groups)
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
    g = torch.empty(
        (n, cin, hin, win), dtype=grad_out.dtype, device=grad_out.device, memory_format=fmt
    )
    if not covered:  # rows or columns no output reads: their gradient is zero
        g.zero_()
    depthwise = groups == cin == grad_out.shape[1]
    if not depthwise:
        z = F.conv2d(grad_out, kernel, padding=(mh - 1, mw - 1), groups=groups).unflatten(
            1, (cin, sh * sw)
        )
    for p, (t0, s0, q0, r0, got_rows, got_cols) in enumerate(windows):
        if not (got_rows and got_cols):
            continue
        if depthwise:
            # one depthwise convolution per phase: oneDNN has no fast kernel for a channel
            # multiplier of sh*sw
            phase = F.conv2d(
                grad_out, kernel[p :: sh * sw].contiguous(), padding=(mh - 1, mw - 1), groups=groups
            )
        else:
            phase = z[:, :, p]
        g[:, :, t0::sh, s0::sw][:, :, :got_rows, :got_cols] = phase[
            :, :, q0 : q0 + got_rows, r0 : r0 + got_cols
        ]
    return g


def _conv(x, weight, bias, stride, padding, groups, clamp):
    """conv2d of x padded by (top, bottom, left, right), then clamp(lo, hi) when ``clamp`` is given.

    On the CPU the clamp (ReLU, ReLU6) runs inside oneDNN's convolution as a
    post-op, the way PyTorch's compiler fuses it: the activation pass, a
    read and a write of the whole map, disappears.
    """
    top, bottom, left, right = padding
    if (top, left) != (bottom, right):
        x, top, left = F.pad(x, (left, right, top, bottom)), 0, 0
    if clamp is not None and _pointwise_available(x, weight):
        lo, hi = clamp
        attr, scalars = ("relu", []) if hi == float("inf") and lo == 0 else ("hardtanh", [lo, hi])
        return torch.ops.mkldnn._convolution_pointwise(
            x, weight, bias, [top, left], list(stride), [1, 1], groups, attr, scalars, ""
        )
    y = F.conv2d(x, weight, bias, stride, (top, left), 1, groups)
    return y if clamp is None else y.clamp(*clamp)


_POINTWISE = {}


def _pointwise_available(x, weight):
    if (
        x.device.type != "cpu"
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
        or not torch.backends.mkldnn.is_available()
    ):
        return False
    if "ok" not in _POINTWISE:
        try:  # a private operator (PyTorch's compiler uses it): check once that it runs and agrees
            xs, ws = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
            got = torch.ops.mkldnn._convolution_pointwise(
                xs, ws, None, [1, 1], [1, 1], [1, 1], 1, "hardtanh", [0.0, 6.0], ""
            )
            _POINTWISE["ok"] = bool(
                torch.allclose(got, F.conv2d(xs, ws, None, 1, 1).clamp(0, 6), atol=1e-5)
            )
        except (AttributeError, RuntimeError):
            _POINTWISE["ok"] = False
    return _POINTWISE["ok"]


class _FrozenConv2d(torch.autograd.Function):
    """A frozen convolution, optionally followed by a clamp, differentiated with respect to its
    input only.

    kernel: the phase kernel, for the input gradient as forward convolutions;
    None to use ATen's own backward (which needs the input saved), or, for a 1 x 1
    convolution whose output gradient is constant over space, the broadcast product.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, groups, kernel, clamp):
        y = _conv(x, weight, bias, stride, padding, groups, clamp)
        ctx.save_for_backward(
            weight, kernel, y if clamp is not None else None, x if kernel is None else None
        )
        ctx.conf = (stride, padding, groups, tuple(x.shape), clamp)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        weight, kernel, y, x = ctx.saved_tensors
        stride, padding, groups, shape, clamp = ctx.conf
        if not ctx.needs_input_grad[0]:
            return (None,) * 8
        if clamp is not None:
            # the clamp passes the gradient where lo < y < hi, that is, where
            # lo < (conv output) < hi
            grad_out = torch.ops.aten.hardtanh_backward(grad_out, y, clamp[0], clamp[1])
        if kernel is not None:
            grad = input_gradient(grad_out, kernel, stride, padding, groups, shape)
        elif _pointwise(weight, stride, padding, groups) and _constant_over_space(grad_out):
            grad = (
                torch.mm(grad_out[:, :, 0, 0], weight.flatten(1))
                .view(shape[0], shape[1], 1, 1)
                .expand(shape)
            )
        else:
            top, _, left, _ = padding
            grad = torch.ops.aten.convolution_backward(
                grad_out,
                x,
                weight,
                None,
                list(stride),
                [top, left],
                [1, 1],
                False,
                [0, 0],
                groups,
                [True, False, False],
            )[0]
        return grad, None, None, None, None, None, None, None


def _pointwise(weight, stride, padding, groups):
    return (
        weight.shape[-2:] == (1, 1) and tuple(stride) == (1, 1) and not any(padding) and groups == 1
    )


def _constant_over_space(t):
    """A broadcast along both spatial axes (stride 0), as ``expand`` makes it."""
    return t.dim() == 4 and t.stride(2) == 0 and t.stride(3) == 0


def frozen_conv2d(
    x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), groups=1, kernel=None, clamp=None
):
    """conv2d of x padded by (top, bottom, left, right), then clamp(lo, hi) if given, with the input
    gradient computed as above.
    """
    stride = tuple(stride)
    if kernel is None:
        kernel = _phase_kernel(weight, groups, stride)
    return _FrozenConv2d.apply(x, weight, bias, stride, tuple(padding), groups, kernel, clamp)


def _eligible(conv):
    """A frozen convolution this module knows how to run."""
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
    )


def _forward_convolutions_pay(conv):
    # Measured on 2 CPU cores, forward + backward: where oneDNN's own backward is as fast
    # (dense and pointwise convolutions) or faster (stride-2 depthwise, whose phases write
    # the image in four strided passes), keep it.
    return (conv.groups > 1 and tuple(conv.stride) == (1, 1)) or conv.in_channels <= 4


def _static_same_forwards():
    try:
        from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding
    except ImportError:  # the embedded model's package is optional for other models
        return ()
    return (Conv2dStaticSamePadding.forward,)


_STATIC_SAME_FORWARDS = _static_same_forwards()


def _fast_forward(self, x):
    pad = getattr(self, "static_padding", None)
    if (
        pad is not None
    ):  # an identity (``_eligible``), called so that hooks on its address still fire
        x = pad(x)
    clamp = self._fused_clamp
    ph, pw = self.padding
    padding = (ph, ph, pw, pw)
    # cuDNN's backward kernels are fast: on a GPU the convolution keeps them
    if (
        not (torch.is_grad_enabled() and x.requires_grad)
        or x.device.type != "cpu"
        or self.weight.requires_grad
    ):
        return _conv(x, self.weight, self.bias, tuple(self.stride), padding, self.groups, clamp)
    kernel = None
    if self._phase_kernels:
        key = (self.weight.device, self.weight.dtype, self.weight._version)
        if self._frozen_kernel[0] != key:
            with torch.no_grad():
                self._frozen_kernel = (
                    key,
                    _phase_kernel(self.weight, self.groups, tuple(self.stride)),
                )
        kernel = self._frozen_kernel[1]
    return _FrozenConv2d.apply(
        x, self.weight, self.bias, tuple(self.stride), padding, self.groups, kernel, clamp
    )


def speed_up_convolutions(module, clamps=None):
    """Route frozen convolutions of ``module`` (in place) through ``_FrozenConv2d``.

    A convolution is routed when its input gradient pays to compute with
    forward convolutions, when it is a 1 x 1 convolution (for the broadcast
    gradient above), or when ``clamps`` (module -> (lo, hi)) fuses an
    activation into it; the caller then removes that activation from the
    module tree. Values, module paths and hooks are otherwise unchanged.
    Returns the number of convolutions routed.
    """
    clamps = clamps or {}
    count = 0
    for m in module.modules():
        if not _eligible(m):
            continue
        phase = _forward_convolutions_pay(m)
        if (
            not phase
            and m not in clamps
            and not _pointwise(m.weight, m.stride, (*m.padding, *m.padding), m.groups)
        ):
            continue
        m._phase_kernels = phase
        m._fused_clamp = clamps.get(m)
        m._frozen_kernel = (None, None)
        m.forward = types.MethodType(_fast_forward, m)
        count += 1
    return count
