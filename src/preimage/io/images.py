"""Pictures in and out: PNG files, grids, and image files read from disk."""

from __future__ import annotations

import io
import math
import os

import numpy as np
import torch
from PIL import Image

from ..errors import PreimageError, suggest
from .files import atomic_write
from .samples import SAMPLE_IMAGES, as_batch, centre_crop, sample_images


def to_uint8(image):
    """3 x H x W (or H x W x 3) float in [0, 1] -> H x W x 3 uint8; one channel is repeated."""
    a = png_pixels(image)
    return np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a


def png_pixels(image):
    """C x H x W (or H x W x C) float in [0, 1] -> H x W x 3 uint8, or H x W for one channel."""
    a = image.detach().cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def png_bytes(array):
    """An H x W x 3 (or H x W: grey, mode L) uint8 array as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path, image):
    """Write one image, C x H x W (or H x W x C) in [0, 1], as a PNG file: RGB for 3 channels,
    grey (mode L) for 1."""
    atomic_write(path, png_bytes(png_pixels(image)))


def grid(images, columns=None, pad=2, min_tile=96):
    """N x C x H x W in [0, 1] -> one uint8 mosaic, H x W x 3 (H x W when every image is grey);
    small tiles are enlarged (nearest)."""
    tiles = [png_pixels(im) for im in images]
    if any(t.ndim == 3 for t in tiles):
        tiles = [np.repeat(t[..., None], 3, axis=-1) if t.ndim == 2 else t for t in tiles]
    n = len(tiles)
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    h, w = tiles[0].shape[:2]
    k = max(1, int(math.ceil(min_tile / max(h, w))))
    h, w = h * k, w * k
    depth = tiles[0].shape[2:]
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, *depth), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        t = np.kron(t, np.ones((k, k, *[1] * len(depth)), np.uint8)) if k > 1 else t
        out[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + c * (w + pad) : pad + c * (w + pad) + w,
        ] = t
    return out


def save_grid(path, images, columns=None):
    """Write N x C x H x W images in [0, 1] as one PNG mosaic (``grid``)."""
    atomic_write(path, png_bytes(grid(images, columns)))


# -- image files ------------------------------------------------------------------------------


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def load_folder(path, size, limit=None, channels=3, resample="bicubic"):
    """Every image file in a folder (sorted by name), centre-cropped to size x size:
    N x C x S x S (grey for ``channels=1``).
    """
    if not os.path.isdir(path):
        raise PreimageError(f"image folder {path!r} does not exist")
    files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise PreimageError(f"image folder {path!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    files = files[:limit] if limit else files
    images = [load_image(os.path.join(path, f), size, channels, resample) for f in files]
    return torch.cat(images), files


def load_image_arg(spec, size, channels=3, resample="bicubic"):
    """--image: a file, or sample:NAME for one of scikit-image's photographs."""
    if spec.startswith("sample:"):
        name = spec[len("sample:") :]
        if name not in SAMPLE_IMAGES:
            raise PreimageError(
                f"unknown sample image {name!r}; valid: {suggest(name, SAMPLE_IMAGES)}"
            )
        return sample_images(size, [name], channels, resample)
    return load_image(spec, size, channels, resample)


MAX_PIXELS = 100_000_000  # larger images are refused, as decompression bombs may be


def _as_rgb(im, path):
    """A Pillow image -> H x W x 3 uint8: 16-bit and float images scaled by their depth, an alpha
    channel accepted only where the image is opaque."""
    if "A" in im.getbands() or "transparency" in im.info:
        rgba = im.convert("RGBA")
        if np.asarray(rgba)[..., 3].min() < 255:
            raise PreimageError(
                f"image {path!r} has transparent pixels; flatten it onto a background first"
            )
        return np.asarray(rgba.convert("RGB"))
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        depth = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        grey = (np.clip(a / depth, 0, 1) * 255 + 0.5).astype(np.uint8)
        return np.stack([grey] * 3, axis=-1)
    return np.asarray(im.convert("RGB"))


def read_rgb(path):
    """An image file as H x W x 3 uint8, with one clear error for anything unreadable."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise PreimageError(
                        f"image {path!r} is {im.width}x{im.height} pixels; images of more than"
                        f" {MAX_PIXELS:,} pixels are refused (a decompression bomb?)"
                    )
                return _as_rgb(im, path)
    except PreimageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreimageError(
            f"image {path!r} is too large to open (a decompression bomb?)"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise PreimageError(f"cannot read image {path!r}: {e}") from None


def load_image(path, size=None, channels=3, resample="bicubic"):
    """An image file -> 1 x C x H x W in [0, 1] (grey for ``channels=1``), centre-cropped to
    size x size if given."""
    array = read_rgb(path)
    if size:
        array = centre_crop(array, int(size), resample)
    return as_batch([array], channels)
