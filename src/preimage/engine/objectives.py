"""Objectives: what an optimization maximizes, one value per batch element.

An ``Objective`` maps a ``Context`` (captured activations and the current
images) to a tensor of shape (N,), one score per batch element, to be
*maximized*. Objectives compose with ``+``, ``-``, ``*`` and ``/`` by
scalars, so a Finzi-style loss reads::

    channel("_blocks.2", 5) - 1e-4 * l2() - 0.5 * tv()

A term may apply to some batch elements only (``batch=``), which is how one
batch optimizes a different target per element. Terms that take a list of
channels with a matching ``batch`` gather them in one indexing operation, so
"every channel of a layer" costs one term, not one per channel.

Penalties (``l2``, ``tv``, ``bounded_range``) return positive numbers and are
subtracted; they are flagged ``penalty`` so results can report the target's
activation apart from the regularizers.
"""

from __future__ import annotations

import torch

from ..errors import PreimageError


class Context:
    """What an objective reads: the activations, and the images in two units.

    activations: layer address -> output tensor. images: N x 3 x H x W, display
    space, before transforms. centered: the same in network input units with
    the channel means removed, or a function computing them, called on first use
    (only penalties read them, and most objectives have none).
    """

    def __init__(self, activations, images, centered):
        self.activations = activations
        self.images = images
        self._centered = centered

    @property
    def centered(self):
        if callable(self._centered):
            self._centered = self._centered()
        return self._centered

    @property
    def n(self):
        return self.images.shape[0]


class Objective:
    """A score per batch element, to maximize. Leaves wrap a function; sums keep their parts."""

    def __init__(self, fn=None, layers=(), name="objective", penalty=False, parts=None):
        self.fn = fn
        self.layers = frozenset(layers)
        self.name = name
        self.penalty = penalty
        self.parts = parts  # [(weight, leaf Objective)] for a sum, None for a leaf

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
            name = leaf.name
            k = 2
            while name in out:
                name, k = f"{leaf.name}#{k}", k + 1
            out[name] = w * leaf.fn(ctx)
        return out

    def split(self, ctx):
        """(targets, penalties) per element: the two contributions that sum to the objective."""
        act = pen = 0.0
        for w, leaf in self.terms():
            v = w * leaf.fn(ctx)
            if leaf.penalty:
                pen = pen + v
            else:
                act = act + v
        return act, pen

    # -- algebra ----------------------------------------------------------------------

    def _scaled(self, k):
        return Objective(
            layers=self.layers, name=self.name, parts=[(k * w, leaf) for w, leaf in self.terms()]
        )

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


def _per_element(values_fn, batch):
    """Leaf function: values_fn(tensor_rows, idx) on the selected rows, scattered into (N,)."""
    cache = {}

    def fn(ctx):
        n = ctx.n
        key = (n, ctx.images.device)
        if key not in cache:
            idx = _as_index(batch, n, ctx.images.device)
            # a term covering the whole batch in order needs no gather or scatter
            cache[key] = None if idx is not None and idx.tolist() == list(range(n)) else idx
        idx = cache[key]
        values = values_fn(ctx, idx)
        if idx is None:
            return values
        out = values.new_zeros(n)
        return out.index_put((idx,), values)

    return fn


def _rows(t, idx):
    return t if idx is None else t.index_select(0, idx)


def _channel_index(channels, idx, device, cache):
    key = (device, None if idx is None else idx.numel())
    if key not in cache:
        cache[key] = torch.as_tensor(channels, dtype=torch.long, device=device)
    return cache[key]


# -- targets ---------------------------------------------------------------------------------


def channel(layer, channels, batch=None):
    """Mean activation of a channel over space (Finzi's -1/m Σ F term, negated).

    ``channels`` is an int, or a list with one channel per element of ``batch``.
    For a layer with no spatial axes (fc), this is the unit itself.
    """
    multi = isinstance(channels, (list, tuple))
    cache = {}

    def values(ctx, idx):
        a = _rows(ctx.activations[layer], idx)
        if a.dim() == 4:
            a = _SpatialMean.apply(a)
        elif a.dim() > 2:
            a = a.mean(dim=tuple(range(2, a.dim())))
        if multi:
            c = _channel_index(channels, idx, a.device, cache)
            return a[torch.arange(a.shape[0], device=a.device), c]
        return a[:, channels]

    name = f"{layer}:{channels}" if not multi else f"{layer}:[{len(channels)} channels]"
    return Objective(_per_element(values, batch), [layer], name)


