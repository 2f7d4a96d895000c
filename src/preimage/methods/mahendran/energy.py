"""The energy of Mahendran & Vedaldi's eq. 1 and the preset that minimizes it.

    E(x) = R_α(x) + R_TV^β(x) + C ℓ(Φ(x), Φ0),

with the bounded-range and TV^β regularizers of §3.2, the jitter of §3.2.3, and the
AdaGrad-with-momentum of Algorithm 1 with its projection onto the pixels whose RGB norm is at
most B+. Inversion, caricature and activation maximization differ only in the loss ℓ and the
start: each is this preset with its own loss (``invert``, ``caricature``, ``maximize``).

Units. The paper's constants (B = 80, B+ = 2B, V = B/6.5, η0 = 0.01 B²/α) are in the units of
its Caffe networks: 0-255 pixel values with the mean colour removed. Here the image is optimized
in exactly those units (theta = 255 x (x - mean) in display space), so Algorithm 1, whose steps
are about one unit once its gradient history builds up, moves as in the paper; the regularizers
measure the image in the model's own centred input units, with B and V scaled by
(input range) / 255. Every term is averaged over pixels (so C means the same at every size),
and the optimizer is given the energy summed over pixels, from which η0 was derived.

Jitter. The jitter of amount T feeds a random (H - T + 1)-pixel window of an image of side H
(offsets 0 ... T-1). A reconstruction is therefore optimized on a canvas T - 1 pixels larger
than the target image, every window being compared with Φ0 of the target; the central window
is the reconstruction reported and measured.

C by depth (§5.2.1) is the model's hint where it has one (``VisionModel.inversion_C`` for HOG
and DSIFT, ``C_by_depth`` for AlexNet and VGG), else read from the receptive field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ...engine import objectives as O
from ...engine.optim import Optimizer
from ...engine.params import ImageParam, PixelNormBound
from ...engine.render import render
from ...engine.transforms import Jitter, Pipeline
from ...errors import PreimageError
from ...settings import IMAGE_SIZE, STEPS, Settings, at_least, seed_check, setting
from ..common import check_prior, prior_fields, prior_term

PAPER_RANGE = 255.0  # the paper's networks take 0-255 inputs
# the prior's weight on log P in nats per image: with the energy summed over pixels and log P about
# -10 nats per pixel for natural images, 0.1 makes it a term near 1 per pixel, like the others
PRIOR_WEIGHT = 0.1
# Other networks than the model hints cover, by receptive field over input size; the breakpoints
# reproduce the paper's choices on AlexNet (relu3 99/224, relu4 131/224, relu5 163/224) and VGG-16
# (conv4_3 92/224, conv5_1 132/224, conv5_3 196/224).
_RF_C = ((0.45, 300.0), (0.60, 100.0), (0.90, 20.0))
CONSTANT_RANGE = (0.1, 10000.0)  # B and V in the paper's 0-255 units (it uses 80 and 12.3)


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
        """The paper's energy with B and/or V measured on ``images`` (not the paper's 80 and B/6.5).

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


def paper_C(model, layer, size=None):
    """The paper's C for a layer: the model's hint (a C for every layer, or C by depth), else by
    receptive field over input size."""
    address = model.resolve_layer(layer)
    if model.inversion_C is not None:
        return float(model.inversion_C)
    table = model.layers(size)
    order = [info.name for info in table]
    if address not in order:
        raise PreimageError(f"layer {layer!r} is not computed at {size}px")
    if model.C_by_depth:
        position = order.index(address)
        for anchor, c in model.C_by_depth:
            if anchor in order and position <= order.index(anchor):
                return float(c)
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


@dataclass
class Preset:
    """Everything the render loop needs for one batch of the energy of eq. 1."""

    size: int  # the network's window
    canvas: int  # the optimized image: window + T - 1
    jitter: int
    energy: Energy
    regularizers: O.Objective
    pipeline: Pipeline
    constraint: PixelNormBound
    unit: float  # the model's centred input units per paper unit
    prior: object = None  # a prior module, whose log P(x) joins the energy
    prior_weight: float = 0.0
    prior_record: dict | None = None

    @property
    def area(self):
        return float(self.canvas * self.canvas)

    def param(self, model, n, generator):
        sigma = self.energy.init_norm * self.energy.B / math.sqrt(model.channels)
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
            channels=model.channels,
        )

    def window(self, images):
        """The central window of canvas-sized display images."""
        return self.pipeline.final_view(images)

    def objective(self, loss):
        """What the optimizer maximizes: minus the energy summed over pixels, plus w·log P(x).

        η0 = 0.01 B²/α comes from the per-pixel gradient α/B of R_α at |x| = B, that is, from
        the energy summed over pixels; every term is averaged over pixels, so the sum is the
        area times it. The prior's log P is per image already.
        """
        total = self.area * (loss + self.regularizers)
        if self.prior is not None and self.prior_weight:
            total = total + self.prior_weight * O.log_prior(self.prior)
        return total

    def render(self, model, loss, n, seed, progress, desc, init=None):
        """Minimize the energy with ``loss`` for n images; the RenderResult of the summed energy
        (``per_pixel`` turns its values back into the energy's own units)."""
        generator = torch.Generator().manual_seed(int(seed))
        param = self.param(model, n, generator)
        if init is not None:
            param.set_images(init)
        result = render(
            model,
            self.objective(loss),
            param,
            transforms=self.pipeline,
            optimizer=Optimizer("adagrad-momentum", self.energy.eta0),
            steps=self.energy.steps,
            seed=seed,
            constraints=(self.constraint,),
            progress=progress,
            desc=desc,
        )
        result.config.update(energy=self.describe(), energy_scale=self.area)
        return result

    def per_pixel(self, values):
        """Values of the summed energy (a render's activations, objective, trace) per pixel."""
        return values / self.area

    def describe(self):
        return {
            "window": self.size,
            "canvas": self.canvas,
            "jitter_T": self.jitter,
            "unit_per_paper_unit": self.unit,
            "prior": self.prior_record,
            **self.energy.describe(),
        }


