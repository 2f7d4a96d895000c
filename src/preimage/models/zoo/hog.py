"""UoCTTI HOG as a differentiable CNN, matched to VLFeat's ``vl_hog`` (Mahendran & Vedaldi §4.1).

HOG (cell size c, K orientations)
  gradient     central differences [-1 0 1] of every colour channel (a 3x3
               convolution); per pixel the channel with the largest squared
               gradient (the first on ties, as VLFeat) gives (gx, gy). VLFeat
               has no gradient on the one-pixel image border: it is zero there.
  orientations gating into 2K directed orientation maps, channel d holding
               |g| where the gradient falls into bin d. As VLFeat 0.9.21 does,
               the raw gradient is projected on the K directions (cos kπ/K,
               sin kπ/K) in float arithmetic; the best orientation is the first
               largest |projection| (VLFeat's strict '>' scan, so ties resolve
               alike), directed bin k or k + K by the projection's sign. Hard:
               |g| goes to that bin; the gate is a constant, the derivative
               flows through |g|. Bilinear: the best bin gets |g| (1 - w), the
               second best (the first largest of the other projections) |g| w,
               w = acosf(min(projection / |g|, 1)) / (π/K) in VLFeat's mixed
               float/double arithmetic. Its derivative is taken through the
               equal, well-conditioned w = |angle(best direction, g)| / (π/K)
               (acos has an infinite slope when g lies on a bin direction).
               The gate is a scatter of |g| (times the weights) into zeros.
  cells        bilinear spatial pooling as a strided linear filter: a 2c x 2c
               separable triangular kernel (two depthwise 1-D filters), stride
               c, on the map zero-padded by c//2 at the top/left, so that pixel
               x adds 1 - |(x + 0.5)/c - 0.5 - i| of itself to cell i.
               H' = (H + c//2) // c, W' likewise (VLFeat's cell count).
  blocks       UoCTTI normalisation. The squared norm of each cell's undirected
               histogram (directed bins d and d+K added), padded by replication
               of the border cells (VLFeat clamps neighbour indices), summed
               over 2x2 blocks by a 2x2 box filter, gives one factor
               1/sqrt(energy + 1e-4) per block; a 2x2 one-hot filter bank
               hands each cell the factors of its four blocks (upper-left,
               upper-right, lower-left, lower-right). Each factor scales the
               directed and undirected histograms, which are clamped at 0.2
               and averaged over the four blocks with weight 1/2 (the
               projection of the 4 x 27 Dalal-Triggs-style stack down to 27).
               The 4 texture components are, per block, the sum over the K
               clamped undirected values times 1/sqrt(18) (VLFeat's constant,
               whatever K). Components: [2K directed, K undirected, 4 texture].
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import PreimageError
from .vlfeat import CLAMP, HOG_EPSILON, depthwise, exact, like, safe_sqrt


class HogGradient(nn.Module):
    """N x C x H x W image -> N x 2 x H x W (gx, gy) of the strongest channel;
    zero on the border.
    """

    def __init__(self):
        super().__init__()
        k = torch.zeros(2, 1, 3, 3)
        k[0, 0, 1, 0], k[0, 0, 1, 2] = -1.0, 1.0  # x[., x+1] - x[., x-1]
        k[1, 0, 0, 1], k[1, 0, 2, 1] = -1.0, 1.0  # x[y+1, .] - x[y-1, .]
        self.register_buffer("weight", k)

    def forward(self, x):
        c, (h, w) = x.shape[1], x.shape[-2:]
        g = F.conv2d(
            x, like(self.weight, x).repeat(c, 1, 1, 1), padding=1, groups=c
        )  # (gx, gy) per channel
        gx, gy = g[:, 0::2], g[:, 1::2]
        best = (gx * gx + gy * gy).argmax(
            1, keepdim=True
        )  # the first maximum, as VLFeat's strict '>' scan
        inside = torch.zeros(1, 1, h, w, dtype=x.dtype, device=x.device)
        inside[..., 1:-1, 1:-1] = 1
        return torch.cat([torch.gather(gx, 1, best), torch.gather(gy, 1, best)], 1) * inside


class HogOrientations(nn.Module):
    """(gx, gy) -> N x 2K x H x W: |g| gated into 2K directed orientation bins (hard or bilinear).

    Computed with the bins as the last axis (N x H x W x 2K, a channels-last N x 2K x H x W),
    one pass per stage, the layout the cell filters read fastest.
    """

    def __init__(self, num_orientations=9, bilinear=False):
        super().__init__()
        k = int(num_orientations)
        self.num_orientations, self.bilinear = k, bool(bilinear)
        # VLFeat: float(cos(o pi / K)), float(sin(o pi / K)) computed in double
        angles = [o * math.pi / k for o in range(k)]
        ox = torch.tensor([math.cos(a) for a in angles], dtype=torch.float32)
        oy = torch.tensor([math.sin(a) for a in angles], dtype=torch.float32)
        self.register_buffer("ox", ox)
        self.register_buffer("oy", oy)
        # directed bin d points along (cos d pi / K, sin d pi / K)
        self.register_buffer("dir_x", torch.cat([ox, -ox]))
        self.register_buffer("dir_y", torch.cat([oy, -oy]))

    def forward(self, g):
        k = self.num_orientations
        g = g.permute(0, 2, 3, 1)  # N x H x W x 2
        gx, gy = g[..., 0:1], g[..., 1:2]
        grad = safe_sqrt(gx * gx + gy * gy)
        with (
            torch.no_grad()
        ):  # the assignment, in VLFeat's arithmetic so that ties and roundings agree
            # projections of the raw gradient on the K directions (float multiply, multiply, add)
            score = gx * like(self.ox, g) + gy * like(self.oy, g)  # N x H x W x K
            # VLFeat scans k = 0..K-1 with candidate |score_k| (bin k, or k + K if score_k < 0) and
            # keeps the first strictly larger one: the first maximum. The second best (bilinear) is
            # the first maximum of the others, as VLFeat's two-slot scan leaves it.
            magnitude = score.abs()
            best = magnitude.argmax(-1, keepdim=True)
            bin0 = best + k * (torch.gather(score, -1, best) < 0)
            if self.bilinear:
                if k > 1:
                    second = magnitude.scatter(-1, best, float("-inf")).argmax(-1, keepdim=True)
                    bin1 = second + k * (torch.gather(score, -1, second) < 0)
                # acosf(min(score / max(|g|, 1e-10), 1)) / (pi / K), the division in double
                cosine = torch.gather(magnitude, -1, best).double() / torch.clamp(
                    grad.double(), min=1e-10
                )
                angle = exact(torch.acos, torch.clamp(cosine, max=1.0).to(g.dtype))
                w1 = (angle.double() / (math.pi / k)).to(g.dtype)
        # one-hot gating as a scatter into zeros: one write (and, backward, one read) per pixel and
        # bin used
        out = torch.zeros(*grad.shape[:-1], 2 * k, dtype=g.dtype, device=g.device)
        if not self.bilinear:
            return out.scatter_(-1, bin0, grad).permute(0, 3, 1, 2)
        # derivative of w1 through the angle between the best bin's direction and g (same value)
        dx, dy = like(self.dir_x, g)[bin0], like(self.dir_y, g)[bin0]
        moving = grad > 0
        ax = torch.where(moving, dx * gx + dy * gy, torch.ones_like(gx))
        ay = torch.where(moving, dx * gy - dy * gx, torch.zeros_like(gy))
        smooth = torch.atan2(ay, ax).abs() / (math.pi / k)
        w1 = w1 + (smooth - smooth.detach())
        out.scatter_(-1, bin0, grad * (1 - w1))
        if k > 1:  # with one orientation VLFeat has no second bin
            out.scatter_(-1, bin1, grad * w1)
        return out.permute(0, 3, 1, 2)


class HogCells(nn.Module):
    """N x 2K x H x W -> N x 2K x H' x W': bilinear pooling into c x c cells
    (one strided filter).
    """

    def __init__(self, cell_size=8):
        super().__init__()
        c = self.cell_size = int(cell_size)
        # pixel x = i c - c//2 + t adds 1 - |(x + 0.5)/c - 0.5 - i| to cell i, t = 0..2c-1
        k = torch.from_numpy(_hog_kernel(c))
        self.register_buffer("weight_y", k.view(1, 1, -1, 1).clone())
        self.register_buffer("weight_x", k.view(1, 1, 1, -1).clone())

    def forward(self, h):
        c = self.cell_size
        height, width = h.shape[-2:]
        out_h, out_w = (height + c // 2) // c, (width + c // 2) // c
        # zero padding by c // 2 + c inside the filters: one spare cell on each side, cropped below
        pad = c // 2 + c
        x = depthwise(h, self.weight_y, stride=(c, 1), padding=(pad, 0))
        x = depthwise(x, self.weight_x, stride=(1, c), padding=(0, pad))
        return F.pad(x, (-1, out_w + 1 - x.shape[-1], -1, out_h + 1 - x.shape[-2]))


def _hog_kernel(c):
    t = np.arange(2 * c, dtype=np.float64)
    hx = (
        (t - c // 2) + 0.5
    ) / c - 0.5  # position in cell units relative to the cell (VLFeat's hx - i)
    return np.maximum(0.0, 1.0 - np.abs(hx)).astype(np.float32)


class UocttiBlocks(nn.Module):
    """N x 2K x H' x W' cell histograms -> N x (3K + 4) x H' x W' UoCTTI descriptors."""

    def __init__(self, num_orientations=9):
        super().__init__()
        self.num_orientations = int(num_orientations)
        self.register_buffer("box", torch.ones(1, 1, 2, 2))
        pick = torch.zeros(
            4, 1, 2, 2
        )  # the factors of the blocks above-left, above-right, below-left, below-right
        for b, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            pick[b, 0, dy, dx] = 1.0
        self.register_buffer("pick", pick)

    def forward(self, h):
        k = self.num_orientations
        directed = h
        undirected = h[:, :k] + h[:, k:]
        energy = (undirected * undirected).sum(1, keepdim=True)  # N x 1 x H' x W'
        energy = F.pad(energy, (1, 1, 1, 1), mode="replicate")
        blocks = F.conv2d(energy, like(self.box, h))  # N x 1 x (H'+1) x (W'+1): 2x2 block energies
        factors = torch.rsqrt(blocks + HOG_EPSILON)
        factors = F.conv2d(factors, like(self.pick, h))  # N x 4 x H' x W'
        out_directed, out_undirected, texture = 0, 0, []
        for b in range(4):
            scaled = factors[:, b : b + 1] * directed
            und = torch.clamp(scaled[:, :k] + scaled[:, k:], max=CLAMP)
            out_directed = out_directed + torch.clamp(scaled, max=CLAMP)
            out_undirected = out_undirected + und
            texture.append(und.sum(1, keepdim=True))
        return torch.cat(
            [
                0.5 * out_directed,
                0.5 * out_undirected,
                torch.cat(texture, 1) * (1.0 / math.sqrt(18.0)),
            ],
            1,
        )


class HOG(nn.Module):
    """VLFeat's UoCTTI HOG as a CNN: gradient -> orientations -> cells -> blocks -> descriptor."""

    def __init__(self, cell_size=8, num_orientations=9, bilinear=False):
        super().__init__()
        if int(cell_size) < 1 or int(num_orientations) < 1:
            raise PreimageError(
                f"bad HOG options cell_size={cell_size!r}, num_orientations={num_orientations!r};"
                " both must be positive integers"
            )
        self.cell_size, self.num_orientations, self.bilinear = (
            int(cell_size),
            int(num_orientations),
            bool(bilinear),
        )
        self.gradient = HogGradient()
        self.orientations = HogOrientations(num_orientations, bilinear)
        self.cells = HogCells(cell_size)
        self.blocks = UocttiBlocks(num_orientations)
        self.descriptor = nn.Identity()

    @property
    def dimension(self):
        return 3 * self.num_orientations + 4

    def extra_repr(self):
        return (
            f"cell_size={self.cell_size}, num_orientations={self.num_orientations},"
            f" bilinear={self.bilinear}"
        )

    def forward(self, x):
        return self.descriptor(self.blocks(self.cells(self.orientations(self.gradient(x)))))