class _AtPosition(torch.autograd.Function):
    """a[:, :, y, x], whose gradient keeps the map's memory format.

    Autograd's own indexing sends back a dense NCHW gradient; on a channels-last
    map every backward op below then pays for the mismatch (5-7 % of a step).
    """

    @staticmethod
    def forward(ctx, a, y, x):
        ctx.like = (
            a.shape,
            a.dtype,
            a.device,
            torch.channels_last if _channels_last(a) else torch.contiguous_format,
        )
        ctx.yx = (y, x)
        return a[:, :, y, x].clone()

    @staticmethod
    def backward(ctx, grad):
        shape, dtype, device, fmt = ctx.like
        out = torch.empty(shape, dtype=dtype, device=device, memory_format=fmt).zero_()
        out[:, :, ctx.yx[0], ctx.yx[1]] = grad
        return out, None, None


class _SpatialMean(torch.autograd.Function):
    """a.mean((2, 3)), whose gradient reaches the map as a broadcast view.

    Autograd's mean materializes a dense NCHW gradient (and picking channels
    from the map itself does too); a broadcast lets the backward op below
    write its output in the map's own memory format.
    """

    @staticmethod
    def forward(ctx, a):
        ctx.shape = a.shape
        return a.mean((2, 3))

    @staticmethod
    def backward(ctx, grad):
        n, c, h, w = ctx.shape
        return (grad / (h * w)).view(n, c, 1, 1).expand(n, c, h, w)


def _channels_last(a):
    return (
        a.dim() == 4
        and a.is_contiguous(memory_format=torch.channels_last)
        and not a.is_contiguous()
    )


def unit(layer, channels, y=None, x=None, batch=None):
    """One unit: channel C at position (Y, X) of a layer. Without y/x, the centre unit."""
    multi = isinstance(channels, (list, tuple))
    cache = {}

    def values(ctx, idx):
        a = _rows(ctx.activations[layer], idx)
        h, w = a.shape[-2], a.shape[-1]
        yy = h // 2 if y is None else y
        xx = w // 2 if x is None else x
        if not (0 <= yy < h and 0 <= xx < w):
            raise PreimageError(f"unit position @{yy},{xx} is outside layer {layer}'s {h}x{w} map")
        a = _AtPosition.apply(a, yy, xx) if a.dim() == 4 else a[..., yy, xx]
        if multi:
            c = _channel_index(channels, idx, a.device, cache)
            return a[torch.arange(a.shape[0], device=a.device), c]
        return a[:, channels]

    where = "centre" if y is None else f"{y},{x}"
    return Objective(_per_element(values, batch), [layer], f"{layer}:{channels}@{where}")


def layer(layer, batch=None):
    """The whole layer, DeepDream style: mean of squared activations."""
    return Objective(
        _per_element(
            lambda ctx, idx: _rows(ctx.activations[layer], idx).pow(2).flatten(1).mean(1), batch
        ),
        [layer],
        f"{layer} (deepdream)",
    )


def class_logit(output_layer, index, batch=None):
    """A class logit: the unit ``index`` of the model's output layer."""
    return channel(output_layer, index, batch=batch)


def direction(layer, vector, batch=None):
    """Dot product of the activations with a vector in channel space, averaged over space."""
    vec = torch.as_tensor(vector, dtype=torch.float32).flatten()
    cache = {}

    def values(ctx, idx):
        a = _rows(ctx.activations[layer], idx)
        if a.shape[1] != vec.numel():
            raise PreimageError(
                f"direction has {vec.numel()} components but layer {layer} has {a.shape[1]}"
                " channels"
            )
        key = (a.device, a.dtype)
        if key not in cache:
            cache[key] = vec.to(device=a.device, dtype=a.dtype)
        v = cache[key].view(1, -1, *([1] * (a.dim() - 2)))
        return (a * v).sum(1).reshape(a.shape[0], -1).mean(1)

    return Objective(_per_element(values, batch), [layer], f"{layer}·direction")


def _shared_or_rows(t, idx):
    """Rows of a per-element tensor (first dimension N), or a shared one (first dimension 1)."""
    return t if idx is None or t.shape[0] == 1 else t.index_select(0, idx)


def _leading(t, dims):
    """A tensor given for one element (dims - 1 dimensions) or per element (dims), with a leading
    axis.
    """
    return t.unsqueeze(0) if t.dim() == dims - 1 else t


