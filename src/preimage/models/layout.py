"""How a layer's output holds its features and its positions, and the one view methods read.

Convolutional layers are N x C x H x W; Swin and some timm models keep N x H x W x C; vision
transformers N x L x D tokens: class or register tokens first, then the patch grid row by row.
Every objective reads a layer in one canonical layout, N x C x H x W (N x C without positions),
so ``LAYER:C`` is feature C averaged over positions whatever the model's own layout, and the
class token of a token layer is read apart (``LAYER:C@cls``). The canonical view is a view
(a permute and a reshape of the same storage), not a copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import PreimageError

OVERRIDE_FORMS = "nchw, nhwc, flat, tokens, tokens:P (P prefix tokens) or tokens:P:HxW"


@dataclass(frozen=True)
class Layout:
    """A layer's layout: ``kind`` (nchw, nhwc, tokens, flat), and for tokens the patch grid and
    the number of prefix tokens (class, registers) before it."""

    kind: str
    grid: tuple | None = None  # (rows, columns) of the patch tokens
    prefix: int = 0

    def canonical(self, t):
        """The output as N x C x H x W (N x C for a flat layer), a view of the same storage."""
        if self.kind == "nhwc":
            return t.permute(0, 3, 1, 2)
        if self.kind == "tokens":
            patches = t[:, self.prefix :, :].transpose(1, 2)
            return patches.unflatten(2, self.grid)
        return t

    def prefix_tokens(self, t):
        """The prefix tokens of a token layer as N x D x P (P = ``prefix``), or None."""
        if self.kind != "tokens" or not self.prefix:
            return None
        return t[:, : self.prefix, :].transpose(1, 2)

    def canonical_shape(self, shape):
        """One image's output shape (no batch axis) -> its canonical shape."""
        if self.kind == "nhwc":
            return (shape[2], shape[0], shape[1])
        if self.kind == "tokens":
            return (shape[1], *self.grid)
        return tuple(shape)

    def fits(self, shape):
        """Whether one image's output shape (no batch axis) can have this layout."""
        if self.kind in ("nchw", "nhwc"):
            return len(shape) == 3
        if self.kind == "tokens":
            return len(shape) == 2 and (
                self.grid is None or shape[0] == self.prefix + self.grid[0] * self.grid[1]
            )
        return len(shape) == 1

    def __str__(self):
        if self.kind == "tokens":
            grid = f"{self.grid[0]}x{self.grid[1]}" if self.grid else "?"
            return f"tokens {self.prefix}+{grid}" if self.prefix else f"tokens {grid}"
        return self.kind


def override_text(layout):
    """A Layout (or its text) as ``--layout`` writes it, which ``parse_layout`` reads back."""
    if not isinstance(layout, Layout):
        return str(layout)
    if layout.kind != "tokens":
        return layout.kind
    grid = f":{layout.grid[0]}x{layout.grid[1]}" if layout.grid else ""
    return f"tokens:{layout.prefix}{grid}"


NCHW = Layout("nchw")
FLAT = Layout("flat")


def parse_layout(text, layer=None):
    """An override as a user writes it (``nhwc``, ``tokens:1``, ``tokens:1:14x14``) -> Layout."""
    where = f" for layer {layer}" if layer else ""
    m = re.fullmatch(r"(nchw|nhwc|flat|tokens)(?::(\d+))?(?::(\d+)x(\d+))?", str(text).strip())
    if not m or (m.group(1) != "tokens" and (m.group(2) or m.group(3))):
        raise PreimageError(f"bad layout {text!r}{where}; valid: {OVERRIDE_FORMS}")
    kind = m.group(1)
    if kind != "tokens":
        return Layout(kind)
    grid = (int(m.group(3)), int(m.group(4))) if m.group(3) else None
    return Layout("tokens", grid, int(m.group(2) or 0))


def detect(shape, geometry, grids):
    """The layout of one output (shape without the batch axis), or None where it cannot know.

    geometry: the receptive-field tracer's record of the tensor (which axes are spatial, a flat
    token axis and its prefix). grids: the patch grids (rows, columns) of the layers before,
    latest first, for token outputs whose geometry was mixed away (after attention).
    """
    dims = len(shape) + 1
    if geometry is not None and not geometry.collapsed:
        axes = geometry.axes
        if dims == 4 and axes == (2, 3):
            return NCHW
        if dims == 4 and axes == (1, 2):
            return Layout("nhwc")
        if dims == 3 and axes == (1,):
            return Layout("tokens", tuple(geometry.hw), geometry.prefix)
    if dims == 2:
        return FLAT
    if dims == 4:  # no geometry to go by: a square image's grid is the pair of equal sizes
        c, h, w = shape
        if h == w and c != h:
            return NCHW
        if c == h and h != w:
            return Layout("nhwc")
        return None
    if dims == 3:
        for rows, cols in grids:
            extra = shape[0] - rows * cols
            if 0 <= extra <= 8:  # a class token and up to a few registers
                return Layout("tokens", (rows, cols), extra)
    return None
