"""`preimage compare`: runs read back as they were saved, the statistics against scipy and hand
computations, and the whole command on two small atlas campaigns."""

import json

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, spearmanr

from preimage.cli import main
from preimage.comparison import load_run
from preimage.comparison.statistics import difference_interval, greater_test, median_interval

ATLAS = ["atlas", "--layers", "_blocks.0,_blocks.1", "--units", "0-3", "--methods", "invariance",
         "--steps", "4", "--n", "2", "--lambdas", "0,1", "--chunk", "2", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaigns")
    paths = []
    for weights in ("imagenet", "random"):
        out = str(root / weights)
        assert main([*ATLAS, "--weights", weights, "--out", out]) == 0
        paths.append(out)
    return paths


def test_the_median_interval_covers_the_median_and_shrinks_with_more_units():
    rng = np.random.default_rng(0)
    small, large = rng.lognormal(size=20), rng.lognormal(size=2000)
    a, b = median_interval(small), median_interval(large)
    assert a["median"] == pytest.approx(np.median(small))
    assert a["low"] < a["median"] < a["high"]
    assert b["low"] < 1.0 < b["high"]  # the lognormal's median is e^0
    assert b["high"] - b["low"] < 0.3 * (a["high"] - a["low"])


def test_the_difference_interval_excludes_zero_only_for_a_real_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(2.0, 1.0, 300), rng.normal(0.0, 1.0, 300)
    d = difference_interval(a, b)
    assert d["difference"] == pytest.approx(np.median(a) - np.median(b))
    assert 1.5 < d["low"] < d["difference"] < d["high"] < 2.5
    same = difference_interval(rng.normal(size=300), rng.normal(size=300))
    assert same["low"] < 0 < same["high"]


def test_the_test_is_scipys_one_sided_mann_whitney():
    a, b = [3.0, 4.0, 5.0, 6.0], [1.0, 2.0, 3.5]
    t = greater_test(a, b)
    assert t["p"] == pytest.approx(mannwhitneyu(a, b, alternative="greater").pvalue)
    assert t["U"] == 11.0  # pairs (a > b): 3>1,2; 4,5,6 > all three
    assert greater_test([1.0], b) == {"U": None, "p": None}


def _digest(path):
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_campaign_is_read_as_its_catalog_holds_it(campaigns):
    import sqlite3

    before = _digest(f"{campaigns[0]}/catalog.sqlite")
    run = load_run(campaigns[0])
    assert _digest(f"{campaigns[0]}/catalog.sqlite") == before  # read, never written
    assert run.label == "efficientnet_lite0 (imagenet)"
    assert list(run.layers) == ["_blocks.0", "_blocks.1"]
    db = sqlite3.connect(f"{campaigns[0]}/catalog.sqlite")
    rows = db.execute("SELECT layer, unit, method, metrics FROM unit_results").fetchall()
    for layer, unit, method, metrics in rows:
        m, u = json.loads(metrics), run.layers[layer][unit]
        if method == "diverse":
            assert u.diversity_gain == m["diversity_gain"]
            assert u.normalized_distance == m["normalized_distance"]
        else:
            assert u.shift_invariance_index == m["shift_invariance_index"]
    assert load_run(campaigns[1]).label == "efficientnet_lite0 (random, seed 0)"


def test_compare_writes_the_table_and_figures_from_what_the_runs_saved(campaigns, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "cmp"
    assert main(["compare", *campaigns, "--labels", "trained,random", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "comparison.json").read_text())
    [pair] = record["pairs"]
    trained, random = load_run(campaigns[0]), load_run(campaigns[1])
    for row in pair["layers"]:
        layer = row["layer"]
        ga, gb = (r.values(layer, "diversity_gain") for r in (trained, random))
        assert row["gain"][0]["median"] == pytest.approx(np.median(ga))
        assert row["gain_difference"]["difference"] == pytest.approx(np.median(ga) - np.median(gb))
        assert row["gain_test"]["p"] == pytest.approx(
            mannwhitneyu(ga, gb, alternative="greater").pvalue
        )
        s, c = trained.index_pairs(layer)
        assert len(s) >= 3  # a unit never active in 4 steps has no index
        assert row["index_correlation"][0]["rho"] == pytest.approx(spearmanr(s, c).statistic)
        assert f"`{layer}`" in printed
    assert "A = trained, B = random" in (out / "table.md").read_text()
    for name in pair["figures"].values():
        with Image.open(out / name) as im:
            assert im.size[0] > 300


def test_bad_runs_get_one_line_and_nothing_is_written(campaigns, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", campaigns[0], "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad runs: 1 given" in err and len(err.splitlines()) == 1
    assert main(["compare", campaigns[0], str(tmp_path), "--out", str(out)]) == 2
    assert "not an atlas folder" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "catalog.sqlite").write_text("version https://git-lfs.github.com/spec/v1\n")
    assert main(["compare", campaigns[0], str(broken), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot read its catalog" in err and len(err.splitlines()) == 1
    assert not out.exists()
    # --overwrite onto a run would replace the campaign with the comparison
    assert main(["compare", *campaigns, "--out", campaigns[1], "--overwrite"]) == 2
    assert "holds the run" in capsys.readouterr().err
    assert load_run(campaigns[1]).layers


def test_result_folders_are_read_from_their_metrics(tmp_path):
    # an invariance run with --compare: the run's own units in DIR, the other model's in compare/
    out = tmp_path / "inv"
    argv = ["invariance", "--model", "energy_complex_cell", "--target", "response:0",
            "--compare", "simple_cell", "--steps", "40", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    own, other = load_run(str(out)), load_run(str(out / "compare"))
    assert own.label.startswith("energy_complex_cell") and other.label.startswith("simple_cell")
    for run, units in zip((own, other), metrics["units"].values()):
        [u] = units
        record = run.layers["response"][0]
        assert record.shift_invariance_index == u["shift_invariance_index"]
        assert record.diversity_gain == u["sweep"]["diversity_gain"]
