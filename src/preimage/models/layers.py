"""Layer addresses, the layer table, and the truncated forward pass.

A layer is addressed by its PyTorch module path (``features.10``,
``_blocks.5``, ``layer2.1.conv1``). A module the forward pass calls more than
once (EfficientNet's shared top-level ``_swish`` runs after the stem and after
the head) is addressed per call as ``PATH#K``, K counting from 0.

``capture`` runs the model only as deep as the deepest layer asked for: the
forward hook of the last layer to fire raises an internal exception that ends
the pass, so no later module runs. The hooks exist only inside the call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import PreimageError
from .layout import OVERRIDE_FORMS, detect
from .receptive_field import ReceptiveFieldTracer


def split_address(address):
    """'path#k' -> ('path', k); 'path' -> ('path', None)."""
    path, sep, call = address.partition("#")
    if not sep:
        return path, None
    if not call.isdigit():
        return path, -1
    return path, int(call)


class _Enough(Exception):
    """Raised by a hook once every requested layer has been captured."""


class _Capture:
    def __init__(self, module, addresses, layouts=None):
        self.module = module
        self.layouts = layouts  # (address, input size) -> Layout: each output's canonical view
        self.current = {}  # address -> its Layout at the size being run
        self.active = False
        self.wanted = {}
        for address in addresses:
            path, call = split_address(address)
            self.wanted.setdefault(path, {})[0 if call is None else call] = address
        self.named = dict(module.named_modules())
        self.calls = {}
        self.found = {}
        self.handles = []

    def __enter__(self):
        for path in self.wanted:
            self.handles.append(self.named[path].register_forward_hook(self._hook(path)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles.clear()
        return False

    def _hook(self, path):
        wanted = self.wanted[path]

        def hook(module, inputs, output):
            if not self.active:  # a forward pass of the model's own, such as tracing its layers
                return
            k = self.calls.get(path, 0)
            self.calls[path] = k + 1
            if k in wanted:
                address = wanted[k]
                layout = self.current.get(address)
                if layout is not None:
                    prefix = layout.prefix_tokens(output)
                    if prefix is not None:
                        self.prefix[address] = prefix
                    output = layout.canonical(output)
                self.found[address] = output
                if len(self.found) == self.total:
                    raise _Enough

        return hook

    @property
    def total(self):
        return sum(len(v) for v in self.wanted.values())

    def run(self, inputs):
        """{address: output}, each in the canonical layout when ``layouts`` was given; a token
        layer's prefix tokens (class, registers) under ``address@prefix``."""
        self.calls.clear()
        self.found = {}
        self.prefix = {}
        if self.layouts is not None:  # before the pass: finding a layout may trace the model
            size = tuple(inputs.shape[-2:])
            self.current = {
                a: self.layouts(a, size) for c in self.wanted.values() for a in c.values()
            }
        self.active = True
        try:
            self.module(inputs)
        except _Enough:
            pass
        finally:
            self.active = False
        if len(self.found) < self.total:
            missing = [
                a for calls in self.wanted.values() for a in calls.values() if a not in self.found
            ]
            raise RuntimeError(f"the forward pass never reached layer(s) {', '.join(missing)}")
        return {**self.found, **{f"{a}@prefix": t for a, t in self.prefix.items()}}


def capture(module, addresses, layouts=None):
    """Context manager: ``with capture(m, ['features.3']) as c: acts = c.run(x)``.

    ``run`` returns {address: output} and stops the forward pass as soon as the
    last requested layer has produced its output. Addresses must be valid
    (``VisionModel.resolve_layer`` checks them); hooks are removed on exit.
    """
    return _Capture(module, addresses, layouts)


