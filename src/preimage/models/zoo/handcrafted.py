"""HOG and dense SIFT as differentiable CNNs (Mahendran & Vedaldi §4.1).

Three models, numerically matched to VLFeat 0.9.21 (``vl_hog``, ``vl_dsift``
through cyvlfeat) and built from convolutions and pointwise operations, so
autograd gives their derivatives with respect to the image:

  hog    UoCTTI HOG (``VlHogVariantUoctti``), hard orientation assignment:
         2K directed + K undirected orientations + 4 texture components per
         cell (31 for K = 9).
  hogb   the same with bilinear orientation assignment (VLFeat's
         ``bilinearOrientations``; cyvlfeat ``bilinear_interpolation=True``).
  dsift  dense SIFT (``vl_dsift``) of the grey image, float descriptors.

Input: N x 3 x H x W holding the values of the H x W x 3 array VLFeat would
get (registered models use 0-255 with the ImageNet mean colour removed; HOG
and SIFT see only differences, so the mean changes nothing). Output:
N x D x H' x W'. ``out.permute(0, 2, 3, 1)`` is cyvlfeat's ``hog`` array
(H' x W' x D); for dsift, ``out.permute(0, 2, 3, 1).reshape(N, -1, D)`` is
cyvlfeat's ``descriptors`` (frames row by row, top to bottom, each left to
right; components in VLFeat's order, orientation fastest, then x bin, then y
bin). Every model ends in the layer ``descriptor``; the stages before it are
layers too.

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

DSIFT (bin size b, step s, geometry NY x NX x NT = 4 x 4 x 8)
  grey         0.299 R + 0.587 G + 0.114 B (ITU-R 601); VLFeat gets this array.
  gradient     [-1/2 0 1/2] central differences on the grey image padded by
               replication, times 2 on the image border: VLFeat's one-sided
               differences there.
  orientations VLFeat's angle: its fast atan2 approximation (a cubic in
               (x - |y|)/(x + |y|), max error 0.0061 rad), reproduced bit for
               bit and differentiated as it is; the angle in [0, 2π) times
               NT/2π is split bilinearly between its two neighbouring bins
               (scattered into zeros), magnitude |g| by VLFeat's fast square
               root (below).
  bins         spatial binning by a separable triangular filter of half-width
               b (the "flat window": unit-height triangle, VLFeat's
               ``vl_imconvcoltri``) on the replicate-padded maps, evaluated
               with stride gcd(b, s), the only positions any bin reads.
               fast=False: VLFeat's Gaussian-windowed kernels instead, one per
               y bin then one per x bin (NY + NX separable filters).
  blocks       the block-forming filter bank: a dilated one-hot filter per
               descriptor component picks the bin value at offset
               (bin_y b, bin_x b) from each frame's top-left bin; in fast mode
               the filter value is the mean of VLFeat's Gaussian window
               (window size 2 bins) over that bin, as VLFeat reweights bins.
               Frames: the top-left bin at (q s, p s), p, q >= 0, as many as
               fit in the image (cyvlfeat's default bounds: the whole image).
  normalize    L2 normalisation (norm + float epsilon), clamping at 0.2,
               L2 normalisation again, then min(512 x, 255): cyvlfeat's float
               descriptors (as the MATLAB ``vl_dsift`` 'FloatDescriptors').
               Gradient moduli and norms use VLFeat's vl_fast_sqrt_f (a
               bit-trick inverse square root and two Newton steps, relative
               error up to 5e-6), reproduced bit for bit on float32 tensors;
               its derivative is the exact square root's.

Default step: s = b = 8, so that descriptors tile the image on the same
8-pixel grid as HOG cells (Mahendran & Vedaldi: "the same cell size and
sampling"); each descriptor spans 4 x 4 bins (a 25 x 25 pixel frame between
bin centres) and is centred at (q s + 1.5 b, p s + 1.5 b).

Float32 arithmetic follows VLFeat's where it decides something discrete (bin
choices and ties) or is ill-conditioned (acos near 1): projections are
computed in the same order, and sqrt and acos are evaluated in double and
rounded, because PyTorch's vectorised float32 sqrt is off by one ulp on about
a fifth of inputs. What is not reproduced: summation order (VLFeat
accumulates pixels one by one, and normalises HOG blocks in double), and the
rounding of VLFeat's running-sum implementation of the flat-window filter.
Measured worst relative L2 errors on the sample photographs (64-130 px, all
options tried): about 1e-7 for hog and hogb (float32 rounding), about 2e-6
for dsift fast (the running sums; 1e-7 with the Gaussian window). See
tests/test_handcrafted.py.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import PreimageError
from ..base import VisionModel
from ..registry import register

# ImageNet's mean colour in 0-255 units: removed by preprocessing (HOG and SIFT only see
# differences)
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma
HOG_EPSILON = 1e-4  # UoCTTI block-norm regulariser (VLFeat)
CLAMP = 0.2
FLOAT_EPSILON = float(np.finfo(np.float32).eps)  # VL_EPSILON_F
INPUT_SIZE = 224
INVERSION_C = 20.0  # §5.1 inverts HOG, HOGb and DSIFT with C = 20 and no jitter


def _exact(fn, x):
    """fn evaluated in double precision and rounded back: correctly rounded float32 results, as C's
    sqrtf and acosf (PyTorch's vectorised float32 sqrt is off by one ulp on about a fifth of inputs,
    enough to move HOG's bin scores across VLFeat's ties and thresholds)."""
    return fn(x.double()).to(x.dtype) if x.dtype == torch.float32 else fn(x)


def _safe_sqrt(x):
    """Correctly rounded sqrt with a zero (not NaN) derivative where x == 0: flat image regions have
    zero gradients.
    """
    positive = x > 0
    return torch.where(
        positive,
        _exact(torch.sqrt, torch.where(positive, x, torch.ones_like(x))),
        torch.zeros_like(x),
    )


def _like(buffer, x):
    return buffer.to(device=x.device, dtype=x.dtype)


def _depthwise(x, weight, **kwargs):
    """The same 2-D filter applied to every channel of x (a depthwise convolution)."""
    c = x.shape[1]
    return F.conv2d(
        x.contiguous(memory_format=torch.channels_last),
        _like(weight, x).expand(c, -1, -1, -1).contiguous(),
        groups=c,
        **kwargs,
    )


# ------------------------------------------------------------------------------------------- HOG


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
            x, _like(self.weight, x).repeat(c, 1, 1, 1), padding=1, groups=c
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
        grad = _safe_sqrt(gx * gx + gy * gy)
        with (
            torch.no_grad()
        ):  # the assignment, in VLFeat's arithmetic so that ties and roundings agree
            # projections of the raw gradient on the K directions (float multiply, multiply, add)
            score = gx * _like(self.ox, g) + gy * _like(self.oy, g)  # N x H x W x K
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
                angle = _exact(torch.acos, torch.clamp(cosine, max=1.0).to(g.dtype))
                w1 = (angle.double() / (math.pi / k)).to(g.dtype)
        # one-hot gating as a scatter into zeros: one write (and, backward, one read) per pixel and
        # bin used
        out = torch.zeros(*grad.shape[:-1], 2 * k, dtype=g.dtype, device=g.device)
        if not self.bilinear:
            return out.scatter_(-1, bin0, grad).permute(0, 3, 1, 2)
        # derivative of w1 through the angle between the best bin's direction and g (same value)
        dx, dy = _like(self.dir_x, g)[bin0], _like(self.dir_y, g)[bin0]
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
        x = _depthwise(h, self.weight_y, stride=(c, 1), padding=(pad, 0))
        x = _depthwise(x, self.weight_x, stride=(1, c), padding=(0, pad))
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
        blocks = F.conv2d(energy, _like(self.box, h))  # N x 1 x (H'+1) x (W'+1): 2x2 block energies
        factors = torch.rsqrt(blocks + HOG_EPSILON)
        factors = F.conv2d(factors, _like(self.pick, h))  # N x 4 x H' x W'
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


# ----------------------------------------------------------------------------------------- DSIFT


class Grey(nn.Module):
    """N x 3 x H x W -> N x 1 x H x W: 0.299 R + 0.587 G + 0.114 B."""

    def __init__(self, weights=GREY_WEIGHTS):
        super().__init__()
        self.register_buffer("weight", torch.tensor(weights, dtype=torch.float32))

    def forward(self, x):
        w = _like(self.weight, x)
        return x[:, 0:1] * w[0] + x[:, 1:2] * w[1] + x[:, 2:3] * w[2]


class SiftGradient(nn.Module):
    """N x 1 x H x W grey -> N x 2 x H x W (gx, gy): central differences,
    one-sided on the border.
    """

    def __init__(self):
        super().__init__()
        k = torch.zeros(2, 1, 3, 3)
        k[0, 0, 1, 0], k[0, 0, 1, 2] = -0.5, 0.5
        k[1, 0, 0, 1], k[1, 0, 2, 1] = -0.5, 0.5
        self.register_buffer("weight", k)

    def forward(self, grey):
        h, w = grey.shape[-2:]
        g = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), _like(self.weight, grey))
        border = torch.ones(1, 2, h, w, dtype=grey.dtype, device=grey.device)
        border[:, 0, :, 0] = border[:, 0, :, -1] = (
            2  # replicate padding halves VLFeat's one-sided differences
        )
        border[:, 1, 0, :] = border[:, 1, -1, :] = 2
        return g * border


def vl_fast_sqrt(x):
    """VLFeat's vl_fast_sqrt_f in value (0 below 1e-8, else x times a bit-trick inverse square root
    refined by two Newton steps, relative error up to 5e-6), with the derivative of the exact sqrt.

    Reproduced bit for bit for float32 tensors; other dtypes get the exact sqrt.
    """
    exact = _safe_sqrt(x)
    if x.dtype != torch.float32:
        return exact
    with torch.no_grad():
        half = 0.5 * x
        y = (0x5F3759DF - (x.contiguous().view(torch.int32) >> 1)).view(torch.float32)
        y = y * (1.5 - half * y * y)
        y = y * (1.5 - half * y * y)
        fast = torch.where(x <= float(np.float32(1e-8)), torch.zeros_like(x), x * y)
    return fast + (exact - exact.detach())


def fast_atan2(y, x):
    """VLFeat's vl_fast_atan2_f, elementwise in float arithmetic: the same values, and its own
    derivative.

    VLFeat: a = |y| + eps; r = (x - a)/(x + a), angle = pi/4 (x >= 0) or r = (x + a)/(a - x),
    angle = 3pi/4 (x < 0); angle += (0.1821 r^2 - 0.9675) r; negated when y < 0. Written as
    r = sx (|x| - a)/(|x| + a), bit for bit the same, so that no branch divides by zero (a NaN
    in the branch torch.where discards still poisons the gradient). |x| and |y| are x and y
    times their (constant) signs, so the derivative at x = 0 or y = 0 is the one-sided limit,
    not the zero that abs() would give.
    """
    sy = torch.where(y < 0, -torch.ones_like(y), torch.ones_like(y))
    sx = torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))
    a = y * sy + FLOAT_EPSILON
    u = x * sx
    r = sx * ((u - a) / (u + a))
    base = torch.where(
        x < 0,
        torch.full_like(x, float(np.float32(3 * math.pi / 4))),
        torch.full_like(x, float(np.float32(math.pi / 4))),
    )
    c3, c1 = float(np.float32(0.1821)), float(np.float32(0.9675))
    return (base + (c3 * r * r - c1) * r) * sy


class SiftOrientations(nn.Module):
    """(gx, gy) -> N x NT x H x W: |g| split bilinearly between the two nearest of
    NT orientations.
    """

    def __init__(self, num_orientations=8):
        super().__init__()
        self.num_orientations = int(num_orientations)

    def forward(self, g):
        t = self.num_orientations
        g = g.permute(0, 2, 3, 1)  # N x H x W x 2: the orientation maps come out channels-last
        gx, gy = g[..., 0:1], g[..., 1:2]
        angle = fast_atan2(gy, gx)
        angle = torch.where(
            angle < 0, angle + float(np.float32(2 * math.pi)), angle
        )  # vl_mod_2pi_f
        nt = (angle.double() * (t / (2 * math.pi))).to(
            g.dtype
        )  # float angle times a double constant, as VLFeat
        lower = torch.floor(nt).detach()
        frac = nt - lower
        mod = vl_fast_sqrt(gx * gx + gy * gy)
        lower = lower.long()
        if t == 1:  # VLFeat writes both neighbours into the one bin, the second write winning
            return (frac * mod).permute(0, 3, 1, 2)
        out = torch.zeros(*mod.shape[:-1], t, dtype=g.dtype, device=g.device)
        out.scatter_(-1, lower % t, (1 - frac) * mod).scatter_(-1, (lower + 1) % t, frac * mod)
        return out.permute(0, 3, 1, 2)  # N x T x H x W, channels-last in memory


def _window_mean(bin_size, num_bins, index, window_size):
    """VLFeat's _vl_dsift_get_bin_window_mean (float arithmetic)."""
    f32 = np.float32
    delta = f32(bin_size) * (f32(index) - f32(0.5) * f32(num_bins - 1))
    sigma = f32(bin_size) * f32(window_size)
    acc = f32(0.0)
    for x in range(-bin_size + 1, bin_size):
        z = (f32(x) - delta) / sigma
        acc = f32(acc + np.exp(f32(-0.5) * z * z, dtype=np.float32))
    return f32(acc / f32(2 * bin_size - 1))


