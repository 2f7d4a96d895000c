"""Pictures in and out: PNG files, grids, and the natural sample images.

Writes go to a temporary file in the target directory and are renamed into
place, so an interrupted run never leaves a half-written file under a final
name.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile

import numpy as np
import torch
from PIL import Image

from ..errors import PreimageError

# scikit-image's natural colour photographs (the grey ones are expanded to RGB)
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


def atomic_write(path, data: bytes):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_uint8(image):
    """3 x H x W (or H x W x 3) float in [0, 1] -> H x W x 3 uint8."""
    a = image.detach().cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def png_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path, image):
    atomic_write(path, png_bytes(to_uint8(image)))


def grid(images, columns=None, pad=2, min_tile=96):
    """N x 3 x H x W in [0, 1] -> one H x W x 3 uint8 mosaic; small tiles are enlarged (nearest)."""
    tiles = [to_uint8(im) for im in images]
    n = len(tiles)
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    h, w = tiles[0].shape[:2]
    k = max(1, int(math.ceil(min_tile / max(h, w))))
    h, w = h * k, w * k
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        t = np.kron(t, np.ones((k, k, 1), np.uint8)) if k > 1 else t
        out[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + c * (w + pad) : pad + c * (w + pad) + w,
        ] = t
    return out


def save_grid(path, images, columns=None):
    atomic_write(path, png_bytes(grid(images, columns)))


def save_json(path, obj):
    atomic_write(path, (json.dumps(obj, indent=2, default=_jsonable) + "\n").encode())


def save_npz(path, **arrays):
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        **{
            k: v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
            for k, v in arrays.items()
        },
    )
    atomic_write(path, buf.getvalue())


def _jsonable(o):
    if torch.is_tensor(o):
        return o.tolist()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


# -- natural images ---------------------------------------------------------------------------


def _rgb(array):
    a = np.asarray(array)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.shape[-1] == 4:
        a = a[..., :3]
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float64) / (a.max() or 1), 0, 1) * 255).astype(np.uint8)
    return a


def centre_crop(array, size):
    """H x W x 3 uint8 -> size x size x 3, the largest centred square resized with Pillow."""
    h, w = array.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    im = Image.fromarray(array[top : top + s, left : left + s])
    return np.asarray(im.resize((size, size), Image.BICUBIC))


def sample_images(size, names=None):
    """scikit-image's sample photographs, centre-cropped to size x size: N x 3 x S x S in [0, 1]."""
    import skimage.data

    names = names or SAMPLE_IMAGES
    out = []
    for name in names:
        try:
            array = getattr(skimage.data, name)()
        except Exception:  # a data file missing from this scikit-image install
            continue
        out.append(centre_crop(_rgb(array), size))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def natural_crops(size, per_side=3, scales=(1.0, 0.6), names=None):
    """Many natural patches: a grid of per_side x per_side crops at each scale of each sample image.

    Deterministic, so statistics over them are reproducible. N x 3 x S x S in [0, 1].
    """
    import skimage.data

    out = []
    for name in names or SAMPLE_IMAGES:
        try:
            array = _rgb(getattr(skimage.data, name)())
        except Exception:
            continue
        h, w = array.shape[:2]
        for scale in scales:
            side = int(min(h, w) * scale)
            for i in range(per_side):
                for j in range(per_side):
                    top = (h - side) * i // max(1, per_side - 1)
                    left = (w - side) * j // max(1, per_side - 1)
                    crop = Image.fromarray(array[top : top + side, left : left + side]).resize(
                        (size, size), Image.BICUBIC
                    )
                    out.append(np.asarray(crop))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def load_folder(path, size, limit=None):
    """Every image file in a folder (sorted by name), centre-cropped to size x size:
    N x 3 x S x S.
    """
    if not os.path.isdir(path):
        raise PreimageError(f"image folder {path!r} does not exist")
    files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise PreimageError(f"image folder {path!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    files = files[:limit] if limit else files
    return torch.cat([load_image(os.path.join(path, f), size) for f in files]), files


def load_image_arg(spec, size):
    """--image: a file, or sample:NAME for one of scikit-image's photographs."""
    if spec.startswith("sample:"):
        name = spec[len("sample:") :]
        if name not in SAMPLE_IMAGES:
            from ..errors import suggest

            raise PreimageError(
                f"unknown sample image {name!r}; valid: {suggest(name, SAMPLE_IMAGES)}"
            )
        return sample_images(size, [name])
    return load_image(spec, size)


def load_image(path, size=None):
    """An image file -> 1 x 3 x H x W in [0, 1], centre-cropped to size x size if given."""
    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise PreimageError(f"cannot read image {path!r}: {e}") from None
    if size:
        array = centre_crop(array, int(size))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 255.0
