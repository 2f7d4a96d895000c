"""Invariance indices on toy cells (Cadena et al. §4.4, §4.5)."""

import json

import pytest
import torch

import preimage
from preimage.engine.views import WindowedCrops, crop_window
from preimage.methods.cadena import invariance as I

FAST = dict(steps=300, lambdas=[0.0, 0.64, 2.56, 10.24])


@pytest.fixture(scope="module")
def indices():
    out = {}
    for name in ("energy_complex_cell", "simple_cell", "corner_cell"):
        settings = I.InvarianceSettings(target="response:0", **FAST)
        out[name] = I.run(preimage.load_model(name), settings, progress=False).units[0]
    print(
        {
            k: (round(u.shift_invariance_index, 3), round(u.linear_combination_index, 3))
            for k, u in out.items()
        }
    )
    return out


def test_window_is_the_papers():
    w = crop_window(25)
    sigma = 25 / 2.5
    assert float(w[12, 12]) == pytest.approx(1.0)
    assert float(w[12, 12 + 10]) == pytest.approx(
        torch.exp(torch.tensor(-((10 / sigma) ** 4))).item(), rel=1e-5
    )


def test_windowed_crops_are_crops():
    pipe = WindowedCrops(5, k=3)
    x = torch.arange(2 * 3 * 12 * 12, dtype=torch.float32).view(2, 3, 12, 12)
    ys = torch.tensor([[0, 4, 7], [1, 2, 3]])
    xs = torch.tensor([[0, 5, 7], [6, 0, 2]])
    crops = pipe.crops(x, ys, xs).view(2, 3, 3, 5, 5)
    for i in range(2):
        for k in range(3):
            y, xx = int(ys[i, k]), int(xs[i, k])
            assert torch.equal(crops[i, k], x[i, :, y : y + 5, xx : xx + 5] * crop_window(5))


def test_pair_averages_keep_the_norm(lite0):
    templates = torch.rand(6, 3, 9, 9)
    pairs = I.pair_averages(templates, lite0)
    scale, shift = lite0.centering(templates)
    assert pairs.shape == (15, 3, 9, 9)
    target = (templates * scale + shift).flatten(1).norm(dim=1).mean()
    assert torch.allclose(
        (pairs * scale + shift).flatten(1).norm(dim=1), target.expand(15), rtol=1e-5
    )


def test_energy_cell_is_shift_invariant_and_simple_cell_is_not(indices):
    energy, simple = indices["energy_complex_cell"], indices["simple_cell"]
    assert energy.shift_invariance_index > 0.6
    assert simple.shift_invariance_index < 0.5 * energy.shift_invariance_index


def test_corner_cell_is_a_shape_unit(indices):
    corner = indices["corner_cell"]
    assert corner.linear_combination_index > 0.6
    assert (
        corner.shift_invariance_index < 0.5 * indices["energy_complex_cell"].shift_invariance_index
    )


def test_invariance_command_compares_two_models(tmp_path, capsys):
    from preimage.cli import main

    out = tmp_path / "inv"
    assert (
        main(
            [
                "invariance",
                "--model",
                "energy_complex_cell",
                "--target",
                "response:0",
                "--compare",
                "simple_cell",
                "--steps",
                "40",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["wall_seconds"] > 0 and len(m["summary"]) == 2
    unit = next(iter(m["units"].values()))[0]
    assert {"shift_invariance_index", "linear_combination_index"} <= set(unit)
    for name in ("shift_invariance.png", "linear_combination.png", "scatter.png"):
        assert (out / name).exists()
    # the compared model's result is a whole result of its own, in compare/
    other = json.loads((out / "compare" / "metrics.json").read_text())
    assert other["config"]["model"] == "simple_cell"
    for name in ("invariance.png", "lambdas.png", "chosen.png"):
        assert (out / "units" / "response_0" / name).exists()
        assert (out / "compare" / "units" / "response_0" / name).exists()