@dataclass
class LayerInfo:
    """One addressable layer: its name, alias, output shape and receptive field."""

    name: str  # the address: module path, with #K for modules called more than once
    alias: str | None  # the papers' name (conv3, relu5_1, ...) where there is one
    shape: tuple  # output shape for one image, without the batch dimension
    rf_size: object  # int, or [h, w] when they differ; None where unknown
    rf_stride: object
    kind: str  # module class name
    rf_centre: tuple | None = None  # input-pixel centre (y, x) of unit (0, 0)
    layout: object = None  # a Layout (shape is in its canonical form); None where unknown
    raw_shape: tuple | None = None  # the output shape as the module returns it
    mixed: bool = False  # every position sees the same pixels (after attention, say)

    def receptive_box(self, y=None, x=None):
        """Input pixels (top, bottom, left, right), bottom/right exclusive, seen by unit (y, x).

        Without y/x, the centre unit. The box may reach outside the image.
        """
        if self.rf_size is None or self.rf_centre is None:
            return None
        h, w = (self.shape[-2], self.shape[-1]) if len(self.shape) == 3 else (1, 1)
        y = h // 2 if y is None else y
        x = w // 2 if x is None else x
        if self.mixed:
            y = x = 0
        r = _pair(self.rf_size)
        j = _pair(self.rf_stride)
        cy = self.rf_centre[0] + y * j[0]
        cx = self.rf_centre[1] + x * j[1]
        top, left = int(round(cy - (r[0] - 1) / 2)), int(round(cx - (r[1] - 1) / 2))
        return top, top + int(r[0]), left, left + int(r[1])

    @property
    def channels(self):
        return self.shape[0] if self.shape else 0

    def require_layout(self, model_name):
        """The layout, or one line naming the layer and how to give its layout."""
        if self.layout is None:
            raise PreimageError(
                f"cannot tell the layout of layer {self.name} of {model_name} (output"
                f" {' x '.join(map(str, self.raw_shape or self.shape))}); give it with"
                f" --layout {self.name}=FORM (wrap_model(..., layouts={{{self.name!r}: FORM}})),"
                f" FORM one of {OVERRIDE_FORMS}"
            )
        return self.layout

    def as_dict(self):
        return {
            "name": self.name,
            "alias": self.alias,
            "shape": list(self.shape),
            "rf_size": self.rf_size,
            "rf_stride": self.rf_stride,
            "type": self.kind,
            "layout": None if self.layout is None else str(self.layout),
        }


def _pair(v):
    return (v[0], v[1]) if isinstance(v, (list, tuple)) else (v, v)


def _square(pair):
    if pair is None:
        return None
    return pair[0] if pair[0] == pair[1] else list(pair)


def trace_layers(module, inputs, aliases=None):
    """Every module the forward pass calls, in the order their outputs appear.

    Returns a list of LayerInfo with output shapes and receptive fields. On
    an image too small for the whole network, the layers computed before the
    failure.
    """
    alias_of = {v: k for k, v in (aliases or {}).items()}
    by_path = {name: m for name, m in module.named_modules() if name}
    named = {m: name for name, m in by_path.items()}
    records = []  # (path, output)
    calls = {}
    handles = []

    def hook(m, args, output):
        path = named[m]
        calls[path] = calls.get(path, 0) + 1
        if isinstance(output, torch.Tensor):
            records.append((path, calls[path] - 1, output))

    for m in named:
        handles.append(m.register_forward_hook(hook))
    tracer = ReceptiveFieldTracer()
    try:
        with torch.no_grad(), tracer:
            tracer.mark_input(inputs)
            module(inputs)
    except RuntimeError:
        # the image is too small for the deeper layers: list the ones that ran
        if not records:
            raise
    finally:
        for h in handles:
            h.remove()

    table = []
    grids = []  # the grids of the positional layers so far, latest first
    for path, k, out in records:
        address = path if calls[path] == 1 else f"{path}#{k}"
        geo = tracer.geometry(out)
        raw = tuple(out.shape[1:])
        # a batch folded with windows or tokens (window attention): no layout reads it per image
        layout = detect(raw, geo, grids) if out.shape[0] == inputs.shape[0] else None
        shape = layout.canonical_shape(raw) if layout is not None else raw
        if layout is not None and layout.kind in ("nchw", "nhwc"):
            grids.insert(0, tuple(shape[1:]))
        table.append(
            LayerInfo(
                name=address,
                alias=alias_of.get(address),
                shape=shape,
                rf_size=_square(geo.size()) if geo else None,
                rf_stride=_square(geo.stride()) if geo else None,
                kind=type(by_path[path]).__name__,
                rf_centre=tuple(ax.s for ax in geo.along) if geo else None,
                layout=layout,
                raw_shape=raw,
                mixed=bool(geo and (geo.mixed or geo.collapsed) and len(shape) == 3),
            )
        )
    return table
