"""A recording as NumPy arrays in an .npz file, checked, and split for fitting.

``images`` (N x H x W grey, or N x H x W x 3; uint8 or float) and ``responses`` (N x K, one value
per image and neuron: a trial or the mean of an image's trials) are required. A repeated test set
is optional: ``test_images`` (M x H x W[...]) with ``test_responses`` (M x R x K, NaN where a
repeat is missing). Without one, a seeded 10 % of the images is held out as the test set (one
repeat each). A seeded 10 % of the rest is the validation split, for early stopping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PreimageError

HELD_OUT = 0.1  # the share of images held out for the test set (without one) and for validation


@dataclass
class Recording:
    """Images in [0, 1] (N x C x H x W, float32) and responses, split three ways."""

    train_images: np.ndarray
    train_responses: np.ndarray  # N x K
    val_images: np.ndarray
    val_responses: np.ndarray
    test_images: np.ndarray
    test_responses: np.ndarray  # M x R x K, NaN where a repeat is missing
    repeated: bool  # whether the test set came with the file (with repeats), or was held out
    scale: float = 1.0  # the data's own units per unit of the [0, 1] images: 255 for uint8

    @property
    def neurons(self):
        return self.train_responses.shape[1]

    @property
    def channels(self):
        return self.train_images.shape[1]

    @property
    def size(self):
        return self.train_images.shape[-2:]


def as_images(array, name):
    """N x H x W or N x H x W x 3 (uint8 or float) -> N x C x H x W float32 in [0, 1]."""
    a = np.asarray(array)
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    else:
        raise PreimageError(
            f"bad {name}: shape {a.shape}; give N x H x W (grey) or N x H x W x 3 images"
        )
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255
    if not np.issubdtype(a.dtype, np.number):
        raise PreimageError(f"bad {name}: dtype {a.dtype}; give uint8 or float images")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise PreimageError(f"bad {name}: it holds NaN or infinite values")
    if a.min() < 0 or a.max() > 1:
        raise PreimageError(
            f"bad {name}: float values from {a.min():g} to {a.max():g}; give uint8 images, or"
            " floats in [0, 1]"
        )
    return a


def _split(count, share, rng):
    order = rng.permutation(count)
    held = max(1, int(round(count * share)))
    return np.sort(order[held:]), np.sort(order[:held])


def check(arrays):
    """The recording's arrays, checked: (images, responses, test_images, test_responses or None)."""
    for name in ("images", "responses"):
        if name not in arrays:
            raise PreimageError(f"the data has no {name!r} array; it needs images and responses")
    images = as_images(arrays["images"], "images")
    responses = np.asarray(arrays["responses"], dtype=np.float32)
    if responses.ndim != 2 or responses.shape[0] != images.shape[0]:
        raise PreimageError(
            f"bad responses: shape {responses.shape} for {images.shape[0]} images; give N x K"
            " (one value per image and neuron)"
        )
    if not np.isfinite(responses).all():
        raise PreimageError("bad responses: they hold NaN or infinite values")
    has = ("test_images" in arrays, "test_responses" in arrays)
    if has[0] != has[1]:
        raise PreimageError("the data has one of test_images and test_responses; give both or none")
    if not has[0]:
        return images, responses, None, None
    test_images = as_images(arrays["test_images"], "test_images")
    if test_images.shape[1:] != images.shape[1:]:
        raise PreimageError(
            f"bad test_images: {test_images.shape[1:]} per image, the images are"
            f" {images.shape[1:]}; give images of one size and kind"
        )
    test = np.asarray(arrays["test_responses"], dtype=np.float32)
    if (
        test.ndim != 3
        or test.shape[0] != test_images.shape[0]
        or test.shape[2] != responses.shape[1]
    ):
        raise PreimageError(
            f"bad test_responses: shape {test.shape}; give M x R x K for {test_images.shape[0]}"
            f" test images and {responses.shape[1]} neurons (NaN where a repeat is missing)"
        )
    if np.isinf(test).any() or np.isnan(test).all(axis=1).any():
        raise PreimageError(
            "bad test_responses: infinite values, or a test image without any repeat"
        )
    return images, responses, test_images, test


def load_recording(path, seed=0):
    """The .npz file at ``path`` as a Recording (the splits seeded by ``seed``)."""
    import zipfile

    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with loaded as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise PreimageError(
            f"cannot read --data {path!r} as an .npz of arrays ({type(e).__name__})"
        ) from None
    recording = split(*check(arrays), seed=seed)
    recording.scale = 255.0 if np.asarray(arrays["images"]).dtype == np.uint8 else 1.0
    return recording


def split(images, responses, test_images=None, test_responses=None, seed=0):
    """Train, validation and test: the given test set, or a seeded 10 % held out."""
    rng = np.random.default_rng(seed)
    repeated = test_images is not None
    if not repeated:
        keep, held = _split(len(images), HELD_OUT, rng)
        test_images, test_responses = images[held], responses[held][:, None, :]
        images, responses = images[keep], responses[keep]
    if len(images) < 2:
        raise PreimageError(
            f"too few images to fit: {len(images)} left for training and validation; give more"
        )
    train, val = _split(len(images), HELD_OUT, rng)
    return Recording(
        images[train], responses[train], images[val], responses[val], test_images,
        test_responses, repeated,
    )  # fmt: skip
