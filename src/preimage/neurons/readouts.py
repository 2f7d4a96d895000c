"""Readouts: from a core's feature map (N x C x h x w) to one response per neuron (N x K).

Factorized (Klindt et al. 2017): each neuron has a spatial mask m_k (h x w) and feature weights
w_k (C): r_k = Σ_c w_kc Σ_yx m_kyx F_cyx + b_k. Gaussian (Lurz et al. 2021): each neuron has a
position μ_k in the map (coordinates in [-1, 1]) and feature weights; it reads the features at
that position by bilinear interpolation, r_k = Σ_c w_kc F_c(μ_k) + b_k. While training, the
position is drawn from N(μ_k, σ_k²) (σ learned too), which lets a neuron find its place from
far away; in eval mode it reads at μ_k. Both have an L1 penalty (``sparsity``): on the mask and
the weights for the factorized one, on the weights for the Gaussian one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FactorizedReadout(nn.Module):
    """A spatial mask times feature weights per neuron (Klindt et al. 2017)."""

    def __init__(self, channels, height, width, neurons, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(int(seed))
        self.mask = nn.Parameter(torch.rand(neurons, height, width, generator=g) / (height * width))
        self.weight = nn.Parameter(torch.randn(neurons, channels, generator=g) / channels**0.5)
        self.bias = nn.Parameter(torch.zeros(neurons))

    def forward(self, features):
        pooled = torch.einsum("nchw,khw->nkc", features, self.mask)  # each neuron's masked map
        return (pooled * self.weight).sum(-1) + self.bias

    def sparsity(self):
        """The L1 norms of masks and weights, averaged over neurons (their product's scale is
        shared, so both are penalized)."""
        k = len(self.bias)
        return (self.mask.abs().sum() + self.weight.abs().sum()) / k


class GaussianReadout(nn.Module):
    """A learned position and feature weights per neuron (Lurz et al. 2021)."""

    def __init__(self, channels, height, width, neurons, seed=0, sigma=0.5):
        super().__init__()
        g = torch.Generator().manual_seed(int(seed))
        self.mu = nn.Parameter(torch.rand(neurons, 2, generator=g) * 0.2 - 0.1)  # near the middle
        self.log_sigma = nn.Parameter(
            torch.full((neurons, 2), float(torch.log(torch.tensor(sigma))))
        )
        self.weight = nn.Parameter(torch.randn(neurons, channels, generator=g) / channels**0.5)
        self.bias = nn.Parameter(torch.zeros(neurons))

    def positions(self, n):
        """N x K x 2 sampling positions (x, y) in [-1, 1]: μ in eval mode, drawn around it while
        training."""
        mu = self.mu.clamp(-1, 1)
        if not self.training:
            return mu.expand(n, *mu.shape)
        noise = torch.randn(n, *mu.shape, device=mu.device, dtype=mu.dtype)
        return (mu + noise * self.log_sigma.exp()).clamp(-1, 1)

    def forward(self, features):
        n = features.shape[0]
        grid = self.positions(n)[:, :, None, :]  # N x K x 1 x 2
        sampled = F.grid_sample(
            features, grid, mode="bilinear", align_corners=True
        )  # N x C x K x 1
        return (sampled[..., 0].transpose(1, 2) * self.weight).sum(-1) + self.bias

    def sparsity(self):
        """The L1 norm of the feature weights, averaged over neurons."""
        return self.weight.abs().sum() / len(self.bias)


def make_readout(kind, channels, height, width, neurons, seed=0):
    """A readout by name ('factorized' or 'gaussian')."""
    table = {"factorized": FactorizedReadout, "gaussian": GaussianReadout}
    return table[kind](channels, height, width, neurons, seed=seed)
