"""Mahendran & Vedaldi's natural pre-images: inversion, caricature and activation maximization.

All three minimize their eq. 1,

    E(x) = R_α(x) + R_TV^β(x) + C ℓ(Φ(x), Φ0),

with the bounded-range and TV^β regularizers of §3.2, the jitter of §3.2.3,
and the AdaGrad-with-momentum of Algorithm 1 with its projection onto the
pixels whose RGB norm is at most B+. They differ only in the loss ℓ and the
start. Each is a preset of the render loop, not a loop of its own.

Units. The paper's constants (B = 80, B+ = 2B, V = B/6.5, η0 = 0.01 B²/α) are
in the units of its Caffe networks: 0-255 pixel values with the mean colour
removed. Here the image is optimized in exactly those units (theta = 255 x
(x - mean) in display space), so Algorithm 1, whose steps are about one unit
once its gradient history builds up, moves as in the paper; the regularizers
measure the image in the model's own centred input units, with B and V
scaled by (input range) / 255.

Jitter. The jitter of amount T feeds a random (H - T + 1)-pixel window of an
image of side H (offsets 0 ... T-1). A reconstruction is therefore optimized
on a canvas T - 1 pixels larger than the target image, every window being
compared with Φ0 of the target; the central window is the reconstruction
reported and measured.

The normalizations Z of §6 and §7, which the text leaves garbled, are read so
that every term is near 1 for a reasonable image (see ``maximize`` and
``caricature``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ...engine import objectives as O
from ...errors import PreimageError
from ...engine.params import ImageParam, PixelNormBound
from ...engine.render import render
from ...engine.transforms import Jitter, Pipeline

PAPER_RANGE = 255.0  # the paper's networks take 0-255 inputs


@dataclass
class Energy:
    """The constants of §3.3 and Algorithm 1, in the paper's 0-255 units."""

    alpha: float = 6.0
    beta: float = 2.0
    B: float = 80.0
    B_plus: float | None = None  # default 2B
    V: float | None = None  # default B / 6.5
    rho: float = 0.9
    eta0: float | None = None  # default 0.01 B² / α
    steps: int = 300
    init_norm: float = 0.1  # initial noise: RGB norm per pixel about init_norm * B

    def __post_init__(self):
        self.B_plus = 2 * self.B if self.B_plus is None else self.B_plus
        self.V = self.B / 6.5 if self.V is None else self.V
        self.eta0 = 0.01 * self.B**2 / self.alpha if self.eta0 is None else self.eta0

    def describe(self):
        return asdict(self)

    @classmethod
    def measured(cls, model, images, B=True, V=True, **kw):
        """The paper's energy with B and/or V measured on ``images`` instead of the paper's 80 and B/6.5.

        §3.2 defines B as "the typical L2 norm of the pixel RGB vector, such that
        N_α(x) ≈ 1" and V as "the typical value of the norm of the gradient".
        Measured here so that both hold exactly for the given images, pooled:
        B is the α-power mean of the pixels' RGB norms (N_α = 1) and V the
        β-power mean of Σ_k |∇x_k|^β per pixel (R_TV^β = 1), in the paper's
        0-255 units. For photographs with bright highlights or fine texture
        these are well above 80 and 12.3 (over the 14 sample photographs at 224
        px: 150 and 41, while their median RGB norm is 81, the paper's B): with the
        paper's constants the regularizers of the photograph itself are far
        above 1 (N_α = 90 and R_TV = 17.5 for the astronaut). B+ = 2B and
        η0 = 0.01 B²/α follow B, and so does V = B/6.5 when V is not measured.
        """
        energy = cls(**kw)
        alpha, beta = energy.alpha, energy.beta
        with torch.no_grad():
            scale, shift = model.centering(images)
            lo, hi = model.input_range
            x = (images * scale + shift).double() * (PAPER_RANGE / (hi - lo))
            values = {}
            if B:
                values["B"] = float(x.pow(2).sum(1).pow(alpha / 2).mean().pow(1 / alpha))
            if V:
                dx = x[..., :-1, 1:] - x[..., :-1, :-1]
                dy = x[..., 1:, :-1] - x[..., :-1, :-1]
                # R_TV divides by the whole area H x W (the last row and column have no differences)
                area = x.shape[0] * x.shape[-2] * x.shape[-1]
                values["V"] = float(((dx * dx + dy * dy).pow(beta / 2).sum() / area).pow(1 / beta))
        return cls(**{**kw, **values})


