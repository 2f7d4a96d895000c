"""A V1 population with known ground truth, and its Poisson responses to natural patches.

Simple cells are a Gabor filter and a rectifier, r = g·max(0, ⟨f_φ, x⟩); complex cells an energy
model, r = g·(⟨f_φ, x⟩² + ⟨f_φ+90°, x⟩²), invariant to the phase of a grating (Cadena et al. 2018
§3.1, §6, Fig. 11). Each cell draws its orientation, spatial frequency, phase, position and
envelope size; its gain g sets its mean rate over the training patches to the population's rate
(spikes per image). Responses are Poisson counts of those rates. The training patches and the
repeated test set come from disjoint photographs, natural scenes and textures only (the Hubble
field, the retina scan, the micrograph and the coins are left out), turned grey by luma and
z-scored by the training set's mean and standard deviation before the cells see them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# scikit-image's photographs of scenes and textures; the last three are the test set's
NATURAL_SCENES = (
    "astronaut", "chelsea", "coffee", "rocket", "camera", "grass", "gravel", "brick", "moon",
    "clock",
)  # fmt: skip
TEST_SCENES = NATURAL_SCENES[-3:]
RATE = 2.0  # spikes per image: a mean count of V1 recordings over a short presentation


@dataclass
class Population:
    """The true cells: kind ('simple' or 'complex'), the quadrature pair of each cell's Gabor
    (K x 2 x S x S: the cell's phase, and 90° on), its parameters and its gain."""

    kinds: np.ndarray  # K strings
    filters: np.ndarray  # K x 2 x S x S, zero mean, unit norm
    orientation: np.ndarray  # radians
    wavelength: np.ndarray  # pixels per cycle
    phase: np.ndarray  # radians
    centre: np.ndarray  # K x 2, (y, x) offsets from the middle, pixels
    sigma: np.ndarray  # envelope, pixels
    gain: np.ndarray

    def drive(self, images):
        """Noise-free rates before the gain: N x S x S z-scored patches -> N x K."""
        x = images.reshape(len(images), -1).astype(np.float64)
        f = self.filters.reshape(len(self.kinds), 2, -1).astype(np.float64)
        even, odd = x @ f[:, 0].T, x @ f[:, 1].T
        simple = self.kinds == "simple"
        return np.where(simple, np.maximum(even, 0.0), even**2 + odd**2)

    def rates(self, images):
        """Noise-free rates (spikes per image): N x K."""
        return self.drive(images) * self.gain


def gabor(size, orientation, wavelength, phase, centre, sigma):
    """A zero-mean, unit-norm Gabor filter (size x size)."""
    c = (size - 1) / 2
    y, x = np.meshgrid(
        np.arange(size) - c - centre[0], np.arange(size) - c - centre[1], indexing="ij"
    )
    along = x * np.cos(orientation) + y * np.sin(orientation)
    g = np.exp(-(x**2 + y**2) / (2 * sigma**2)) * np.cos(2 * np.pi * along / wavelength + phase)
    g = g - g.mean()
    return g / np.linalg.norm(g)


def draw_population(cells, size, seed=0, complex_share=0.5):
    """K cells, the first round(K·complex_share) of them complex after a seeded shuffle.

    Spatial frequency: 3 to 8 pixels per cycle at 40 px, scaled with the size (a patch holds 5 to
    13 cycles), and never below 2.5 pixels per cycle;
    envelope σ 0.35 to 0.6 cycles; position within a quarter of the patch of its middle."""
    rng = np.random.default_rng(seed)
    kinds = np.array(["complex"] * round(cells * complex_share) + ["simple"] * cells)[:cells]
    kinds = kinds[rng.permutation(cells)]
    orientation = rng.uniform(0, np.pi, cells)
    wavelength = np.maximum(rng.uniform(3.0, 8.0, cells) * size / 40, 2.5)  # above Nyquist
    phase = rng.uniform(0, 2 * np.pi, cells)
    sigma = wavelength * rng.uniform(0.35, 0.6, cells)
    centre = rng.uniform(-size / 8, size / 8, (cells, 2))
    filters = np.stack(
        [
            np.stack([gabor(size, o, w, p + q, c, s) for q in (0.0, np.pi / 2)])
            for o, w, p, c, s in zip(orientation, wavelength, phase, centre, sigma)
        ]
    ).astype(np.float32)
    return Population(kinds, filters, orientation, wavelength, phase, centre, sigma, np.ones(cells))


def grey_photographs(names):
    """The named sample photographs as grey (luma) uint8 arrays."""
    from ..io.samples import sample_arrays

    return [np.asarray(Image.fromarray(a).convert("L")) for _, a in sample_arrays(names)]


def patches(photographs, count, size, rng, scales=(0.25, 0.5)):
    """count grey size x size patches in [0, 1], cut at random places and scales (each
    photograph resized by a factor drawn from ``scales`` first, so that a patch holds a scene's
    structure rather than a few pixels of it)."""
    out = np.empty((count, size, size), np.float32)
    which = rng.integers(0, len(photographs), count)
    factors = rng.uniform(*scales, count)
    for i, (k, f) in enumerate(zip(which, factors)):
        im = photographs[k]
        h, w = im.shape
        side = max(size, int(round(size / f)))
        if side > min(h, w):
            side = min(h, w)
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = Image.fromarray(im[top : top + side, left : left + side])
        out[i] = np.asarray(crop.resize((size, size), Image.BILINEAR), np.float32) / 255
    return out


def simulate(cells=40, images=5000, size=40, rate=RATE, seed=0, test_images=100, repeats=10):
    """A simulated recording: {images, responses, test_images, test_responses, the true rates,
    the cells' kinds, filters and parameters, the z-scoring}, as ``preimage neurons fit`` reads
    it (``images`` N x S x S in [0, 1], ``responses`` N x K counts, ``test_responses`` M x R x K).
    """
    from .settings import SimulateSettings

    s = SimulateSettings(cells, images, size, rate, test_images, repeats, seed)  # checked
    cells, images, size, rate, test_images, repeats, seed = (
        s.cells, s.images, s.size, s.rate, s.test_images, s.repeats, s.seed
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    train_photos = grey_photographs([n for n in NATURAL_SCENES if n not in TEST_SCENES])
    test_photos = grey_photographs(list(TEST_SCENES))
    train = patches(train_photos, images, size, rng)
    test = patches(test_photos, test_images, size, rng)
    mean, std = float(train.mean()), float(train.std())
    population = draw_population(cells, size, seed)
    drive = population.drive((train - mean) / std)
    population.gain = rate / np.maximum(drive.mean(0), 1e-12)
    true_train = population.rates((train - mean) / std)
    true_test = population.rates((test - mean) / std)
    return {
        "images": train,
        "responses": rng.poisson(true_train).astype(np.float32),
        "test_images": test,
        "test_responses": rng.poisson(true_test[:, None, :].repeat(repeats, 1)).astype(np.float32),
        "true_rates": true_train.astype(np.float32),
        "true_test_rates": true_test.astype(np.float32),
        "cell_types": population.kinds.astype("U7"),
        "filters": population.filters,
        "orientation": population.orientation,
        "wavelength": population.wavelength,
        "phase": population.phase,
        "centre": population.centre,
        "sigma": population.sigma,
        "gain": population.gain,
        "zscore": np.array([mean, std]),
        "rate": np.array(rate),
        "seed": np.array(seed),
    }