def _gaussian_kernel(bin_size, num_bins, index, window_size):
    """VLFeat's _vl_dsift_new_kernel, flipped for correlation (PyTorch's convolution)."""
    f32 = np.float32
    delta = f32(bin_size) * (f32(index) - f32(0.5) * f32(num_bins - 1))
    sigma = f32(bin_size) * f32(window_size)
    ker = []
    for x in range(-bin_size + 1, bin_size):
        z = (f32(x) - delta) / sigma
        ker.append(
            (f32(1.0) - f32(abs(x)) / f32(bin_size)) * np.exp(f32(-0.5) * z * z, dtype=np.float32)
        )
    return np.array(ker[::-1], dtype=np.float32)


class SiftBins(nn.Module):
    """N x NT x H x W -> spatially binned maps, sampled every gcd(bin size, step) pixels.

    Fast: N x NT x H'' x W'' (one triangular filter). Gaussian: N x (NT*NY*NX) x H'' x W''
    (channel t*NY*NX + by*NX + bx: the kernel of spatial bin (by, bx)).
    """

    def __init__(self, bin_size=8, step=8, geometry=(4, 4, 8), fast=True, window_size=2.0):
        super().__init__()
        b = self.bin_size = int(bin_size)
        self.stride = math.gcd(b, int(step))
        self.fast = bool(fast)
        ny, nx, _ = geometry
        if self.fast:
            tri = np.array(
                [(b - abs(x)) / (b * b) for x in range(-b + 1, b)], dtype=np.float32
            )  # unit integral
            ky, kx = tri[None], tri[None]
        else:
            ky = np.stack([_gaussian_kernel(b, ny, i, window_size) for i in range(ny)])
            kx = np.stack([_gaussian_kernel(b, nx, i, window_size) for i in range(nx)])
        self.register_buffer(
            "weight_y", torch.from_numpy(ky)[:, None, :, None].contiguous()
        )  # one per y bin (fast: one)
        self.register_buffer(
            "weight_x", torch.from_numpy(kx)[:, None, None, :].contiguous()
        )  # one per x bin

    def forward(self, m):
        b, s = self.bin_size, self.stride
        t, ny = m.shape[1], self.weight_y.shape[0]
        x = F.pad(
            m.contiguous(memory_format=torch.channels_last),
            (b - 1, b - 1, b - 1, b - 1),
            mode="replicate",
        )
        # depthwise: every orientation map through every y kernel, then every (t, y bin) map through
        # every x kernel
        x = F.conv2d(x, _like(self.weight_y, m).repeat(t, 1, 1, 1), stride=(s, 1), groups=t)
        return F.conv2d(
            x, _like(self.weight_x, m).repeat(t * ny, 1, 1, 1), stride=(1, s), groups=t * ny
        )