def preset(
    model, layer, size=None, energy=None, jitter=None, prior=None, prior_weight=PRIOR_WEIGHT
):
    """The preset for a layer: regularizers, jitter, projection, in the model's units.

    jitter: T (default: the model's hint, else a quarter of the layer's stride). prior: a
    natural-image prior module; ``prior_weight`` · log P(x) joins the objective.
    """
    energy = energy or Energy()
    size = int(size or model.input_size)
    info = model.layer_info(layer, size)
    if jitter is None:
        jitter = model.jitter if model.jitter is not None else jitter_amount(_stride(info))
    T = int(jitter)
    lo, hi = model.input_range
    unit = (hi - lo) / PAPER_RANGE
    B, V = energy.B * unit, energy.V * unit
    regularizers = -1.0 * O.bounded_range(energy.alpha, B) - 1.0 * O.tv(energy.beta, V)
    steps = [Jitter(T, crop=T - 1)] if T > 1 else []
    weight = prior_weight if prior is not None else 0.0
    record = {**prior.describe(), "weight": weight} if prior is not None and weight else None
    return Preset(
        size=size,
        canvas=size + max(T - 1, 0),
        jitter=T,
        energy=energy,
        regularizers=regularizers,
        pipeline=Pipeline(steps, output_size=None),
        constraint=PixelNormBound(energy.B_plus * unit),
        unit=unit,
        prior=prior.to(model.device) if prior is not None else None,
        prior_weight=weight,
        prior_record=record,
    )


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


# -- the settings every Mahendran & Vedaldi command shares ----------------------------------------


def _constant(flag, value):
    if value == "measured":
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    lo, hi = CONSTANT_RANGE
    if not lo <= number <= hi:
        raise PreimageError(
            f"bad {flag} {value!r}; valid: a number from {lo:g} to {hi:g} in the paper's 0-255"
            " units, or 'measured'"
        )


_prior, _prior_weight = prior_fields(PRIOR_WEIGHT)


@dataclass
class EnergySettings(Settings):
    """What maximize, caricature, invert and invert-table share: window, steps, jitter, the
    constants of eq. 1 and the prior; each field's help is its flag's.
    """

    size: int = setting(
        None,
        "the network's window in pixels (default: the model's input size)",
        type=int,
        check=IMAGE_SIZE,
    )
    steps: int = setting(300, "optimization steps (the paper's T)", check=STEPS)
    seed: int = setting(0, "seed of the initial noise and the jitter", check=seed_check)
    jitter: int = setting(
        None,
        "jitter amount T (default: a quarter of the layer's stride, as the paper; 0 or 1 for none)",
        type=int,
        check=at_least(0),
    )
    B: str = setting(
        None,
        "B of N_α in the paper's 0-255 units (default 80), or 'measured': N_α = 1 for the images"
        " given (B+ = 2B)",
        type=str,
        check=_constant,
    )
    V: str = setting(
        None,
        "V of TV^β in the paper's 0-255 units (default B/6.5), or 'measured': R_TV = 1 for the"
        " images given",
        type=str,
        check=_constant,
    )
    prior: str = _prior
    prior_weight: float = _prior_weight

    def validate(self):
        check_prior(self)

    def energy(self, model=None, images=None):
        """The energy of eq. 1: the paper's constants, or B and V given or measured on images."""
        given = {
            n: float(getattr(self, n))
            for n in ("B", "V")
            if getattr(self, n) not in (None, "measured")
        }
        measure = {n: True for n in ("B", "V") if getattr(self, n) == "measured"}
        if not measure:
            return Energy(steps=self.steps, **given)
        energy = Energy.measured(
            model,
            images,
            B=measure.get("B", False),
            V=measure.get("V", False),
            steps=self.steps,
            **given,
        )
        lo, hi = CONSTANT_RANGE
        for name in measure:
            value = getattr(energy, name)
            if not lo <= value <= hi:
                raise PreimageError(
                    f"bad --{name} measured: {value:.3g} on these images (flat or blank?); valid:"
                    f" from {lo:g} to {hi:g}, or give a number"
                )
        return energy

    def preset_kw(self, model, energy):
        """The energy, the jitter, the prior and its weight, as ``preset`` (and so the library
        functions) take them."""
        prior, weight, _ = prior_term(model, self, PRIOR_WEIGHT)
        kw = {"energy": energy, "jitter": self.jitter}
        return kw if prior is None else {**kw, "prior": prior, "prior_weight": weight}