def jitter_amount(stride):
    """T = a quarter of the layer's stride, rounded half up (§5.2); T <= 1 means no jitter."""
    return int(math.floor(stride / 4 + 0.5))


def _stride(info):
    s = info.rf_stride
    return max(s) if isinstance(s, (list, tuple)) else (s or 1)


# -- C by depth (§5.2.1) -----------------------------------------------------------------------

# §5.1: HOG, HOGb and DSIFT are inverted with C = 20 and no jitter.
HAND_CRAFTED = ("hog", "hogb", "dsift")

# AlexNet and VGG-M: 300 up to relu3, 100 up to relu4, 20 up to relu5, 1 after.
_ALEXNET_C = (("relu3", 300.0), ("relu4", 100.0), ("relu5", 20.0))
# VGG-VD: 300 up to conv4_3 (and pool4, before conv5_1), 100 for conv5_1, 20 up to the last conv5, 1 after.
_VGG_C = (("pool4", 300.0), ("relu5_1", 100.0), ("relu5_last", 20.0))
# Other networks, by receptive field over input size; the breakpoints reproduce the
# paper's choices on AlexNet (relu3 99/224, relu4 131/224, relu5 163/224) and VGG-16
# (conv4_3 92/224, conv5_1 132/224, conv5_3 196/224).
_RF_C = ((0.45, 300.0), (0.60, 100.0), (0.90, 20.0))


def paper_C(model, layer, size=None):
    """The paper's C for a layer: 20 for HOG and DSIFT, by name for AlexNet and VGG, by receptive field otherwise."""
    address = model.resolve_layer(layer)
    if model.name in HAND_CRAFTED:
        return 20.0
    table = model.layers(size)
    order = [info.name for info in table]
    if address not in order:
        raise PreimageError(f"layer {layer!r} is not computed at {size}px")
    anchors = (
        _ALEXNET_C if model.name == "alexnet" else _VGG_C if model.name.startswith("vgg") else None
    )
    if anchors:
        aliases = dict(model.aliases)
        relu5 = sorted(a for a in aliases if a.startswith("relu5_"))
        if relu5:
            aliases["relu5_last"] = aliases[relu5[-1]]
        position = order.index(address)
        for alias, c in anchors:
            if aliases.get(alias) in order and position <= order.index(aliases[alias]):
                return c
        return 1.0
    info = table[order.index(address)]
    if info.rf_size is None or len(info.shape) != 3:
        return 1.0
    r = max(info.rf_size) if isinstance(info.rf_size, (list, tuple)) else info.rf_size
    fraction = r / (size or model.input_size)
    for limit, c in _RF_C:
        if fraction <= limit:
            return c
    return 1.0


# -- the shared preset -------------------------------------------------------------------------


@dataclass
class Setup:
    """Everything the render loop needs for one batch of the energy of eq. 1."""

    size: int  # the network's window
    canvas: int  # the optimized image: window + T - 1
    jitter: int
    energy: Energy
    regularizers: O.Objective
    pipeline: Pipeline
    constraint: PixelNormBound
    unit: float  # the model's centred input units per paper unit
    prior: dict | None = None  # the prior's description and weight, when there is one

    def param(self, model, n, generator):
        sigma = self.energy.init_norm * self.energy.B / math.sqrt(3)
        return ImageParam(
            n,
            self.canvas,
            basis="pixel",
            decorrelate=False,
            output="linear",
            value_scale=1.0 / PAPER_RANGE,
            offset=model.display_mean(),
            init_std=sigma,
            generator=generator,
            device=model.device,
        )

    def window(self, images):
        """The central window of canvas-sized display images."""
        return self.pipeline.final_view(images)

    def run(self, model, objective, n, seed, progress, desc, init=None):
        generator = torch.Generator().manual_seed(int(seed))
        param = self.param(model, n, generator)
        if init is not None:
            param.set_images(init)
        # η0 = 0.01 B²/α comes from the per-pixel gradient α/B of R_α at |x| = B, that
        # is, from the energy summed over pixels: the normalized energy (every term
        # about 1) is differentiated times the number of pixels. Values are reported
        # per pixel again below.
        area = float(self.canvas * self.canvas)
        result = render(
            model,
            area * (objective + self.regularizers),
            n=n,
            size=self.canvas,
            param=param,
            transforms=self.pipeline,
            optimizer="adagrad-momentum",
            lr=self.energy.eta0,
            steps=self.energy.steps,
            seed=seed,
            constraints=(self.constraint,),
            progress=progress,
            desc=desc,
        )
        result.activations /= area
        result.objective /= area
        result.trace /= area
        result.config["energy"] = self.describe()
        result.config["energy_scale"] = area
        return result

    def describe(self):
        return {
            "window": self.size,
            "canvas": self.canvas,
            "jitter_T": self.jitter,
            "unit_per_paper_unit": self.unit,
            "prior": self.prior,
            **self.energy.describe(),
        }


