"""Diverse feature visualizations (Cadena et al. 2018, §3.2): a unit's invariant subspace.

For a unit k, a batch of n images maximizes eq. 1,

    Σ_i y_ik + α Σ_i log P(x_i) + λ min_{i≠j} d(x_i, x_j),

so that every image drives the unit while the closest two are as far apart as
possible. d is the Euclidean distance between the flattened activations of the
preceding layer (eq. 2), or between the images themselves. The setting is the
paper's: the image is as large as the unit's receptive field, its norm (with
the channel means removed) is fixed to half the average norm of natural
patches of that size, the Fourier coefficients are optimized with amplitudes
1/√f (the gradient preconditioning), by Adam at 0.1 for up to 1000 steps.
The norm is fixed inside the parameterization (see ``NormalizedParam``), not
by projection after each step, which stalls Adam away from the optimum.

λ is swept over 0, 0.02, 0.04, ..., 20.48; the chosen λ is the largest whose
mean activation stays at or above a threshold times the λ = 0 activation.
Every (unit, λ) group of n images is independent, so all groups of a layer
run as one batch.

α log P is a pluggable term: pass ``prior`` (an Objective on the images, such
as a learned log-likelihood) and ``alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ...engine import objectives as O
from ...errors import PreimageError
from ...io.images import SAMPLE_IMAGES, _rgb
from ...engine.params import ImageParam, NormalizedParam
from ...engine.render import Convergence, render

LAMBDAS = (0.0,) + tuple(round(0.02 * 2**k, 6) for k in range(11))  # 0, 0.02, 0.04, ..., 20.48
PIXELS = "pixels"


def default_threshold(model):
    """0.9 (the paper's for VGG-19 and ResNet-50), 0.8 for the toy complex cells (Fig. 2)."""
    return 0.8 if model.name.endswith("complex_cell") else 0.9


def sweep_size(model, layer):
    """The side of a unit's images: its receptive field (the paper's), at most 4x the model's input."""
    info = model.layer_info(layer)
    rf = info.rf_size if not isinstance(info.rf_size, (list, tuple)) else max(info.rf_size)
    return int(min(rf, 4 * model.input_size))


def preceding_layer(model, layer):
    """The layer whose activations define d: the model's own choice, else the previous layer of the same kind.

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
    """The average L2 norm of natural size x size patches, channel means removed (the model's centred units).

    Patches are cut at random positions from the sample photographs (or the
    given N x 3 x H x W images) resized to the model's input size.
    """
    if images is None:
        import skimage.data
        from PIL import Image

        arrays = []
        for name in SAMPLE_IMAGES:
            a = _rgb(getattr(skimage.data, name)())
            h, w = a.shape[:2]
            s = model.input_size / min(h, w)
            arrays.append(
                np.asarray(
                    Image.fromarray(a).resize(
                        (max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC
                    )
                )
            )
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


def min_distance(layer, n, lambdas):
    """λ_g · min_{i≠j in g} d(x_i, x_j) for consecutive groups g of n elements, shared out over each group.

    layer: the layer whose flattened activations define d, or None for the
    centred images. lambdas: one λ per group. Each element carries λ_g·min_g/n,
    so the batch sum is Σ_g λ_g·min_g.
    """
    cache = {}

    def fn(ctx):
        feats = ctx.centered if layer is None else ctx.activations[layer]
        groups = feats.shape[0] // n
        key = (feats.device, feats.dtype)
        if key not in cache:
            lam = torch.as_tensor(lambdas, dtype=feats.dtype, device=feats.device)
            eye = torch.eye(n, dtype=torch.bool, device=feats.device)
            cache[key] = (lam, eye)
        lam, eye = cache[key]
        d = pairwise_distances(feats.reshape(groups, n, -1))
        closest = d.masked_fill(eye, float("inf")).flatten(1).amin(1)
        return (lam * closest / n).repeat_interleave(n)

    return O.Objective(
        fn, [] if layer is None else [layer], f"λ·min d({layer or 'pixels'})", penalty=True
    )


def pairwise_distances(f):
    """G x n x D -> G x n x n Euclidean distances, with a finite gradient where two rows coincide."""
    diff = f[:, :, None, :] - f[:, None, :, :]
    return torch.sqrt(diff.pow(2).sum(-1) + 1e-12)


@dataclass
class UnitSweep:
    """One unit's λ sweep."""

    layer: str
    channel: int
    lambdas: list
    images: torch.Tensor  # λ x n x 3 x H x W, display space
    inputs: torch.Tensor  # λ x n x 3 x H x W, what the network saw
    activations: torch.Tensor  # λ x n
    min_distance: torch.Tensor  # λ
    threshold: float
    distance_layer: str | None
    extra: dict = field(default_factory=dict)

    @property
    def mean_activation(self):
        return self.activations.mean(1)

    @property
    def normalized_activation(self):
        return self.mean_activation / self.mean_activation[0]

    @property
    def normalized_distance(self):
        return self.min_distance / self.min_distance[0]

    @property
    def chosen(self):
        """Index of the largest λ whose mean activation is at least threshold x the λ = 0 one (None if it never activates)."""
        base = float(self.mean_activation[0])
        if not base > 0:
            return None
        ok = [
            k
            for k in range(len(self.lambdas))
            if float(self.mean_activation[k]) >= self.threshold * base
        ]
        return max(ok)

    @property
    def chosen_lambda(self):
        k = self.chosen
        return None if k is None else self.lambdas[k]

    @property
    def diversity_gain(self):
        """The normalized minimum distance at the chosen λ (Fig. 5)."""
        k = self.chosen
        return None if k is None else float(self.normalized_distance[k])

    def as_dict(self):
        return {
            "layer": self.layer,
            "channel": self.channel,
            "lambdas": list(self.lambdas),
            "mean_activation": self.mean_activation.tolist(),
            "min_distance": self.min_distance.tolist(),
            "normalized_activation": self.normalized_activation.tolist(),
            "normalized_distance": self.normalized_distance.tolist(),
            "activations": self.activations.tolist(),
            "threshold": self.threshold,
            "chosen_lambda": self.chosen_lambda,
            "diversity_gain": self.diversity_gain,
            "distance_layer": self.distance_layer or PIXELS,
            **self.extra,
        }


def diverse(
    model,
    layer,
    channels,
    n=6,
    lambdas=LAMBDAS,
    threshold=None,
    steps=1000,
    lr=0.1,
    distance=None,
    size=None,
    norm=None,
    natural=None,
    prior=None,
    alpha=0.0,
    seed=0,
    patience=50,
    progress=True,
    max_pixels=4_000_000,
):
    """The λ sweep for units of one layer (the centre unit of each channel); a UnitSweep per channel.

    distance: None (the preceding layer, found automatically), 'pixels', or a layer name.
    size: the image size, by default the unit's receptive field. norm: the fixed
    image norm, by default half the average natural patch norm (``natural``:
    images to measure it on). prior/alpha: the α log P term. max_pixels bounds
    the images per batch (units x λ x n x size²); units beyond it run in further batches.
    """
    if n < 2:
        raise PreimageError(f"bad --n {n}; the diversity term needs at least 2 images")
    lambdas = [float(v) for v in lambdas]
    if not lambdas or lambdas[0] != 0.0 or any(v < 0 for v in lambdas):
        raise PreimageError(
            f"bad lambdas {lambdas}; they must start at 0 (the reference) and be non-negative"
        )
    address = model.resolve_layer(layer)
    size = int(size or sweep_size(model, layer))
    threshold = default_threshold(model) if threshold is None else float(threshold)
    dist_layer = (
        preceding_layer(model, layer)
        if distance is None
        else (None if distance == PIXELS else model.resolve_layer(distance))
    )
    norm = 0.5 * natural_patch_norm(model, size, natural) if norm is None else float(norm)
    per_unit = len(lambdas) * n
    units_per_batch = max(1, int(max_pixels // (per_unit * size * size)))
    out = []
    for start in range(0, len(channels), units_per_batch):
        chunk = list(channels[start : start + units_per_batch])
        out.extend(
            _sweep(
                model,
                layer,
                address,
                chunk,
                n,
                lambdas,
                threshold,
                steps,
                lr,
                dist_layer,
                size,
                norm,
                prior,
                alpha,
                seed,
                patience,
                progress,
            )
        )
    for s in out:
        s.extra.update(size=size, norm=norm, steps_max=steps, lr=lr, n=n, alpha=alpha)
    return out


def _sweep(
    model,
    layer,
    address,
    channels,
    n,
    lambdas,
    threshold,
    steps,
    lr,
    dist_layer,
    size,
    norm,
    prior,
    alpha,
    seed,
    patience,
    progress,
):
    L = len(lambdas)
    per_unit = L * n
    total = len(channels) * per_unit
    unit_channels = [c for c in channels for _ in range(per_unit)]
    group_lambdas = [lam for _ in channels for lam in lambdas]
    objective = O.unit(layer, unit_channels) + min_distance(dist_layer, n, group_lambdas)
    if prior is not None and alpha:
        objective = objective + alpha * prior
    generator = torch.Generator().manual_seed(int(seed))
    # the same starting noise for every λ of a unit, so that the sweep varies only λ
    first = ImageParam(
        n,
        size,
        basis="fourier",
        decorrelate=False,
        output="linear",
        decay=0.5,
        offset=model.display_mean(),
        generator=generator,
        device=model.device,
    )
    base = ImageParam(
        total,
        size,
        basis="fourier",
        decorrelate=False,
        output="linear",
        decay=0.5,
        offset=model.display_mean(),
        device=model.device,
    )
    with torch.no_grad():
        base.theta.copy_(
            first.theta.detach().repeat(len(channels) * L, *([1] * (first.theta.dim() - 1)))
        )
    param = NormalizedParam(base, norm, model)
    stop = Convergence(patience=patience) if patience else None
    result = render(
        model,
        objective,
        n=total,
        size=size,
        param=param,
        optimizer="adam",
        lr=lr,
        steps=steps,
        seed=seed,
        stop=stop,
        progress=progress,
        desc=f"diverse {layer} x{len(channels)}",
    )
    with torch.no_grad():
        images = result.images.to(model.device)
        if dist_layer is None:
            scale, shift = model.centering(images)
            feats = images * scale + shift
        else:
            feats = model.activations(images, [dist_layer])[dist_layer]
        d = pairwise_distances(feats.reshape(total // n, n, -1).float())
        eye = torch.eye(n, dtype=torch.bool, device=d.device)
        closest = d.masked_fill(eye, float("inf")).flatten(1).amin(1).cpu()
    shape = (len(channels), L, n) + tuple(result.images.shape[1:])
    images = result.images.reshape(shape)
    inputs = result.inputs.reshape(shape)
    acts = result.activations.reshape(len(channels), L, n)
    closest = closest.reshape(len(channels), L)
    meta = {"steps": result.steps, "seconds": result.seconds}
    return [
        UnitSweep(
            layer,
            int(c),
            list(lambdas),
            images[u],
            inputs[u],
            acts[u],
            closest[u],
            threshold,
            dist_layer,
            extra=dict(meta),
        )
        for u, c in enumerate(channels)
    ]


def phase(images, wavelength, orientation=0.0, sigma=None):
    """The phase of the grating in each image (radians), by projection on a quadrature pair of filters.

    images: N x 3 x H x W centred (mean removed); the grey image is projected on
    a cosine and a sine carrier of the given wavelength and orientation under a
    Gaussian envelope, and the phase is atan2(-⟨x, sin⟩, ⟨x, cos⟩).
    """
    grey = images.mean(1)
    h, w = grey.shape[-2:]
    c_y, c_x = (h - 1) / 2, (w - 1) / 2
    y, x = torch.meshgrid(
        torch.arange(h, dtype=torch.float64) - c_y,
        torch.arange(w, dtype=torch.float64) - c_x,
        indexing="ij",
    )
    xr = x * math.cos(orientation) + y * math.sin(orientation)
    env = torch.exp(-(x**2 + y**2) / (2 * (sigma or wavelength / 2) ** 2))
    carrier = 2 * math.pi * xr / wavelength
    cos = (env * torch.cos(carrier)).to(grey.dtype)
    sin = (env * torch.sin(carrier)).to(grey.dtype)
    a = (grey * cos).sum((-2, -1))
    b = (grey * sin).sum((-2, -1))
    return torch.atan2(-b, a)
