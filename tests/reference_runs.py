"""Small runs of every method, through the command line and through atlas jobs, and their arrays.

``tests/fixtures/reference/`` holds the arrays these runs gave before the code was restructured
(recorded by ``python tests/reference_runs.py``); ``test_reference_outputs.py`` runs them again and
asks for the same bits. Each run's arrays are read back from the files it wrote by ``arrays``,
under names that stay fixed whatever the layout on disk.
"""

from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "reference")
THREADS = 2

# name -> argv of `preimage`; every run is small: few steps, small images, few units
CLI_RUNS = {
    "visualize": [
        "visualize",
        "--target",
        "_blocks.1:0-2",
        "--target",
        "class:tabby",
        "--size",
        "32",
        "--steps",
        "4",
        "--tv",
        "0.01",
        "--l2",
        "0.001",
        "--seed",
        "3",
    ],
    "visualize_pixel": [
        "visualize",
        "--target",
        "_blocks.0:0-1",
        "--unit",
        "--size",
        "24",
        "--steps",
        "3",
        "--param",
        "pixel",
        "--no-decorrelate",
        "--transforms",
        "jitter:2,rotate:-5/5",
        "--optimizer",
        "adagrad-momentum",
        "--lr",
        "0.5",
    ],
    "visualize_prior": [
        "visualize",
        "--target",
        "_blocks.0:2",
        "--size",
        "16",
        "--steps",
        "2",
        "--prior",
        "default",
    ],
    "diverse_cell": [
        "diverse",
        "--model",
        "energy_complex_cell",
        "--target",
        "response:0",
        "--lambdas",
        "0,1",
        "--n",
        "2",
        "--steps",
        "5",
    ],
    "diverse_baseline": [
        "diverse",
        "--target",
        "_blocks.0:0-1",
        "--lambdas",
        "0,0.5",
        "--n",
        "2",
        "--steps",
        "4",
        "--baseline",
        "random",
    ],
    "invariance_compare": [
        "invariance",
        "--model",
        "energy_complex_cell",
        "--target",
        "response:0",
        "--compare",
        "simple_cell",
        "--n",
        "3",
        "--steps",
        "4",
    ],
    "invariance_lite0": ["invariance", "--target", "_blocks.0:0-1", "--n", "2", "--steps", "3"],
    "invert": [
        "invert",
        "--layer",
        "_blocks.1",
        "--image",
        "sample:astronaut",
        "--size",
        "32",
        "--steps",
        "3",
        "--seeds",
        "2",
        "--C",
        "20",
    ],
    "invert_masked": [
        "invert",
        "--layer",
        "_blocks.2",
        "--image",
        "sample:coffee",
        "--size",
        "48",
        "--steps",
        "3",
        "--mask-window",
        "2",
        "--B",
        "measured",
    ],
    "caricature": [
        "caricature",
        "--layer",
        "_blocks.0,_blocks.1",
        "--image",
        "sample:chelsea",
        "--size",
        "32",
        "--steps",
        "3",
    ],
    "caricature_prior": [
        "caricature",
        "--layer",
        "_blocks.0",
        "--image",
        "sample:chelsea",
        "--size",
        "24",
        "--steps",
        "2",
        "--prior",
        "default",
    ],
    "maximize": ["maximize", "--target", "_blocks.1:0-1", "--steps", "3"],
    "invert_table": [
        "invert-table",
        "--layers",
        "_blocks.0,_blocks.1",
        "--C",
        "1,20",
        "--size",
        "32",
        "--limit",
        "2",
        "--steps",
        "3",
    ],
    "invert_table_hog": [
        "invert-table",
        "--model",
        "hog",
        "--size",
        "32",
        "--limit",
        "1",
        "--steps",
        "2",
    ],
    "reliability": [
        "reliability",
        "--target",
        "_blocks.1:2",
        "--repeats",
        "2",
        "--size",
        "32",
        "--steps",
        "3",
    ],
    "study_tv": [
        "study",
        "--study",
        "tv",
        "--target",
        "_blocks.1:2",
        "--repeats",
        "2",
        "--size",
        "32",
        "--steps",
        "2",
    ],
    "study_preprocessing": [
        "study",
        "--study",
        "preprocessing",
        "--target",
        "_blocks.1:2",
        "--repeats",
        "2",
        "--size",
        "32",
        "--steps",
        "2",
    ],
    "study_depths": [
        "study",
        "--study",
        "depths",
        "--layers",
        "_blocks.0,_blocks.1",
        "--channel",
        "1",
        "--size",
        "32",
        "--steps",
        "2",
    ],
}

# name -> (methods, atlas settings), each planned on efficientnet_lite0 `_blocks.0`, units 0-1, one
# job per method
ATLAS_SETTINGS = dict(steps=4, lambdas=[0.0, 1.0], n=2, repeats=2, size=32, chunk=2)
ATLAS_RUNS = {
    "visualize": ["visualize"],
    "diverse": ["diverse"],
    "invariance": ["invariance"],
    "reliability": ["reliability"],
}