PRIOR_WEIGHT = (
    0.1  # log P per pixel is about -10 nats for natural images: 0.1 makes it a term near 1
)


def setup(model, layer, size=None, energy=None, jitter=None, prior=None, prior_weight=PRIOR_WEIGHT):
    """The preset for a layer: regularizers, jitter, projection, in the model's units.

    prior: a natural-image prior (``preimage.prior.load_prior``); its log P(x)
    joins the regularizers per pixel, like every term of the normalized energy,
    weighted by ``prior_weight``.
    """
    energy = energy or Energy()
    size = int(size or model.input_size)
    info = model.layer_info(layer, size)
    if jitter is None:
        jitter = 0 if model.name in HAND_CRAFTED else jitter_amount(_stride(info))
    T = int(jitter)
    lo, hi = model.input_range
    unit = (hi - lo) / PAPER_RANGE
    B, V = energy.B * unit, energy.V * unit
    regularizers = -1.0 * O.bounded_range(energy.alpha, B) - 1.0 * O.tv(energy.beta, V)
    canvas = size + max(T - 1, 0)
    if prior is not None and prior_weight:
        regularizers = regularizers + (prior_weight / (canvas * canvas)) * O.log_prior(
            prior.to(model.device)
        )
    steps = [Jitter(T, crop=T - 1)] if T > 1 else []
    return Setup(
        size=size,
        canvas=canvas,
        jitter=T,
        energy=energy,
        regularizers=regularizers,
        pipeline=Pipeline(steps, output_size=None),
        constraint=PixelNormBound(energy.B_plus * unit),
        unit=unit,
        prior=(
            {**prior.describe(), "weight": prior_weight}
            if prior is not None and prior_weight
            else None
        ),
    )


# -- inversion (§5) ----------------------------------------------------------------------------


def feature_mask(shape, window=None, channels=None):
    """A 0/1 mask over a layer's output (C x H x W or C): a central window and/or a channel range."""
    mask = torch.ones(shape)
    if channels is not None:
        a, b = channels
        if not (0 <= a < b <= shape[0]):
            raise PreimageError(
                f"bad --mask-channels {a}:{b}; the layer has channels 0..{shape[0] - 1} (A:B is"
                " half-open, A < B)"
            )
        keep = torch.zeros(shape[0], dtype=torch.bool)
        keep[a:b] = True
        mask[~keep] = 0
    if window is not None:
        if len(shape) != 3:
            raise PreimageError("--mask-window needs a layer with a spatial map")
        h, w = shape[1:]
        k = int(window)
        if not 1 <= k <= min(h, w):
            raise PreimageError(f"bad --mask-window {k}; the layer's map is {h}x{w}")
        top, left = (h - k) // 2, (w - k) // 2
        spatial = torch.zeros(h, w)
        spatial[top : top + k, left : left + k] = 1
        mask = mask * spatial
    return mask


def window_box(info, window):
    """Input pixels (top, bottom, left, right) seen by the central window x window units."""
    h, w = info.shape[1:]
    top, left = (h - window) // 2, (w - window) // 2
    t, _, l, _ = info.receptive_box(top, left)
    _, b, _, r = info.receptive_box(top + window - 1, left + window - 1)
    return t, b, l, r


@dataclass
class PreimageResult:
    images: torch.Tensor  # N x 3 x S x S reconstructions (central windows), display space
    canvas: torch.Tensor  # N x 3 x (S+T-1)^2, what was optimized
    scores: (
        torch.Tensor
    )  # N: ‖Φ(x*) - Φ0‖/‖Φ0‖ (inversion), ⟨Φ(x*), Φ0⟩/‖Φ0‖² (caricature), Φ_c(x*)/M (maximize)
    render: object  # the RenderResult: trace, steps, seconds, config
    meta: list  # per element: which image, C, seed
    config: dict


