"""Running one atlas job: a spec in, its artifacts (as bytes) and metrics out.

A job runs its method through the method's own protocol (settings, run, save), so its files
are the ones the method's command writes for the same units. It never writes into the campaign
folder itself: it saves into a private temporary folder and returns the bytes, so it runs the
same in this process, in a local Ray worker or on another machine, and only the driver commits
(see ``run.commit``).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time

import torch

from ..io.files import environment
from ..methods import get_method

_MODELS = {}


def weights_bytes(spec):
    """The bytes of the weights file a spec names, when it names one on this machine (the driver
    sends them to workers on machines without it); None for 'imagenet', 'random' or none."""
    path = spec.get("weights")
    if not path or not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        return f.read()


def _local_weights(spec, data):
    """The spec with its weights file as this machine has it: the bytes the driver sent, written
    once per content to this machine's temporary folder."""
    import hashlib

    from ..io.files import atomic_write

    if data is None:
        return spec
    digest = hashlib.sha256(data).hexdigest()[:20]
    path = os.path.join(tempfile.gettempdir(), f"preimage-weights-{digest}.pt")
    if not os.path.isfile(path):
        atomic_write(path, data)
    return {**spec, "weights": path}


def _model(spec):
    """Models are cached per process: a Ray worker loads each network once for all its jobs."""
    from ..models import load_model

    layouts = spec.get("layouts") or {}
    key = (
        spec["model"],
        spec["weights"],
        spec["weights_seed"],
        spec["device"],
        tuple(sorted(layouts.items())),
    )
    if key not in _MODELS:
        _MODELS.clear()  # one network at a time keeps a worker's memory bounded
        model = load_model(
            spec["model"], weights=spec["weights"], seed=spec["weights_seed"], device=spec["device"]
        )
        _MODELS[key] = model.with_layouts(layouts) if layouts else model
    return _MODELS[key]


def worker_name():
    """This process as a job's worker: 'HOST:PID'."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(spec, threads=None, weights=None):
    """Run a job; returns {'files': {relative path: bytes}, 'units': [...], 'metrics': {...},
    'seconds', 'worker'}. weights: the bytes of the spec's weights file, for a worker on a machine
    that lacks it (a fitted model of neurons, a state dict).
    """
    if threads:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    model = _model(_local_weights(spec, weights))
    method = get_method(spec["method"])
    target = method.atlas.target(spec["layer"], spec["units"])
    settings = method.settings(**{**spec["settings"], **target})
    result = method.run(model, settings, progress=False)
    units, metrics = result.unit_rows(), result.job_metrics()
    with tempfile.TemporaryDirectory(prefix="preimage-job-") as tmp:
        result.save(tmp)
        files = {}
        for root, _, names in os.walk(tmp):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, tmp)] = f.read()
    metrics["torch_threads"] = torch.get_num_threads()
    seconds = time.perf_counter() - t0
    # the folder describes itself: what ran, where, with which versions (the catalog holds the same)
    record = {
        "spec": spec,
        "metrics": metrics,
        "units": units,
        "seconds": round(seconds, 3),
        "worker": worker_name(),
        "environment": environment(),
    }
    files["job.json"] = (json.dumps(record, indent=1, default=str) + "\n").encode()
    return {
        "files": files,
        "units": units,
        "metrics": metrics,
        "seconds": seconds,
        "worker": record["worker"],
    }
