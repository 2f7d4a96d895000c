"""A stride-1 correlation as a convolution between space-to-depth blocks.

oneDNN's kernels are slow for a convolution with a large kernel into few output channels, which
is what the input gradient of a grey or RGB image's first layer is (``frozen_conv`` computes input
gradients as forward convolutions). Cut the image into b x b blocks, each block's pixels a channel:
the same correlation then has b² times the channels on both sides and a kernel about b times
smaller, shapes oneDNN runs fast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLOCK = 4  # the side of the blocks (2 and 8 measured slower)


def _blocked_kernel(kernel, block):
    """(O, C, kh, kw) -> (O*b*b, C*b*b, U, V): the kernel of the same correlation between
    space-to-depth blocks. Output channel (o, a, e) (the pixel at row a, column e of a block)
    reads input channel (c, p, q) at block offset (u, v) through the tap (b*u + p - a, b*v + q - e),
    zero where that tap falls off the kernel."""
    o, c, kh, kw = kernel.shape
    u_count, v_count = (block + kh - 2) // block + 1, (block + kw - 2) // block + 1
    padded = F.pad(kernel, (block - 1, block * v_count - kw, block - 1, block * u_count - kh))
    r = torch.arange(block, device=kernel.device)
    # rows[a, p, u] = b*u + p - a, shifted by the b - 1 rows of zeros in front
    rows = block * torch.arange(u_count, device=kernel.device) + r[None, :, None] - r[:, None, None]
    cols = block * torch.arange(v_count, device=kernel.device) + r[None, :, None] - r[:, None, None]
    rows, cols = rows[..., None, None, None] + block - 1, cols[None, None, None] + block - 1
    taps = padded[:, :, rows, cols]  # (O, C, a, p, u, e, q, v)
    taps = taps.permute(0, 2, 5, 1, 3, 6, 4, 7)  # (O, a, e, C, p, q, u, v)
    return taps.reshape(o * block * block, c * block * block, u_count, v_count).contiguous()


def blocked_conv2d(x, kernel, padding, out_size, block=BLOCK):
    """conv2d(x, kernel, padding=padding) (stride 1, one group), its first ``out_size`` rows and
    columns, as a convolution between block x block space-to-depth blocks.

    oneDNN's kernels are slow for a convolution with a large kernel into few output channels (the
    input gradient of a grey or RGB image's first layer): for one channel from 16 through 13 x 13
    at 40 px, about three times slower than the same correlation run between 4 x 4 blocks, which
    has b² times the output channels and a 4 x 4 kernel (``benchmarks/bench_blocked_conv.py``).
    """
    n, c, h, w = x.shape
    o = kernel.shape[0]
    kb = _blocked_kernel(kernel, block)
    u_count, v_count = kb.shape[-2:]
    rows, cols = -(-out_size[0] // block), -(-out_size[1] // block)
    ph, pw = padding
    need_h, need_w = (rows + u_count - 1) * block, (cols + v_count - 1) * block
    hb, wb = need_h // block, need_w // block
    # The blocks in channels-last order (n, hb, wb, c, a, e): oneDNN runs this convolution of many
    # channels over a small map 2.4x faster than in channels-first order.
    if all(v % block == 0 for v in (ph, pw, h, w)) and ph + h <= need_h and pw + w <= need_w:
        # the blocks written straight from the input, zeros only on the border blocks
        blocks = x.new_empty(n, hb, wb, c, block, block)
        r0, r1, c0, c1 = ph // block, (ph + h) // block, pw // block, (pw + w) // block
        for border in (
            blocks[:, :r0],
            blocks[:, r1:],
            blocks[:, r0:r1, :c0],
            blocks[:, r0:r1, c1:],
        ):
            border.zero_()
        window = blocks[:, r0:r1, c0:c1].permute(0, 3, 1, 4, 2, 5)  # (n, c, rows, a, cols, e)
        window.copy_(x.reshape(n, c, h // block, block, w // block, block))
    else:
        x = F.pad(x, (pw, need_w - w - pw, ph, need_h - h - ph))  # crops where it needs less
        blocks = x.reshape(n, c, hb, block, wb, block).permute(0, 2, 4, 1, 3, 5).contiguous()
    y = F.conv2d(blocks.reshape(n, hb, wb, c * block * block).permute(0, 3, 1, 2), kb)
    y = y.reshape(n, o, block, block, rows, cols).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(n, o, rows * block, cols * block)[:, :, : out_size[0], : out_size[1]]


def pays(grad_out, kernel, groups):
    """Whether the blocked form is the faster here: few output channels, many input channels, a
    large kernel, on the CPU (cuDNN's kernels are fast for every shape)."""
    o, c, kh, kw = kernel.shape
    return grad_out.device.type == "cpu" and groups == 1 and o <= 4 and c >= 8 and kh * kw >= 49
