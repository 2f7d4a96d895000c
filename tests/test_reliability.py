"""Reliability statistics (Finzi §IV.B) and the design-choice studies."""

import json
from collections import Counter
from itertools import combinations

import numpy as np
import pytest
import torch

import preimage
from preimage.cli import main
from preimage.methods.finzi.depths import depth_layers
from preimage.methods.finzi.statistics import repeat_statistics
from preimage.methods.finzi.study import tv_value


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _ranks(v):
    """Ranks 1..n, ties averaged (no ties in these tests, but keep it honest)."""
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    for value in np.unique(v):
        tied = v == value
        r[tied] = r[tied].mean()
    return r


def _spearman_by_hand(a, b):
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float(ra @ rb / np.sqrt((ra @ ra) * (rb @ rb)))


def test_statistics_of_a_hand_made_case():
    # 4 repeats, 7 classes; top-1 is class 6 in three repeats and class 0 in one
    logits = np.array(
        [
            [0.0, 1, 2, 3, 4, 5, 6],
            [0.5, 1, 2, 3, 4, 5, 7],
            [6.0, 5, 4, 3, 2, 1, 0],
            [0.0, 2, 1, 3, 5, 4, 9],
        ]
    )
    s = repeat_statistics(logits, [f"c{i}" for i in range(7)])
    assert s["top1"] == [6, 6, 0, 6] and s["top1_names"][2] == "c0"
    assert s["top1_agreement"] == 0.75 and s["top1_most_common"] == {
        "class": 6,
        "name": "c6",
        "count": 3,
    }
    # top-5 sets: {6,5,4,3,2} x2, {0,1,2,3,4}, {6,4,5,3,1}; labels 0 (once) is unique to repeat 2:
    # 1 of 20
    assert (
        s["top5_labels"] == 20
        and s["top5_unique_to_one_repeat"] == 1
        and s["top5_shared"] == 19 / 20
    )
    # ρ of repeats 0 and 1 is 1, of 0 and 2 is -1
    assert s["spearman"]["first_pair"]["rho"] == pytest.approx(1.0)
    assert s["spearman"]["min_rho"] == pytest.approx(-1.0)
    assert s["spearman"]["pairs"] == 6


