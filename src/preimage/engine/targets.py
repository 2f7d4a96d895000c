"""Target strings -> per-element objectives.

Grammar (one ``--target`` may expand to several batch elements):

    LAYER               the whole layer, DeepDream style (mean of squares)
    LAYER:C             channel C, mean over space (in unit mode: the centre unit)
    LAYER:C@Y,X         the unit of channel C at row Y, column X
    LAYER:C@centre      the centre unit
    LAYER:C@cls         feature C of a token layer's class token (LAYER:C averages its patches)
    LAYER:all           every channel of the layer, one element each
    LAYER:A-B           channels A to B inclusive; LAYER:1,5,9 a list
    LAYER:dir=FILE.npy  a direction in channel space (dot product, mean over space)
    class:N | class:NAME  a class logit of the model's output

LAYER is a module path (``_blocks.2``), ``PATH#K`` for a module that runs more
than once, or one of the papers' names (``conv3``, ``relu3_1``).
Consecutive elements of the same kind and layer become one vectorized term.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import PreimageError, suggest
from . import objectives as O

GRAMMAR = (
    "LAYER, LAYER:C, LAYER:C@Y,X, LAYER:C@cls, LAYER:all, LAYER:A-B, LAYER:dir=FILE.npy, class:N"
    " or class:NAME"
)


@dataclass(frozen=True)
class Element:
    """One batch element's target: a channel, a unit, a whole layer or a direction of a layer
    (class:N is a channel of the output layer).
    """

    kind: str  # channel | unit | cls | layer | direction
    layer: str  # the name as the user wrote it (resolved when checked)
    channel: int | None = None
    y: int | None = None
    x: int | None = None
    vector: str | None = None  # direction file
    title: str | None = None  # how the user named it, where that differs (class:tabby)

    def label(self):
        if self.title:
            return self.title
        if self.kind == "layer":
            return f"{self.layer}"
        if self.kind == "direction":
            return f"{self.layer}:dir={os.path.basename(self.vector)}"
        if self.kind == "cls":
            return f"{self.layer}:{self.channel}@cls"
        if self.kind == "unit":
            where = "centre" if self.y is None else f"{self.y},{self.x}"
            return f"{self.layer}:{self.channel}@{where}"
        return f"{self.layer}:{self.channel}"


def _bad(spec, why):
    return PreimageError(f"malformed target {spec!r} ({why}); valid forms: {GRAMMAR}")


def _int(text, spec, what):
    try:
        return int(text)
    except ValueError:
        raise _bad(spec, f"{what} {text!r} is not an integer") from None


def _output_layer(model, size):
    return model.layers(size)[-1].name


def parse_target(model, spec, size=None, unit_mode=False):
    """One target string -> a list of Elements, checked against the model at ``size``."""
    spec = spec.strip()
    if not spec:
        raise _bad(spec, "it is empty")
    if spec.startswith("class:"):
        return [_class_element(model, spec, size)]
    layer, sep, rest = spec.partition(":")
    if not layer:
        raise _bad(spec, "no layer before ':'")
    info = model.layer_info(layer, size)
    info.require_layout(model.name)
    if not sep:
        return [Element("layer", layer)]
    if rest.startswith("dir="):
        path = rest[len("dir=") :]
        _load_direction(path, info.channels, spec)
        return [Element("direction", layer, vector=path)]
    chans, at, where = rest.partition("@")
    channels = _channels(chans, info.channels, spec, layer, model)
    if at and where.lower() == "cls":
        if info.layout.kind != "tokens" or not info.layout.prefix:
            raise PreimageError(
                f"layer {layer} of {model.name} has no class token (its layout is {info.layout});"
                " @cls takes a token layer with a class token"
            )
        return [Element("cls", layer, c) for c in channels]
    if at:
        if where.lower() in ("centre", "center", "c"):
            y = x = None
        else:
            parts = where.split(",")
            if len(parts) != 2:
                raise _bad(spec, f"position {where!r} must be Y,X")
            y, x = (_int(p, spec, "position") for p in parts)
            if len(info.shape) != 3 or not (0 <= y < info.shape[1] and 0 <= x < info.shape[2]):
                grid = f"{info.shape[1]}x{info.shape[2]}" if len(info.shape) == 3 else "no spatial"
                raise PreimageError(
                    f"unit position @{y},{x} is outside layer {layer}'s {grid} map at"
                    f" {size or model.input_size}px; valid rows"
                    f" 0..{info.shape[1] - 1 if len(info.shape) == 3 else 0}"
                )
        return [Element("unit", layer, c, y, x) for c in channels]
    kind = "unit" if unit_mode and len(info.shape) == 3 else "channel"
    return [Element(kind, layer, c) for c in channels]


def _channels(text, count, spec, layer, model):
    if text == "all":
        return list(range(count))
    out = []
    for part in text.split(","):
        if not part:
            raise _bad(spec, "empty channel")
        if part.startswith("-"):
            raise PreimageError(
                f"channel {part} out of range for layer {layer} of {model.name}: channels are"
                f" 0..{count - 1}"
            )
        a, dash, b = part.partition("-")
        lo = _int(a, spec, "channel")
        hi = _int(b, spec, "channel") if dash else lo
        if hi < lo:
            raise _bad(spec, f"channel range {part!r} runs backwards")
        out.extend(range(lo, hi + 1))
    for c in out:
        if not 0 <= c < count:
            raise PreimageError(
                f"channel {c} out of range for layer {layer} of {model.name}: it has {count}"
                f" channels (0..{count - 1})"
            )
    return out


def _class_element(model, spec, size):
    name = spec[len("class:") :]
    out = _output_layer(model, size)
    count = model.layer_info(out, size).channels
    if name.lstrip("-").isdigit():
        c = int(name)
        if not 0 <= c < count:
            raise PreimageError(
                f"class {c} out of range: {model.name} has {count} classes (0..{count - 1})"
            )
        return Element("channel", out, c, title=f"class:{c}")
    classes = [c.lower() for c in model.classes or []]
    if name.lower() in classes:
        c = classes.index(name.lower())
        return Element("channel", out, c, title=f"class:{c}:{model.classes[c]}")
    raise PreimageError(
        f"unknown class {name!r} for {model.name}; valid: an index 0..{count - 1} or a class name"
        f" such as {suggest(name, model.classes or [], limit=5)}"
    )


def _load_direction(path, channels, spec):
    try:
        vec = np.load(path, allow_pickle=False).astype(np.float32).ravel()
    except (OSError, ValueError, TypeError) as e:
        raise PreimageError(
            f"direction file {path!r} in target {spec!r} is not a readable .npy array of numbers"
            f" ({type(e).__name__})"
        ) from None
    if not np.isfinite(vec).all():
        raise PreimageError(f"direction file {path!r} holds NaN or infinite values")
    if vec.size != channels:
        raise PreimageError(
            f"direction file {path!r} has {vec.size} components; the layer has {channels} channels"
        )
    return vec


def parse_targets(model, specs, size=None, unit_mode=False):
    """Target strings -> the Elements of all of them, in order (see ``parse_target``)."""
    elements = []
    for spec in specs:
        elements.extend(parse_target(model, spec, size, unit_mode))
    return elements


def _term(e, batch=None, channels=None):
    """The objective term of an element; with ``channels``, one channel per element of ``batch``."""
    channels = e.channel if channels is None else channels
    if e.kind == "channel":
        return O.channel(e.layer, channels, batch=batch)
    if e.kind == "unit":
        return O.unit(e.layer, channels, e.y, e.x, batch=batch)
    if e.kind == "cls":
        return O.class_token(e.layer, channels, batch=batch)
    if e.kind == "layer":
        return O.layer(e.layer, batch=batch)
    return O.direction(e.layer, np.load(e.vector).astype(np.float32).ravel(), batch=batch)


def build_objective(elements):
    """Elements -> one Objective over a batch of len(elements), one target per element.

    Runs of consecutive channel or unit elements on the same layer (and
    position) become a single gathered term.
    """
    terms = []
    i = 0
    while i < len(elements):
        e = elements[i]
        j = i + 1
        if e.kind in ("channel", "unit", "cls"):
            while j < len(elements) and (
                elements[j].kind,
                elements[j].layer,
                elements[j].y,
                elements[j].x,
            ) == (e.kind, e.layer, e.y, e.x):
                j += 1
            batch = list(range(i, j))
            terms.append(_term(e, batch, [elements[k].channel for k in batch]))
        else:
            terms.append(_term(e, [i]))
        i = j
    return sum(terms[1:], terms[0])


def element_values(model, elements, images, chunk=32):
    """The target value of every element on every image: (M images) x (N elements).

    Each layer is computed once per image batch (truncated at the deepest
    layer needed), and every element's own term reads it.
    """
    import torch

    terms = [_term(e) for e in elements]
    layers = sorted({e.layer for e in elements})
    rows = []
    with torch.no_grad():
        for start in range(0, images.shape[0], chunk):
            batch = images[start : start + chunk].to(model.device)
            scale, shift = model.centering(batch)
            ctx = O.Context(model.activations(batch, layers), batch, batch * scale + shift)
            rows.append(torch.stack([t(ctx).float().cpu() for t in terms], 1))
    return torch.cat(rows, 0)
