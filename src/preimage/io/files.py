"""Files a run leaves behind, written atomically, and the record of what produced them.

Every write goes to a temporary file in the target folder and is renamed into place, so an
interrupted run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import sys
import tempfile

import numpy as np
import torch


def atomic_write(path, data: bytes):
    """Write bytes to ``path`` through a temporary file renamed into place."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; results are not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_json(path, obj):
    """Write ``obj`` as indented JSON, tensors and NumPy values as plain numbers and lists."""
    atomic_write(path, (json.dumps(obj, indent=2, default=_jsonable) + "\n").encode())


def save_npz(path, **arrays):
    """Arrays (tensors or NumPy) into one compressed .npz file."""
    buf = io.BytesIO()
    as_numpy = {
        k: v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
        for k, v in arrays.items()
    }
    np.savez_compressed(buf, **as_numpy)
    atomic_write(path, buf.getvalue())


def _jsonable(o):
    if torch.is_tensor(o) or isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def safe_name(label):
    """A label as a file name: runs of anything but letters, digits, '.', '_' and '-' become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "image"


def environment():
    """Versions that, with the configuration, reproduce a run."""
    import torchvision

    from .. import __version__

    return {
        "preimage": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def write_metrics(folder, config, argv=None, **metrics):
    """metrics.json: the configuration (with the command line, when there is one), the metrics
    and the environment. Written last by every saver, so its presence marks a complete run."""
    config = dict(config)
    if argv is not None:
        config["argv"] = list(argv)
    record = {"config": config, **metrics, "environment": environment()}
    save_json(os.path.join(folder, "metrics.json"), record)
    return record
