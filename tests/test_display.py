"""Results show themselves in a notebook: every result type's HTML (or PNG) decodes to pictures
that are not blank, ``show`` takes any layout of images, and drawing changes no matplotlib
state a notebook relies on."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

import preimage
from preimage.io.display import as_images

SMALL = dict(size=32, steps=2)


def _pictures(html):
    """The embedded PNGs of an HTML representation, decoded to arrays."""
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(p))).convert("RGB")) for p in found]


def _not_blank(picture):
    return picture.size > 0 and float(picture.std()) > 1.0


@pytest.fixture(scope="module")
def lite0():
    return preimage.load_model("efficientnet_lite0")


RUNS = {
    "visualize": dict(targets=["_blocks.0:0-2", "class:5"], **SMALL),
    "diverse": dict(target="_blocks.0:1", n=2, lambdas=[0, 1], **SMALL),
    "invariance": dict(target="_blocks.0:0-1", n=2, lambdas=[0, 1], steps=2),
    "reliability": dict(target="_blocks.1:2", repeats=2, **SMALL),
    "study": dict(study="tv", targets=["_blocks.1:2"], repeats=2, **SMALL),
    "study depths": dict(study="depths", layers="_blocks.0,_blocks.1", channel=1, **SMALL),
    "invert": dict(layer="_blocks.1", image="sample:coffee", **SMALL),
    "caricature": dict(layer="_blocks.0,_blocks.1", image="sample:chelsea", **SMALL),
    "maximize": dict(target="_blocks.1:0-1", steps=2),
    "invert-table": dict(layers="_blocks.0", C=[20], limit=1, **SMALL),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_every_result_shows_its_pictures_and_what_it_measured(lite0, name):
    method = name.split()[0]
    result = preimage.run(method, lite0, progress=False, **RUNS[name])
    html = result._repr_html_()
    pictures = _pictures(html)
    assert pictures and all(_not_blank(p) for p in pictures), name
    assert f"<b>{method}" in html  # the title names the method and the model
    assert "efficientnet_lite0" in html


def test_the_visualize_grid_names_each_target_with_its_activation(lite0):
    result = preimage.run("visualize", lite0, progress=False, targets=["_blocks.0:0-1"], **SMALL)
    labelled = result.labelled_grid()
    plain = result.render.picture()
    assert labelled.png == plain.png and plain.size[0] > 2 * 32  # two tiles side by side
    png = Image.open(io.BytesIO(result.render._repr_png_()))
    assert png.size == plain.size


def test_a_campaign_summary_shows_its_units(tmp_path, lite0):
    from preimage.atlas import Campaign, LocalExecutor, Settings, plan, run_campaign

    specs = plan(lite0, ["_blocks.0"], 2, ["visualize"], Settings(steps=2, size=32, chunk=2))
    executor = LocalExecutor(threads=1)
    try:
        with Campaign(tmp_path / "a") as campaign:
            summary = run_campaign(campaign, specs, executor, progress=False)
    finally:
        executor.close()
    assert summary["ran"] == 1 and summary["counts"] == {"done": 1}
    html = summary._repr_html_()
    pictures = _pictures(html)
    assert len(pictures) == 2 and all(_not_blank(p) for p in pictures)
    assert "_blocks.0: 2 units" in html


@pytest.mark.parametrize(
    "shape, layout",
    [
        ((8, 8), "HW"),
        ((3, 8, 8), "CHW"),
        ((8, 8, 3), "HWC"),
        ((2, 1, 8, 8), "NCHW"),
        ((2, 8, 8, 3), "NHWC"),
    ],
)
def test_show_takes_any_layout(shape, layout):
    a = np.random.default_rng(0).random(shape)
    images = as_images(torch.from_numpy(a))
    n = shape[0] if len(shape) == 4 else 1
    assert images.shape == (n, 8, 8, 3)
    first = a[0] if len(shape) == 4 else a
    if layout in ("CHW", "NCHW"):
        first = first.transpose(1, 2, 0)
    if first.ndim == 2:
        first = first[..., None]
    np.testing.assert_allclose(images[0], np.broadcast_to(first, (8, 8, 3)))
    picture = preimage.show(a, labels=[f"image {i}" for i in range(n)], values=list(range(n)))
    assert _not_blank(np.asarray(Image.open(io.BytesIO(picture._repr_png_())).convert("RGB")))


def test_show_reads_uint8_and_stretches_what_is_outside_0_1():
    assert as_images(np.full((4, 4), 255, np.uint8)).max() == 1.0
    stretched = as_images(np.array([[-2.0, 0.0], [1.0, 2.0]]))
    assert stretched.min() == 0.0 and stretched.max() == 1.0
    np.testing.assert_allclose(stretched[0, 0, 1, 0], 0.5)
    with pytest.raises(ValueError, match="give 1 or 3 channels"):
        as_images(np.zeros((2, 5, 8, 8)))


def test_drawing_leaves_matplotlib_as_the_notebook_had_it(lite0, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a backend other than the Agg the figures are drawn with
    try:
        result = preimage.run("diverse", lite0, progress=False, **RUNS["diverse"])
        result.save(tmp_path / "d")
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == []  # no figure left open for the notebook to show again
    finally:
        matplotlib.use(before)