class SiftBlocks(nn.Module):
    """Binned maps -> N x (NY*NX*NT) x frames_y x frames_x:
    dilated one-hot block-forming filters.
    """

    def __init__(self, bin_size=8, step=8, geometry=(4, 4, 8), fast=True, window_size=2.0):
        super().__init__()
        ny, nx, nt = (int(v) for v in geometry)
        b = int(bin_size)
        s = math.gcd(b, int(step))
        self.dilation, self.stride = b // s, int(step) // s
        self.fast = bool(fast)
        d = nt * ny * nx
        weight = torch.zeros(d, 1, ny, nx)
        for t in range(nt):
            for by in range(ny):
                for bx in range(nx):
                    value = 1.0
                    # VLFeat reweights each flat-window bin by its mean Gaussian window, times
                    # the bin size
                    if fast:
                        wy = np.float32(_window_mean(b, ny, by, window_size) * np.float32(b))
                        wxx = np.float32(_window_mean(b, nx, bx, window_size) * np.float32(b))
                        value = float(np.float32(wxx * wy))
                    weight[t * ny * nx + by * nx + bx, 0, by, bx] = value
        self.register_buffer("weight", weight)
        self.groups = nt if fast else d
        # conv output channels are (t, by, bx); VLFeat orders a descriptor (by, bx, t)
        order = [
            t * ny * nx + by * nx + bx for by in range(ny) for bx in range(nx) for t in range(nt)
        ]
        self.register_buffer("order", torch.tensor(order))

    def forward(self, bins):
        x = F.conv2d(
            bins,
            _like(self.weight, bins),
            stride=self.stride,
            dilation=self.dilation,
            groups=self.groups,
        )
        return x.index_select(1, self.order.to(bins.device))