def test_cli_statistics_recomputed_by_hand_from_saved_logits(tmp_path, capsys):
    out = tmp_path / "rel"
    code, stdout, _ = run(
        [
            "reliability",
            "--target",
            "_blocks.3:2",
            "--repeats",
            "5",
            "--size",
            "32",
            "--steps",
            "4",
            "--quiet",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0 and "top-1" in stdout and "Spearman" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    [m] = metrics["targets"]
    assert m["target"] == "_blocks.3:2"
    data = np.load(out / "result.npz")
    assert data["logits"].shape == (1, 5, 1000) and data["images"].shape == (1, 5, 3, 32, 32)
    logits = data["logits"][0]
    # top-1 and its agreement
    top1 = logits.argmax(1)
    assert m["top1"] == top1.tolist()
    assert m["top1_agreement"] == Counter(top1.tolist()).most_common(1)[0][1] / 5
    assert m["top1_names"][0] == preimage.load_model("efficientnet_lite0").classes[top1[0]]
    # top-5 shared: labels that appear in the top 5 of at least two repeats
    top5 = [set(np.argsort(-row)[:5].tolist()) for row in logits]
    shared = sum(1 for t in top5 for c in t if sum(c in u for u in top5) >= 2)
    assert m["top5_shared"] == pytest.approx(shared / 25)
    # Spearman by hand over all pairs
    rhos = [_spearman_by_hand(logits[i], logits[j]) for i, j in combinations(range(5), 2)]
    assert m["spearman"]["mean_rho"] == pytest.approx(np.mean(rhos), abs=1e-9)
    assert m["spearman"]["min_rho"] == pytest.approx(np.min(rhos), abs=1e-9)
    assert m["spearman"]["first_pair"]["rho"] == pytest.approx(rhos[0], abs=1e-9)
    # pixel correlation by hand
    x = data["images"][0].reshape(5, -1)
    c = np.corrcoef(x)
    assert m["pixel_correlation"] == pytest.approx(
        np.mean([c[i, j] for i, j in combinations(range(5), 2)]), abs=1e-6
    )
    unit = out / "units" / "blocks.3_2"
    assert (unit / "logits.png").exists() and (unit / "repeats.png").exists()
    assert (out / "grid.png").exists()
    config = metrics["config"]
    assert config["repeats"] == 5 and config["classifier_name"] == "efficientnet_lite0"


def test_several_units_repeat_in_one_batch(tmp_path, capsys):
    out = tmp_path / "rel"
    argv = ["reliability", "--target", "_blocks.1:0-1", "--repeats", "2", "--size", "32"]
    assert run(argv + ["--steps", "2", "--quiet", "--out", str(out)], capsys)[0] == 0
    m = json.loads((out / "metrics.json").read_text())
    assert [t["target"] for t in m["targets"]] == ["_blocks.1:0", "_blocks.1:1"]
    data = np.load(out / "result.npz")
    assert data["images"].shape == (2, 2, 3, 32, 32) and data["activations"].shape == (2, 2)


def test_repeats_from_different_noise_differ_and_the_seed_reproduces(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert (
            run(
                [
                    "reliability",
                    "--target",
                    "_blocks.1:0",
                    "--repeats",
                    "3",
                    "--size",
                    "32",
                    "--steps",
                    "3",
                    "--quiet",
                    "--out",
                    str(out),
                ],
                capsys,
            )[0]
            == 0
        )
    ia, ib = np.load(a / "result.npz")["images"][0], np.load(b / "result.npz")["images"][0]
    assert np.array_equal(ia, ib)
    assert not np.allclose(ia[0], ia[1])


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "x"
    code, _, err = run(
        [
            "reliability",
            "--target",
            "_blocks.3:99",
            "--repeats",
            "3",
            "--size",
            "32",
            "--steps",
            "2",
            "--quiet",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 2 and "channel 99" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(
        ["study", "--study", "tv", "--target", "_blocks.1:0-1", "--quiet", "--out", str(out)],
        capsys,
    )
    assert code == 2 and "a study repeats one target" in err and "names 2" in err
    code, _, err = run(
        ["reliability", "--target", "_blocks.3:1", "--repeats", "1", "--quiet", "--out", str(out)],
        capsys,
    )
    assert code == 2 and "--repeats 1" in err
    code, _, err = run(
        [
            "study",
            "--study",
            "tv",
            "--model",
            "efficientnet_lite0,alexnet:random",
            "--target",
            "a:1",
            "--target",
            "b:1",
            "--target",
            "c:1",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 2 and "3 given for 2 models" in err
    code, _, err = run(
        ["study", "--study", "depths", "--channel", "99", "--quiet", "--out", str(out)], capsys
    )
    assert code == 2 and "--channel 99" in err
    assert not out.exists()


def test_preprocessing_study_compares_conditions(tmp_path, capsys):
    out = tmp_path / "study"
    code, stdout, _ = run(
        [
            "study",
            "--study",
            "preprocessing",
            "--target",
            "_blocks.2:3",
            "--repeats",
            "2",
            "--size",
            "32",
            "--steps",
            "4",
            "--quiet",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert [r["condition"] for r in m["summary"]] == [
        "transforms",
        "transforms+tv",
        "no-transforms+tv",
        "no-transforms",
    ]
    assert len(m["between_conditions"]) == 6
    # the TV scale balances the first condition's activation with its TV
    first = {k: v[0] for k, v in np.load(out / "transforms" / "result.npz").items()}
    scale = m["config"]["tv_scale"]["efficientnet_lite0"]
    model = preimage.load_model("efficientnet_lite0")
    tv = float(tv_value(model, torch.tensor(first["images"])).mean())
    assert scale * tv == pytest.approx(abs(first["activations"].mean()), rel=1e-4)
    with_tv = json.loads((out / "transforms_tv" / "metrics.json").read_text())
    assert with_tv["config"]["tv"] == pytest.approx(0.5 * scale)
    assert (out / "conditions.png").exists() and (out / "summary.md").read_text().count("|") > 20


def test_depth_layers_of_block_and_plain_networks():
    assert depth_layers(preimage.load_model("efficientnet_lite0")) == [
        f"_blocks.{k}" for k in range(16)
    ]
    assert depth_layers(preimage.load_model("alexnet", weights="random")) == [
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "conv5",
    ]
    assert depth_layers(preimage.load_model("resnet18", weights="random"))[:3] == [
        "layer1.0",
        "layer1.1",
        "layer2.0",
    ]
