"""Receptive fields of every tensor a model computes, in input pixels.

A forward pass runs under a ``TorchFunctionMode`` that sees every torch call,
functional ones included (``x + skip``, ``F.pad``, ``x.view(n, -1)``), so the
receptive field follows the real data flow of any architecture: sequential
nets, residual nets, TF-style "same" padding, flattening into fully connected
layers. Per spatial axis a tensor carries the standard receptive-field
arithmetic: size ``r``, stride ``j`` and the centre ``s`` of unit 0, in input
pixel coordinates. Where branches meet, receptive fields are united.

A tensor whose spatial axes were flattened away (the input of ``fc6``) keeps
one interval per axis: the hull of all the units it mixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode


@dataclass(frozen=True)
class Axis:
    """Receptive field along one axis: unit i covers centre s + i*j, width r."""

    r: float
    j: float
    s: float

    def interval(self, i=0):
        c = self.s + i * self.j
        return c - (self.r - 1) / 2, c + (self.r - 1) / 2


@dataclass(frozen=True)
class Geometry:
    """Receptive field of a tensor: spatial axes (dims) with their sizes, or collapsed."""

    axes: tuple  # tensor dims holding (height, width); None once collapsed
    hw: tuple  # spatial sizes (n_h, n_w) along those dims
    along: tuple  # (Axis for height, Axis for width)

    @property
    def collapsed(self):
        return self.axes is None

    def hull(self):
        """Collapse: one interval per axis covering every unit."""
        if self.collapsed:
            return self
        along = []
        for ax, n in zip(self.along, self.hw):
            lo, _ = ax.interval(0)
            _, hi = ax.interval(n - 1)
            along.append(Axis(hi - lo + 1, ax.j, (lo + hi) / 2))
        return Geometry(None, (1, 1), tuple(along))

    def size(self):
        """Receptive-field size (h, w) of the centre unit."""
        return tuple(_clean(ax.r) for ax in self.along)

    def stride(self):
        return tuple(_clean(ax.j) for ax in self.along)


def _clean(v):
    return int(v) if float(v).is_integer() else round(float(v), 2)


def _pair(v):
    if isinstance(v, (tuple, list)):
        return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])
    return (v, v)


def _sliding(geo, kernel, stride, padding, dilation, out_hw):
    """Receptive field after a sliding window (convolution or pooling)."""
    along = []
    for ax, k, st, p, d in zip(
        geo.along, _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
    ):
        k_eff = d * (k - 1) + 1
        along.append(
            Axis(ax.r + (k_eff - 1) * ax.j, ax.j * st, ax.s + ((k_eff - 1) / 2 - p) * ax.j)
        )
    return Geometry(geo.axes, out_hw, tuple(along))


def _adaptive(geo, out_hw):
    """Adaptive pooling: window i spans [floor(i*n/o), ceil((i+1)*n/o))."""
    along = []
    for ax, n, o in zip(geo.along, geo.hw, out_hw):
        if o == n:
            along.append(ax)
            continue
        starts = [math.floor(i * n / o) for i in range(o)]
        ends = [math.ceil((i + 1) * n / o) for i in range(o)]
        k = max(e - b for b, e in zip(starts, ends))
        st = (
            (starts[-1] - starts[0]) / (o - 1) if o > 1 else 1
        )  # one output: keep the stride, as the papers do for fc layers
        along.append(Axis(ax.r + (k - 1) * ax.j, ax.j * st, ax.s + (k - 1) / 2 * ax.j))
    return Geometry(geo.axes, out_hw, tuple(along))


def _union(geos, hw, axes):
    """Units of several same-grid tensors summed or concatenated; broadcast inputs add a fixed
    interval.
    """
    grid = [g for g in geos if not g.collapsed and g.hw == hw]
    fixed = [g.hull() for g in geos if g.collapsed or (g.hw != hw and g.hw == (1, 1))]
    along = []
    for a in range(2):
        j = max(g.along[a].j for g in grid)
        centre = (hw[a] - 1) / 2
        lo = min(g.along[a].interval(centre)[0] for g in grid)
        hi = max(g.along[a].interval(centre)[1] for g in grid)
        for g in fixed:
            flo, fhi = g.along[a].interval(0)
            lo, hi = min(lo, flo), max(hi, fhi)
        along.append(Axis(hi - lo + 1, j, (lo + hi) / 2 - centre * j))
    return Geometry(axes, hw, tuple(along))


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _arg(args, kwargs, index, name, default):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


class ReceptiveFieldTracer(TorchFunctionMode):
    """Propagates receptive-field geometry through every torch call of a forward pass."""

    def __init__(self):
        super().__init__()
        self._geo = {}
        self._alive = []  # keep traced tensors alive so their ids are not reused

    def mark_input(self, x):
        self._set(x, Geometry((2, 3), tuple(x.shape[2:4]), (Axis(1, 1, 0), Axis(1, 1, 0))))

    def geometry(self, t):
        return self._geo.get(id(t)) if isinstance(t, torch.Tensor) else None

    def _set(self, t, geo):
        self._alive.append(t)
        self._geo[id(t)] = geo

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        ins = [(t, self._geo[id(t)]) for t in _tensors((args, kwargs)) if id(t) in self._geo]
        if ins:
            self._propagate(getattr(func, "__name__", "").strip("_"), args, kwargs, ins, out)
        return out

    def _propagate(self, name, args, kwargs, ins, out):
        outs = list(_tensors(out))
        if not outs:
            return
        first = ins[0][1]
        result = outs[0]
        if name == "permute" and not first.collapsed:
            dims = [
                d % result.dim()
                for d in (args[1:] if not isinstance(args[1], (list, tuple)) else args[1])
            ]
            self._set(
                result, Geometry(tuple(dims.index(a) for a in first.axes), first.hw, first.along)
            )
            return
        spatial = [g for _, g in ins if not g.collapsed]
        if spatial and name in _WINDOWED and result.dim() == 4:
            g = spatial[0]
            hw = tuple(result.shape[a] for a in g.axes)
            self._set(result, _WINDOWED[name](g, args, kwargs, hw))
            for extra in outs[1:]:  # max-pool indices share the geometry
                self._set(extra, self._geo[id(result)])
            return
        for t in outs:
            geo = self._generic(t, [g for _, g in ins])
            if geo is not None:
                self._set(t, geo)

    @staticmethod
    def _generic(t, geos):
        spatial = [g for g in geos if not g.collapsed]
        for g in spatial:
            if (
                t.dim() > max(g.axes)
                and tuple(t.shape[a] for a in g.axes) == g.hw
                and (g.hw != (1, 1) or t.dim() == 4)
            ):
                return _union(geos, g.hw, g.axes)
        # spatial axes flattened, averaged or reshaped away: the hull of everything mixed in
        hulls = [g.hull() for g in geos]
        along = []
        for a in range(2):
            lo = min(h.along[a].interval(0)[0] for h in hulls)
            hi = max(h.along[a].interval(0)[1] for h in hulls)
            along.append(Axis(hi - lo + 1, max(h.along[a].j for h in hulls), (lo + hi) / 2))
        return Geometry(None, (1, 1), tuple(along))


def _conv(g, args, kwargs, hw):
    weight = _arg(args, kwargs, 1, "weight", None)
    k = tuple(weight.shape[-2:])
    stride = _arg(args, kwargs, 3, "stride", 1)
    padding = _arg(args, kwargs, 4, "padding", 0)
    dilation = _arg(args, kwargs, 5, "dilation", 1)
    if padding == "valid":
        padding = 0
    elif padding == "same":
        padding = tuple((d * (kk - 1)) // 2 for kk, d in zip(k, _pair(dilation)))
    return _sliding(g, k, stride, padding, dilation, hw)


def _max_pool(g, args, kwargs, hw):
    k = _arg(args, kwargs, 1, "kernel_size", 1)
    stride = _arg(args, kwargs, 2, "stride", None) or k
    return _sliding(
        g, k, stride, _arg(args, kwargs, 3, "padding", 0), _arg(args, kwargs, 4, "dilation", 1), hw
    )


def _avg_pool(g, args, kwargs, hw):
    k = _arg(args, kwargs, 1, "kernel_size", 1)
    stride = _arg(args, kwargs, 2, "stride", None) or k
    return _sliding(g, k, stride, _arg(args, kwargs, 3, "padding", 0), 1, hw)


def _pad(g, args, kwargs, hw):
    pad = list(_arg(args, kwargs, 1, "pad", ()))
    left = pad[0] if len(pad) > 0 else 0
    top = pad[2] if len(pad) > 2 else 0
    h, w = g.along
    return Geometry(g.axes, hw, (Axis(h.r, h.j, h.s - top * h.j), Axis(w.r, w.j, w.s - left * w.j)))


_WINDOWED = {
    "conv2d": _conv,
    "max_pool2d": _max_pool,
    "max_pool2d_with_indices": _max_pool,
    "avg_pool2d": _avg_pool,
    "adaptive_avg_pool2d": lambda g, a, k, hw: _adaptive(g, hw),
    "adaptive_max_pool2d": lambda g, a, k, hw: _adaptive(g, hw),
    "adaptive_max_pool2d_with_indices": lambda g, a, k, hw: _adaptive(g, hw),
    "pad": _pad,
}
