"""A stride-1 correlation as a transposed convolution between space-to-depth blocks.

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
    columns, as a transposed convolution between block x block space-to-depth blocks.

    oneDNN's kernels are slow for a convolution with a large kernel into few output channels (the
    input gradient of a grey or RGB image's first layer): for one channel from 16 through 13 x 13
    at 40 px, several times slower than the same correlation between 4 x 4 blocks, which has b²
    times the channels on both sides and a 4 x 4 kernel (``benchmarks/bench_blocked_conv.py``).
    The transposed convolution between the blocks of the unpadded input is the full correlation,
    with no padding to build or read (a forward convolution between padded blocks reads 71 %
    zeros for a first layer at 40 px); oneDNN runs it about 1.8x faster than that form.
    """
    n, c, h, w = x.shape
    o = kernel.shape[0]
    kb = _blocked_kernel(kernel, block)
    u_count, v_count = kb.shape[-2:]
    # the full correlation reads x as if padded by (U - 1) blocks in front: where the asked-for
    # padding is less, the result starts that many rows and columns further in
    r0, c0 = (u_count - 1) * block - padding[0], (v_count - 1) * block - padding[1]
    if r0 < 0 or c0 < 0:
        x = F.pad(x, (max(0, -c0), 0, max(0, -r0), 0))
        r0, c0, h, w = max(0, r0), max(0, c0), x.shape[2], x.shape[3]
    hb = max(-(-h // block), -(-(r0 + out_size[0]) // block) - u_count + 1)
    wb = max(-(-w // block), -(-(c0 + out_size[1]) // block) - v_count + 1)
    x = F.pad(x, (0, wb * block - w, 0, hb * block - h))
    blocks = x.reshape(n, c, hb, block, wb, block).permute(0, 1, 3, 5, 2, 4)
    blocks = blocks.reshape(n, c * block * block, hb, wb)
    y = F.conv_transpose2d(blocks, kb.flip(-2, -1).transpose(0, 1).contiguous())
    rows, cols = y.shape[-2:]
    y = y.reshape(n, o, block, block, rows, cols).permute(0, 1, 4, 2, 5, 3)
    y = y.reshape(n, o, rows * block, cols * block)
    return y[:, :, r0 : r0 + out_size[0], c0 : c0 + out_size[1]]


def pays(grad_out, kernel, groups):
    """Whether the blocked form is the faster here: few output channels, many input channels, a
    large kernel, on the CPU (cuDNN's kernels are fast for every shape)."""
    o, c, kh, kw = kernel.shape
    return grad_out.device.type == "cpu" and groups == 1 and o <= 4 and c >= 8 and kh * kw >= 49
