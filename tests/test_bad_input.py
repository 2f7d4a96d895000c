"""A run never mixes, loses or silently misreads results (issue 23's cases, one test each).

Every bad value: exit status 2, one line on stderr naming it, no traceback, and the output
folder untouched (absent, or as it was). Checks come before any model is loaded.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from preimage.cli import main

VIS = ["visualize", "--target", "_blocks.0:0", "--size", "32", "--steps", "2", "--quiet"]


def _snapshot(folder):
    """{relative path: bytes} of everything under a folder (None when it does not exist)."""
    if not os.path.exists(folder):
        return None
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def _refused(capsys, argv, needle, out=None):
    """Run the command: exit 2, one line naming the bad value, ``out`` as it was."""
    before = _snapshot(out) if out else None
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert needle in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    if out:
        assert _snapshot(out) == before, "the output folder changed"
    return err


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: bad input must be refused before any model loads."""
    from preimage.models import registry

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was refused")

    monkeypatch.setattr(registry, "load_model", refuse)


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--lr", "nan"], "bad --lr nan; it must be a finite number"),
        (["--device", "banana"], "bad --device 'banana'"),
        (["--seed", "100000000000000000000000"], "bad --seed 100000000000000000000000"),
        (["--transforms", "scale:0:0:0"], "bad transform 'scale:0:0:0'"),
        (["--size", "30000"], "bad --size 30000; it must be from 1 to 4096 pixels"),
        (["--size", "0"], "bad --size 0"),
        (["--patience", "-3"], "bad --patience -3"),
        (["--tv-beta", "-2"], "bad --tv-beta -2"),
        (["--transforms", "pad:-5"], "bad transform 'pad:-5'"),
        (["--l2", "inf"], "bad --l2 inf"),
        (["--tv", "nan"], "bad --tv nan"),
        (["--prior", "default", "--prior-weight", "nan"], "bad --prior-weight nan"),
        (["--steps", "0"], "bad --steps 0"),
    ],
)
def test_bad_settings_are_refused_before_the_model_loads(tmp_path, capsys, no_model, extra, needle):
    out = tmp_path / "out"
    _refused(capsys, [*VIS, *extra, "--out", str(out)], needle)
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["diverse", "--target", "_blocks.0:0", "--threshold", "2"], "bad --threshold 2.0"),
        (["diverse", "--target", "_blocks.0:0", "--threshold", "nan"], "bad --threshold nan"),
        (["diverse", "--target", "_blocks.0:0", "--lambdas", "0,nan"], "bad --lambdas '0,nan'"),
        (["diverse", "--target", "_blocks.0:0", "--n", "100000"], "bad --n 100000"),
        (
            ["invert", "--layer", "_blocks.0", "--image", "sample:coffee", "--C", "nan"],
            "bad --C nan",
        ),
        (["invert-table", "--C", "1,inf"], "bad --C '1,inf'"),
        (["reliability", "--target", "_blocks.0:0", "--repeats", "1"], "bad --repeats 1"),
    ],
)
def test_bad_method_settings_are_refused_before_the_model_loads(
    tmp_path, capsys, no_model, argv, needle
):
    out = tmp_path / "out"
    _refused(capsys, [*argv, "--quiet", "--out", str(out)], needle)
    assert not out.exists()


def test_the_output_location_is_checked_before_any_work(tmp_path, capsys, no_model):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    _refused(capsys, [*VIS, "--out", str(a_file)], "it is a file")
    _refused(capsys, [*VIS, "--out", str(a_file / "sub")], "is a file, not a folder")
    _refused(capsys, [*VIS, "--out", ""], "bad --out ''")
    assert a_file.read_text() == "not a folder"


def test_a_read_only_disk_is_refused_before_any_work(tmp_path, capsys, no_model, monkeypatch):
    # root writes through chmod here, so the read-only file system's answer is stood in for
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    monkeypatch.setattr(os, "mkdir", read_only)
    err = _refused(capsys, [*VIS, "--out", str(tmp_path / "d")], "cannot write there")
    assert "Read-only file system" in err and not (tmp_path / "d").exists()
    err = _refused(capsys, [*VIS, "--out", str(tmp_path / "new" / "d")], "cannot make")
    assert not (tmp_path / "new").exists()