def invert(
    model,
    layer,
    images,
    C=None,
    mask_window=None,
    mask_channels=None,
    seeds=1,
    seed=0,
    energy=None,
    jitter=None,
    progress=True,
    prior=None,
    prior_weight=PRIOR_WEIGHT,
):
    """Reconstruct images from their code at a layer, starting from noise (§5).

    images: K x 3 x S x S in [0, 1] (S is the network's window). C: a number, a
    list (every image is inverted at every C), or None for the paper's choice.
    seeds: reconstructions per image and C, each from its own noise (Fig. 8).
    Returns a PreimageResult whose ``scores`` are the normalized reconstruction
    errors of §5.1, over the masked components when a mask is given.
    """
    images = images.to(model.device)
    k, size = images.shape[0], images.shape[-1]
    if seeds < 1:
        raise PreimageError(f"bad --seeds {seeds}; it must be at least 1")
    pre = setup(model, layer, size, energy, jitter, prior, prior_weight)
    Cs = (
        [paper_C(model, layer, size)]
        if C is None
        else [float(c) for c in (C if isinstance(C, (list, tuple)) else [C])]
    )
    for c in Cs:
        if c <= 0:
            raise PreimageError(f"bad C {c}; it must be positive")
    with torch.no_grad():
        target = model.activations(images, [layer])[layer].float()
    mask = None
    if mask_window is not None or mask_channels is not None:
        mask = feature_mask(tuple(target.shape[1:]), mask_window, mask_channels).to(target.device)
    meta = [{"image": i, "C": c, "seed": s} for i in range(k) for c in Cs for s in range(seeds)]
    index = torch.tensor([m["image"] for m in meta], device=target.device)
    weights = torch.tensor([m["C"] for m in meta])
    objective = O.inversion(layer, target.index_select(0, index), mask=mask, weight=weights)
    result = pre.run(model, objective, len(meta), seed, progress, desc=f"invert {layer}")
    # the render's target value is -C ℓ; the error of §5.1 is sqrt(ℓ)
    errors = torch.sqrt(torch.clamp(-result.activations / weights, min=0))
    config = {
        "method": "inversion",
        "layer": layer,
        "C": Cs,
        "mask_window": mask_window,
        "mask_channels": mask_channels,
        "seeds": seeds,
        "seed": seed,
        **pre.describe(),
    }
    return PreimageResult(pre.window(result.images), result.images, errors, result, meta, config)


def bounded_photograph_error(model, layer, images, energy=None):
    """‖Φ(P(x0)) - Φ(x0)‖ / ‖Φ(x0)‖ per image, P projecting every pixel into the ball of radius B+.

    The hard bound of eq. 6 keeps every reconstruction's pixels within B+ of
    the mean colour (in the paper's units 160: pure black and pure white are
    outside it, at about 220). The photograph itself, brought inside the bound,
    has this error: a reconstruction can beat it only by finding a different
    image with a closer code, so it tells how much of an inversion's error
    the bound alone explains.
    """
    energy = energy or Energy()
    lo, hi = model.input_range
    bound = PixelNormBound(energy.B_plus * (hi - lo) / PAPER_RANGE)
    images = images.to(model.device)
    with torch.no_grad():
        projected = bound(images, model)
        # pixels inside the bound stay as they are, exactly (the projection's round trip through
        # input units is not exact for every input range)
        scale, shift = model.centering(images)
        inside = (images * scale + shift).norm(dim=1, keepdim=True) <= bound.bound
        projected = torch.where(inside, images, projected)
        phi0 = model.activations(images, [layer])[layer].float().flatten(1)
        phi = model.activations(projected, [layer])[layer].float().flatten(1)
    return ((phi - phi0).norm(dim=1) / phi0.norm(dim=1).clamp_min(1e-12)).cpu()


# -- caricature (§7) ---------------------------------------------------------------------------


