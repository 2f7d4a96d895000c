"""A recording's arrays: the checks of bad data, the splits, and the prediction metrics against
their formulas (scipy.stats for the correlations)."""

import numpy as np
import pytest
from scipy import stats

from preimage import PreimageError
from preimage.neurons.data import check, load_recording, split
from preimage.neurons.metrics import average_correlation, feve, trial_correlation

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (50, 8, 8), dtype=np.uint8)
RESPONSES = RNG.poisson(2.0, (50, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "arrays, says",
    [
        ({"images": IMAGES}, "no 'responses' array"),
        ({"responses": RESPONSES}, "no 'images' array"),
        ({"images": IMAGES, "responses": RESPONSES[:40]}, "shape (40, 3) for 50 images"),
        ({"images": IMAGES, "responses": np.where(RESPONSES > 3, np.nan, RESPONSES)}, "NaN"),
        ({"images": IMAGES[:, :, :, None, None], "responses": RESPONSES}, "give N x H x W"),
        ({"images": IMAGES, "responses": RESPONSES, "test_images": IMAGES[:5]}, "give both"),
        (
            {"images": IMAGES, "responses": RESPONSES, "test_images": IMAGES[:5, :6, :6],
             "test_responses": np.ones((5, 2, 3))},
            "images of one size",
        ),
        (
            {"images": IMAGES, "responses": RESPONSES, "test_images": IMAGES[:5],
             "test_responses": np.ones((5, 2, 4))},
            "M x R x K for 5 test images and 3 neurons",
        ),
    ],
)  # fmt: skip
def test_bad_data_is_one_line(arrays, says):
    with pytest.raises(PreimageError, match=None) as e:
        check(arrays)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_images_in_any_layout_become_n_c_h_w_in_0_1():
    grey, _, _, _ = check({"images": IMAGES, "responses": RESPONSES})
    assert grey.shape == (50, 1, 8, 8) and grey.dtype == np.float32
    np.testing.assert_allclose(grey[:, 0], IMAGES / 255, atol=1e-7)
    colour = np.stack([IMAGES] * 3, -1)
    rgb, _, _, _ = check({"images": colour, "responses": RESPONSES})
    assert rgb.shape == (50, 3, 8, 8)


def test_splits_hold_out_ten_percent_seeded_and_disjoint():
    images, responses, _, _ = check({"images": IMAGES, "responses": RESPONSES})
    tags = np.arange(50, dtype=np.float32)[:, None].repeat(3, 1)  # each row names its image
    rec = split(images, tags, seed=3)
    train, val, test = (set(a[:, 0].tolist()) for a in (
        rec.train_responses, rec.val_responses, rec.test_responses[:, 0]))  # fmt: skip
    assert len(test) == 5 and len(val) == 4 and len(train) == 41
    assert not (train & val or train & test or val & test) and len(train | val | test) == 50
    assert not rec.repeated and rec.test_responses.shape == (5, 1, 3)
    again = split(images, tags, seed=3)
    np.testing.assert_array_equal(again.test_responses, rec.test_responses)
    assert not np.array_equal(split(images, tags, seed=4).test_responses, rec.test_responses)
    given = split(images, responses, images[:5], np.ones((5, 2, 3), np.float32), seed=3)
    assert given.repeated and given.test_responses.shape == (5, 2, 3)
    assert len(given.train_responses) + len(given.val_responses) == 50


def test_load_a_simulated_recording(tmp_path):
    from preimage.neurons import simulate

    data = simulate(cells=3, images=40, size=16, test_images=6, repeats=4, seed=1)
    np.savez(tmp_path / "rec.npz", **data)
    rec = load_recording(tmp_path / "rec.npz")
    assert rec.neurons == 3 and rec.channels == 1 and tuple(rec.size) == (16, 16)
    assert rec.repeated and rec.test_responses.shape == (6, 4, 3)
    with pytest.raises(PreimageError, match="cannot read --data"):
        load_recording(tmp_path / "missing.npz")


def test_correlations_are_pearson_over_trials_and_over_averages():
    m, r, k = 30, 5, 4
    signal = RNG.normal(size=(m, k))
    trials = signal[:, None, :] + RNG.normal(size=(m, r, k))
    trials[3, 2, 1] = np.nan  # a missing repeat
    predicted = signal + 0.3 * RNG.normal(size=(m, k))
    got = trial_correlation(predicted, trials)
    for j in range(k):
        x = np.repeat(predicted[:, j], r)
        y = trials[:, :, j].ravel()
        ok = np.isfinite(y)
        assert got[j] == pytest.approx(stats.pearsonr(x[ok], y[ok])[0], abs=1e-12)
    avg = average_correlation(predicted, trials)
    for j in range(k):
        mean = np.nanmean(trials[:, :, j], axis=1)
        assert avg[j] == pytest.approx(stats.pearsonr(predicted[:, j], mean)[0], abs=1e-12)


def test_feve_is_one_for_the_signal_and_zero_for_the_mean():
    """Responses = signal + noise: the signal explains all explainable variance (FEVE near 1),
    the grand mean none of it (exactly 0), and the formula holds on a small case by hand."""
    m, r, k = 400, 20, 3
    signal = RNG.normal(size=(m, k)) * np.array([1.0, 2.0, 0.5])
    trials = signal[:, None, :] + RNG.normal(size=(m, r, k))
    assert np.allclose(feve(signal, trials), 1.0, atol=0.02)
    flat = np.broadcast_to(trials.reshape(-1, k).mean(0), (m, k))
    np.testing.assert_allclose(feve(flat, trials), 0.0, atol=1e-9)
    y = np.array([[[1.0], [2.0]], [[5.0], [6.0]]])  # 2 images x 2 repeats x 1 neuron
    p = np.array([[1.0], [4.0]])
    mse = (0**2 + 1**2 + 1**2 + 2**2) / 4  # 1.5
    var = np.var([1, 2, 5, 6])  # 4.25
    noise = (np.var([1, 2], ddof=1) + np.var([5, 6], ddof=1)) / 2  # 0.5
    np.testing.assert_allclose(feve(p, y), [1 - (mse - noise) / (var - noise)])  # 0.7333
    assert np.isnan(feve(p, np.array([[[1.0], [3.0]], [[2.0], [6.0]]]))).all()  # noise > var
    assert np.isnan(feve(p, y[:, :1])).all()  # one repeat: no noise estimate


def test_files_and_sizes_it_cannot_use_are_one_line(tmp_path):
    np.save(tmp_path / "a.npy", IMAGES)
    (tmp_path / "b.npz").write_bytes(b"not a zip")
    for path in (tmp_path / "a.npy", tmp_path / "b.npz"):
        with pytest.raises(PreimageError, match="cannot read --data") as e:
            load_recording(path)
        assert "\n" not in str(e.value)
    with pytest.raises(PreimageError, match="too few images to fit"):
        split(*check({"images": IMAGES[:2], "responses": RESPONSES[:2]})[:2])
    with pytest.raises(PreimageError, match="floats in \\[0, 1\\]"):
        check({"images": IMAGES.astype(np.float32), "responses": RESPONSES})


def test_feve_leaves_out_only_what_lacks_repeats():
    m, r, k = 200, 6, 3
    signal = RNG.normal(size=(m, k))
    trials = signal[:, None, :] + RNG.normal(size=(m, r, k))
    trials[0, 1:, 2] = np.nan  # one image with a single repeat of one neuron
    got = feve(signal, trials)
    assert np.isfinite(got).all() and np.allclose(got, 1.0, atol=0.1)
