"""What a fitted model's images say about simulated cells whose truth is known (Cadena et al.
2018 §6, Fig. 11).

A diverse batch of a complex cell covers the phases of its Gabor; a simple cell's does not. The
phase of an image is read by projecting it on the cell's true quadrature pair (its Gabor at its
phase, and 90° on): atan2(⟨x, f_90⟩, ⟨x, f_0⟩), the phase of the image's grating minus the
cell's. The rule that calls a cell complex is fixed here, before any result: its diverse images
at the chosen λ leave no gap in phase of 180° or more (they are not all on one side of the
circle).
"""

from __future__ import annotations

import numpy as np

COMPLEX_GAP = 180.0  # degrees: a largest gap below this calls a cell complex


def image_phases(images, pair):
    """Degrees in [0, 360): the phase of each image (n x H x W, mean removed) on a quadrature
    pair (2 x H x W)."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    f = np.asarray(pair, dtype=np.float64).reshape(2, -1)
    return np.degrees(np.arctan2(x @ f[1], x @ f[0])) % 360.0


def quadrature_gratings(pair, norm, phases):
    """len(phases) x H x W: the cell's Gabor at each phase (degrees; cos·f_0 + sin·f_90), mean
    removed and scaled to the L2 norm ``norm``: the images a perfectly phase-invariant model
    answers equally, at the diverse method's fixed norm."""
    f = np.asarray(pair, dtype=np.float64)
    t = np.radians(np.asarray(phases, dtype=np.float64))[:, None, None]
    x = np.cos(t) * f[0] + np.sin(t) * f[1]
    x = x - x.mean(axis=(1, 2), keepdims=True)
    return x * (norm / np.linalg.norm(x.reshape(len(x), -1), axis=1))[:, None, None]


def largest_gap(phases):
    """The largest gap (degrees) between neighbouring phases around the circle: 360 for a single
    phase, 360/n for n evenly spread."""
    p = np.sort(np.asarray(phases, dtype=np.float64) % 360.0)
    if len(p) == 0:
        return 360.0
    gaps = np.diff(np.concatenate([p, [p[0] + 360.0]]))
    return float(gaps.max())


def classify(gap):
    """'complex' or 'simple' by the fixed rule on the largest phase gap."""
    return "complex" if gap < COMPLEX_GAP else "simple"


def envelope(size, centre, sigma, radius=2.0):
    """A boolean mask of the pixels within ``radius`` σ of a cell's centre (offsets in pixels from
    the middle, as ``simulate`` draws them)."""
    c = (size - 1) / 2
    y, x = np.meshgrid(
        np.arange(size) - c - centre[0], np.arange(size) - c - centre[1], indexing="ij"
    )
    return x**2 + y**2 <= (radius * sigma) ** 2


def envelope_cosine(image, gabor, mask):
    """The cosine between an image and a Gabor over the mask's pixels, each mean removed there."""
    a = np.asarray(image, dtype=np.float64)[mask]
    b = np.asarray(gabor, dtype=np.float64)[mask]
    a, b = a - a.mean(), b - b.mean()
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator > 0 else 0.0
