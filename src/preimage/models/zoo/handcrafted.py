"""HOG and dense SIFT as differentiable CNNs (Mahendran & Vedaldi §4.1).

Three models, numerically matched to VLFeat 0.9.21 (``vl_hog``, ``vl_dsift``
through cyvlfeat) and built from convolutions and pointwise operations, so
autograd gives their derivatives with respect to the image:

  hog    UoCTTI HOG (``VlHogVariantUoctti``), hard orientation assignment:
         2K directed + K undirected orientations + 4 texture components per
         cell (31 for K = 9).
  hogb   the same with bilinear orientation assignment (VLFeat's
         ``bilinearOrientations``; cyvlfeat ``bilinear_interpolation=True``).
  dsift  dense SIFT (``vl_dsift``) of the grey image, float descriptors.

Input: N x 3 x H x W holding the values of the H x W x 3 array VLFeat would
get (registered models use 0-255 with the ImageNet mean colour removed; HOG
and SIFT see only differences, so the mean changes nothing). Output:
N x D x H' x W'. ``out.permute(0, 2, 3, 1)`` is cyvlfeat's ``hog`` array
(H' x W' x D); for dsift, ``out.permute(0, 2, 3, 1).reshape(N, -1, D)`` is
cyvlfeat's ``descriptors`` (frames row by row, top to bottom, each left to
right; components in VLFeat's order, orientation fastest, then x bin, then y
bin). Every model ends in the layer ``descriptor``; the stages before it are
layers too.

The modules are in ``hog`` and ``dsift``; VLFeat's numerics they share in ``vlfeat``.
"""

from __future__ import annotations

from ...errors import PreimageError
from ..base import VisionModel
from .dsift import DSIFT
from .hog import HOG
from .vlfeat import IMAGENET_MEAN_255

__all__ = ["HOG", "DSIFT"]

INPUT_SIZE = 224
INVERSION_C = 20.0  # §5.1 inverts HOG, HOGb and DSIFT with C = 20 and no jitter


def _check_weights(name, weights):
    if weights not in (None, "none"):
        raise PreimageError(
            f"bad weights {weights!r} for {name}: hand-crafted models have no weights (use none)"
        )


def _wrap(module, name):
    return VisionModel(
        module,
        name=name,
        mean=IMAGENET_MEAN_255,
        std=(1.0, 1.0, 1.0),
        input_range=(0.0, 255.0),
        input_size=INPUT_SIZE,
        weights="none (hand-crafted)",
        inversion_C=INVERSION_C,
        jitter=0,
    )


def load_hog(weights=None, seed=0, cell_size=8, num_orientations=9):
    """UoCTTI HOG with hard orientation assignment (VLFeat's ``vl_hog``); no weights."""
    _check_weights("hog", weights)
    return _wrap(HOG(cell_size, num_orientations, bilinear=False), "hog")


def load_hogb(weights=None, seed=0, cell_size=8, num_orientations=9):
    """UoCTTI HOG with bilinear orientation assignment; no weights."""
    _check_weights("hogb", weights)
    return _wrap(HOG(cell_size, num_orientations, bilinear=True), "hogb")


def load_dsift(
    weights=None, seed=0, bin_size=8, step=None, fast=True, geometry=(4, 4, 8), window_size=2.0
):
    """Dense SIFT (VLFeat's ``vl_dsift``) of the grey image; no weights."""
    _check_weights("dsift", weights)
    return _wrap(DSIFT(bin_size, step, fast, geometry, window_size), "dsift")