class SiftNormalize(nn.Module):
    """L2 normalise, clamp at 0.2, L2 normalise, then min(512 x, 255) (cyvlfeat's float
    descriptors).
    """

    def forward(self, d):
        d = d / (vl_fast_sqrt((d * d).sum(1, keepdim=True)) + FLOAT_EPSILON)
        d = torch.clamp(d, max=CLAMP)
        d = d / (vl_fast_sqrt((d * d).sum(1, keepdim=True)) + FLOAT_EPSILON)
        return torch.clamp(512.0 * d, max=255.0)


class DSIFT(nn.Module):
    """VLFeat's dense SIFT as a CNN: grey -> gradient -> orientations -> bins -> blocks ->
    normalize -> descriptor.
    """

    def __init__(self, bin_size=8, step=None, fast=True, geometry=(4, 4, 8), window_size=2.0):
        super().__init__()
        step = bin_size if step is None else step
        geometry = tuple(int(v) for v in geometry)
        if (
            int(bin_size) < 1
            or int(step) < 1
            or len(geometry) != 3
            or min(geometry) < 1
            or float(window_size) <= 0
        ):
            raise PreimageError(
                f"bad DSIFT options bin_size={bin_size!r}, step={step!r}, geometry={geometry!r},"
                f" window_size={window_size!r}; sizes must be positive integers, geometry (NY,"
                " NX, NT)"
            )
        self.bin_size, self.step, self.fast, self.geometry, self.window_size = (
            int(bin_size),
            int(step),
            bool(fast),
            geometry,
            float(window_size),
        )
        self.grey = Grey()
        self.gradient = SiftGradient()
        self.orientations = SiftOrientations(geometry[2])
        self.bins = SiftBins(bin_size, step, geometry, fast, window_size)
        self.blocks = SiftBlocks(bin_size, step, geometry, fast, window_size)
        self.normalize = SiftNormalize()
        self.descriptor = nn.Identity()

    @property
    def dimension(self):
        return self.geometry[0] * self.geometry[1] * self.geometry[2]

    def extra_repr(self):
        return (
            f"bin_size={self.bin_size}, step={self.step}, fast={self.fast},"
            f" geometry={self.geometry}, window_size={self.window_size}"
        )

    def frame_centres(self, height, width):
        """(y, x) centres of the descriptors of an H x W image, as cyvlfeat's frames: F x 2 in
        output order.
        """
        ny, nx, _ = self.geometry
        b, s = self.bin_size, self.step
        fy = (height - 1 - (ny - 1) * b) // s + 1
        fx = (width - 1 - (nx - 1) * b) // s + 1
        ys = torch.arange(max(fy, 0)) * s + 0.5 * b * (ny - 1)
        xs = torch.arange(max(fx, 0)) * s + 0.5 * b * (nx - 1)
        return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)

    def forward(self, x):
        return self.descriptor(
            self.normalize(self.blocks(self.bins(self.orientations(self.gradient(self.grey(x))))))
        )


