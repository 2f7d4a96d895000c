"""The objective algebra: a score per batch element, to maximize, and what it reads.

An ``Objective`` maps a ``Context`` (captured activations and the current images) to a tensor
of shape (N,), one score per batch element, to be *maximized*. Objectives compose with ``+``,
``-``, ``*`` and ``/`` by scalars. A term may apply to some batch elements only (``batch=``),
which is how one batch optimizes a different target per element.

Every leaf has a role, separate from its sign: a ``target`` (what the run is about: a channel,
a unit, an inversion loss) or a ``regularizer`` (what shapes the images: an L2 or TV penalty,
subtracted, or a reward such as the log-likelihood of a prior or the diversity term, added).
Results report the targets' sum as the activation, apart from the regularizers.
"""

from __future__ import annotations

import torch

from ...errors import PreimageError

TARGET = "target"
REGULARIZER = "regularizer"


class Context:
    """What an objective reads: the activations, and the images in two units.

    activations: layer address -> output tensor. images: N x C x H x W, display space, before
    transforms. centered: the same in network input units with the channel means removed, or a
    function computing them, called on first use (only image terms read them). views: the
    ``Groups`` of the network's batch when a views stage shows each image as several views
    (the activations then have one row per view), else None.
    """

    def __init__(self, activations, images, centered, views=None):
        self.activations = activations
        self.images = images
        self._centered = centered
        self.views = views

    @property
    def centered(self):
        if callable(self._centered):
            self._centered = self._centered()
        return self._centered

    @property
    def n(self):
        return self.images.shape[0]


class Objective:
    """A score per batch element, to maximize. Leaves wrap a function; sums keep their parts.

    fn: Context -> (N,) values. layers: the layer addresses it reads. role: TARGET or
    REGULARIZER. measure: an optional Context -> tensor, evaluated once on the final images (the
    diversity term's closest distances, say) and returned with the render's result.
    """

    def __init__(self, fn=None, layers=(), name="objective", role=TARGET, parts=None, measure=None):
        if role not in (TARGET, REGULARIZER):
            raise PreimageError(f"bad role {role!r}; valid: {TARGET}, {REGULARIZER}")
        self.fn = fn
        self.layers = frozenset(layers)
        self.name = name
        self.role = role
        self.parts = parts  # [(weight, leaf Objective)] for a sum, None for a leaf
        self.measure = measure

    def terms(self):
        """[(weight, leaf)] of this objective."""
        return self.parts if self.parts is not None else [(1.0, self)]

    def __call__(self, ctx):
        if self.parts is None:
            return self.fn(ctx)
        total = None
        for w, leaf in self.parts:
            v = leaf.fn(ctx)
            v = v if w == 1.0 else w * v
            total = v if total is None else total + v
        return total

    def breakdown(self, ctx):
        """{name: weighted value per element} for each term (names made unique)."""
        out = {}
        for w, leaf in self.terms():
            out[_unique(leaf.name, out)] = w * leaf.fn(ctx)
        return out

    def split(self, ctx):
        """(targets, regularizers) per element: the two contributions that sum to the objective."""
        act = reg = 0.0
        for w, leaf in self.terms():
            v = w * leaf.fn(ctx)
            if leaf.role == REGULARIZER:
                reg = reg + v
            else:
                act = act + v
        return act, reg

    def measurements(self, ctx):
        """{name: value} of every leaf that measures something on the final images."""
        out = {}
        for _, leaf in self.terms():
            if leaf.measure is not None:
                out[_unique(leaf.name, out)] = leaf.measure(ctx)
        return out

    # -- algebra ----------------------------------------------------------------------

    def _scaled(self, k):
        parts = [(k * w, leaf) for w, leaf in self.terms()]
        return Objective(layers=self.layers, name=self.name, parts=parts)

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(
            layers=self.layers | other.layers,
            name=f"{self.name} + {other.name}",
            parts=self.terms() + other.terms(),
        )

    __radd__ = __add__

    def __neg__(self):
        return self._scaled(-1.0)

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, k):
        if not isinstance(k, (int, float)):
            return NotImplemented
        return self._scaled(float(k))

    __rmul__ = __mul__

    def __truediv__(self, k):
        return self._scaled(1.0 / float(k))

    def __repr__(self):
        return f"Objective({' '.join(f'{w:+g}*{leaf.name}' for w, leaf in self.terms())})"


def _unique(name, taken):
    out, k = name, 2
    while out in taken:
        out, k = f"{name}#{k}", k + 1
    return out


# -- batch selection -----------------------------------------------------------------------


def _as_index(batch, n, device):
    if batch is None:
        return None
    if isinstance(batch, int):
        batch = [batch]
    idx = torch.as_tensor(list(batch), dtype=torch.long, device=device)
    if idx.numel() and (int(idx.max()) >= n or int(idx.min()) < 0):
        raise PreimageError(f"batch index {int(idx.max())} out of range for a batch of {n} images")
    return idx


def per_element(values_fn, batch):
    """A leaf function: values_fn(ctx, idx) on the selected rows, scattered into (N,).

    batch: the elements the term applies to (None: all); values_fn gets their row indices, or
    None when the term covers the whole batch in order (then no gather or scatter is needed).
    """
    cache = {}

    def fn(ctx):
        n = ctx.n
        key = (n, ctx.images.device)
        if key not in cache:
            idx = _as_index(batch, n, ctx.images.device)
            cache[key] = None if idx is not None and idx.tolist() == list(range(n)) else idx
        idx = cache[key]
        values = values_fn(ctx, idx)
        if idx is None:
            return values
        out = values.new_zeros(n)
        return out.index_put((idx,), values)

    return fn


def rows(t, idx):
    """The selected rows of a per-element tensor (all of them for idx None)."""
    return t if idx is None else t.index_select(0, idx)


def shared_or_rows(t, idx):
    """Rows of a per-element tensor (first dimension N), or a shared one (first dimension 1)."""
    return t if idx is None or t.shape[0] == 1 else t.index_select(0, idx)


def leading(t, dims):
    """A tensor given for one element (dims - 1 dimensions) or per element (dims), with a leading
    axis."""
    return t.unsqueeze(0) if t.dim() == dims - 1 else t
