"""The CUDA path, run for real where there is a GPU (skipped elsewhere, with the reason).

Each test runs a method for at most 10 steps on the CPU and on the GPU and compares them, then
runs it twice on the GPU with the same seed. Tolerances: TF32 is switched off for these tests
(convolutions on Ampere and later use it by default, with about 1e-3 relative error), so the
GPU's float32 differs from the CPU's only by rounding, which a few optimizer steps amplify: the
compared values must agree to 2 % (activations, errors, indices) or within 0.02 of [0, 1] on
average (images). Repeats on the GPU are asked for bit for bit with deterministic algorithms
(``CUBLAS_WORKSPACE_CONFIG`` is set in conftest, before CUDA starts); operations that have no
deterministic CUDA kernel warn instead (``warn_only``), and then the repeat is compared with the
same tolerance as the CPU and the operations are printed (run with -s): they are the resampling
of the random transforms (``grid_sample``'s backward), the windowed crops' gather (its backward
is a scatter-add) and the index operations that share a group's value out.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch

import preimage

pytestmark = pytest.mark.cuda

# the device under test; PREIMAGE_CUDA_TEST_DEVICE=cpu checks the tests themselves without a GPU
CUDA = os.environ.get("PREIMAGE_CUDA_TEST_DEVICE", "cuda")


@pytest.fixture(autouse=True)
def _no_tf32():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _record(fn):
    """fn() and the names of the operations that warned of no deterministic implementation."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    ops = sorted(
        {
            str(w.message).split(" does not have")[0]
            for w in caught
            if "deterministic" in str(w.message)
        }
    )
    return out, ops


def _same(a, b, ops, rtol=0.02, atol=1e-4):
    a, b = torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))
    if not ops:
        assert torch.equal(a, b), "the same seed on the GPU gave other bits"
    else:
        print(f"not deterministic on CUDA: {ops}")
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def _close(gpu, cpu, rtol=0.02, atol=1e-3):
    torch.testing.assert_close(
        torch.as_tensor(np.asarray(gpu)), torch.as_tensor(np.asarray(cpu)), rtol=rtol, atol=atol
    )


def _images_close(gpu, cpu):
    assert float((torch.as_tensor(gpu) - torch.as_tensor(cpu)).abs().mean()) < 0.02


def _both(method, model_name="efficientnet_lite0", **settings):
    """The method on the CPU and twice on the GPU: (cpu, gpu, gpu again, ops that warned)."""
    cpu = preimage.run(method, preimage.load_model(model_name), progress=False, **settings)
    model = preimage.load_model(model_name, device=CUDA)
    gpu, ops = _record(lambda: preimage.run(method, model, progress=False, **settings))
    again, more = _record(lambda: preimage.run(method, model, progress=False, **settings))
    return cpu, gpu, again, sorted(set(ops) | set(more))


def test_render_on_cuda_matches_the_cpu():
    cpu, gpu, again, ops = _both("visualize", targets=["_blocks.2:0-3"], size=64, steps=10)
    assert gpu.render.config["device"].startswith(CUDA)
    _images_close(gpu.render.images, cpu.render.images)
    _close(gpu.render.activations, cpu.render.activations)
    _same(again.render.images, gpu.render.images, ops)


def test_diverse_on_cuda_matches_the_cpu():
    cpu, gpu, again, ops = _both("diverse", target="_blocks.1:0-1", lambdas=[0, 1], n=2, steps=10)
    for c, g, a in zip(cpu.sweeps, gpu.sweeps, again.sweeps):
        _close(g.activations, c.activations)
        _close(g.min_distance, c.min_distance)
        _same(a.images, g.images, ops)


def test_invert_on_cuda_matches_the_cpu():
    cpu, gpu, again, ops = _both(
        "invert", layer="_blocks.1", image="sample:astronaut", size=64, steps=10
    )
    _close(gpu.scores, cpu.scores)
    _images_close(gpu.images, cpu.images)
    _same(again.scores, gpu.scores, ops)


def test_invariance_on_cuda_matches_the_cpu():
    cpu, gpu, again, ops = _both(
        "invariance",
        model_name="energy_complex_cell",
        target="response:0",
        lambdas=[0, 1],
        n=2,
        steps=10,
    )
    for c, g, a in zip(cpu.units, gpu.units, again.units):
        _close(g.crop_activation, c.crop_activation)
        _close(g.template_activation, c.template_activation)
        _same(a.texture, g.texture, ops)


def test_reliability_on_cuda_matches_the_cpu():
    cpu, gpu, again, ops = _both("reliability", target="_blocks.1:2", repeats=3, size=64, steps=10)
    _close(gpu.logits, cpu.logits, rtol=0.05, atol=0.05)
    assert gpu.stats[0]["repeats"] == 3
    _same(again.logits, gpu.logits, ops, rtol=0.05, atol=0.05)


def test_local_atlas_on_cuda(tmp_path):
    from preimage.cli import main

    args = [
        "atlas",
        "--layers",
        "_blocks.0",
        "--units",
        "2",
        "--methods",
        "visualize,diverse",
        "--steps",
        "5",
        "--lambdas",
        "0,1",
        "--n",
        "2",
        "--size",
        "32",
        "--quiet",
    ]
    assert main([*args, "--device", CUDA, "--out", str(tmp_path / "gpu")]) == 0
    assert main([*args, "--out", str(tmp_path / "cpu")]) == 0
    for jobs in (tmp_path / "gpu" / "jobs").iterdir():
        record = json.loads((jobs / "job.json").read_text())
        assert record["spec"]["device"] == CUDA
        cpu = np.load(tmp_path / "cpu" / "jobs" / jobs.name / "result.npz")["activations"]
        _close(np.load(jobs / "result.npz")["activations"], cpu)
    assert os.path.isfile(tmp_path / "gpu" / "catalog.sqlite")
