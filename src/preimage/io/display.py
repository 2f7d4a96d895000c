"""Results that show themselves in a notebook, and ``show`` for any images.

A result left as the last line of a cell displays its pictures (the files its ``save`` writes,
the grid first), what it measured (the lines the command line prints) and how it was made. The
pictures are the saved ones, so a notebook shows exactly what a run folder holds.
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile

import numpy as np

MAX_PICTURES = 8  # a sweep over many units saves a figure per unit: the first few make the point


class Picture:
    """PNG bytes that display themselves in a notebook and save themselves as a file."""

    def __init__(self, png):
        self.png = png

    def _repr_png_(self):
        return self.png

    @property
    def size(self):
        """(width, height) in pixels."""
        from PIL import Image

        return Image.open(io.BytesIO(self.png)).size

    def save(self, path):
        """Write the PNG to ``path``."""
        from .files import atomic_write

        atomic_write(path, self.png)

    def __repr__(self):
        return f"<Picture {self.size[0]} x {self.size[1]} PNG>"


def as_images(images):
    """Tensor or array -> N x H x W x 3 float in [0, 1].

    Accepts H x W, C x H x W, H x W x C, N x C x H x W or N x H x W x C with 1 or 3 channels;
    uint8 is read as 0..255; floats outside [0, 1] are stretched per image to fill it.
    """
    try:
        import torch

        if torch.is_tensor(images):
            images = images.detach().float().cpu().numpy()
    except ImportError:  # pragma: no cover  (the package needs torch; show's arrays do not)
        pass
    a = np.asarray(images)
    integer = a.dtype == np.uint8
    a = a.astype(np.float64) / (255.0 if integer else 1.0)
    if a.ndim == 2:
        a = a[None, ..., None]
    elif a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"show: images of shape {np.shape(images)}; give 2 to 4 dimensions")
    if a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)
    if a.shape[-1] not in (1, 3):
        raise ValueError(f"show: images of shape {np.shape(images)}; give 1 or 3 channels")
    out = []
    for im in a:
        lo, hi = float(im.min()), float(im.max())
        if lo < 0 or hi > 1:
            im = (im - lo) / (hi - lo) if hi > lo else np.zeros_like(im)
        out.append(np.repeat(im, 3, axis=-1) if im.shape[-1] == 1 else im)
    return np.stack(out)


def show(images, labels=None, values=None, columns=None):
    """A grid of images that displays itself in a notebook (``Picture``).

    images: a tensor or array (``as_images``); labels: a title per image; values: a number per
    image, written under its title (an activation, say).
    """
    from .images import grid, png_bytes

    a = as_images(images)
    if labels is None and values is None:
        return Picture(png_bytes(grid(a.transpose(0, 3, 1, 2), columns)))
    labels = list(labels) if labels is not None else [""] * len(a)
    values = list(values) if values is not None else [None] * len(a)
    if not len(labels) == len(values) == len(a):
        raise ValueError(f"show: {len(a)} images, {len(labels)} labels, {len(values)} values")
    titles = [
        f"{label}\n{float(v):.3g}" if v is not None else str(label)
        for label, v in zip(labels, values)
    ]
    return Picture(labelled_grid(a, titles, columns))


def labelled_grid(images, titles, columns=None):
    """N x H x W x 3 in [0, 1] with a title over each -> PNG bytes."""
    from .figures import figure_png, pyplot

    n = len(images)
    columns = columns or min(n, 8)
    rows = -(-n // columns)
    fig, axes = pyplot().subplots(
        rows, columns, figsize=(1.5 * columns, 1.75 * rows), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(images[i], interpolation="nearest" if images[i].shape[0] < 64 else None)
            ax.set_title(titles[i], fontsize=7)
    return figure_png(fig, tight=True)


# -- results -------------------------------------------------------------------------------------


SHOWN_FIRST = ("grid.png", "*.png", "*/*.png", "*/*/*.png")


def saved_pictures(result):
    """[(name, PNG bytes)]: the pictures ``result.save`` writes, in the order of the result's
    ``shown_first`` patterns (by default the grid, the other top-level figures, then those in
    subfolders), each once; single images (``images/``) are left to the grid. Also returns the
    summary lines that do not name the temporary folder."""
    import glob

    with tempfile.TemporaryDirectory(prefix="preimage-show-") as folder:
        result.save(folder)
        pictures, seen = [], set()
        for pattern in getattr(result, "shown_first", SHOWN_FIRST) + SHOWN_FIRST:
            for path in sorted(glob.glob(os.path.join(folder, pattern))):
                rel = os.path.relpath(path, folder)
                if rel.startswith("images" + os.sep) or rel in seen:
                    continue
                with open(path, "rb") as f:
                    png = f.read()
                seen.add(rel)
                if png not in seen:  # a one-unit sweep's unit figures are the run's own
                    pictures.append((rel, png))
                    seen.add(png)
        lines = [line for line in result.summary(folder) if folder not in line]
    return pictures, lines


def _img(name, png):
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure style="display:inline-block;margin:4px;vertical-align:top"><img'
        f' src="data:image/png;base64,{data}" alt="{html.escape(name)}"'
        f' style="max-width:{"100%" if name == "grid.png" else "460px"}">'
        f'<figcaption style="font-size:small">{html.escape(name)}</figcaption></figure>'
    )


def _made_by(config):
    def listed(value):
        return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value

    model = listed(config.get("model") or config.get("models") or "")
    if config.get("weights"):
        model = f"{model} ({listed(config['weights'])} weights)"
    steps = f"{config['steps']} steps" if config.get("steps") else ""
    return " · ".join(str(p) for p in (config.get("method"), model, steps) if p)


def page(title, lines, pictures, more=0):
    """The HTML a notebook shows: a title, the measured lines and the pictures."""
    text = "\n".join(lines)
    body = "".join(_img(name, png) for name, png in pictures)
    tail = f"<p><i>... and {more} more pictures; save() writes them all</i></p>" if more else ""
    return (
        f'<div class="preimage"><p><b>{html.escape(title)}</b></p>'
        + (f"<pre>{html.escape(text)}</pre>" if text else "")
        + f"<div>{body}</div>{tail}</div>"
    )


def result_html(result):
    """A method's result as HTML: its saved pictures and summary (``Result._repr_html_``); the
    result's ``labelled_grid()``, where it has one, replaces the plain grid."""
    pictures, lines = saved_pictures(result)
    labelled = result.labelled_grid()
    if labelled is not None:
        pictures = [("grid.png", labelled.png)] + [p for p in pictures if p[0] != "grid.png"]
    shown = pictures[:MAX_PICTURES]
    config = getattr(result, "config", {}) or {}
    return page(_made_by(config) or type(result).__name__, lines, shown, len(pictures) - len(shown))
