"""HOG, HOGb and DSIFT as CNNs against VLFeat (through cyvlfeat): same numbers, usable gradients.

The metric is the relative L2 error ||ours - vlfeat|| / ||vlfeat|| per image,
which must stay below 1e-4 ("numerically indistinguishable"). ``pytest -s``
prints the worst figure per model and image size.
"""

import numpy as np
import pytest
import torch
from cyvlfeat.hog import hog as vl_hog
from cyvlfeat.sift import dsift as vl_dsift

import preimage
from preimage.errors import PreimageError
from preimage.io.samples import sample_images
from preimage.models.zoo.handcrafted import DSIFT, HOG

TOLERANCE = 1e-4
SIZES = (64, 93, 130)  # 93 and 130 are not multiples of the cell size


@pytest.fixture(scope="module")
def photos():
    """Every sample photograph at each size, in 0-255 float32 (N x 3 x S x S)."""
    return {size: (sample_images(size) * 255).float() for size in SIZES}


def _channels_last(array):
    return np.ascontiguousarray(array.permute(1, 2, 0).numpy())


def vlfeat(name, module, image):
    """VLFeat's output for one 3 x H x W image, in VLFeat's layout."""
    if name == "dsift":
        grey = _channels_last(module.grey(image[None])[0])[..., 0]
        return vl_dsift(
            grey,
            step=module.step,
            size=module.bin_size,
            fast=module.fast,
            float_descriptors=True,
            geometry=module.geometry,
        )[1]
    return vl_hog(
        _channels_last(image),
        module.cell_size,
        n_orientations=module.num_orientations,
        bilinear_interpolation=module.bilinear,
    )


def ours_in_vlfeat_layout(name, out):
    """N x D x H' x W' -> VLFeat's layout per image: H' x W' x D (hog), frames x D (dsift)."""
    out = out.permute(0, 2, 3, 1)
    return [o.reshape(-1, o.shape[-1]).numpy() if name == "dsift" else o.numpy() for o in out]


def worst_error(name, module, images):
    with torch.no_grad():
        outs = ours_in_vlfeat_layout(name, module(images))
    errors = []
    for image, ours in zip(images, outs):
        ref = vlfeat(name, module, image)
        assert ours.shape == ref.shape
        errors.append(float(np.linalg.norm(ours - ref) / np.linalg.norm(ref)))
    return max(errors)


@pytest.mark.parametrize("name", ["hog", "hogb", "dsift"])
def test_matches_vlfeat_on_natural_images(name, photos):
    module = preimage.load_model(name).module
    worst = {size: worst_error(name, module, images) for size, images in photos.items()}
    n = len(next(iter(photos.values())))
    print(
        f"\n{name}: worst relative L2 error over {n} images: "
        + ", ".join(f"{s}px {e:.1e}" for s, e in worst.items())
    )
    assert max(worst.values()) <= TOLERANCE


@pytest.mark.parametrize(
    "name, module",
    [
        ("hog", HOG(cell_size=5, num_orientations=6)),
        ("hogb", HOG(cell_size=4, num_orientations=7, bilinear=True)),
        ("dsift", DSIFT(bin_size=8, step=4, fast=False)),
        ("dsift", DSIFT(bin_size=5, step=3, geometry=(3, 2, 6))),
    ],
    ids=["hog-c5-k6", "hogb-c4-k7", "dsift-gaussian-step4", "dsift-b5-s3-3x2x6"],
)
def test_options_match_vlfeat(name, module, photos):
    worst = worst_error(name, module, photos[93][:4])
    print(f"\n{name} {module.extra_repr() or ''}: worst relative L2 error {worst:.1e}")
    assert worst <= TOLERANCE


def test_dsift_frames_and_grey_are_vlfeats(photos):
    module = DSIFT()
    image = photos[93][0]
    grey = _channels_last(module.grey(image[None])[0])[..., 0]
    r, g, b = (image[c].numpy() for c in range(3))
    assert np.array_equal(
        grey, r * np.float32(0.299) + g * np.float32(0.587) + b * np.float32(0.114)
    )
    frames, _ = vl_dsift(grey, step=8, size=8, fast=True, float_descriptors=True)
    assert np.array_equal(module.frame_centres(93, 93).numpy(), frames)


@pytest.mark.parametrize("name", ["hog", "hogb", "dsift"])
def test_gradients_are_finite_and_nonzero(name):
    model = preimage.load_model(name)
    images = torch.cat(
        [sample_images(48, ["astronaut", "moon"]), torch.full((1, 3, 48, 48), 0.5)]
    )  # a flat image too
    images.requires_grad_(True)
    out = model.module(
        model.preprocess(images)
    )  # display space [0, 1] -> 0-255, mean removed -> descriptor
    (out * torch.randn_like(out)).sum().backward()
    grad = images.grad
    assert torch.isfinite(grad).all()
    assert (grad[:2].flatten(1).abs().sum(1) > 0).all()  # every photograph gets a gradient
    assert (out[2] == 0).all() and (
        grad[2] == 0
    ).all()  # a flat image has no gradients, and no NaNs


def test_registered_models_list_their_layers():
    expected = {
        "hog": (31, 8, 8),
        "hogb": (31, 8, 8),
        "dsift": (128, 5, 5),
    }  # 64 px: 8 x 8 cells, 5 x 5 frames
    for name, shape in expected.items():
        table = {info.name: info for info in preimage.load_model(name).layers(64)}
        assert list(table)[-1] == "descriptor" and table["descriptor"].shape == shape
        assert table["descriptor"].rf_stride == 8
    table = preimage.load_model("hog", cell_size=4, num_orientations=6).layers(64)
    assert [info.name for info in table] == [
        "gradient",
        "orientations",
        "cells",
        "blocks",
        "descriptor",
    ]
    assert table[-1].shape == (22, 16, 16)


def test_weights_other_than_none_are_refused():
    assert preimage.load_model("dsift", weights="none").weights == "none (hand-crafted)"
    with pytest.raises(PreimageError, match="hand-crafted models have no weights"):
        preimage.load_model("hog", weights="imagenet")
