"""PixelCNN++ (Salimans et al. 2017) as a natural-image prior: log P(x), differentiable in x.

Cadena et al. weigh log P(x) of a PixelCNN++ into their objective (eq. 1,
α = 0.0005). This is the network of Salimans et al., fully convolutional so
that a patch of any size is scored:

- two streams, one of down-shifted convolutions (the rows above) and one of
  down-right-shifted ones (the pixels to the left on the current row), so
  that the distribution of each pixel depends only on the pixels before it
  in raster order;
- gated ResNet blocks with concatenated ELUs, at several resolutions with
  strided convolutions down and transposed ones up, and shortcuts from each
  up-pass block to its down-pass twin;
- a mixture of discretized logistics per pixel, the green and blue means
  depending linearly on the red and green values.

Images are in display space [0, 1]; the network sees them in [-1, 1]. A size
that is not a multiple of 2^(scales-1) is padded with zeros at the bottom and
right, where the extra all-ones input channel is zero too: the padding is a
constant the network can recognise, so the likelihood of the real pixels stays
a normalized distribution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def concat_elu(x):
    """ELU of x and of -x, concatenated along channels: 2C channels from C."""
    return F.elu(torch.cat([x, -x], dim=1))


def down_shift(x):
    """Shift N x C x H x W down by one row, a row of zeros on top."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def right_shift(x):
    """Shift N x C x H x W right by one column, a column of zeros on the left."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


class DownShiftedConv(nn.Conv2d):
    """Sees the rows above and the current row (filter (h, w) centred horizontally)."""

    def __init__(self, cin, cout, kernel=(2, 3), stride=1):
        super().__init__(cin, cout, kernel, stride=stride)
        kh, kw = kernel
        self.shift = ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)

    def forward(self, x):
        return super().forward(F.pad(x, self.shift))


class DownRightShiftedConv(nn.Conv2d):
    """Sees the rows above and the pixels to the left (filter anchored at its bottom-right)."""

    def __init__(self, cin, cout, kernel=(2, 2), stride=1):
        super().__init__(cin, cout, kernel, stride=stride)
        kh, kw = kernel
        self.shift = (kw - 1, 0, kh - 1, 0)

    def forward(self, x):
        return super().forward(F.pad(x, self.shift))


class DownShiftedDeconv(nn.ConvTranspose2d):
    """A transposed convolution that doubles H and W and, cropped, sees only the rows above and
    the current row.
    """

    def __init__(self, cin, cout, kernel=(2, 3)):
        super().__init__(cin, cout, kernel, stride=2, output_padding=1)
        self.kernel = kernel

    def forward(self, x):
        x = super().forward(x)
        kh, kw = self.kernel
        return x[:, :, : x.shape[2] - kh + 1, (kw - 1) // 2 : x.shape[3] - (kw - 1) // 2]


class DownRightShiftedDeconv(nn.ConvTranspose2d):
    """A transposed convolution that doubles H and W and, cropped, sees only the rows above and
    the pixels to the left.
    """

    def __init__(self, cin, cout, kernel=(2, 2)):
        super().__init__(cin, cout, kernel, stride=2, output_padding=1)
        self.kernel = kernel

    def forward(self, x):
        x = super().forward(x)
        kh, kw = self.kernel
        return x[:, :, : x.shape[2] - kh + 1, : x.shape[3] - kw + 1]


class GatedResnet(nn.Module):
    """x + a * sigmoid(b), with (a, b) from two shifted convolutions of concat_elu(x) (and a
    shortcut input).
    """

    def __init__(self, filters, conv, skip_channels=0, dropout=0.0):
        super().__init__()
        self.conv_in = conv(2 * filters, filters)
        self.skip = nn.Conv2d(2 * skip_channels, filters, 1) if skip_channels else None
        self.dropout = nn.Dropout2d(dropout) if dropout else nn.Identity()
        self.conv_out = conv(2 * filters, 2 * filters)

    def forward(self, x, a=None):
        h = self.conv_in(concat_elu(x))
        if a is not None:
            h = h + self.skip(concat_elu(a))
        h = self.conv_out(self.dropout(concat_elu(h)))
        g, gate = h.chunk(2, dim=1)
        return x + g * torch.sigmoid(gate)


class PixelCNNPP(nn.Module):
    """The PixelCNN++ network: images in [-1, 1] (N x 3 x H x W) -> mixture parameters
    (N x 10K x H x W).
    """

    def __init__(self, filters=64, resnets=2, scales=3, mixtures=10, dropout=0.0):
        super().__init__()
        self.config = dict(
            filters=filters, resnets=resnets, scales=scales, mixtures=mixtures, dropout=dropout
        )
        f, r = filters, resnets
        self.scales, self.resnets, self.mixtures = scales, resnets, mixtures
        self.u_init = DownShiftedConv(4, f, (2, 3))
        self.ul_init_up = DownShiftedConv(4, f, (1, 3))
        self.ul_init_left = DownRightShiftedConv(4, f, (2, 1))
        self.up_u = nn.ModuleList(
            [
                nn.ModuleList([GatedResnet(f, DownShiftedConv, 0, dropout) for _ in range(r)])
                for _ in range(scales)
            ]
        )
        self.up_ul = nn.ModuleList(
            [
                nn.ModuleList([GatedResnet(f, DownRightShiftedConv, f, dropout) for _ in range(r)])
                for _ in range(scales)
            ]
        )
        self.down_u_stride = nn.ModuleList(
            [DownShiftedConv(f, f, (2, 3), stride=2) for _ in range(scales - 1)]
        )
        self.down_ul_stride = nn.ModuleList(
            [DownRightShiftedConv(f, f, (2, 2), stride=2) for _ in range(scales - 1)]
        )
        # the down pass: the coarsest scale first; every finer one takes one more block for the
        # strided output
        counts = [r] + [r + 1] * (scales - 1)
        self.down_u = nn.ModuleList(
            [
                nn.ModuleList([GatedResnet(f, DownShiftedConv, f, dropout) for _ in range(n)])
                for n in counts
            ]
        )
        self.down_ul = nn.ModuleList(
            [
                nn.ModuleList(
                    [GatedResnet(f, DownRightShiftedConv, 2 * f, dropout) for _ in range(n)]
                )
                for n in counts
            ]
        )
        self.up_u_deconv = nn.ModuleList([DownShiftedDeconv(f, f) for _ in range(scales - 1)])
        self.up_ul_deconv = nn.ModuleList([DownRightShiftedDeconv(f, f) for _ in range(scales - 1)])
        self.out = nn.Conv2d(f, 10 * mixtures, 1)

    def forward(self, x):
        n, _, h, w = x.shape
        m = 2 ** (self.scales - 1)
        ph, pw = (-h) % m, (-w) % m
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        if ph or pw:
            x = F.pad(
                x, (0, pw, 0, ph)
            )  # zeros, ones channel included: the network sees where the image ends
        u = [down_shift(self.u_init(x))]
        ul = [down_shift(self.ul_init_up(x)) + right_shift(self.ul_init_left(x))]
        for s in range(self.scales):
            for bu, bul in zip(self.up_u[s], self.up_ul[s]):
                u.append(bu(u[-1]))
                ul.append(bul(ul[-1], u[-1]))
            if s < self.scales - 1:
                u.append(self.down_u_stride[s](u[-1]))
                ul.append(self.down_ul_stride[s](ul[-1]))
        hu, hul = u.pop(), ul.pop()
        for k in range(self.scales):
            for bu, bul in zip(self.down_u[k], self.down_ul[k]):
                hu = bu(hu, u.pop())
                hul = bul(hul, torch.cat([hu, ul.pop()], dim=1))
            if k < self.scales - 1:
                hu = self.up_u_deconv[k](hu)
                hul = self.up_ul_deconv[k](hul)
        out = self.out(F.elu(hul))
        return out[:, :, :h, :w]


def mixture_log_prob(x, params, bins=256):
    """log P(x) per pixel (N x H x W) under a mixture of discretized logistics.

    x: N x 3 x H x W in [-1, 1]; params: N x 10K x H x W from ``PixelCNNPP``.
    The edge values -1 and 1 take the whole tail, as in Salimans et al.
    """
    n, _, h, w = x.shape
    k = params.shape[1] // 10
    logit_probs = params[:, :k]
    p = params[:, k:].reshape(n, 3, 3 * k, h, w)
    means, log_scales, coeffs = (
        p[:, :, :k],
        p[:, :, k : 2 * k].clamp(min=-7.0),
        torch.tanh(p[:, :, 2 * k :]),
    )
    xc = x.unsqueeze(2)  # N x 3 x 1 x H x W
    m_r = means[:, 0]
    m_g = means[:, 1] + coeffs[:, 0] * xc[:, 0]
    m_b = means[:, 2] + coeffs[:, 1] * xc[:, 0] + coeffs[:, 2] * xc[:, 1]
    means = torch.stack([m_r, m_g, m_b], dim=1)
    half = 1.0 / (bins - 1)
    centred = xc - means
    inv_s = torch.exp(-log_scales)
    plus = inv_s * (centred + half)
    minus = inv_s * (centred - half)
    log_cdf_plus = plus - F.softplus(plus)  # log σ(plus): the bin of the lowest value
    log_one_minus_cdf_minus = -F.softplus(minus)  # log(1 - σ(minus)): the bin of the highest value
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_s * centred
    # where the bin mass underflows, its density at the centre times the bin width
    log_pdf_mid = mid - log_scales - 2.0 * F.softplus(mid) + math.log(2 * half)
    inner = torch.where(delta > 1e-5, torch.log(delta.clamp(min=1e-12)), log_pdf_mid)
    edge_low = xc < -1 + half / 2
    edge_high = xc > 1 - half / 2
    log_probs = torch.where(
        edge_low, log_cdf_plus, torch.where(edge_high, log_one_minus_cdf_minus, inner)
    )
    log_probs = log_probs.sum(dim=1) + F.log_softmax(logit_probs, dim=1)  # N x K x H x W
    return torch.logsumexp(log_probs, dim=1)


class PixelCNNPrior(nn.Module):
    """log P(x) of display-space images [0, 1] under a PixelCNN++, in nats per image.

    ``bits_per_dim(x)`` = -log2 P(x) / (3HW), the usual measure. ``prior_term``
    gives what an objective adds: log P(x) per pixel (the objective's
    penalties are averaged over pixels too), so α weighs it as Cadena et al.
    """

    def __init__(self, network, patch=32, trained_on=None, steps=0):
        super().__init__()
        self.network = network
        self.patch = patch
        self.trained_on = trained_on
        self.steps = steps

    def forward(self, images):
        x = images * 2.0 - 1.0
        return mixture_log_prob(x, self.network(x)).sum(dim=(1, 2))

    def bits_per_dim(self, images):
        return -self.forward(images) / (math.log(2.0) * images[0].numel())

    def describe(self):
        return {
            "network": self.network.config,
            "patch": self.patch,
            "trained_on": self.trained_on,
            "steps": self.steps,
        }

    def checkpoint(self):
        return {
            "format": "preimage.priors.pixelcnn/1",
            "config": self.network.config,
            "state_dict": self.network.state_dict(),
            "patch": self.patch,
            "trained_on": self.trained_on,
            "steps": self.steps,
        }

    @classmethod
    def from_checkpoint(cls, data):
        network = PixelCNNPP(**data["config"])
        network.load_state_dict(data["state_dict"])
        return cls(
            network,
            patch=data.get("patch", 32),
            trained_on=data.get("trained_on"),
            steps=data.get("steps", 0),
        )
