"""The setting of Cadena et al. 2018 (§3.2): the λ sweep, the image size, the distance's layer,
and the image norm of the diverse method and of the invariance indices built on it."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ...errors import PreimageError
from ...io.samples import in_channels, sample_arrays

LAMBDAS = (0.0,) + tuple(round(0.02 * 2**k, 6) for k in range(11))  # 0, 0.02, 0.04, ..., 20.48
PIXELS = "pixels"


def sweep_size(model, layer):
    """The side of a unit's images: its receptive field (the paper's), at most 4x the input size;
    the input size for a model that runs at that size only (a vision transformer's position
    embeddings), where the unit is the centre patch's."""
    if model.fixed_input_size:
        return int(model.input_size)
    info = model.layer_info(layer)
    rf = info.rf_size if not isinstance(info.rf_size, (list, tuple)) else max(info.rf_size)
    return int(min(rf, 4 * model.input_size))


def preceding_layer(model, layer):
    """The layer whose activations define d: the model's own choice, else the previous layer of
    the same kind.

    "Same kind" is the same module class (the previous block for a block, the
    previous convolution for a convolution, the previous ReLU for a ReLU), which
    is the preceding convolutional layer of Cadena et al. in a plain network.
    None when there is no such layer: distances are then taken between images.
    """
    address = model.resolve_layer(layer)
    if address in model.preceding:
        return model.resolve_layer(model.preceding[address])
    table = model.layers()
    names = [i.name for i in table]
    here = names.index(address)
    kind = table[here].kind
    for info in reversed(table[:here]):
        unrelated = not (address.startswith(info.name + ".") or info.name.startswith(address + "."))
        if info.kind == kind and unrelated and len(info.shape) == 3:
            return info.name
    for info in reversed(table[:here]):
        if info.kind == "Conv2d" and len(info.shape) == 3:
            return info.name
    return None


def natural_patch_norm(model, size, images=None, patches_per_image=32, seed=0):
    """The average L2 norm of natural size x size patches, channel means removed (in the model's
    centred units).

    Patches are cut at random positions from the sample photographs (or the
    given N x C x H x W images) resized to the model's input size; grey for a one-channel model.
    """
    if images is None:
        arrays = []
        for _, a in sample_arrays():
            h, w = a.shape[:2]
            s = model.input_size / min(h, w)
            resized = Image.fromarray(a).resize(
                (max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC
            )
            arrays.append(in_channels(np.asarray(resized), model.channels))
        images = [torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255 for a in arrays]
    else:
        images = list(images)
    g = torch.Generator().manual_seed(seed)
    norms = []
    for im in images:
        h, w = im.shape[-2:]
        if h < size or w < size:
            continue
        ys = torch.randint(0, h - size + 1, (patches_per_image,), generator=g)
        xs = torch.randint(0, w - size + 1, (patches_per_image,), generator=g)
        crops = torch.stack(
            [im[:, y : y + size, x : x + size] for y, x in zip(ys.tolist(), xs.tolist())]
        )
        scale, shift = model.centering(crops)
        norms.append((crops * scale + shift).flatten(1).norm(dim=1))
    if not norms:
        raise PreimageError(f"no natural image is at least {size}x{size} pixels")
    return float(torch.cat(norms).mean())
