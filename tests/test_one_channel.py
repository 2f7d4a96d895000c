"""Models of one grey channel at small sizes with z-scored input, as models of recorded neurons
are: every method makes N x 1 x H x W images, saves them as grey PNGs and still finds optima."""

import glob
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import preimage
from preimage import ImageParam, Optimizer
from preimage import objectives as O
from preimage.io.samples import centre_crop, natural_crops, sample_arrays, sample_images

SIZE = 36
# z-scored grey input: the data's mean and std in input_range units (0-255 stimuli)
MEAN, STD, RANGE = (115.0,), (60.0,), (0.0, 255.0)


def _grey_model(module, size=SIZE):
    return preimage.wrap_model(
        module, channels=1, mean=MEAN, std=STD, input_range=RANGE, input_size=size, name="grey"
    )


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.ReLU(), nn.Conv2d(8, 16, 5), nn.ReLU(), nn.Conv2d(16, 16, 5)
    )
    return _grey_model(net)


def _modes(folder, pattern):
    paths = sorted(glob.glob(os.path.join(folder, pattern)))
    assert paths, pattern
    modes = set()
    for path in paths:
        with Image.open(path) as im:
            modes.add(im.mode)
    return modes


def test_wrap_model_checks_one_mean_and_std_per_channel():
    net = nn.Sequential(nn.Conv2d(1, 4, 3))
    with pytest.raises(preimage.PreimageError, match=r"3 means and 3 stds for 1 input channels"):
        preimage.wrap_model(net, channels=1, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    with pytest.raises(preimage.PreimageError, match=r"1 means and 3 stds for 1 input channels"):
        preimage.wrap_model(net, channels=1, mean=(0.5,), std=(0.2, 0.2, 0.2))
    with pytest.raises(preimage.PreimageError, match="bad channels 0"):
        preimage.wrap_model(net, channels=0)
    model = preimage.wrap_model(net, channels=1, input_size=19)  # mean 0 and std 1 per channel
    assert model.channels == 1 and model.mean == (0.0,) and model.std == (1.0,)
    assert model.layers()[0].shape == (4, 17, 17)
    assert preimage.wrap_model(nn.Conv2d(3, 4, 3)).channels == 3
    rgb = preimage.wrap_model(nn.Conv2d(3, 4, 3), mean=(0.5,), std=(0.25,))  # one for all
    assert rgb.mean == (0.5, 0.5, 0.5) and rgb.std == (0.25, 0.25, 0.25)
    grey = _grey_model(net)
    x = torch.rand(2, 1, 5, 5)
    assert torch.allclose(grey.normalize(x), (x * 255 - MEAN[0]) / STD[0], atol=1e-5)


@pytest.mark.parametrize("size", [SIZE, 19])
def test_visualize_grey_images_rise_and_save_as_grey_pngs(cnn, size, tmp_path):
    result = preimage.run(
        "visualize", cnn, targets=["4:0-3"], steps=40, size=size, progress=False, patience=0
    )
    r = result.render
    assert r.images.shape == (4, 1, size, size)
    assert (r.trace[-1] > r.trace[0]).all(), r.trace[[0, -1]]
    # decorrelation (on by default) is RGB's; it is off here, and the record says so
    param = r.config["param"]
    assert param["decorrelate"] is False and "RGB" in param["decorrelate_off"]
    result.save(str(tmp_path))
    assert _modes(str(tmp_path), "images/*.png") == {"L"}
    assert _modes(str(tmp_path), "grid.png") == {"L"}
    assert result.labelled_grid().size[0] > 0  # the notebook picture shows grey tiles


def test_diverse_grey_sweep_rises(cnn, tmp_path):
    kw = dict(target="4:2", n=2, lambdas=[0, 1], progress=False, patience=0)
    start = preimage.run("diverse", cnn, steps=1, **kw).sweeps[0]
    result = preimage.run("diverse", cnn, steps=40, **kw)
    s = result.sweeps[0]
    size = result.config["size"]
    assert size == 13  # the receptive field of three 5 x 5 convolutions
    assert s.images.shape == (2, 2, 1, size, size)
    assert float(s.mean_activation[0]) > float(start.mean_activation[0])
    result.save(str(tmp_path))
    assert _modes(str(tmp_path), "grid.png") == {"L"}
    assert _modes(str(tmp_path), "units/*/chosen.png") == {"L"}
    _modes(str(tmp_path), "units/*/lambdas.png")  # the figures are drawn


def test_invariance_grey_indices(cnn, tmp_path):
    kw = dict(target="4:2", n=2, lambdas=[0, 1], progress=False)
    start = preimage.run("invariance", cnn, steps=1, **kw).units[0]
    result = preimage.run("invariance", cnn, steps=30, **kw)
    u = result.units[0]
    assert u.texture.shape == (1, 26, 26) and u.templates.shape == (2, 1, 13, 13)
    assert u.pairs.shape == (1, 1, 13, 13)
    assert u.crop_activation > start.crop_activation
    assert np.isfinite(u.shift_invariance_index) and np.isfinite(u.linear_combination_index)
    result.save(str(tmp_path))
    assert _modes(str(tmp_path), "units/*/chosen.png") == {"L"}


def test_finzi_sanity_check_grey_linear_layer():
    """A linear first layer on z-scored grey input under an L2 penalty: the optimum of each
    centre unit is its filter (as tests/test_render.py checks for RGB)."""
    torch.manual_seed(1)
    conv = nn.Conv2d(1, 8, 5)
    model = _grey_model(nn.Sequential(conv), size=15)
    channels = list(range(8))
    filters = conv.weight.detach()
    # the optimum of w·x/σ - λ (1/HW) Σ x² is x = HW w / (2 λ σ), σ in display units
    size, std = 15, STD[0] / (RANGE[1] - RANGE[0])
    l2 = size * size * float(filters.abs().max()) / (2 * std)
    top, bottom, left, right = model.layer_info("0", size).receptive_box()
    param = ImageParam(
        len(channels),
        size,
        basis="pixel",
        decorrelate=False,
        output="linear",
        channels=1,
        generator=torch.Generator().manual_seed(0),
    )
    result = preimage.render(
        model,
        O.unit("0", channels) - l2 * O.l2(),
        param,
        optimizer=Optimizer("adam", 0.05),
        steps=300,
        progress=False,
    )
    assert result.images.shape == (8, 1, size, size)
    scale, shift = model.centering(result.images)
    centred = (result.images * scale + shift)[:, :, top:bottom, left:right]
    cos = F.cosine_similarity(centred.flatten(1), filters.flatten(1), dim=1)
    print(f"grey conv, 8 channels: cosine with the filter {[round(float(c), 5) for c in cos]}")
    assert cos.min() >= 0.99


def test_render_refuses_rgb_images_for_a_grey_model(cnn):
    with pytest.raises(preimage.PreimageError, match=r"3-channel images .* takes 1"):
        preimage.render(cnn, O.channel("4", 0), ImageParam(1, 20), steps=1, progress=False)


def test_natural_images_are_turned_grey_by_luma():
    name, rgb = sample_arrays(["astronaut"])[0]
    grey = sample_images(24, [name], channels=1)
    luma = np.asarray(Image.fromarray(centre_crop(rgb, 24)).convert("L"))
    assert grey.shape == (1, 1, 24, 24)
    assert np.array_equal((grey[0, 0].numpy() * 255).round().astype(np.uint8), luma)
    assert natural_crops(12, per_side=2, scales=(1.0,), channels=1).shape[1] == 1


def test_show_takes_grey_images():
    picture = preimage.show(torch.rand(3, 1, 10, 10), labels=["a", "b", "c"])
    assert picture.size[0] > 0
    assert preimage.show(torch.rand(2, 1, 10, 10)).size[0] > 0


def test_the_rgb_prior_is_refused_for_a_grey_model(cnn):
    with pytest.raises(preimage.PreimageError, match="the prior is of RGB images"):
        preimage.run("visualize", cnn, targets=["4:0"], prior="default", steps=1, progress=False)


def test_transforms_fill_one_value_per_grey_channel(cnn):
    from preimage.engine.transforms import Pipeline, parse_transforms

    steps = parse_transforms("finzi").steps
    param = ImageParam(1, 20, channels=1)
    obj = O.channel("4", 0)
    result = preimage.render(
        cnn, obj, param, transforms=Pipeline(steps, fill=0.5), steps=2, progress=False
    )
    assert result.images.shape == (1, 1, 20, 20)
    with pytest.raises(preimage.PreimageError, match="bad fill .* 1 channel"):
        rgb_fill = Pipeline(steps, fill=(0.1, 0.2, 0.3))
        preimage.render(cnn, obj, param, transforms=rgb_fill, steps=1, progress=False)