def inversion(layer, target, mask=None, weight=1.0, batch=None):
    """Minus the inversion loss of Mahendran & Vedaldi eqs. 2-3, times C, to be maximized.

        ℓ = ‖(Φ(x) - Φ0) ⊙ M‖² / ‖Φ0 ⊙ M‖²

    target: Φ0, one per element (N x C x H x W) or one for all (C x H x W).
    mask: 0/1, broadcastable to Φ0 (a spatial window, a channel subset), or None.
    weight: the constant C, a scalar or one per element.
    """
    cache = {}

    def values(ctx, idx):
        a = _rows(ctx.activations[layer], idx)
        key = (a.device, a.dtype)
        if key not in cache:
            t = _leading(torch.as_tensor(target).detach().to(a.device, a.dtype), a.dim())
            m = None if mask is None else torch.as_tensor(mask).to(a.device, a.dtype)
            t = t if m is None else t * m
            norm = t.pow(2).reshape(t.shape[0], -1).sum(1)
            c = torch.as_tensor(weight, dtype=a.dtype).reshape(-1).to(a.device)
            cache[key] = (t, m, norm, c)
        t, m, norm, c = cache[key]
        diff = (a if m is None else a * m) - _shared_or_rows(t, idx)
        loss = diff.pow(2).reshape(a.shape[0], -1).sum(1) / _shared_or_rows(norm, idx)
        return -_shared_or_rows(c, idx) * loss

    return Objective(_per_element(values, batch), [layer], f"inversion({layer})")


def inner_product(layer, weights, Z=1.0, batch=None):
    """⟨Φ(x), Φ0⟩ / Z per element: minus the loss of Mahendran & Vedaldi eq. 4, to be maximized.

    weights: Φ0, one per element (N x ...) or one for all. Z: a scalar or one per element.
    """
    cache = {}

    def values(ctx, idx):
        a = _rows(ctx.activations[layer], idx)
        key = (a.device, a.dtype)
        if key not in cache:
            w = _leading(torch.as_tensor(weights).detach().to(a.device, a.dtype), a.dim())
            cache[key] = (w, torch.as_tensor(Z, dtype=a.dtype).reshape(-1).to(a.device))
        w, z = cache[key]
        return (a * _shared_or_rows(w, idx)).reshape(a.shape[0], -1).sum(1) / _shared_or_rows(
            z, idx
        )

    return Objective(_per_element(values, batch), [layer], f"<{layer}, Φ0>/Z")


# -- penalties on the image --------------------------------------------------------------------


def l2(batch=None):
    """Squared L2 norm of the centred image, per pixel: (1/HW) Σ_{u,v,k} x². Finzi's λ1 term."""
    return Objective(
        _per_element(
            lambda ctx, idx: _rows(ctx.centered, idx).pow(2).sum((1, 2, 3)) / _area(ctx), batch
        ),
        name="l2",
        penalty=True,
    )


def tv(beta=1.0, V=1.0, batch=None):
    """Total variation TV^β (Mahendran & Vedaldi §3.2.2), normalised by area and V^β.

    (1/(HW V^β)) Σ_{u,v,k} ((x[v,u+1,k]-x[v,u,k])² + (x[v+1,u,k]-x[v,u,k])²)^(β/2).
    β = 1 is Finzi's eq. 1 term (per pixel instead of summed over pixels).
    """

    def values(ctx, idx):
        x = _rows(ctx.centered, idx)
        dx = x[..., :-1, 1:] - x[..., :-1, :-1]
        dy = x[..., 1:, :-1] - x[..., :-1, :-1]
        sq = dx * dx + dy * dy
        # the tiny epsilon keeps the β < 2 gradient finite where the image is flat
        g = sq if beta == 2 else (sq + 1e-12).pow(beta / 2)
        return g.sum((1, 2, 3)) / (_area(ctx) * V**beta)

    return Objective(_per_element(values, batch), name=f"tv^{beta:g}", penalty=True)


def bounded_range(alpha=6.0, B=1.0, batch=None):
    """N_α of Mahendran & Vedaldi eq. 5: (1/(HW B^α)) Σ_{v,u} (Σ_k x(v,u,k)²)^(α/2)."""

    def values(ctx, idx):
        x = _rows(ctx.centered, idx)
        return x.pow(2).sum(1).pow(alpha / 2).sum((1, 2)) / (_area(ctx) * B**alpha)

    return Objective(_per_element(values, batch), name=f"N_{alpha:g}", penalty=True)


def _area(ctx):
    return ctx.images.shape[-1] * ctx.images.shape[-2]


def log_prior(prior, batch=None):
    """log P(x) of the images under a prior module (a ``PixelCNNPrior``: nats per image).

    Cadena et al.'s eq. 1 adds α log P(x) with α = 0.0005; the prior reads the
    image in display space, before the random transforms.
    """

    def values(ctx, idx):
        return prior(_rows(ctx.images, idx).float())

    return Objective(_per_element(values, batch), name="log_prior", penalty=True)
