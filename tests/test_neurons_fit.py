"""Fitting a model of neurons: readouts, cores and loss against hand computations, save and load,
the ground-truth checks, and a small fit-then-visualize run from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from preimage.cli import main
from preimage.errors import PreimageError
from preimage.neurons import fit, load, simulate
from preimage.neurons.cores import CNNCore, TaskCore
from preimage.neurons.data import check, split
from preimage.neurons.fitting import correlation, poisson_loss
from preimage.neurons.ground_truth import (
    classify,
    envelope,
    envelope_cosine,
    image_phases,
    largest_gap,
    quadrature_gratings,
)
from preimage.neurons.readouts import FactorizedReadout, GaussianReadout
from preimage.neurons.settings import FitSettings
from preimage.neurons.simulate import gabor


def test_factorized_readout_is_mask_times_weights():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 4, 5, generator=g)
    r = FactorizedReadout(3, 4, 5, neurons=2).requires_grad_(False)
    with torch.no_grad():
        r.mask.copy_(torch.randn(2, 4, 5, generator=g))
        r.weight.copy_(torch.randn(2, 3, generator=g))
        r.bias.copy_(torch.tensor([0.5, -1.0]))
    out = r(features)
    for n in range(2):
        for k in range(2):
            hand = sum(
                float(r.weight[k, c]) * float((r.mask[k] * features[n, c]).sum()) for c in range(3)
            )
            assert float(out[n, k]) == pytest.approx(hand + float(r.bias[k]), rel=1e-5)
    assert float(r.sparsity()) == pytest.approx(
        float((r.mask.abs().sum() + r.weight.abs().sum()) / 2)
    )


def test_gaussian_readout_reads_its_position_bilinearly():
    features = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)  # C=2, 3 x 4
    r = GaussianReadout(2, 3, 4, neurons=2).eval()
    with torch.no_grad():
        r.mu.copy_(torch.tensor([[-1.0, 1.0], [-1.0 + 1 / 3, 0.0]]))  # (x, y) in [-1, 1]
        r.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        r.bias.zero_()
    out = r(features)[0].detach()
    assert float(out[0]) == pytest.approx(float(features[0, 0, 2, 0]))  # bottom-left, channel 0
    # x halfway between columns 0 and 1 of the middle row, channel 1
    assert float(out[1]) == pytest.approx(float(features[0, 1, 1, :2].mean()))
    r.train()
    drawn = r.positions(1000).detach()  # around μ while training, inside the map
    assert float(drawn.std(0).mean()) > 0.1 and drawn.abs().max() <= 1


def test_poisson_loss_is_the_negative_log_likelihood_and_least_at_the_counts():
    from scipy.stats import poisson

    counts = torch.tensor([[0.0, 1.0, 4.0], [2.0, 7.0, 3.0]])
    rate = torch.tensor([[0.5, 1.5, 3.0], [2.0, 5.0, 3.5]], requires_grad=True)
    log_factorial = torch.lgamma(counts + 1)
    nll = -poisson.logpmf(counts.numpy(), rate.detach().numpy()).mean()
    loss = poisson_loss(rate, counts).detach() + log_factorial.mean()
    assert float(loss) == pytest.approx(nll, rel=1e-5)
    at_counts = counts.clamp_min(1e-3).clone().requires_grad_(True)
    poisson_loss(at_counts, counts).backward()
    assert float(at_counts.grad[counts > 0].abs().max()) < 1e-6


def test_correlation_is_pearson_per_column():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(50, 3, generator=g), torch.randn(50, 3, generator=g)
    b[:, 2] = 2 * a[:, 2] + 1
    r = correlation(a, b)
    assert float(r[0]) == pytest.approx(np.corrcoef(a[:, 0], b[:, 0])[0, 1], abs=1e-5)
    assert float(r[2]) == pytest.approx(1.0, abs=1e-5)


def test_cnn_core_smoothness_prefers_smooth_filters():
    core = CNNCore(1, 4, (9, 3))
    rough = float(core.smoothness().detach())
    y, x = torch.meshgrid(torch.arange(9.0) - 4, torch.arange(9.0) - 4, indexing="ij")
    with torch.no_grad():
        core.layers[0].weight.copy_(torch.exp(-(x**2 + y**2) / 8).expand(4, 1, 9, 9))
    assert float(core.smoothness().detach()) < rough / 10
    assert core(torch.zeros(2, 1, 20, 20)).shape == (2, 4, 10, 10)  # 20 - 8 - 2, no padding


def test_first_layer_weight_gradient_as_a_forward_convolution():
    from preimage.models.fast import weight_gradient

    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 2, 11, 12, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 2, 7, 7, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    want = torch.nn.functional.conv2d(x, w, b, 1, (1, 2))
    got = weight_gradient.conv2d(x, w, b, (1, 2))
    grad_out = torch.randn(want.shape, generator=g, dtype=torch.float64)
    assert torch.equal(got, want)
    for a, e in zip(torch.autograd.grad(got, (x, w, b), grad_out),
                    torch.autograd.grad(want, (x, w, b), grad_out)):  # fmt: skip
        assert torch.allclose(a, e, rtol=1e-12, atol=1e-12)


def test_cnn_core_trains_with_the_same_gradient_either_way(monkeypatch):
    from preimage.models.fast import weight_gradient

    core = CNNCore(seed=2).double().train()
    x = torch.randn(4, 1, 24, 24, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    fast = torch.autograd.grad(core(x).pow(2).sum(), list(core.parameters()))
    monkeypatch.setattr(weight_gradient, "fits", lambda conv: False)  # oneDNN's own backward
    plain = torch.autograd.grad(core(x).pow(2).sum(), list(core.parameters()))
    assert all(torch.allclose(a, e, rtol=1e-10, atol=1e-10) for a, e in zip(fast, plain))
    assert float(fast[0].abs().max()) > 0


def test_task_core_feeds_grey_as_three_equal_channels():
    import preimage

    backbone = preimage.load_model("efficientnet_lite0")
    mean, std = 0.4, 0.2
    core = TaskCore(backbone, "_blocks.1", 48, (mean, std))
    grey = torch.rand(2, 1, 24, 24)
    out = core((grey - mean) / std)
    rgb = torch.nn.functional.interpolate(grey, size=(48, 48), mode="bilinear").expand(
        -1, 3, -1, -1
    )
    expected = backbone.activations(rgb, ["_blocks.1"])["_blocks.1"]
    assert torch.allclose(out, expected, atol=1e-4)


@pytest.fixture(scope="module")
def recording():
    data = simulate(cells=4, images=400, size=16, seed=4, test_images=30, repeats=4)
    return data, split(*check(data), seed=0)


def test_fit_predicts_and_saves_what_loads_back(recording, tmp_path):
    data, rec = recording
    fitted = fit(rec, FitSettings(epochs=8, ensemble=2, kernels=[7, 3]), progress=False)
    m = fitted.metrics
    assert len(m["test_correlation"]) == 4 and m["epochs"][0] <= 8
    assert m["median_test_correlation"] > 0.3  # far above chance after eight epochs
    assert "held_out_test_correlation" in m and "feve" in m
    fitted.save(tmp_path)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["config"]["image_norm"] > 0 and record["history"][0][0][0] == 1
    assert (tmp_path / "metrics.png").stat().st_size > 0
    assert (tmp_path / "training.png").stat().st_size > 0
    obj = torch.load(tmp_path / "model.pt", weights_only=True)  # nothing but tensors and text
    assert obj["format"] == "preimage-neurons/1"
    net, config = load(str(tmp_path / "model.pt"))
    x = torch.randn(3, 1, 16, 16)
    assert torch.allclose(net.eval()(x), fitted.net.eval()(x))
    members = torch.stack([fitted.net.member(i, x) for i in (1,)]).mean(0)
    assert torch.allclose(net(x), members)  # ``neurons`` leaves the first member out
    with pytest.raises(PreimageError, match="not a fitted model of neurons"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
        load(str(tmp_path / "other.pt"))


def test_fit_is_seeded(recording):
    _, rec = recording
    for readout in ("factorized", "gaussian"):  # the Gaussian readout draws positions too
        s = FitSettings(epochs=2, kernels=[7, 3], seed=3, readout=readout)
        a, b = fit(rec, s, progress=False), fit(rec, s, progress=False)
        assert a.metrics["test_correlation"] == b.metrics["test_correlation"]


def test_a_plateau_cuts_the_learning_rate_from_the_best_weights_then_stops(recording, monkeypatch):
    import preimage.neurons.fitting as fitting

    scripted = iter([0.1, 0.5, 0.4, 0.4, 0.6, 0.3, 0.3, 0.3, 0.3, 0.3])
    optimizers = []

    class Recorded(torch.optim.Adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            optimizers.append(self)

    monkeypatch.setattr(
        fitting, "correlation", lambda p, y: torch.full((y.shape[1],), next(scripted))
    )
    monkeypatch.setattr(fitting.torch.optim, "Adam", Recorded)
    _, rec = recording
    s = FitSettings(epochs=10, kernels=[7, 3], patience=2, lr_decays=1, lr=0.01)
    # best at 2, plateau at 4 (back to epoch 2's weights, lr x 0.3), best at 5, plateau at 7: stop
    assert fit(rec, s, progress=False).metrics["epochs"] == [7]
    assert optimizers[-1].param_groups[0]["lr"] == pytest.approx(0.003)
    scripted = iter([0.1, 0.5, 0.4, 0.4, 0.6])
    s = FitSettings(epochs=10, kernels=[7, 3], patience=2, lr_decays=0, lr=0.01)
    assert fit(rec, s, progress=False).metrics["epochs"] == [4]  # no cut: the first plateau stops
    assert optimizers[-1].param_groups[0]["lr"] == 0.01


def test_phases_gaps_and_the_rule():
    size = 24
    pair = np.stack([gabor(size, 0.3, 6.0, p, (0.0, 0.0), 3.0) for p in (0.0, np.pi / 2)])
    shifted = [gabor(size, 0.3, 6.0, np.radians(d), (0.0, 0.0), 3.0) for d in (0, 90, 200)]
    phases = image_phases(np.stack(shifted), pair)
    assert np.allclose(phases, [0, 90, 200], atol=6)  # a Gabor's phase read off the pair
    gratings = quadrature_gratings(pair, 5.0, [0, 90, 200, 330])
    assert np.allclose(np.linalg.norm(gratings.reshape(4, -1), axis=1), 5.0)
    assert np.allclose(gratings.mean(axis=(1, 2)), 0.0, atol=1e-12)
    assert np.allclose(image_phases(gratings, pair), [0, 90, 200, 330], atol=6)
    energy = (gratings.reshape(4, -1) @ pair.reshape(2, -1).T) ** 2  # an energy model's drive
    assert energy.sum(1).min() / energy.sum(1).max() > 0.95  # answers every phase alike
    assert largest_gap([10.0]) == 360.0
    assert largest_gap([0, 60, 120, 180, 240, 300]) == pytest.approx(60.0)
    assert largest_gap([350, 10]) == pytest.approx(340.0)
    assert classify(100.0) == "complex" and classify(200.0) == "simple"
    mask = envelope(size, (0.0, 0.0), 3.0)
    assert envelope_cosine(pair[0], pair[0], mask) == pytest.approx(1.0)
    assert abs(envelope_cosine(pair[0], pair[1], mask)) < 0.2


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("neurons")
    sim, out = tmp_path / "sim.npz", tmp_path / "fit"
    simulate_argv = ["neurons", "simulate", "--cells", "3", "--images", "300", "--size", "16",
                     "--test-images", "20", "--repeats", "3", "--seed", "9",
                     "--out", str(sim)]  # fmt: skip
    assert main(simulate_argv) == 0
    argv = ["neurons", "fit", "--data", str(sim), "--epochs", "10", "--kernels", "7,3",
            "--ensemble", "2", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


def test_fit_then_visualize_from_the_command_line(fitted_dir, tmp_path):
    out = fitted_dir
    assert (out / "metrics.json").exists()
    weights = str(out / "model.pt")
    mei = tmp_path / "mei"
    assert main(["visualize", "--model", "neurons", "--weights", weights, "--target",
                 "neurons:all", "--steps", "60", "--quiet", "--out", str(mei)]) == 0  # fmt: skip
    record = json.loads((mei / "metrics.json").read_text())
    assert min(record["relative_to_best_training"]) > 1  # above every training image
    assert len(record["held_out_activation"]) == 3
    assert record["config"]["render"]["transforms"]["steps"] == []  # no jitter for an MEI
    result = np.load(mei / "result.npz")
    images, config = result["images"], json.loads((out / "metrics.json").read_text())["config"]
    lo, hi = config["pixel_range"]
    assert images.shape == (3, 1, 16, 16) and images.min() >= lo and images.max() <= hi
    centred = (images - config["zscore"][0]).reshape(3, -1)
    assert np.all(np.linalg.norm(centred, axis=1) <= config["image_norm"] * 1.001)
    assert np.allclose(result["images_data_units"], images)  # float data: the same units
    div = tmp_path / "div"
    diverse_argv = ["diverse", "--model", "neurons", "--weights", weights, "--target",
                    "neurons:all", "--steps", "20", "--n", "3", "--lambdas", "0,1", "--quiet",
                    "--out", str(div)]  # fmt: skip
    assert main(diverse_argv) == 0
    record = json.loads((div / "metrics.json").read_text())
    assert record["config"]["threshold"] == 0.85
    assert record["config"]["norm"] == pytest.approx(config["image_norm"])


def test_fit_refuses_bad_data_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((10, 8, 8)), responses=np.zeros((9, 2)))
    assert main(["neurons", "fit", "--data", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad responses" in err
    assert not (tmp_path / "o").exists()
    assert main(["neurons", "fit", "--data", str(bad), "--core", "lite0", "--out", "o"]) == 2
    assert "bad --core 'lite0'" in capsys.readouterr().err
    assert main(["visualize", "--model", "neurons", "--target", "neurons:0", "--out", "o"]) == 2
    assert "give the model.pt" in capsys.readouterr().err


def test_the_atlas_maps_a_population_and_ships_its_weights_to_workers(fitted_dir, tmp_path):
    from preimage.atlas.catalog import Catalog
    from preimage.atlas.jobs import run_job, weights_bytes

    weights, folder = str(fitted_dir / "model.pt"), tmp_path / "atlas"
    argv = ["atlas", "--model", "neurons", "--weights", weights, "--layers", "neurons", "--units",
            "all", "--methods", "visualize", "--steps", "10", "--out", str(folder)]  # fmt: skip
    assert main(argv) == 0
    assert main(["report", str(folder)]) == 0 and (folder / "index.html").exists()
    spec = Catalog(str(folder / "catalog.sqlite")).jobs()[0]["spec"]
    from preimage.models import load_model_spec

    assert load_model_spec(f"neurons:{weights}").name == "neurons"  # as --compare and study take it
    data = weights_bytes(spec)
    assert data == (fitted_dir / "model.pt").read_bytes()
    # a worker on a machine without the file gets its bytes from the driver
    elsewhere = {**spec, "weights": str(tmp_path / "on-the-driver-only" / "model.pt")}
    result = run_job(elsewhere, weights=data)
    assert len(result["units"]) == 3
