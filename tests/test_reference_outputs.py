"""Behaviour kept bit for bit: every method, through the CLI and an atlas job, against recorded
arrays.

The fixtures were recorded from the code before it was restructured (``tests/reference_runs.py``).
On the machine kind they were recorded on (same PyTorch, same CPU capability, two threads) the
arrays must be identical. Elsewhere floating-point reductions may round differently, so there they
are compared with a tolerance, and the test says so in its output.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import reference_runs as R
import torch


def _environment_matches(entry, name):
    recorded = R.environment_of(entry, name)
    return recorded == R.environment(), recorded


def _compare(entry, name, found):
    with np.load(os.path.join(R.FIXTURES, entry, f"{name}.npz")) as z:
        expected = {k: z[k] for k in z.files}
    dropped = R.DROPPED.get((entry, name), {})
    exact, recorded = _environment_matches(entry, name)
    for key, want in expected.items():
        if key in dropped:
            continue
        new = R.recorded_name(entry, name, key)
        assert new in found, f"{entry}/{name}: {key} is not written (as {new}) any more"
        got = found[new]
        assert got.dtype == want.dtype and got.size == want.size, (key, got.shape, want.shape)
        got = got.reshape(want.shape)  # a layout may add or merge axes; the values stay in order
        if exact:
            assert np.array_equal(got, want, equal_nan=True), (
                f"{entry}/{name} {key}: not bit-identical"
            )
        else:
            print(f"{entry}/{name} {key}: recorded on {recorded}, compared with a tolerance here")
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3, err_msg=key)


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(R.THREADS)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", sorted(R.CLI_RUNS))
def test_cli_run_is_unchanged(name, tmp_path):
    _compare("cli", name, R.run_cli(name, str(tmp_path / "run")))


@pytest.mark.parametrize("name", sorted(R.ATLAS_RUNS))
def test_atlas_job_is_unchanged(name, tmp_path):
    _compare("atlas", name, R.run_atlas(name, str(tmp_path / "run")))
