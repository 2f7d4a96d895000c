"""Diverse feature visualizations on the toy V1 cells (Cadena et al. Fig. 1, 2)."""

import math

import pytest
import torch

import preimage
from preimage import objectives as O
from preimage.methods.cadena import diverse as D
from preimage.methods.cadena import setting as S
from preimage.methods.cadena.phase import phase
from preimage.models.zoo.v1_cells import WAVELENGTH, grating


def _sweeps(model, target, **settings):
    return D.run(model, D.DiverseSettings(target=target, **settings), progress=False).sweeps


def _phases(model, images):
    scale, shift = model.centering(images)
    return [math.degrees(float(p)) % 360 for p in phase(images * scale + shift, WAVELENGTH)]


def _gaps(angles):
    a = sorted(angles)
    return [(b - c) % 360 for c, b in zip(a, a[1:] + a[:1])]


def test_toy_cells_are_what_they_claim():
    ph = torch.linspace(0, 2 * math.pi, 181)[:-1]
    stimuli = (
        torch.stack([grating(float(p)) for p in ph])[:, None].expand(-1, 3, -1, -1) * 0.5 + 0.5
    )
    curves = {}
    for name in ("simple_cell", "energy_complex_cell", "hw_complex_cell"):
        m = preimage.load_model(name)
        with torch.no_grad():
            curves[name] = m.activations(stimuli, ["response"])["response"].flatten()
        assert (
            m.layer_info("response").shape == (1, 1, 1) and m.layer_info("response").rf_size == 32
        )
    energy, hw, simple = (
        curves["energy_complex_cell"],
        curves["hw_complex_cell"],
        curves["simple_cell"],
    )
    assert float(energy.min() / energy.max()) > 0.999  # exactly phase invariant
    assert (
        0.78 < float(hw.min() / hw.max()) < 0.85
    )  # approximately: above about 80 % at every phase
    peaks = (hw > torch.roll(hw, 1)) & (hw > torch.roll(hw, -1))
    assert int(peaks.sum()) == 1  # with a unique maximum
    assert float(simple.min()) < 0.02 * float(
        simple.max()
    )  # a simple cell is silenced by the opposite phase


def test_min_distance_term():
    f = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [1.0, 1.0], [1.0, 2.0], [9.0, 9.0]])
    ctx = O.Context({"L": f}, torch.zeros(6, 3, 2, 2), torch.zeros(6, 3, 2, 2))
    term = O.min_distance("L", preimage.Groups(3), [2.0, 10.0])
    values = term(ctx)
    assert torch.allclose(term.measure(ctx), torch.tensor([5.0, 1.0]))
    assert term.role == "regularizer"  # a reward, not the unit's activation
    # group 0 (first three rows): closest pair 5 apart; group 1: 1 apart; each element carries
    # λ·min/n
    assert torch.allclose(values, torch.tensor([2 * 5 / 3] * 3 + [10 * 1 / 3] * 3))


def test_pairwise_distances_are_the_differences_norms_with_their_gradients():
    # the Gram form against the n² differences on rows far from the origin (large activations)
    # of which two nearly coincide, the case where ‖a‖² + ‖b‖² - 2a·b cancels
    g = torch.Generator().manual_seed(0)
    f = 100 + torch.randn(5, 6, 300, generator=g, dtype=torch.float64)
    f[:, 1] = f[:, 0] + 1e-3 * torch.randn(5, 300, generator=g, dtype=torch.float64)
    off = ~torch.eye(6, dtype=torch.bool)

    def relative_error(x):
        exact = (x[:, :, None] - x[:, None]).norm(dim=-1)
        return ((O.pairwise_distances(x) - exact).abs() / exact.clamp_min(1e-12))[:, off]

    assert float(relative_error(f).max()) < 1e-8  # 1e-12 sits inside the sqrt
    # in float32 the near pair's distance is the objective's only (its gradient keeps the
    # direction a - b exactly); the others, and every measured distance, are accurate
    far = relative_error(f.float()).clone()
    far[:, 0] = far[:, 5] = 0  # the near pair: entries (0, 1) and (1, 0) of the off-diagonal
    assert float(far.max()) < 1e-4
    term = O.min_distance("L", preimage.Groups(6), [1.0] * 5)
    rounded = f.float()
    ctx = O.Context(
        {"L": rounded.flatten(0, 1)}, torch.zeros(30, 3, 2, 2), torch.zeros(30, 3, 2, 2)
    )
    exact = (rounded[:, 0].double() - rounded[:, 1].double()).norm(dim=-1)
    assert torch.allclose(term.measure(ctx).double(), exact, rtol=1e-5)
    x = f.clone().requires_grad_(True)
    O.closest_distances(x.flatten(0, 1), preimage.Groups(6)).sum().backward()
    # d|a - b| / da is the unit vector from b to a
    unit = (f[:, 0] - f[:, 1]) / (f[:, 0] - f[:, 1]).norm(dim=-1, keepdim=True)
    assert torch.allclose(x.grad[:, 0], unit, atol=1e-6)
    assert torch.allclose(x.grad[:, 1], -unit, atol=1e-6)


def test_lambda_sweep_values():
    assert (
        S.LAMBDAS[0] == 0
        and S.LAMBDAS[1] == 0.02
        and S.LAMBDAS[-1] == pytest.approx(20.48)
        and len(S.LAMBDAS) == 12
    )


@pytest.fixture(scope="module")
def hw_sweep():
    return _sweeps(preimage.load_model("hw_complex_cell"), "response:0")[0]


