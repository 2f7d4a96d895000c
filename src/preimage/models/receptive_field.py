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

Tokens: flattening the two spatial axes into one (a vision transformer's patch embedding, N x D
x H·W, then N x H·W x D) keeps a *flat* grid on that one axis, and class or register tokens
concatenated before it are counted as its prefix. Attention (a product over the token axis)
mixes every token, so its output has the hull of the whole grid: a token's receptive field is
its patch up to the first attention, the whole image after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

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

    axes: tuple  # tensor dims holding (height, width), or (d,) for a flat grid; None once collapsed
    hw: tuple  # spatial sizes (n_h, n_w) along those dims
    along: tuple  # (Axis for height, Axis for width)
    prefix: int = 0  # a flat grid's leading tokens that are not patches (class, registers)
    mixed: bool = False  # every unit sees the same pixels, ``along`` (after attention, say)

    @property
    def collapsed(self):
        return self.axes is None

    @property
    def flat(self):
        return self.axes is not None and len(self.axes) == 1

    @property
    def length(self):
        """A flat grid's length along its axis: the prefix tokens, then the patches."""
        return self.prefix + self.hw[0] * self.hw[1]

    def hull(self):
        """Collapse: one interval per axis covering every unit."""
        if self.collapsed:
            return self
        if self.mixed:
            return Geometry(None, (1, 1), self.along)
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
    if geo.mixed:
        return replace(geo, hw=out_hw)
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
    if geo.mixed:
        return replace(geo, hw=out_hw)
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


def _union(geos, hw, axes, prefix=0):
    """Units of several same-grid tensors summed or concatenated; broadcast inputs add a fixed
    interval.
    """
    grid = [g for g in geos if not g.collapsed and g.hw == hw]
    fixed = [g.hull() for g in geos if g.collapsed or (g.hw != hw and g.hw == (1, 1))]
    if any(g.mixed for g in grid + fixed) or (fixed and any(g.flat for g in grid)):
        # tokens that attended to everything (or are summed with what did): every unit sees the
        # union of what any of them sees
        return replace(_collapse(grid + fixed), axes=axes, hw=hw, prefix=prefix, mixed=True)
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
    return Geometry(axes, hw, tuple(along), prefix)


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
            self._set(result, replace(first, axes=tuple(dims.index(a) for a in first.axes)))
            return
        if name in ("transpose", "swapaxes", "swapdims") and not first.collapsed:
            d0, d1 = (int(d) % result.dim() for d in args[1:3])
            swap = {d0: d1, d1: d0}
            self._set(result, replace(first, axes=tuple(swap.get(a, a) for a in first.axes)))
            return
        if name in _RESHAPES and not first.collapsed and ins[0][0] is args[0]:
            geo = _reshaped(first, tuple(args[0].shape), tuple(result.shape))
            if geo is not None:
                self._set(result, geo)
                return
        if name in ("cat", "concat", "concatenate"):
            geo = _prefixed(args, kwargs, self._geo, result)
            if geo is not None:
                self._set(result, geo)
                return
        if _mixes_tokens(name, args, ins):
            for t in outs:
                self._set(t, replace(_collapse([g for _, g in ins]), mixed=True))
            return
        spatial = [g for _, g in ins if not g.collapsed and not g.flat]
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
            if g.flat:
                a = g.axes[0]
                if t.dim() > a and t.shape[a] == g.length:
                    return _union(geos, g.hw, g.axes, g.prefix)
                if t.dim() > a and g.prefix and t.shape[a] == g.hw[0] * g.hw[1]:
                    return _union(geos, g.hw, g.axes)  # the prefix tokens sliced off
                continue
            if (
                t.dim() > max(g.axes)
                and tuple(t.shape[a] for a in g.axes) == g.hw
                and (g.hw != (1, 1) or t.dim() == 4)
            ):
                return _union(geos, g.hw, g.axes)
        # spatial axes flattened, averaged or reshaped away: the hull of everything mixed in
        return _collapse(geos)


def _collapse(geos):
    """The hull of everything mixed in, on no spatial axis."""
    hulls = [g.hull() for g in geos]
    along = []
    for a in range(2):
        lo = min(h.along[a].interval(0)[0] for h in hulls)
        hi = max(h.along[a].interval(0)[1] for h in hulls)
        along.append(Axis(hi - lo + 1, max(h.along[a].j for h in hulls), (lo + hi) / 2))
    return Geometry(None, (1, 1), tuple(along), mixed=any(g.mixed for g in geos))


_RESHAPES = {"reshape", "view", "flatten", "unflatten"}
# products that contract over an axis: across tokens they are attention and mix every token
_PRODUCTS = {
    "matmul",
    "bmm",
    "baddbmm",
    "einsum",
    "scaled_dot_product_attention",
    "multi_head_attention_forward",  # nn.MultiheadAttention: one call as the mode sees it
}


def _reshaped(g, before, after):
    """A reshape that merges a grid's two axes into one flat axis, or splits a flat one back."""
    if after == before:
        return g
    if g.flat:
        a = g.axes[0]
        if g.prefix == 0 and after == before[:a] + tuple(g.hw) + before[a + 1 :]:
            return replace(g, axes=(a, a + 1))
        return None
    a, b = g.axes
    if b == a + 1 and after == before[:a] + (before[a] * before[b],) + before[b + 1 :]:
        return replace(g, axes=(a,), prefix=0)
    return None


def _prefixed(args, kwargs, known, result):
    """Tokens concatenated before a flat grid along its axis (a class token, registers)."""
    pieces = _arg(args, kwargs, 0, "tensors", ())
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % result.dim()
    geos = [known.get(id(p)) for p in pieces]
    grids = [i for i, g in enumerate(geos) if g is not None and g.flat and g.axes[0] == dim]
    if len(grids) != 1 or grids[0] != len(pieces) - 1:
        return None
    g = geos[grids[0]]
    if any(x is not None and not x.collapsed for x in geos[:-1]):
        return None
    extra = sum(int(p.shape[dim]) for p in pieces[:-1])
    return replace(g, prefix=g.prefix + extra)


def _mixes_tokens(name, args, ins):
    """Whether a call combines the units along a flat token axis (attention, token mixing)."""
    flats = [(t, g) for t, g in ins if g.flat]
    if name in _PRODUCTS and (flats or all(g.collapsed for _, g in ins)):
        return True  # attention over tokens, or over windows of them (Swin)
    if not flats:
        return False
    if name in ("linear", "conv1d"):  # over the token axis itself (an MLP-Mixer's token mixing)
        x, g = flats[0]
        axis = x.dim() - 1 if name == "linear" else 2
        return x is args[0] and g.axes[0] == axis
    return False


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
    if g.mixed:
        return replace(g, hw=hw)
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