# Where the restructured code writes what the old code wrote (same values, new layout). A
# layout change may also add or merge axes (a unit or target axis): the values, in order, must
# be the same bits.
RENAMED = {
    ("cli", "invariance_compare"): {
        "energy_complex_cell_none_result.npz:": "result.npz:",
        "simple_cell_none_result.npz:": "compare/result.npz:",
    },
    ("atlas", "diverse"): {"result.npz:units": "result.npz:channels"},
    ("atlas", "invariance"): {"result.npz:units": "result.npz:channels"},
}
# Arrays the old layout had and the new one does not, with the reason.
DROPPED = {
    ("atlas", "visualize"): {"result.npz:units": "the labels of the targets replace it"},
    ("atlas", "reliability"): {"result.npz:units": "the target axis of the arrays replaces it"},
}


def recorded_name(entry, name, key):
    """The name a recorded array has in the restructured layout."""
    for old, new in RENAMED.get((entry, name), {}).items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def arrays(folder):
    """{'relative/path.npz:key': array} of every npz a run wrote, float arrays as float32."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.npz"), recursive=True)):
        rel = os.path.relpath(path, folder)
        with np.load(path) as z:
            for key in z.files:
                a = z[key]
                if a.dtype.kind in "fc" or a.dtype.kind in "iub":
                    out[f"{rel}:{key}"] = a
    return out


def run_cli(name, folder):
    from preimage.cli import main

    code = main([*CLI_RUNS[name], "--quiet", "--out", folder])
    assert code == 0, (name, code)
    return arrays(folder)


def run_atlas(name, folder):
    import preimage
    from preimage.atlas import Settings, plan, run_job

    model = preimage.load_model("efficientnet_lite0")
    [spec] = plan(
        model, ["_blocks.0"], "2", ATLAS_RUNS[name], Settings(model=model.name, **ATLAS_SETTINGS)
    )
    result = run_job(spec)
    os.makedirs(folder, exist_ok=True)
    for rel, data in result["files"].items():
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return arrays(folder)


def cpu_kind():
    """The processor's family, model, stepping and a digest of its feature flags: two machines
    with the same PyTorch CPU capability (say AVX512) still round some reductions differently
    when their processors differ, so bit-identical is only asked of the same kind."""
    import hashlib
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            first = f.read().split("\n\n")[0]
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in first.splitlines())
    )
    flags = hashlib.sha256(" ".join(sorted(fields.get("flags", "").split())).encode()).hexdigest()
    kind = "/".join(fields.get(k, "?") for k in ("vendor_id", "cpu family", "model", "stepping"))
    return f"{kind} flags:{flags[:12]}"


def environment():
    import torch

    return {
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "cpu_kind": cpu_kind(),
        "threads": THREADS,
    }


ENVIRONMENTS = "environments.json"  # {"entry/name": environment} of runs recorded again since


def environment_of(entry, name, out=FIXTURES):
    """The environment a run's arrays were recorded in: its own entry in environments.json (a
    run recorded again after a deliberate change), else environment.json's."""
    own = os.path.join(out, ENVIRONMENTS)
    if os.path.exists(own):
        with open(own) as f:
            found = json.load(f).get(f"{entry}/{name}")
        if found is not None:
            return found
    with open(os.path.join(out, "environment.json")) as f:
        return json.load(f)


def record_again(names, out=FIXTURES):
    """Record only the runs named ("entry/name") again, here, with this environment in
    environments.json: for a deliberate change of what those runs compute."""
    import tempfile

    import torch

    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ["TQDM_DISABLE"] = "1"
    table = {"cli": (CLI_RUNS, run_cli), "atlas": (ATLAS_RUNS, run_atlas)}
    path = os.path.join(out, ENVIRONMENTS)
    known = json.load(open(path)) if os.path.exists(path) else {}
    for full in names:
        entry, name = full.split("/")
        runs, runner = table[entry]
        assert name in runs, full
        with tempfile.TemporaryDirectory() as tmp:
            found = runner(name, os.path.join(tmp, "run"))
        np.savez_compressed(os.path.join(out, entry, f"{name}.npz"), **found)
        known[full] = environment()
        print(f"{full}: {len(found)} arrays", file=sys.stderr)
    with open(path, "w") as f:
        json.dump(dict(sorted(known.items())), f, indent=1)


def record(out=FIXTURES):
    """Run everything and write one npz per run (arrays under their names) and environment.json."""
    import tempfile

    import torch

    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ["TQDM_DISABLE"] = "1"
    for entry, runs, runner in (("cli", CLI_RUNS, run_cli), ("atlas", ATLAS_RUNS, run_atlas)):
        os.makedirs(os.path.join(out, entry), exist_ok=True)
        for name in runs:
            with tempfile.TemporaryDirectory() as tmp:
                found = runner(name, os.path.join(tmp, "run"))
            np.savez_compressed(os.path.join(out, entry, f"{name}.npz"), **found)
            print(f"{entry}/{name}: {len(found)} arrays", file=sys.stderr)
    with open(os.path.join(out, "environment.json"), "w") as f:
        json.dump(environment(), f, indent=1)
    if os.path.exists(os.path.join(out, ENVIRONMENTS)):  # every run now has environment.json's
        os.remove(os.path.join(out, ENVIRONMENTS))


if __name__ == "__main__":
    # python tests/reference_runs.py                     record everything
    # python tests/reference_runs.py cli/diverse_cell ...  record those runs again
    record_again(sys.argv[1:]) if sys.argv[1:] else record()
