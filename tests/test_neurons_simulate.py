"""The simulated V1 population (Cadena et al. 2018 §6): its cells against their definitions, its
Poisson responses, its splits, and the command that writes it."""

import os
import subprocess
import sys

import numpy as np
import pytest

from preimage.neurons import NATURAL_SCENES, draw_population, simulate
from preimage.neurons.simulate import TEST_SCENES, gabor


@pytest.fixture(scope="module")
def data():
    return simulate(cells=12, images=600, size=24, rate=2.0, seed=5, test_images=40, repeats=8)


def test_cells_are_their_definitions(data):
    """Simple: gain·max(0, ⟨f_φ, z⟩); complex: gain·(⟨f_φ, z⟩² + ⟨f_φ+90°, z⟩²), z the z-scored
    patch, with the parameters saved beside the data."""
    mean, std = data["zscore"]
    z = (data["images"][:50].astype(np.float64) - mean) / std
    for k, kind in enumerate(data["cell_types"]):
        f = [
            gabor(24, data["orientation"][k], data["wavelength"][k], data["phase"][k] + q,
                  data["centre"][k], data["sigma"][k])
            for q in (0.0, np.pi / 2)
        ]  # fmt: skip
        np.testing.assert_allclose(data["filters"][k], np.stack(f), atol=1e-6)
        even = z.reshape(50, -1) @ f[0].ravel()
        odd = z.reshape(50, -1) @ f[1].ravel()
        drive = np.maximum(even, 0) if kind == "simple" else even**2 + odd**2
        expected = (
            data["gain"][k] * drive
        )  # the saved filters are float32: compare at its precision
        np.testing.assert_allclose(data["true_rates"][:50, k], expected, atol=1e-4 * expected.max())


def test_complex_cells_are_phase_invariant_and_simple_cells_are_not():
    """A grating in the span of a cell's quadrature pair, at every phase: the energy model's
    response barely moves, the simple cell's goes from its maximum to nothing."""
    pop = draw_population(20, 40, seed=3)
    spread = {"simple": [], "complex": []}
    for k, kind in enumerate(pop.kinds):
        even, odd = pop.filters[k, 0].astype(np.float64), pop.filters[k, 1].astype(np.float64)
        psi = np.linspace(0, 2 * np.pi, 37)[:-1]
        gratings = np.cos(psi)[:, None, None] * even + np.sin(psi)[:, None, None] * odd
        r = pop.rates(gratings)[:, k]
        spread[kind].append(r.min() / r.max())
    print({k: np.round(v, 3).tolist() for k, v in spread.items()})
    assert min(spread["complex"]) > 0.9  # exactly 1 for an orthogonal pair; the DC removal
    assert max(spread["simple"]) < 0.05  # rectified: silent at the opposite phase


def test_rates_and_poisson_counts(data):
    np.testing.assert_allclose(data["true_rates"].mean(0), 2.0, rtol=1e-4)  # the gain's choice
    assert set(np.unique(data["responses"])) <= set(range(0, 10000))  # counts
    # Poisson: the repeats of a test image scatter around its rate, with variance = mean (many
    # repeats, so that the few large rates of the energy cells do not dominate the estimate)
    many = simulate(cells=6, images=200, size=24, rate=2.0, seed=1, test_images=40, repeats=200)
    rates = np.broadcast_to(many["true_test_rates"][:, None, :], many["test_responses"].shape)
    counts = many["test_responses"]
    bias = (counts - rates).sum() / rates.sum()
    dispersion = ((counts - rates) ** 2).sum() / rates.sum()
    print(f"Poisson check: bias {bias:.4f}, variance over mean {dispersion:.3f}")
    assert abs(bias) < 0.02 and 0.93 < dispersion < 1.07
    assert list(data["cell_types"]).count("simple") == 6


def test_splits_and_photographs():
    assert not set(TEST_SCENES) & (set(NATURAL_SCENES) - set(TEST_SCENES))
    for not_a_scene in ("hubble_deep_field", "retina", "immunohistochemistry", "coins"):
        assert not_a_scene not in NATURAL_SCENES


def test_seeded(data):
    again = simulate(cells=12, images=600, size=24, rate=2.0, seed=5, test_images=40, repeats=8)
    for key in ("images", "responses", "test_responses", "filters"):
        np.testing.assert_array_equal(data[key], again[key])
    other = simulate(cells=12, images=600, size=24, rate=2.0, seed=6, test_images=40, repeats=8)
    assert not np.array_equal(data["responses"], other["responses"])


def _cli(*args):
    exe = os.path.join(os.path.dirname(sys.executable), "preimage")
    return subprocess.run([exe, "neurons", "simulate", *args], capture_output=True, text=True)


def test_command_writes_the_recording_and_refuses_bad_values(tmp_path):
    out = tmp_path / "sim.npz"
    r = _cli("--cells", "4", "--images", "50", "--size", "16", "--test-images", "5", "--out",
             str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "4 cells (2 simple, 2 complex)" in r.stdout
    with np.load(out) as f:
        assert f["images"].shape == (50, 16, 16) and f["test_responses"].shape == (5, 10, 4)
    before = out.read_bytes()
    for bad, says in (
        (["--out", str(out)], "exists; give --overwrite"),
        (["--cells", "0", "--out", str(tmp_path / "a.npz")], "bad --cells 0"),
        (["--rate", "-1", "--out", str(tmp_path / "a.npz")], "bad --rate -1"),
        (["--out", str(tmp_path / "a.txt")], "ending in .npz"),
    ):
        r = _cli(*bad)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == before and not (tmp_path / "a.npz").exists()
