"""One protocol for every method: the same files whichever entry point made them, settings that
check themselves, and a new method that is one module plus its registration."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch

import preimage
from preimage.atlas import Campaign, LocalExecutor, Settings, plan, run_campaign, run_job
from preimage.cli import main
from preimage.methods import base, registry

SMALL = dict(steps=4, size=32, n=2, lambdas=[0.0, 1.0], repeats=2)
CLI = {
    "visualize": ["--target", "_blocks.0:0,1", "--size", "32", "--steps", "4"],
    "diverse": ["--target", "_blocks.0:0,1", "--lambdas", "0,1", "--n", "2", "--steps", "4"],
    "invariance": ["--target", "_blocks.0:0,1", "--lambdas", "0,1", "--n", "2", "--steps", "4"],
    "reliability": ["--target", "_blocks.0:0,1", "--repeats", "2", "--size", "32", "--steps", "4"],
}


def _files(folder):
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder)
        for name in names
    )


@pytest.mark.parametrize("method", sorted(CLI))
def test_cli_and_atlas_job_write_the_same_files(method, lite0, tmp_path):
    """The same units as one batch with the same seed: the same file names, arrays and pictures."""
    cli = tmp_path / "cli"
    assert main([method, *CLI[method], "--quiet", "--out", str(cli)]) == 0
    [spec] = plan(lite0, ["_blocks.0"], "2", [method], Settings(model=lite0.name, chunk=2, **SMALL))
    job = run_job(spec)
    ours = _files(cli)
    assert sorted(job["files"]) == sorted(ours + ["job.json"])  # the job also describes itself
    for name in ours:
        if name == "metrics.json":  # the command line and the timing differ
            continue
        with open(cli / name, "rb") as f:
            data = f.read()
        if name.endswith(".npz"):
            a, b = np.load(cli / name), np.load(__import__("io").BytesIO(job["files"][name]))
            assert sorted(a.files) == sorted(b.files), name
            for key in a.files:
                assert np.array_equal(a[key], b[key]), (name, key)
        else:
            assert data == job["files"][name], name
    # the catalog rows name files the job wrote
    for row in job["units"]:
        assert set(row["artifacts"].values()) <= set(job["files"])


def test_settings_check_themselves_before_any_work():
    from preimage.methods.cadena.diverse import DiverseSettings
    from preimage.methods.visualize import VisualizeSettings

    with pytest.raises(
        preimage.PreimageError, match=r"bad --steps 0; it must be from 1 to 1000000"
    ):
        VisualizeSettings(targets=["_blocks.0:0"], steps=0)
    with pytest.raises(preimage.PreimageError, match=r"bad --lr nan; it must be a finite number"):
        VisualizeSettings(targets=["_blocks.0:0"], lr=float("nan"))
    with pytest.raises(preimage.PreimageError, match=r"bad --lambdas 1,2; they must start at 0"):
        DiverseSettings(target="_blocks.0:0", lambdas="1,2")
    s = DiverseSettings(target="_blocks.0:0", lambdas="0,0.5")  # text is parsed as the CLI's is
    assert s.lambdas == [0.0, 0.5] and DiverseSettings(target="x:0").lambdas[-1] == 20.48


# -- a method that is not one of the papers', registered by a test ---------------------------


@dataclasses.dataclass
class NoiseSettings(base.Settings):
    target: str = base.setting(None, "the channels whose response to noise is measured", type=str)
    images: int = base.setting(8, "noise images", check=base.at_least(1))
    size: int = base.setting(32, "their side in pixels", check=base.at_least(1))
    seed: int = base.setting(0, "seed of the noise", check=base.seed_check)


@dataclasses.dataclass
class NoiseResult(base.Result):
    layer: str
    channels: list
    images: torch.Tensor
    responses: torch.Tensor  # images x channels
    config: dict
    method = "noise"

    def save(self, folder, argv=None):
        from preimage.io.files import save_npz, write_metrics
        from preimage.io.images import save_grid

        os.makedirs(folder, exist_ok=True)
        save_grid(os.path.join(folder, "grid.png"), self.images)
        save_npz(os.path.join(folder, "result.npz"), responses=self.responses)
        return write_metrics(folder, self.config, argv, mean=self.responses.mean(0).tolist())

    def unit_rows(self):
        return [
            {
                "layer": self.layer,
                "unit": c,
                "method": "noise",
                "artifacts": {"grid": "grid.png"},
                "metrics": {"mean_response": float(self.responses[:, i].mean())},
            }
            for i, c in enumerate(self.channels)
        ]

    def summary(self, folder):
        return [f"mean response to noise {float(self.responses.mean()):.3g}"]


def _run_noise(model, settings, *, progress=True, load=None):
    from preimage.engine.targets import parse_target

    elements = parse_target(model, settings.target, settings.size, unit_mode=True)
    layer = model.resolve_layer(elements[0].layer)
    g = torch.Generator().manual_seed(settings.seed)
    images = torch.rand(settings.images, 3, settings.size, settings.size, generator=g)
    with torch.no_grad():
        a = model.activations(images, [layer])[layer]
    channels = [e.channel for e in elements]
    responses = a[:, channels, a.shape[-2] // 2, a.shape[-1] // 2]
    config = {"method": "noise", "model": model.name, **settings.as_dict()}
    return NoiseResult(layer, channels, images, responses, config)


NOISE = base.Method(
    name="noise",
    help="the centre units' responses to uniform noise",
    settings=NoiseSettings,
    run=_run_noise,
    atlas=base.AtlasUse(
        fields=("seed", "size"),
        target=lambda layer, units: {"target": f"{layer}:{','.join(map(str, units))}"},
        images_per_step=lambda s, units: s.images,
        image_size=lambda model, layer, s: s.size,
    ),
    report=base.ReportUse(
        sections=lambda m: [
            base.Section(
                "Noise",
                rows=(("mean response", m["mean_response"]),),
                images=(("grid", "noise", False),),
            )
        ],
    ),
)


@pytest.fixture
def noise_method():
    registry.register(NOISE)  # the whole registration: one line
    yield NOISE
    registry._METHODS.pop("noise")


def test_a_new_method_is_one_module_and_its_registration(noise_method, lite0, tmp_path, capsys):
    # the command line has it, with flags from its settings
    out = tmp_path / "cli"
    assert (
        main(["noise", "--target", "_blocks.0:0-2", "--images", "4", "--quiet", "--out", str(out)])
        == 0
    )
    assert "mean response to noise" in capsys.readouterr().out
    assert np.load(out / "result.npz")["responses"].shape == (4, 3)
    assert main(["noise", "--target", "_blocks.0:0", "--images", "0", "--out", str(out)]) == 2
    assert "bad --images 0" in capsys.readouterr().err
    # so do the atlas and the report
    specs = plan(lite0, ["_blocks.0"], "2", ["noise"], Settings(model=lite0.name, size=16))
    assert [s["settings"]["size"] for s in specs] == [16]
    with Campaign(tmp_path / "atlas") as campaign:
        run_campaign(campaign, specs, LocalExecutor(1), progress=False)
    from preimage.atlas.report import write_report

    index, counts = write_report(tmp_path / "atlas")
    page = open(tmp_path / "atlas" / "units" / "blocks.0_1.html").read()
    assert counts["unit_pages"] == 2 and "<h2>Noise</h2>" in page and "mean response" in page
    job = json.loads(next((tmp_path / "atlas" / "jobs").glob("*/job.json")).read_text())
    assert job["spec"]["method"] == "noise"
