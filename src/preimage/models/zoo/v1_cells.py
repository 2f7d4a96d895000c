"""Toy V1 cells (Cadena et al. §3.1, Fig. 1): a simple cell, two complex cells, and a corner cell.

Every cell sees the grey image (the mean of the three centred colour channels)
through Gabor filters of one orientation and spatial frequency, and answers
with a single channel, exposed as the layer ``response`` (target
``response:0``). The linear filter outputs are the layer ``subunits``: for the
complex cells, the simple-cell subunits, which are the "preceding layer" of a
diversity distance. The simple cell's one linear filter is not a layer of
subunits, so its diversity distance falls back to pixels.

Parameters (all cells):
  size            32 px: filters are 32 x 32, so a 32 px image gives one 1x1 response
  orientation     0 rad: stripes along the vertical axis, varying with x
  wavelength      8 px per cycle
  sigma           4 px: standard deviation of the Gaussian envelope
  Each filter has its mean removed (no response to uniform images) and unit L2 norm.

corner_cell          a top-left corner detector from two energy-model complex cells: a
                     vertical edge 6 px left of the centre and a horizontal edge 6 px
                     above it (quadrature pairs, σ = 3 px), combined by a geometric mean,
                     minus half the energies of the same edges on the opposite sides
                     (see Corner). A shape unit: it wants its structure at one place.
simple_cell          ReLU(⟨g_0, x⟩): one Gabor filter at phase 0. The ReLU leaks 1 % below
                     zero, so that an optimization that starts from noise on the wrong
                     side of the filter still has a gradient (a plain ReLU leaves about
                     half of such starts stuck at zero).
energy_complex_cell  ⟨g_0, x⟩² + ⟨g_90, x⟩²: a quadrature pair, exactly phase invariant.
hw_complex_cell      Σ_k w_k ReLU(⟨g_φk, x⟩)², Hubel & Wiesel's pooling of 6 rectified
                     simple cells at phases 60° apart. The variability: each phase is
                     perturbed by a fixed draw from N(0, 2°), and each weight is
                     1 + 0.1 cos(φ_k - 60°) plus a draw from N(0, 0.02) (seed 2). Over the
                     phase of a Gabor stimulus the response stays above 80 % of its
                     maximum and has a single peak (at 50°): approximate invariance.
                     The subunits are half-squared rather than half-wave rectified: with
                     plain rectification the pooled tuning curve has a kink, and a local
                     maximum, at every subunit's zero crossing, while half-squared subunits
                     at even phases sum to a constant, so the weights alone shape one
                     smooth peak (Fig. 1C, blue).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..base import VisionModel

SIZE = 32
WAVELENGTH = 8.0
SIGMA = 4.0
ORIENTATION = 0.0
HW_PHASES = 6
HW_PHASE_JITTER = math.radians(2.0)
HW_WEIGHT_JITTER = 0.02
HW_MODULATION = 0.1  # weights 1 + 0.1 cos(φ_k - HW_PREFERRED)
HW_PREFERRED = math.radians(60.0)
HW_SEED = 2
# Fig. 2 keeps 80 % of the λ = 0 activation for the toy complex cells (0.9 for the networks)
COMPLEX_THRESHOLD = 0.8


def gabor(
    phase, size=SIZE, wavelength=WAVELENGTH, sigma=SIGMA, orientation=ORIENTATION, centre=(0.0, 0.0)
):
    """A zero-mean, unit-norm Gabor filter (size x size) at the given phase (radians), centred at
    centre=(dy, dx) from the middle.
    """
    c = (size - 1) / 2
    y, x = torch.meshgrid(
        torch.arange(size, dtype=torch.float64) - c - centre[0],
        torch.arange(size, dtype=torch.float64) - c - centre[1],
        indexing="ij",
    )
    xr = x * math.cos(orientation) + y * math.sin(orientation)
    g = torch.exp(-(x**2 + y**2) / (2 * sigma**2)) * torch.cos(
        2 * math.pi * xr / wavelength + phase
    )
    g = g - g.mean()
    return (g / g.norm()).float()


def grating(phase, size=SIZE, wavelength=WAVELENGTH, sigma=SIGMA, orientation=ORIENTATION):
    """A Gabor stimulus (the filter itself, as an image pattern) at a phase, for tuning curves."""
    return gabor(phase, size, wavelength, sigma, orientation)


def periodic_grating(model, norm, phase=0.0, side=64, wavelength=WAVELENGTH):
    """A vertical grating of the cells' wavelength, periodic on ``side`` px, at a centred norm
    (``model.centering``) and in display space: the best periodic texture of the energy cell, the
    ideal a §4.4 texture is measured against."""
    x = torch.arange(side, dtype=torch.float32)
    stripes = torch.cos(2 * math.pi * x / wavelength + phase).expand(1, 3, side, side)
    scale, shift = model.centering(stripes)
    return (stripes * norm / stripes.norm() - shift) / scale


class Grey(nn.Module):
    """The mean of the colour channels: N x 3 x H x W -> N x 1 x H x W."""

    def forward(self, x):
        return x.mean(1, keepdim=True)


class Subunits(nn.Module):
    """Linear Gabor filters at several phases (or given filters), as one valid convolution."""

    def __init__(self, phases=None, filters=None, sigma=SIGMA):
        super().__init__()
        self.phases = [float(p) for p in phases or []]
        bank = (
            torch.stack([gabor(p, sigma=sigma) for p in self.phases])
            if filters is None
            else torch.stack(list(filters))
        )
        self.register_buffer("weight", bank[:, None])

    def forward(self, grey):
        return nn.functional.conv2d(grey, self.weight)


class Rectified(nn.Module):
    """Σ_k w_k ReLU(s_k)^p: rectify the subunits and pool them with weights (one weight: a simple
    cell).
    """

    def __init__(self, weights, power=1, leak=0.0):
        super().__init__()
        self.power, self.leak = power, leak
        self.register_buffer("weight", torch.tensor(weights, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, s):
        r = torch.nn.functional.leaky_relu(s, self.leak) if self.leak else torch.relu(s)
        return ((r if self.power == 1 else r.pow(self.power)) * self.weight).sum(1, keepdim=True)


class Energy(nn.Module):
    """Σ_k s_k²: the energy model."""

    def forward(self, s):
        return s.pow(2).sum(1, keepdim=True)


class Corner(nn.Module):
    """A top-left corner from quadrature-pair energies: sqrt(E_left·E_top) - ½(E_right + E_bottom).

    Subunit channels, in pairs (phase 0, 90°): a vertical edge left of the
    centre, a horizontal edge above it, a vertical edge right of it, a
    horizontal edge below it. The geometric mean asks for both edges of the
    corner; the other two energies inhibit, so a plaid that drives the edges
    everywhere does not drive the cell. There is no final rectification: a
    ReLU would be silent, with no gradient, for most noise images, since
    noise drives the inhibition as much as the corner.
    """

    def forward(self, s):
        e = s.pow(2)
        left, top, right, bottom = (e[:, 2 * i : 2 * i + 2].sum(1, keepdim=True) for i in range(4))
        return torch.sqrt(left * top + 1e-12) - 0.5 * (right + bottom)


class Cell(nn.Module):
    """A toy cell: the grey image through ``subunits`` (the layer of linear filters), then
    ``response`` (the one-channel output layer).
    """

    def __init__(self, subunits, response):
        super().__init__()
        self.grey = Grey()
        self.subunits = subunits
        self.response = response

    def forward(self, x):
        return self.response(self.subunits(self.grey(x)))


def hw_phases_and_weights():
    """The Hubel & Wiesel cell's subunit phases (radians) and pooling weights, fixed draws from
    seed 2 (see the module's docstring).
    """
    g = torch.Generator().manual_seed(HW_SEED)
    base = torch.arange(HW_PHASES, dtype=torch.float64) * (2 * math.pi / HW_PHASES)
    phases = base + torch.randn(HW_PHASES, generator=g, dtype=torch.float64) * HW_PHASE_JITTER
    weights = (
        1
        + HW_MODULATION * torch.cos(phases - HW_PREFERRED)
        + torch.randn(HW_PHASES, generator=g, dtype=torch.float64) * HW_WEIGHT_JITTER
    )
    return phases.tolist(), weights.tolist()


def _wrap(module, name, weights, preceding=None, threshold=0.9):
    if weights not in (None, "none"):
        from ...errors import PreimageError

        raise PreimageError(
            f"bad weights {weights!r} for {name}: toy cells are fixed models with no weights to"
            " load"
        )
    return VisionModel(
        module,
        name=name,
        mean=(0.5, 0.5, 0.5),
        std=(1.0, 1.0, 1.0),
        input_size=SIZE,
        weights="none (fixed toy model)",
        preceding=preceding or {},
        diversity_threshold=threshold,
    )


CORNER_OFFSET = 6.0  # px from the centre to each edge's Gabor pair
CORNER_SIGMA = 3.0


def corner_filters():
    """8 filters: quadrature pairs for a vertical edge left, a horizontal edge top, vertical right,
    horizontal bottom.
    """
    d = CORNER_OFFSET
    places = [
        (math.pi / 2 * 0, (0.0, -d)),
        (math.pi / 2, (-d, 0.0)),
        (0.0, (0.0, d)),
        (math.pi / 2, (d, 0.0)),
    ]
    return [
        gabor(phase, sigma=CORNER_SIGMA, orientation=orientation, centre=centre)
        for orientation, centre in places
        for phase in (0.0, math.pi / 2)
    ]


def load_simple(weights=None, seed=0):
    """The toy simple cell: a rectified Gabor filter."""
    return _wrap(Cell(Subunits([0.0]), Rectified([1.0], leak=0.01)), "simple_cell", weights)


def load_energy(weights=None, seed=0, sigma=SIGMA):
    """The toy energy-model complex cell: a quadrature pair, squared and summed (``sigma``: the
    envelope's, in px; a wider one fills more of the 32 px field)."""
    return _wrap(
        Cell(Subunits([0.0, math.pi / 2], sigma=sigma), Energy()),
        "energy_complex_cell",
        weights,
        {"response": "subunits"},
        threshold=COMPLEX_THRESHOLD,
    )


def load_corner(weights=None, seed=0):
    """The toy corner cell: two edge energies at one place, the opposite ones inhibiting."""
    return _wrap(
        Cell(Subunits(filters=corner_filters()), Corner()),
        "corner_cell",
        weights,
        {"response": "subunits"},
    )


def load_hubel_wiesel(weights=None, seed=0):
    """The toy Hubel & Wiesel complex cell: six rectified simple cells pooled."""
    phases, w = hw_phases_and_weights()
    return _wrap(
        Cell(Subunits(phases), Rectified(w, power=2)),
        "hw_complex_cell",
        weights,
        {"response": "subunits"},
        threshold=COMPLEX_THRESHOLD,
    )
