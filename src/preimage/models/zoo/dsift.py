"""Dense SIFT as a differentiable CNN, matched to VLFeat's ``vl_dsift`` (Mahendran & Vedaldi §4.1).

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
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import PreimageError
from .vlfeat import CLAMP, FLOAT_EPSILON, GREY_WEIGHTS, like, safe_sqrt


class Grey(nn.Module):
    """N x 3 x H x W -> N x 1 x H x W: 0.299 R + 0.587 G + 0.114 B."""

    def __init__(self, weights=GREY_WEIGHTS):
        super().__init__()
        self.register_buffer("weight", torch.tensor(weights, dtype=torch.float32))

    def forward(self, x):
        w = like(self.weight, x)
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
        g = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), like(self.weight, grey))
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
    exact = safe_sqrt(x)
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
        x = F.conv2d(x, like(self.weight_y, m).repeat(t, 1, 1, 1), stride=(s, 1), groups=t)
        return F.conv2d(
            x, like(self.weight_x, m).repeat(t * ny, 1, 1, 1), stride=(1, s), groups=t * ny
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
            like(self.weight, bins),
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
