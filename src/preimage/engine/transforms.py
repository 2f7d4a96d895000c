"""Random geometric transforms, batched, differentiable and seeded.

Each transform draws its own parameters per batch element from a
``torch.Generator`` and describes itself as an affine map from its output
canvas to its input canvas (pixel coordinates centred on the canvas). A
``Pipeline`` multiplies the maps of all its steps and resamples the images
once, bilinearly (``affine_warp``): one interpolation per step of the
optimization, whatever the number of transforms, and no blur from repeated
resampling. Pixels that come from outside the image take a fill value (the
model's mean colour by default: the render loop transforms normalized images,
where that colour is zero, so the fill costs nothing).

Steps (Lucid's, which Finzi uses as preprocessing):
  pad(p)          canvas grows by p on each side
  jitter(d)       crop of size (H - d) at a random integer offset in [0, d)
  scale(factors)  zoom about the centre by a factor drawn from the list
  rotate(angles)  rotation about the centre by an angle (degrees) drawn from the list
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import PreimageError
from .fast.affine_warp import coefficients, warp


def _eye(n):
    return np.repeat(np.eye(3)[None], n, axis=0)


def _draw(count, n, generator):
    """n indices in [0, count) from the torch generator (so one seed drives the whole run)."""
    return torch.randint(0, count, (n,), generator=generator).numpy()


class Pad:
    """Pad ``pad`` pixels on each side: the canvas grows by 2 x pad."""

    def __init__(self, pad):
        self.pad = int(pad)

    def step(self, n, hw, generator):
        return _eye(n), (hw[0] + 2 * self.pad, hw[1] + 2 * self.pad)

    def describe(self):
        return f"pad:{self.pad}"


class Jitter:
    """A crop at a random integer offset in [0, d).

    Lucid's jitter(d) crops d pixels (``crop`` defaults to d); Mahendran &
    Vedaldi's jitter with amount T draws offsets in [0, T-1] and crops T - 1
    pixels, so that every offset is a window of the same image: Jitter(T, crop=T-1).
    """

    def __init__(self, d, crop=None):
        self.d = int(d)
        self.crop = self.d if crop is None else int(crop)

    def step(self, n, hw, generator):
        if self.d <= 0:
            return _eye(n), hw
        m = _eye(n)
        m[:, 0, 2] = _draw(self.d, n, generator) - self.crop / 2  # x
        m[:, 1, 2] = _draw(self.d, n, generator) - self.crop / 2  # y
        return m, (hw[0] - self.crop, hw[1] - self.crop)

    def describe(self):
        return f"jitter:{self.d}" if self.crop == self.d else f"window-jitter:{self.d}"


class Scale:
    """A zoom about the centre by a factor drawn from ``factors`` (above 1 enlarges)."""

    def __init__(self, factors):
        self.factors = np.array([float(f) for f in factors])

    def step(self, n, hw, generator):
        s = self.factors[_draw(len(self.factors), n, generator)]
        m = _eye(n)
        m[:, 0, 0] = 1.0 / s
        m[:, 1, 1] = 1.0 / s
        return m, hw

    def describe(self):
        return "scale:" + ",".join(f"{f:g}" for f in self.factors)


class Rotate:
    """A rotation about the centre by an angle drawn from ``angles`` (degrees)."""

    def __init__(self, angles):
        self.angles = np.array([float(a) for a in angles])

    def step(self, n, hw, generator):
        a = np.deg2rad(self.angles[_draw(len(self.angles), n, generator)])
        c, s = np.cos(a), np.sin(a)
        m = _eye(n)
        # output point p comes from input point R(-a) p
        m[:, 0, 0], m[:, 0, 1] = c, s
        m[:, 1, 0], m[:, 1, 1] = -s, c
        return m, hw

    def describe(self):
        return "rotate:" + ",".join(f"{a:g}" for a in self.angles)


class Pipeline:
    """Transforms applied in order, fused into one resampling.

    ``output_size``: None keeps the canvas the steps produce (Lucid's
    behaviour: pad 12 and jitters 8 and 4 turn 128 px into 140 px); an int or
    'input' resamples that canvas to a fixed size, so the network sees the same
    number of pixels as the image has.
    """

    def __init__(self, steps=(), output_size="input", fill="mean"):
        self.steps = list(steps)
        self.output_size = output_size
        self.fill = fill

    def __bool__(self):
        return bool(self.steps)

    def describe(self):
        return {
            "steps": [s.describe() for s in self.steps],
            "output_size": self.output_size,
            "fill": self.fill,
        }

    def matrices(self, n, hw, generator=None):
        """Per element: the (n, 3, 3) map from output to input pixel coordinates (both centred), and
        the output size.

        The matrices are tiny, so they are composed in NumPy; only the random
        draws come from the torch generator.
        """
        total = _eye(n)
        canvas = hw
        for step in self.steps:
            m, canvas = step.step(n, canvas, generator)
            total = total @ m
        if self.output_size is None:
            out = canvas
        else:
            out = (
                hw
                if self.output_size == "input"
                else (int(self.output_size), int(self.output_size))
            )
            total = total @ np.diag([canvas[1] / out[1], canvas[0] / out[0], 1.0])
        return total, out

    def check(self, hw, spec=None):
        """Raise PreimageError unless every step leaves a canvas of at least one pixel for images
        of size hw (a jitter that crops more than the image is a typo)."""
        canvas = tuple(hw)
        for step in self.steps:
            _, canvas = step.step(1, canvas, torch.Generator().manual_seed(0))
            if min(canvas) < 1:
                raise PreimageError(
                    f"bad --transforms {spec or step.describe()!r}: {step.describe()} leaves no"
                    f" image of a {hw[0]}x{hw[1]} px one; crop less than the image"
                )

    def canvas(self, hw):
        """The output size for an input of size hw."""
        if self.output_size == "input":
            return tuple(hw)
        if self.output_size is not None:
            return (int(self.output_size), int(self.output_size))
        for step in self.steps:
            _, hw = step.step(1, hw, torch.Generator().manual_seed(0))
        return tuple(hw)

    def final_view(self, images):
        """What the network sees once optimization is over: no random draw, the output canvas
        centred.

        With the output resampled to the input size this is the image itself;
        otherwise an integer centre crop (or zero pad) to the canvas the steps
        produce, so that, for example, a window-jittered reconstruction is
        measured on its central window.
        """
        if not self.steps or self.output_size == "input":
            return images
        h, w = images.shape[-2:]
        out = self.canvas((h, w))
        if self.output_size is not None:
            return F.interpolate(images, size=out, mode="bilinear", align_corners=False)
        dh, dw = out[0] - h, out[1] - w
        top = dh // 2 if dh >= 0 else -((-dh) // 2)
        left = dw // 2 if dw >= 0 else -((-dw) // 2)
        return F.pad(images, (left, dw - left, top, dh - top))

    def __call__(self, images, generator=None, fill_value=None, affine=None, channels_last=False):
        """The transformed images; ``affine`` = (scale, shift) per channel is applied first, in the
        same pass.

        Outside the image the result is ``fill_value`` (per channel, in the units after
        ``affine``), 0 by default. channels_last: the result in that memory format.
        """
        if not self.steps:
            out = images if affine is None else torch.addcmul(affine[1], images, affine[0])
            return out.contiguous(memory_format=torch.channels_last) if channels_last else out
        n, c, h, w = images.shape
        total, out = self.matrices(n, (h, w), generator)
        coef = coefficients(total, (h, w), out)
        scale, shift = affine if affine is not None else (None, None)
        if fill_value is None:
            return warp(images, coef, out, scale, shift, channels_last)
        fill = torch.as_tensor(fill_value, dtype=images.dtype, device=images.device).view(
            1, -1, 1, 1
        )
        # resample x * scale + shift - fill, whose outside is 0, then add the fill back
        shift = -fill if shift is None else shift - fill
        return warp(images, coef, out, scale, shift, channels_last) + fill


MAX_VALUES = 1000  # angles or factors one step draws from


def _numbers(text):
    values = [float(t) for t in text.split(",") if t]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError
    return values


def _range(lo, hi, step):
    if not all(math.isfinite(v) for v in (lo, hi, step)) or step <= 0 or hi < lo:
        raise ValueError
    count = int(round((hi - lo) / step)) + 1
    if count > MAX_VALUES:
        raise ValueError
    return [round(lo + i * step, 10) for i in range(count)]


def _step(kind, arg):
    """One step of a spec: ValueError for anything but a valid one."""
    if kind in ("pad", "jitter"):
        amount = int(arg)
        if amount < 0:
            raise ValueError
        return Pad(amount) if kind == "pad" else Jitter(amount)
    if kind in ("scale", "rotate"):
        if arg.count(":") == 2:
            values = _range(*map(float, arg.split(":")))
        else:
            values = _numbers(arg.replace("/", ","))
        if kind == "scale" and (min(values) <= 0 or len(values) > MAX_VALUES):
            raise ValueError
        return Scale(values) if kind == "scale" else Rotate(values)
    raise ValueError


FINZI = [Pad(12), Jitter(8), Scale(_range(0.90, 1.10, 0.02)), Rotate(_range(-10, 10, 1)), Jitter(4)]

PRESETS = {"none": [], "finzi": FINZI}


def parse_transforms(spec):
    """A preset name ('none', 'finzi') or a comma list of steps.

    Steps: pad:P, jitter:D, scale:LO:HI:STEP or scale:F1/F2/..., rotate:LO:HI:STEP or
    rotate:A1/A2/...
    Example: 'pad:12,jitter:8,scale:0.9:1.1:0.02,rotate:-10:10:1,jitter:4' is the finzi preset.
    """
    if isinstance(spec, Pipeline):
        return spec
    if spec is None:
        return Pipeline([])
    if isinstance(spec, (list, tuple)):
        return Pipeline(spec)
    if spec in PRESETS:
        return Pipeline(PRESETS[spec])
    steps = []
    for part in str(spec).split(","):
        kind, _, arg = part.strip().partition(":")
        try:
            steps.append(_step(kind, arg))
        except (ValueError, TypeError, OverflowError):
            raise PreimageError(
                f"bad transform {part!r} in {spec!r}; valid: a preset ({', '.join(PRESETS)}) or a"
                " comma list of pad:P, jitter:D (P, D >= 0), scale:LO:HI:STEP, rotate:LO:HI:STEP"
                " (STEP > 0, factors > 0; or scale:1/1.1, rotate:-5/0/5)"
            ) from None
    return Pipeline(steps)
