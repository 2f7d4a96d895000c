"""Atlas campaigns: planning, crash safety (kill -9 and resume), Ray with two workers, the HTML
report in Chromium.
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from browser import chromium, dump_dom
from PIL import Image

from preimage.atlas import Campaign, LocalExecutor, Settings, plan, run_campaign
from preimage.atlas.plan import parse_units
from preimage.errors import PreimageError

# small enough that a job takes about a second on one core
SMALL = [
    "--layers",
    "_blocks.0,_blocks.1",
    "--units",
    "3",
    "--chunk",
    "1",
    "--steps",
    "6",
    "--lambdas",
    "0,1",
    "--n",
    "2",
    "--repeats",
    "2",
    "--size",
    "32",
]
ALL = ["--methods", "visualize,diverse,invariance,reliability"]


def _atlas(*args, **kw):
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "preimage.cli", "atlas", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _done(folder):
    path = os.path.join(folder, "catalog.sqlite")
    if not os.path.exists(path):
        return 0
    try:
        db = sqlite3.connect(path, timeout=1)
        n = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'done'").fetchone()[0]
        db.close()
        return n
    except sqlite3.OperationalError:  # the tables are being created
        return 0


def _rows(folder, query):
    db = sqlite3.connect(os.path.join(folder, "catalog.sqlite"))
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def _open_artifact(path):
    """Open an artifact fully, as a reader would: PNGs decoded, npz arrays read, JSON parsed."""
    if path.endswith(".png"):
        with Image.open(path) as im:
            im.load()
            assert im.size[0] > 0
    elif path.endswith(".npz"):
        with np.load(path) as z:
            for k in z.files:
                z[k]
    elif path.endswith(".json"):
        json.load(open(path))
    else:
        raise AssertionError(f"unexpected artifact {path}")


def _check_done_jobs_complete(folder):
    """Every job the catalog calls done has all its artifacts, and they open;
    returns the done ids.
    """
    done = _rows(folder, "SELECT id, artifacts FROM jobs WHERE status = 'done'")
    for job_id, artifacts in done:
        paths = json.loads(artifacts)
        assert paths, job_id
        for rel in paths:
            _open_artifact(os.path.join(folder, rel))
        on_disk = sorted(
            os.path.relpath(os.path.join(r, f), folder)
            for r, _, fs in os.walk(os.path.join(folder, "jobs", job_id))
            for f in fs
        )
        assert on_disk == sorted(paths)
    return {job_id for job_id, _ in done}


def test_units_and_methods_are_parsed_and_checked():
    assert parse_units("all", 4, "L") == [0, 1, 2, 3]
    assert parse_units("3", 16, "L") == [0, 1, 2]
    assert parse_units("3,7,10-12", 16, "L") == [3, 7, 10, 11, 12]
    # a seeded sample: distinct, in range, in order, the same for the same seed, all when K >= C
    drawn = parse_units("sample:32", 48, "L", seed=0)
    assert len(set(drawn)) == 32 and drawn == sorted(drawn) and 0 <= min(drawn) <= max(drawn) < 48
    assert drawn == parse_units("sample:32", 48, "L", seed=0)
    assert drawn != parse_units("sample:32", 48, "L", seed=1)
    assert drawn[:6] == [0, 1, 4, 5, 6, 8]  # numpy's default_rng(0).choice(48, 32), as documented
    assert parse_units("sample:20", 16, "L") == list(range(16))
    for bad in ("sample:", "sample:0", "sample:x"):
        with pytest.raises(PreimageError, match="sample:K"):
            parse_units(bad, 16, "L")
    with pytest.raises(PreimageError, match="channels 0..15, not 16"):
        parse_units("15,16", 16, "L")
    with pytest.raises(PreimageError, match="bad --units 'x'"):
        parse_units("x", 16, "L")


def test_plan_ids_are_stable_and_follow_the_settings(lite0):
    s = Settings(model=lite0.name, steps=10, lambdas=[0.0, 1.0], n=2, chunk=2)
    a = plan(lite0, ["_blocks.0"], "5", ["visualize", "diverse"], s)
    b = plan(lite0, ["_blocks.0"], "5", ["visualize", "diverse"], s)
    assert [j["id"] for j in a] == [j["id"] for j in b]
    assert [(j["method"], j["units"]) for j in a] == [
        ("visualize", [0, 1]),
        ("visualize", [2, 3]),
        ("visualize", [4]),
        ("diverse", [0, 1]),
        ("diverse", [2, 3]),
        ("diverse", [4]),
    ]
    # image-steps: units x images per step x steps; a diverse unit optimizes λ x n images
    assert [j["image_steps"] for j in a] == [20, 20, 10, 80, 80, 40]
    c = plan(
        lite0,
        ["_blocks.0"],
        "5",
        ["visualize", "diverse"],
        Settings(model=lite0.name, steps=11, lambdas=[0.0, 1.0], n=2, chunk=2),
    )
    assert not {j["id"] for j in a} & {j["id"] for j in c}
    # the invariance job's sweep is the diverse result: no second sweep
    d = plan(lite0, ["_blocks.0"], "2", ["diverse", "invariance"], s)
    assert [j["method"] for j in d] == ["invariance"]
    # a flat layer's channels are units too (a model's neurons, or classes here)
    flat = plan(lite0, ["_fc"], "2", ["visualize"], s)
    assert [j["units"] for j in flat] == [[0, 1]]


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """An atlas killed with SIGKILL twice, at different points, then resumed to the end."""
    folder = str(tmp_path_factory.mktemp("atlas") / "campaign")
    args = [*SMALL, *ALL, "--out", folder, "--quiet"]
    kills = []
    for wait_for in (1, 4):
        p = _atlas(*args)
        deadline = time.time() + 240
        while _done(folder) < wait_for and p.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert p.poll() is None, p.communicate()
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills.append(_done(folder))
        # at the kill: whatever is marked done is whole; nothing else is in jobs/ but hidden partial
        # folders
        done = _check_done_jobs_complete(folder)
        visible = {
            n for n in os.listdir(os.path.join(folder, "jobs")) if not n.startswith(".partial-")
        }
        assert (
            done <= visible and len(visible - done) <= 1
        )  # at most the one job killed between rename and catalog
    p = _atlas(*args)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    return folder, kills, out


def test_kill_9_loses_no_finished_job_and_resume_completes(killed_and_resumed, lite0):
    folder, kills, out = killed_and_resumed
    assert kills[0] >= 1 and kills[1] >= 4
    planned = plan(
        lite0,
        ["_blocks.0", "_blocks.1"],
        "3",
        ["visualize", "diverse", "invariance", "reliability"],
        Settings(model=lite0.name, steps=6, lambdas=[0.0, 1.0], n=2, repeats=2, size=32, chunk=1),
    )
    ids = [r[0] for r in _rows(folder, "SELECT id FROM jobs")]
    assert sorted(ids) == sorted(j["id"] for j in planned)  # every job exactly once
    assert _rows(folder, "SELECT DISTINCT status FROM jobs") == [("done",)]
    done = _check_done_jobs_complete(folder)
    assert set(os.listdir(os.path.join(folder, "jobs"))) == done  # no partial folders left
    # each (unit, method) once: 2 layers x 3 units x (visualize, diverse, invariance, reliability)
    units = _rows(
        folder,
        "SELECT layer, unit, method, COUNT(*) FROM unit_results GROUP BY layer, unit, method",
    )
    assert len(units) == 2 * 3 * 4 and all(r[3] == 1 for r in units)
    assert f"{len(planned)} jobs: {kills[1]} were done" in out


def test_a_kill_between_rename_and_catalog_redoes_the_job(tmp_path, lite0, monkeypatch):
    s = Settings(model=lite0.name, steps=3, size=32, chunk=4)
    specs = plan(lite0, ["_blocks.0"], "2", ["visualize"], s)
    with Campaign(tmp_path) as c:

        def die(*a, **k):
            # the driver dies after the rename, before the catalog says done
            raise KeyboardInterrupt

        monkeypatch.setattr(c.catalog, "finish", die)
        with pytest.raises(KeyboardInterrupt):
            run_campaign(c, specs, LocalExecutor(1), progress=False)
    assert _rows(tmp_path, "SELECT status FROM jobs") == [("running",)]
    assert os.path.isdir(tmp_path / "jobs" / specs[0]["id"])
    monkeypatch.undo()
    with Campaign(tmp_path) as c:
        assert c.interrupted == 1
        summary = run_campaign(c, specs, LocalExecutor(1), progress=False)
    assert summary["ran"] == 1 and _rows(tmp_path, "SELECT status, attempts FROM jobs") == [
        ("done", 2)
    ]
    assert _check_done_jobs_complete(str(tmp_path)) == {specs[0]["id"]}
    # another network in the same folder is refused: the report keys units by layer and channel
    other = plan(
        lite0,
        ["_blocks.0"],
        "2",
        ["visualize"],
        Settings(steps=3, size=32, chunk=4, weights="random"),
    )
    with (
        Campaign(tmp_path) as c,
        pytest.raises(
            PreimageError, match="holds an atlas of efficientnet_lite0 \\(weights imagenet"
        ),
    ):
        run_campaign(c, other, LocalExecutor(1), progress=False)


def test_ray_two_workers_share_the_jobs_and_match_the_local_run(tmp_path, lite0):
    from preimage.atlas import RayExecutor  # ray is a test dependency: no skip

    s = Settings(model=lite0.name, steps=8, size=32, chunk=1)
    specs = plan(lite0, ["_blocks.1"], "4", ["visualize"], s)
    ray_exec = RayExecutor(workers=2, threads=1)
    try:
        with Campaign(tmp_path / "ray") as c:
            summary = run_campaign(c, specs, ray_exec, progress=False)
    finally:
        ray_exec.close()
    assert summary["ran"] == 4 and not summary["failed"]
    workers = {r[0] for r in _rows(tmp_path / "ray", "SELECT worker FROM jobs")}
    assert len(workers) == 2  # two Ray worker processes, one job each at a time
    threads = {
        json.loads(r[0])["torch_threads"]
        for r in _rows(tmp_path / "ray", "SELECT metrics FROM jobs")
    }
    assert threads == {1}
    with Campaign(tmp_path / "local") as c:
        run_campaign(c, specs, LocalExecutor(1), progress=False)
    for spec in specs:
        a = np.load(tmp_path / "ray" / "jobs" / spec["id"] / "result.npz")["activations"]
        b = np.load(tmp_path / "local" / "jobs" / spec["id"] / "result.npz")["activations"]
        np.testing.assert_allclose(a, b, rtol=1e-4)


def test_second_driver_and_bad_input_get_one_line_and_exit_2(tmp_path):
    from preimage.atlas.run import Campaign as C

    with C(tmp_path / "busy"):
        p = _atlas(
            "--layers",
            "_blocks.0",
            "--units",
            "1",
            "--methods",
            "visualize",
            "--out",
            str(tmp_path / "busy"),
        )
        _, err = p.communicate(timeout=120)
    assert (
        p.returncode == 2
        and "another atlas is running" in err
        and len(err.strip().splitlines()) == 1
    )
    for args, message in (
        (
            ["--layers", "_blocks.0", "--units", "999,1000", "--methods", "visualize"],
            "bad --units '999,1000': _blocks.0 has channels 0..15",
        ),
        (["--layers", "_blocks.0", "--methods", "visualize,dream"], "bad --methods"),
        (["--layers", "_nope", "--methods", "visualize"], "_nope"),
        (
            [
                "--layers",
                "_blocks.0",
                "--units",
                "1",
                "--methods",
                "visualize",
                "--executor",
                "ray",
                "--ray-address",
                "127.0.0.1:1",
            ],
            "bad --ray-address '127.0.0.1:1': nothing answers there",
        ),
        (
            ["--layers", "_blocks.0", "--units", "1", "--methods", "visualize", "--device", "cuda"],
            "device 'cuda' is not available",
        ),
    ):
        p = _atlas(*args, "--out", str(tmp_path / "x"))
        _, err = p.communicate(timeout=120)
        assert p.returncode == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()  # refused before anything was written
    r = subprocess.run(
        [sys.executable, "-m", "preimage.cli", "report", str(tmp_path / "empty")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "holds no catalog.sqlite" in r.stderr


def test_plan_prints_jobs_image_steps_and_time(tmp_path):
    p = _atlas(
        "--layers",
        "_blocks.0,_blocks.1",
        "--units",
        "4",
        "--methods",
        "diverse",
        "--steps",
        "10",
        "--lambdas",
        "0,1",
        "--n",
        "2",
        "--chunk",
        "2",
        "--workers",
        "2",
        "--plan",
        "--quiet",
    )
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    # 2 layers x 2 jobs; 2 layers x 4 units x (2 λ x 2 images) x 10 steps
    assert "total: 4 jobs, 320 image-steps" in out and "per worker with 2 workers" in out


def test_report_escapes_names(tmp_path):
    from preimage.atlas.catalog import Catalog
    from preimage.atlas.report import write_report

    evil = '<script>alert("x")</script>&'
    png = tmp_path / "jobs" / "j" / "a b.png"
    png.parent.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(png)
    cat = Catalog(tmp_path / "catalog.sqlite")
    spec = {
        "id": "j",
        "layer": evil,
        "method": "visualize",
        "units": [0],
        "model": evil,
        "weights": None,
    }
    cat.add_jobs([spec])
    cat.finish(
        "j",
        {"seconds": 1.0, "worker": "w", "metrics": {}},
        ["jobs/j/a b.png"],
        [
            {
                "layer": evil,
                "unit": 0,
                "method": "visualize",
                "metrics": {"activation": 1.0},
                "artifacts": {"image": "jobs/j/a b.png"},
            }
        ],
    )
    cat.close()
    index, counts = write_report(tmp_path)
    pages = [open(index).read()] + [
        open(tmp_path / "units" / f).read() for f in os.listdir(tmp_path / "units")
    ]
    assert counts["unit_pages"] == 1
    for page in pages:
        assert (
            "<script>alert" not in page
            and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
        )
    assert 'src="jobs/j/a%20b.png"' in pages[0]


def test_report_loads_in_headless_chromium_with_every_image(killed_and_resumed, tmp_path):
    import re

    from preimage.atlas.report import write_report

    browser = chromium()
    folder, _, _ = killed_and_resumed
    index, counts = write_report(folder)
    assert counts == {"layers": 2, "unit_pages": 6, "jobs": {"done": 18}}
    pages = [index] + [
        os.path.join(folder, "units", f) for f in sorted(os.listdir(os.path.join(folder, "units")))
    ]
    for page in pages[1:]:  # every unit computed with all four methods shows all of them
        text = open(page).read()
        for heading in (
            "Visualization",
            "Diverse images at the chosen λ",
            "λ rows and the trade-off",
            "Invariance indices",
            "Reliability",
        ):
            assert f"<h2>{heading}" in text, (page, heading)
    for page in pages:
        body = re.search(r"<body[^>]*>", dump_dom(browser, page))
        assert body, page
        images = int(re.search(r'data-images="(\d+)"', body.group(0)).group(1))
        broken = int(re.search(r'data-broken-images="(\d+)"', body.group(0)).group(1))
        # a unit page: visualization, chosen images, λ rows, trade-off, invariance panel, repeats,
        # logits
        assert images == (7 if "/units/" in page else 2 * 3 + 2 * 4) and broken == 0, (
            page,
            images,
            broken,
        )
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,900",
            f"--screenshot={shot}",
            f"file://{index}",
        ],
        capture_output=True,
        timeout=120,
    )
    with Image.open(shot) as im:
        assert (
            im.size == (1200, 900) and len(np.unique(np.asarray(im.convert("L")))) > 10
        )  # a page, not a blank
    # a moved folder without jobs/ is reported by the page itself
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved, ignore=shutil.ignore_patterns("jobs"))
    body = re.search(r"<body[^>]*>", dump_dom(browser, moved / "index.html")).group(0)
    assert int(re.search(r'data-broken-images="(\d+)"', body).group(1)) > 0


def test_jobs_reload_the_planned_models_weights(lite0):
    import torch

    import preimage
    from preimage.atlas import run_job

    twin = preimage.load_model("efficientnet_lite0", weights="random", seed=3)
    [spec] = plan(twin, ["_blocks.0"], "1", ["visualize"], Settings(steps=2, size=32))
    assert (spec["weights"], spec["weights_seed"]) == ("random", 3)
    assert (
        plan(lite0, ["_blocks.0"], "1", ["visualize"], Settings(steps=2, size=32))[0]["weights"]
        == "imagenet"
    )
    assert (
        plan(
            preimage.load_model("simple_cell"),
            ["response"],
            "1",
            ["visualize"],
            Settings(steps=2, size=16),
        )[0]["weights"]
        is None
    )
    # the worker's network is the planned one: same activations as the twin on the job's result
    result = run_job(spec)
    import io

    images = torch.from_numpy(np.load(io.BytesIO(result["files"]["result.npz"]))["images"])
    with torch.no_grad():
        a = twin.activations(images, ["_blocks.0"])["_blocks.0"][:, 0].mean()
    assert abs(float(a) - result["units"][0]["metrics"]["activation"]) < 1e-3 * max(
        1.0, abs(float(a))
    )
    with pytest.raises(PreimageError, match="not a registered model"):
        plan(
            preimage.wrap_model(torch.nn.Conv2d(3, 4, 3), name="mine"),
            ["_blocks.0"],
            "1",
            ["visualize"],
            Settings(),
        )


def test_layout_overrides_travel_to_the_workers(lite0):
    import preimage
    from preimage.atlas import jobs
    from preimage.models.layout import override_text, parse_layout

    for text in ("nchw", "nhwc", "flat", "tokens:0", "tokens:1", "tokens:1:14x14"):
        assert override_text(parse_layout(text)) == text
    s = Settings(steps=2, size=32)
    [plain] = plan(lite0, ["_blocks.0"], "1", ["visualize"], s)
    assert "layouts" not in plain  # a campaign without overrides keeps its job ids
    given = preimage.load_model("efficientnet_lite0").with_layouts({"_blocks.0": "nchw"})
    [spec] = plan(given, ["_blocks.0"], "1", ["visualize"], s)
    assert spec["layouts"] == {"_blocks.0": "nchw"} and spec["id"] != plain["id"]
    worker = jobs._model(spec)
    assert worker.layouts == {"_blocks.0": "nchw"} and jobs._model(plain).layouts == {}
