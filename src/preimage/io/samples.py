"""scikit-image's sample photographs: the one loader of the natural images every method uses.

The grey ones are expanded to RGB; a photograph missing from an install is skipped. For a model
of one grey channel the loaders take ``channels=1``: every photograph (and image file) is then
turned grey by ITU-R 601 luma, Pillow's ``convert("L")``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image

from ..errors import PreimageError

SAMPLE_IMAGES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "camera",
    "grass",
    "gravel",
    "brick",
    "moon",
    "coins",
    "clock",
)


def rgb(array):
    """A grey, RGB or RGBA array of any dtype -> H x W x 3 uint8 (alpha dropped)."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.shape[-1] == 4:
        a = a[..., :3]
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float64) / (a.max() or 1), 0, 1) * 255).astype(np.uint8)
    return a


@functools.lru_cache(maxsize=None)
def _sample(name):
    import skimage.data

    try:
        array = rgb(getattr(skimage.data, name)())
    except Exception:  # a data file missing from this scikit-image install
        return None
    array.setflags(write=False)
    return array


def sample_arrays(names=None):
    """[(name, H x W x 3 uint8)] of the sample photographs at their own resolution."""
    out = []
    for name in names or SAMPLE_IMAGES:
        array = _sample(name)
        if array is not None:
            out.append((name, array))
    return out


RESAMPLING = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1, "box": 4, "hamming": 5}


def centre_crop(array, size, resample="bicubic"):
    """H x W x 3 uint8 -> size x size x 3, the largest centred square resized with Pillow.

    resample: how (a model's ``interpolation``: bicubic, bilinear, ...); Pillow's numbering.
    """
    h, w = array.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    im = Image.fromarray(np.ascontiguousarray(array[top : top + s, left : left + s]))
    return np.asarray(im.resize((size, size), RESAMPLING.get(resample, Image.BICUBIC)))


def in_channels(array, channels):
    """H x W x 3 uint8 -> H x W x ``channels``: itself for 3, its ITU-R 601 luma for 1 (Pillow's
    ``convert("L")``, as grey stimuli are commonly made from photographs)."""
    if channels == 3:
        return array
    if channels == 1:
        return np.asarray(Image.fromarray(np.ascontiguousarray(array)).convert("L"))[..., None]
    raise PreimageError(
        f"natural images are RGB (3 channels) or grey (1); a model of {channels} input channels"
        " has none"
    )


def as_batch(arrays, channels=3):
    """[H x W x 3 uint8] -> N x channels x H x W float in [0, 1] (``in_channels``)."""
    arrays = [in_channels(a, channels) for a in arrays]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


def sample_images(size, names=None, channels=3, resample="bicubic"):
    """The sample photographs, centre-cropped to size x size: N x C x S x S in [0, 1]."""
    arrays = [centre_crop(a, size, resample) for _, a in sample_arrays(names)]
    return as_batch(arrays, channels)


def natural_crops(size, per_side=3, scales=(1.0, 0.6), names=None, channels=3):
    """Many natural patches: a grid of per_side x per_side crops at each scale of each photograph.

    Deterministic, so statistics over them are reproducible. N x C x S x S in [0, 1].
    """
    out = []
    for _, array in sample_arrays(names):
        h, w = array.shape[:2]
        for scale in scales:
            side = int(min(h, w) * scale)
            for i in range(per_side):
                for j in range(per_side):
                    top = (h - side) * i // max(1, per_side - 1)
                    left = (w - side) * j // max(1, per_side - 1)
                    crop = np.ascontiguousarray(array[top : top + side, left : left + side])
                    out.append(
                        np.asarray(Image.fromarray(crop).resize((size, size), Image.BICUBIC))
                    )
    return as_batch(out, channels)