def test_a_folder_holding_a_run_is_refused_unless_overwrite_and_then_replaced_whole(
    tmp_path, capsys
):
    out = tmp_path / "d"
    argv = ["visualize", "--size", "32", "--steps", "2", "--quiet", "--out", str(out)]
    assert main([*argv, "--target", "_blocks.0:0-2"]) == 0
    assert len(os.listdir(out / "images")) == 3
    _refused(capsys, [*argv, "--target", "_blocks.1:5"], "it holds another run", out=str(out))
    assert main([*argv, "--target", "_blocks.1:5", "--overwrite"]) == 0
    assert os.listdir(out / "images") == ["000_blocks.1_5.png"]  # no stale file survives
    assert json.loads((out / "metrics.json").read_text())["labels"] == ["_blocks.1:5"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporary folders


def test_a_save_that_fails_half_way_leaves_the_earlier_run_intact(tmp_path, capsys, monkeypatch):
    out = tmp_path / "d"
    argv = [*VIS, "--out", str(out)]
    assert main(argv) == 0
    before = _snapshot(str(out))
    from preimage.io import files

    real, calls = files.atomic_write, []

    def fills_up(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real(path, data)

    monkeypatch.setattr(files, "atomic_write", fills_up)
    for module in ("preimage.io.images", "preimage.io.figures"):
        monkeypatch.setattr(f"{module}.atomic_write", fills_up)
    code = main([*argv, "--target", "_blocks.1:3", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert _snapshot(str(out)) == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        assert main([*VIS, "--out", str(tmp_path / "d")]) == 0
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "d").st_mode & 0o777) == 0o755
    for name in ("metrics.json", "result.npz", "grid.png"):
        assert (os.stat(tmp_path / "d" / name).st_mode & 0o777) == 0o644, name


def test_images_are_read_as_they_are_or_refused(tmp_path, capsys, monkeypatch):
    from preimage.io import images

    grey16 = tmp_path / "g16.png"
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(grey16)
    x = images.load_image(str(grey16))
    assert abs(float(x.mean()) - 0.5) < 0.01 and float(x.max()) == 1.0  # not all white
    rgba = np.full((16, 16, 4), 200, np.uint8)
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "see-through.png")
    out = tmp_path / "out"
    argv = ["invert", "--layer", "_blocks.0", "--size", "16", "--steps", "2", "--quiet"]
    _refused(
        capsys,
        [*argv, "--image", str(tmp_path / "see-through.png"), "--out", str(out)],
        "has transparent pixels",
    )
    monkeypatch.setattr(images, "MAX_PIXELS", 100)  # a small "bomb": 256 pixels
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "bomb.png")
    _refused(
        capsys,
        [*argv, "--image", str(tmp_path / "bomb.png"), "--out", str(out)],
        "are refused (a decompression bomb?)",
    )
    assert not out.exists()


def test_non_finite_files_are_refused(tmp_path, capsys):
    np.save(tmp_path / "nan.npy", np.full(16, np.nan, np.float32))
    out = tmp_path / "out"
    _refused(
        capsys,
        [*VIS[:2], f"_blocks.0:dir={tmp_path / 'nan.npy'}", *VIS[3:], "--out", str(out)],
        "holds NaN or infinite values",
    )
    from preimage.models import load_model

    state = load_model("efficientnet_lite0", weights="random").module.state_dict()
    state["_conv_stem.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    _refused(
        capsys,
        [*VIS, "--weights", str(tmp_path / "nan.pt"), "--out", str(out)],
        "holds NaN or infinite values in '_conv_stem.weight'",
    )
    assert not out.exists()


def test_messages_never_advise_unsafe_loading_nor_carry_escape_codes(tmp_path, capsys):
    whole = tmp_path / "whole_model.pt"
    torch.save(torch.nn.Linear(2, 2), whole)  # a pickled module, not a state dict
    out = tmp_path / "out"
    for argv in ([*VIS, "--weights", str(whole)], [*VIS, "--prior", str(whole)]):
        err = _refused(capsys, [*argv, "--out", str(out)], "never loaded, for safety")
        assert "weights_only=False" not in err and "\x1b" not in err
    _refused(
        capsys,
        [*VIS[:2], "_blocks.2:-1", *VIS[3:], "--out", str(out)],
        "channel -1 out of range for layer _blocks.2",
    )


def test_first_contact(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("preimage ")
    assert main([]) == 0
    listed = capsys.readouterr().out
    assert all(c in listed for c in ("visualize", "diverse", "invert-table", "atlas", "report"))
    with pytest.raises(SystemExit):
        main(["visualize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (
        ("--l2", "0.0"),
        ("--tv", "0.0"),
        ("--tv-beta", "1.0"),
        ("--optimizer", "adam"),
        ("--seed", "0"),
    ):
        assert f"{flag} " in text and f"(default: {default})" in text, flag
    assert "(default: finzi; none for a model of recorded neurons)" in text


def test_every_option_of_every_command_says_what_it_is_and_its_default():
    import argparse

    from preimage.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parsers = list(commands.choices.items())
    for name, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):  # `neurons simulate|fit`
                parsers += [(f"{name} {n}", p) for n, p in action.choices.items()]
            if isinstance(action, argparse._HelpAction):
                continue
            where = f"{name} {action.option_strings or action.dest}"
            assert action.help and action.help != argparse.SUPPRESS, f"{where} has no help"
            if action.option_strings and action.default not in (
                None,
                False,
                True,
                argparse.SUPPRESS,
            ):
                assert "default" in action.help, f"{where} hides its default {action.default!r}"


def test_layers_never_download_weights(capsys, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise AssertionError("layers asked for weights")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)  # the download
    assert main(["layers", "--model", "alexnet"]) == 0
    assert "features.10" in capsys.readouterr().out


def test_a_script_gets_one_line_and_exit_2_from_the_console(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "preimage")
    r = subprocess.run(
        [exe, *VIS, "--lr", "nan", "--out", str(tmp_path / "o")], capture_output=True, text=True
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