# -------------------------------------------------------------------------------------- registry


def _check_weights(name, weights):
    if weights not in (None, "none"):
        raise PreimageError(
            f"bad weights {weights!r} for {name}: hand-crafted models have no weights (use none)"
        )


def _wrap(module, name):
    return VisionModel(
        module,
        name=name,
        mean=IMAGENET_MEAN_255,
        std=(1.0, 1.0, 1.0),
        input_range=(0.0, 255.0),
        input_size=INPUT_SIZE,
        weights="none (hand-crafted)",
        inversion_C=INVERSION_C,
        jitter=0,
    )


@register("hog")
def _load_hog(weights=None, seed=0, cell_size=8, num_orientations=9):
    _check_weights("hog", weights)
    return _wrap(HOG(cell_size, num_orientations, bilinear=False), "hog")


@register("hogb")
def _load_hogb(weights=None, seed=0, cell_size=8, num_orientations=9):
    _check_weights("hogb", weights)
    return _wrap(HOG(cell_size, num_orientations, bilinear=True), "hogb")


@register("dsift")
def _load_dsift(
    weights=None, seed=0, bin_size=8, step=None, fast=True, geometry=(4, 4, 8), window_size=2.0
):
    _check_weights("dsift", weights)
    return _wrap(DSIFT(bin_size, step, fast, geometry, window_size), "dsift")