def caricature(
    model,
    layer,
    images,
    C=1.0,
    seed=0,
    energy=None,
    jitter=None,
    progress=True,
    prior=None,
    prior_weight=PRIOR_WEIGHT,
):
    """Exaggerate what a layer sees in an image (§7): Φ0 = max(0, Φ(x0)), starting from x0.

    Z is read as ‖Φ0‖², so the loss ℓ = -⟨Φ(x), Φ0⟩ / ‖Φ0‖² is -1 at x0 itself
    (⟨Φ(x0), max(0, Φ(x0))⟩ = ‖Φ0‖²) and falls as the caricature exaggerates;
    the text's Z = 1/‖Φ0‖ would scale the loss with the size of the code.
    ``scores`` holds the final ⟨Φ(x*), Φ0⟩ / ‖Φ0‖², the exaggeration factor.
    """
    images = images.to(model.device)
    size = images.shape[-1]
    pre = setup(model, layer, size, energy, jitter, prior, prior_weight)
    with torch.no_grad():
        phi0 = model.activations(images, [layer])[layer].float().clamp_min(0)
    z = phi0.pow(2).reshape(phi0.shape[0], -1).sum(1).clamp_min(1e-12)
    objective = float(C) * O.inner_product(layer, phi0, Z=z)
    margin = pre.canvas - size
    start = (
        F.pad(
            images,
            (margin // 2, margin - margin // 2, margin // 2, margin - margin // 2),
            mode="replicate",
        )
        if margin
        else images
    )
    result = pre.run(
        model, objective, images.shape[0], seed, progress, desc=f"caricature {layer}", init=start
    )
    factor = result.activations / float(C)
    config = {
        "method": "caricature",
        "layer": layer,
        "C": float(C),
        "seed": seed,
        "Z": "squared norm of Φ0",
        **pre.describe(),
    }
    meta = [{"image": i, "C": float(C)} for i in range(images.shape[0])]
    return PreimageResult(pre.window(result.images), result.images, factor, result, meta, config)


# -- activation maximization (§6) -------------------------------------------------------------


def natural_maximum(model, layer, channels, images, chunk=16):
    """M per channel: the largest value the channel takes on the natural images, over all positions."""
    best = None
    with torch.no_grad():
        for start in range(0, images.shape[0], chunk):
            a = model.activations(images[start : start + chunk].to(model.device), [layer])[
                layer
            ].float()
            flat = a.transpose(0, 1).reshape(a.shape[1], -1).amax(1)
            best = flat if best is None else torch.maximum(best, flat)
    return best[torch.as_tensor(channels, device=best.device)].cpu()


def maximize(
    model,
    layer,
    channels,
    natural,
    size=None,
    C=1.0,
    position=None,
    seed=0,
    energy=None,
    jitter=None,
    progress=True,
    prior=None,
    prior_weight=PRIOR_WEIGHT,
):
    """Activation maximization with the loss of eq. 4 (§6): one image per channel's unit.

    Φ0 is the indicator of the unit (channel c at ``position``, default the
    centre). Z is read as M·HW/ρ²: M, the largest value of the channel on
    natural images, makes ℓ = -Φ_c(x)/M about -1 for a natural optimum;
    ρ²/HW, the share of the image inside the unit's receptive field ρ, weighs
    the loss like the regularizers, which average over all HW pixels while
    only ρ² of them can raise the unit. With the default window of the
    receptive field's size, Z = M. (The text's Z = 1/(Mρ²) would make the loss
    grow with M and ρ instead.)

    natural: images (N x 3 x H x W) on which M is measured. ``scores`` holds Φ_c(x*) / M.
    """
    info_default = model.layer_info(layer, size or model.input_size)
    rf = (
        info_default.rf_size
        if not isinstance(info_default.rf_size, (list, tuple))
        else max(info_default.rf_size)
    )
    size = int(size or min(model.input_size, rf))
    channels = [int(c) for c in channels]
    info = model.layer_info(layer, size)
    pre = setup(model, layer, size, energy, jitter, prior, prior_weight)
    M = natural_maximum(model, layer, channels, natural)
    if (M <= 0).any():
        bad = [c for c, m in zip(channels, M.tolist()) if m <= 0]
        raise PreimageError(
            f"channels {bad} of {layer} never become positive on the natural images; M (their"
            " maximum) must be positive"
        )
    area = float(size * size)
    seen = min(1.0, (rf * rf) / area)
    Z = M / seen
    n = len(channels)
    phi0 = torch.zeros((n,) + tuple(info.shape))
    for i, c in enumerate(channels):
        if len(info.shape) == 3:
            h, w = info.shape[1:]
            y, x = position if position is not None else (h // 2, w // 2)
            phi0[i, c, y, x] = 1.0
        else:
            phi0[i, c] = 1.0
    objective = float(C) * O.inner_product(layer, phi0, Z=Z)
    result = pre.run(model, objective, n, seed, progress, desc=f"maximize {layer}")
    over_z = result.activations / float(C)  # Φ_c(x*) / Z, and Z = M / seen
    config = {
        "method": "activation maximization",
        "layer": layer,
        "channels": channels,
        "C": float(C),
        "M": M.tolist(),
        "Z": Z.tolist(),
        "rf": rf,
        "seed": seed,
        **pre.describe(),
    }
    meta = [{"channel": c, "M": float(m)} for c, m in zip(channels, M)]
    return PreimageResult(
        pre.window(result.images), result.images, over_z / seen, result, meta, config
    )
