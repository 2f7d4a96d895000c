"""Invariance indices on toy cells (Cadena et al. §4.4, §4.5)."""

import json

import pytest
import torch

import preimage
from preimage.engine.views import WindowedCrops, crop_window
from preimage.methods.cadena import invariance as I
from preimage.methods.cadena import invariance_texture as T
from preimage.models.zoo import v1_cells

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
    assert simple.shift_invariance_index < 0.3


def test_an_energy_cell_that_fills_its_field_keeps_its_activation_on_every_crop():
    # §4.4: "a perfectly phase-invariant unit would maintain a high activation" on shifted
    # crops of its texture. With σ = 8 px the envelope fills the 32 px field, so a crop's window
    # hardly cuts it and the index must come near 1 (the σ = 4 px cell loses to its templates
    # because a texture spreads its norm over the whole crop while a template puts it where the
    # small envelope is; see test_the_optimized_texture_matches_the_ideal_grating)
    settings = I.InvarianceSettings(target="response:0", **FAST)
    unit = I.run(v1_cells.load_energy(sigma=8.0), settings, progress=False).units[0]
    assert unit.shift_invariance_index >= 0.9


def test_corner_cell_is_a_shape_unit(indices):
    corner = indices["corner_cell"]
    assert corner.linear_combination_index > 0.6
    assert corner.shift_invariance_index < 0.05


def _grating_texture(model, phase, norm, side=64, wavelength=v1_cells.WAVELENGTH):
    return v1_cells.periodic_grating(model, norm, phase, side, wavelength)


def test_every_crop_start_counts_alike_so_the_mean_ignores_where_the_texture_begins():
    # on a torus a cyclic shift of the texture permutes its crops; inside a 2ρ image it would
    # move the centre, which every crop covers, and change the mean
    model = preimage.load_model("simple_cell")
    texture = 0.5 + 0.2 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    rolled = torch.roll(texture, (5, 23), dims=(2, 3))
    a, b = (
        T.all_crops_activation(model, "response", t, [0], 32, I.centre_unit)
        for t in (texture, rolled)
    )
    assert float(a) == pytest.approx(float(b), rel=1e-4)


def test_windowed_crops_carry_the_templates_norm():
    texture = torch.randn(1, 1, 40, 40, generator=torch.Generator().manual_seed(1))
    views = T.PeriodicCrops(20)
    norm = T.texture_norm(3.0, views.window(texture), 40)
    texture = texture * norm / texture.norm()
    ys, xs = torch.meshgrid(torch.arange(40), torch.arange(40), indexing="ij")
    crops = views.crops(texture, ys.reshape(1, -1), xs.reshape(1, -1))
    rms = crops.flatten(1).norm(dim=1).pow(2).mean().sqrt()
    assert float(rms) == pytest.approx(3.0, rel=1e-5)


def test_periodic_crops_wrap_around():
    views = T.PeriodicCrops(4)
    x = torch.arange(36, dtype=torch.float32).view(1, 1, 6, 6)
    crop = views.crops(x, torch.tensor([[4]]), torch.tensor([[5]]))[0, 0]
    rows, cols = torch.tensor([4, 5, 0, 1]), torch.tensor([5, 0, 1, 2])
    assert torch.equal(crop, x[0, 0][rows][:, cols] * crop_window(4))


def test_the_optimized_texture_matches_the_ideal_grating(indices):
    # an energy cell's best periodic texture is a grating at its orientation and wavelength, any
    # phase: the optimized texture must reach it, and it is what bounds the σ = 4 px cell's index
    model = preimage.load_model("energy_complex_cell")
    unit = indices["energy_complex_cell"]
    norm = unit.extra["texture_norm"]
    window = float(crop_window(32).double().norm())
    assert norm == pytest.approx(64 / window * unit.extra["template_norm"], rel=1e-5)
    ideal = [
        float(
            T.all_crops_activation(
                model, "response", _grating_texture(model, p, norm), [0], 32, I.centre_unit
            )
        )
        for p in (0.0, 1.0, 2.5)
    ]
    assert max(ideal) == pytest.approx(min(ideal), rel=1e-3)  # phase invariant
    assert unit.crop_activation >= 0.9 * ideal[0]
    assert unit.shift_invariance_index <= 1.05 * ideal[0] / unit.template_activation


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


def test_invariance_compare_of_the_same_model_keeps_both_runs(tmp_path):
    # the two runs' labels are the same in short; metrics.json must keep both, the own run first
    from preimage.cli import main

    out = tmp_path / "inv"
    argv = ["invariance", "--model", "energy_complex_cell", "--target", "response:0"]
    argv += ["--compare", "energy_complex_cell", "--n", "3", "--steps", "4", "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["summary"]) == 2 and len(m["units"]) == 2
    first, second = m["units"].values()
    assert len(first) == len(second) == 1