def test_hw_complex_cell_maps_its_phase_invariance(hw_sweep):
    model = preimage.load_model("hw_complex_cell")
    s = hw_sweep
    assert s.distance_layer == "subunits" and s.threshold == 0.8
    zero = _phases(model, s.images[0])
    # λ = 0: most of the six images converge to the same phase (the unique maximum)
    close = max(sum(1 for b in zero if min(abs(a - b), 360 - abs(a - b)) < 15) for a in zero)
    assert close >= 4, zero
    # the chosen λ: phases spread round the circle, activation still at least 80 %
    k = s.chosen
    assert k is not None and s.lambdas[k] > 0
    spread = _phases(model, s.images[k])
    gaps = _gaps(spread)
    print(
        f"hw_complex_cell: λ=0 phases {sorted(round(p) for p in zero)}; chosen λ={s.lambdas[k]}"
        f" phases {sorted(round(p) for p in spread)}, gaps {sorted(round(g) for g in gaps)},"
        f" activation {float(s.normalized_activation[k]):.2f}"
    )
    assert min(gaps) > 30 and max(gaps) < 120
    assert float(s.normalized_activation[k]) >= 0.8


def test_each_lambda_leaves_the_batch_once_converged(hw_sweep):
    steps = hw_sweep.extra["steps_per_lambda"]
    assert len(steps) == len(hw_sweep.lambdas)
    # the sweep ran until its slowest λ had converged; the others had left the batch before
    assert max(steps) == hw_sweep.extra["steps"] <= hw_sweep.extra["steps_max"]
    assert min(steps) < max(steps), steps


@pytest.mark.parametrize("patience, batches", [(5, 1), (0, 3)])
def test_units_share_a_batch_where_a_step_runs_in_parts(monkeypatch, patience, batches):
    """On the CPU with groups retiring, a step runs in parts, so every unit fits one batch; without
    early stopping a step runs whole and the batches keep to MAX_PIXELS."""
    calls = []
    batch = D._batch
    monkeypatch.setattr(D, "_batch", lambda m, s, c, p: calls.append(c) or batch(m, s, c, p))
    monkeypatch.setattr(D, "MAX_PIXELS", 2 * 2 * 32 * 32)  # one unit: 2 λ x 2 images of 32 px
    model = preimage.load_model("hw_complex_cell")
    lambdas, size = [0.0, 1.0], model.layer_info("response").rf_size
    assert size == 32
    setup = D.Sweep("response", 2, lambdas, 2, 0.1, patience, None, size, 1.0, 0, 0.9)
    out = D.sweep(model, setup, [0, 0, 0], progress=False)
    assert len(out) == 3 and len(calls) == batches


def test_simple_cell_tradeoff_drops_instead(hw_sweep):
    simple = preimage.load_model("simple_cell")
    lam = hw_sweep.chosen_lambda
    [s] = _sweeps(simple, "response:0", lambdas=[0.0, lam], threshold=0.8)
    assert s.distance_layer is None  # no subunits: pixel distance
    act = float(s.normalized_activation[1])
    print(
        f"at the hw cell's chosen λ = {lam}: hw activation"
        f" {float(hw_sweep.normalized_activation[hw_sweep.chosen]):.2f}, simple cell {act:.2f}"
    )
    assert act < 0.8 < float(hw_sweep.normalized_activation[hw_sweep.chosen])
    # the simple cell keeps its one phase: diversity only from what the cell does not see
    phases = _phases(simple, s.images[1])
    assert max(min(abs(p), 360 - abs(p)) for p in phases) < 30


def test_preceding_layer_detection(lite0, alexnet):
    assert S.preceding_layer(lite0, "_blocks.2") == "_blocks.1"
    assert S.preceding_layer(alexnet, "conv3") == "features.3"  # conv2
    assert S.preceding_layer(alexnet, "relu3") == "features.4"  # relu2
    assert S.preceding_layer(preimage.load_model("energy_complex_cell"), "response") == "subunits"
    assert S.preceding_layer(preimage.load_model("simple_cell"), "response") is None


def test_norm_is_fixed_and_images_are_the_receptive_field(lite0):
    [s] = _sweeps(lite0, "_blocks.1:3", lambdas=[0.0, 1.0], steps=30)
    assert s.images.shape == (2, 6, 3, 11, 11)  # _blocks.1 sees 11 px
    scale, shift = lite0.centering(s.images[0])
    norms = (s.images * scale + shift).flatten(2).norm(dim=2)
    assert torch.allclose(norms, torch.full_like(norms, s.extra["norm"]), rtol=1e-4)
    assert s.extra["norm"] == pytest.approx(0.5 * S.natural_patch_norm(lite0, 11), rel=1e-6)


def test_diverse_command(tmp_path, capsys):
    import json

    import numpy as np

    from preimage.cli import main

    out = tmp_path / "d"
    assert (
        main(
            [
                "diverse",
                "--model",
                "energy_complex_cell",
                "--target",
                "response:0",
                "--lambdas",
                "0,1,4",
                "--steps",
                "60",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    unit = m["units"][0]
    assert (
        unit["lambdas"] == [0, 1, 4]
        and len(unit["mean_activation"]) == 3
        and unit["normalized_activation"][0] == 1
    )
    assert unit["chosen_lambda"] in (0, 1, 4)
    data = np.load(out / "result.npz")
    assert data["images"].shape == (1, 3, 6, 3, 32, 32)  # unit x λ x n x C x H x W
    assert data["inputs"].shape == (1, 3, 6, 3, 32, 32) and list(data["channels"]) == [0]
    assert 0 <= data["images"].min() and data["images"].max() <= 1
    assert (out / "grid.png").exists() and (out / "tradeoff.png").exists()
    for role in ("lambdas", "tradeoff", "chosen"):
        assert (out / "units" / "response_0" / f"{role}.png").exists()
