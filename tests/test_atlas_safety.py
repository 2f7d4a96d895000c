"""The atlas after a Ctrl-C, a folder deleted by hand, a second driver, and reruns with other
settings: no job stays running, nothing missing is called done, the lock comes before the model,
and the report shows the newest pictures with the settings that made them."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3

import pytest

from preimage.atlas import Campaign
from preimage.cli import main

TINY = ["atlas", "--layers", "_blocks.0", "--units", "1", "--methods", "visualize", "--size", "16"]


def _statuses(folder):
    db = sqlite3.connect(os.path.join(folder, "catalog.sqlite"))
    try:
        return [r[0] for r in db.execute("SELECT status FROM jobs ORDER BY rowid")]
    finally:
        db.close()


def test_ctrl_c_leaves_the_stopped_job_pending(tmp_path, monkeypatch, capsys):
    from preimage.atlas import executors

    def interrupted(spec, threads=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors, "run_job", interrupted)
    with pytest.raises(SystemExit) as e:
        main([*TINY, "--steps", "2", "--quiet", "--out", str(tmp_path / "a")])
    assert e.value.code == 130 and "run the same command to resume" in capsys.readouterr().err
    assert _statuses(tmp_path / "a") == ["pending"]


def test_a_job_folder_deleted_by_hand_is_done_again(tmp_path, capsys):
    out = str(tmp_path / "a")
    assert main([*TINY, "--steps", "2", "--quiet", "--out", out]) == 0
    [job] = os.listdir(os.path.join(out, "jobs"))
    shutil.rmtree(os.path.join(out, "jobs", job))
    assert main([*TINY, "--steps", "2", "--quiet", "--out", out]) == 0
    said = capsys.readouterr().out
    assert "ran 1" in said and "1 whose files were missing redone" in said
    assert os.path.isfile(os.path.join(out, "jobs", job, "result.npz"))


def test_a_read_only_disk_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    from preimage.models import registry

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the folder was checked")

    real_access = os.access
    read_only = str(tmp_path)  # root writes through chmod here: the file system's answer stood in

    def access(path, mode, **kwargs):
        return not (mode & os.W_OK and str(path).startswith(read_only))

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(registry, "load_model", refuse)
    assert main([*TINY, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder it can write in" in err and len(err.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == [] and real_access(tmp_path, os.W_OK)


def test_a_second_driver_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    from preimage.models import registry

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the lock was checked")

    with Campaign(tmp_path / "busy"):
        monkeypatch.setattr(registry, "load_model", refuse)
        assert main([*TINY, "--out", str(tmp_path / "busy")]) == 2
    err = capsys.readouterr().err
    assert "another atlas is running on it" in err and len(err.strip().splitlines()) == 1


def test_the_report_shows_the_newest_pictures_and_what_made_them(tmp_path, capsys):
    out = str(tmp_path / "a")
    for steps in ("3", "2", "3"):  # the last run's jobs are the 3-step ones, done first
        assert main([*TINY, "--steps", steps, "--quiet", "--out", out]) == 0
    assert main(["report", out]) == 0
    page = open(os.path.join(out, "units", "blocks.0_0.html")).read()
    made = re.findall(r"made by job ([^:]+): steps (\d+)", page)
    assert made and made[0][1] == "3"  # not the 2-step job's picture
    image = re.search(r'src="\.\./(jobs/[^"]+)"', page).group(1)
    assert made[0][0] in image  # the picture is that job's
