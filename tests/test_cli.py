"""The command line: outputs, the layer table, one-line errors with exit code 2, reproducibility."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from preimage.cli import main


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_visualize_writes_pngs_npz_and_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(
        [
            "visualize",
            "--target",
            "_blocks.1:0-2",
            "--target",
            "_blocks.0:3@4,5",
            "--target",
            "class:tabby",
            "--size",
            "32",
            "--steps",
            "3",
            "--tv",
            "0.01",
            "--quiet",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0 and "grid.png" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == [
        "_blocks.1:0",
        "_blocks.1:1",
        "_blocks.1:2",
        "_blocks.0:3@4,5",
        "class:281:tabby",
    ]
    assert metrics["steps"] == 3 and metrics["seconds"] > 0
    assert metrics["config"]["model"] == "efficientnet_lite0" and metrics["config"]["tv"] == 0.01
    assert metrics["config"]["transforms"] == "finzi"
    assert metrics["config"]["render"]["transforms"]["steps"][0] == "pad:12"
    for name in metrics["images"] + ["grid.png"]:
        from PIL import Image

        with Image.open(out / name) as im:
            assert im.mode == "RGB"
    data = np.load(out / "result.npz")
    assert (
        data["images"].shape == (5, 3, 32, 32)
        and data["images"].min() >= 0
        and data["images"].max() <= 1
    )
    assert data["inputs"].shape == (5, 3, 32, 32)
    assert data["activations"].shape == (5,)
    assert np.allclose(data["activations"], metrics["activations"])


def test_same_command_same_bits(tmp_path, capsys):
    arrays = []
    for k in range(2):
        out = tmp_path / f"r{k}"
        assert (
            run(
                [
                    "visualize",
                    "--target",
                    "_blocks.2:0-1",
                    "--size",
                    "40",
                    "--steps",
                    "4",
                    "--seed",
                    "7",
                    "--quiet",
                    "--out",
                    str(out),
                ],
                capsys,
            )[0]
            == 0
        )
        arrays.append(np.load(out / "result.npz"))
    for key in ("images", "inputs", "activations", "trace"):
        assert np.array_equal(arrays[0][key], arrays[1][key]), key


def test_layers_json_for_alexnet(capsys):
    code, out, _ = run(["layers", "--model", "alexnet", "--weights", "random", "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert set(rows[0]) >= {"name", "shape", "rf_size", "rf_stride"}
    by_alias = {r["alias"]: r for r in rows if r["alias"]}
    assert (
        by_alias["conv5"]["rf_size"],
        by_alias["conv5"]["rf_stride"],
        by_alias["conv5"]["shape"],
    ) == (163, 16, [256, 13, 13])


@pytest.fixture
def bad_weights(tmp_path):
    mismatched = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), mismatched)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 nothing")
    return {"mismatched": str(mismatched), "garbage": str(garbage)}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--model", "resnet5O"], "unknown model 'resnet5O'"),
        (["--target", "_blocks.99:0"], "unknown layer '_blocks.99'"),
        (["--target", "_blocks.2:24"], "channel 24 out of range for layer _blocks.2"),
        (["--target", "_blocks.2:x"], "malformed target '_blocks.2:x'"),
        (["--target", "_blocks.2:0@3"], "malformed target"),
        (["--target", "_blocks.2:0@99,0"], "unit position @99,0 is outside"),
        (["--target", "class:unicorn"], "unknown class 'unicorn'"),
        (["--weights", "garbage"], "is not a readable PyTorch state dict"),
        (["--weights", "mismatched"], "does not match model efficientnet_lite0"),
        (["--transforms", "spin:3"], "bad transform 'spin:3'"),
        (["--steps", "0"], "bad --steps 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, bad_weights, args, needle):
    args = [bad_weights.get(a, a) for a in args]
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text("earlier run")
    # --overwrite: the run may replace the earlier one, and does not, since it fails
    base = [
        "visualize",
        "--size",
        "32",
        "--steps",
        "2",
        "--quiet",
        "--overwrite",
        "--out",
        str(out),
    ]
    if "--target" not in args:
        base += ["--target", "_blocks.0:0"]
    code, stdout, err = run(base + args, capsys)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1, err
    assert (out / "metrics.json").read_text() == "earlier run"  # nothing written over
    assert sorted(os.listdir(out)) == ["metrics.json"]


def test_argparse_errors_are_one_line_too(capsys):
    code, _, err = run(["visualize", "--out", "x"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--target" in err


def test_console_script_exit_code(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "preimage")
    proc = subprocess.run([exe, "layers", "--model", "nosuchnet"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith(
        "preimage: error: unknown model 'nosuchnet'"
    )


def test_the_parser_and_help_never_import_pytorch():
    """`preimage --help` and `preimage neurons --help` stay fast: PyTorch is imported by the
    commands that run models, not by the parser (``preimage.neurons`` loads its fit lazily)."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom preimage.cli import main\n"
        "for argv in (['--help'], ['neurons', 'fit', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
