"""The example notebooks run from top to bottom, show pictures, and are committed without outputs.

Each is executed in a fresh kernel of this environment (nbclient), as a reader would run it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time

import numpy as np
import pytest
from PIL import Image

NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")
PATHS = sorted(os.path.join(NOTEBOOKS, n) for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb"))


def test_the_notebooks_are_there():
    names = [os.path.basename(p) for p in PATHS]
    assert names == [
        "01_quick_tour.ipynb",
        "02_cadena_diverse_invariance.ipynb",
        "03_mahendran_vedaldi_preimages.ipynb",
        "04_finzi_reliability.ipynb",
        "05_recorded_neurons.ipynb",
    ]


@pytest.mark.parametrize("path", PATHS, ids=os.path.basename)
def test_committed_without_outputs(path):
    with open(path) as f:
        notebook = json.load(f)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, cell["source"][:80]


def _pictures(cell):
    """The PNGs a code cell displayed, embedded in HTML or as image/png."""
    import re

    out = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        found = re.findall(r"base64,([A-Za-z0-9+/=]+)", data.get("text/html", ""))
        found += [data["image/png"]] if "image/png" in data else []
        out += [Image.open(io.BytesIO(base64.b64decode(p))).convert("RGB") for p in found]
    return out


@pytest.mark.parametrize("path", PATHS, ids=os.path.basename)
def test_runs_top_to_bottom_and_shows_pictures(path, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    # the kernel runs in a scratch folder: a notebook that writes files leaves none in the tree;
    # the cell timeout only catches a hung kernel (machines here differ up to 3x in speed)
    NotebookClient(
        notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    print(f"{os.path.basename(path)}: {time.perf_counter() - started:.0f} s")  # for the README
    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    pictures = [p for c in code for p in _pictures(c)]
    assert len(pictures) >= 3
    assert all(float(np.asarray(p).std()) > 1.0 for p in pictures)  # none blank
