"""Figures as PNG files (matplotlib), written atomically.

Figures are made without pyplot: they belong to no backend, so drawing one in a notebook neither
switches the notebook's backend nor leaves a figure open for it to show twice.
"""

from __future__ import annotations

import io
import os

import numpy as np

from .files import atomic_write


class _Figures:
    """pyplot's ``figure`` and ``subplots``, making figures outside pyplot's state."""

    @staticmethod
    def figure(figsize=None, **kwargs):
        from matplotlib.figure import Figure

        return Figure(figsize=figsize, **kwargs)

    def subplots(self, nrows=1, ncols=1, *, figsize=None, squeeze=True, **kwargs):
        fig = self.figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, squeeze=squeeze, **kwargs)


def pyplot():
    """What the figures here need of pyplot (``figure``, ``subplots``), without its global state."""
    return _Figures()


def figure_png(fig, dpi=110, tight=False):
    """A figure as PNG bytes (``dpi`` dots per inch; ``tight``: cropped to what is drawn)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    return buf.getvalue()


def save_figure(fig, path, dpi=110):
    """Write a figure to ``path`` as PNG (``dpi`` dots per inch)."""
    atomic_write(path, figure_png(fig, dpi))


def legend(ax, handles, labels, **kwargs):
    """A legend with exactly these labels.

    Labels passed with ``label=`` are dropped by matplotlib when they start
    with an underscore, which every EfficientNet layer name does (``_blocks.2``).
    """
    if handles:
        ax.legend(handles, labels, fontsize=kwargs.pop("fontsize", 8), **kwargs)


def lambda_axis(lambdas):
    """Positions for a λ sweep on a log axis,
    with λ = 0 one octave left of the smallest positive λ.
    """
    positive = [v for v in lambdas if v > 0]
    low = min(positive) / 2 if positive else 1.0
    return np.array([v if v > 0 else low for v in lambdas]), low


def tradeoff(sweeps, path, title=None):
    """Fig. 2A / 3A: mean activation and minimum distance against λ, normalized to 1 at λ = 0.

    One sweep: both curves, with the chosen λ marked. Several: the median of
    each normalized curve with its interquartile band.
    """
    plt = pyplot()
    x, low = lambda_axis(sweeps[0].lambdas)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, attr, label in (
        (axes[0], "normalized_activation", "mean activation / λ=0"),
        (axes[1], "normalized_distance", "min distance / λ=0"),
    ):
        values = np.stack([getattr(s, attr).numpy() for s in sweeps])
        if len(sweeps) == 1:
            ax.plot(x, values[0], marker="o")
            if sweeps[0].chosen is not None:
                ax.axvline(
                    x[sweeps[0].chosen],
                    color="k",
                    ls="--",
                    lw=0.8,
                    label=f"chosen λ = {sweeps[0].chosen_lambda:g}",
                )
                ax.legend(fontsize=8)
        else:
            q1, med, q3 = np.nanpercentile(values, [25, 50, 75], axis=0)
            ax.plot(x, med, marker="o", label=f"median of {len(sweeps)} units")
            ax.fill_between(x, q1, q3, alpha=0.3)
            ax.legend(fontsize=8)
        if attr == "normalized_activation":
            ax.axhline(sweeps[0].threshold, color="r", ls=":", lw=0.8)
        else:
            ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xlabel(f"λ (λ = 0 drawn at {low:g})")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    # fixed margins: tight_layout draws the figure once more, and this one is drawn per unit
    fig.subplots_adjust(
        left=0.08, right=0.98, bottom=0.15, top=0.88 if title else 0.95, wspace=0.28
    )
    save_figure(fig, path)


def histograms(groups, path, xlabel, title=None, log=True):
    """Overlaid histograms of one value per unit for several groups ({name: values}), medians
    marked.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    clean = {
        k: np.array([v for v in vals if v is not None and np.isfinite(v) and (v > 0 or not log)])
        for k, vals in groups.items()
    }
    allv = (
        np.concatenate([v for v in clean.values() if len(v)])
        if any(len(v) for v in clean.values())
        else np.array([1.0])
    )
    if log:
        bins = np.logspace(np.log10(allv.min()), np.log10(allv.max()) + 1e-9, 20)
        ax.set_xscale("log")
    else:
        bins = np.linspace(allv.min(), allv.max() + 1e-9, 20)
    handles, labels = [], []
    for k, v in clean.items():
        if len(v):
            handles.append(ax.hist(v, bins=bins, alpha=0.5)[2])
            labels.append(f"{k} (median {np.median(v):.3g}, n={len(v)})")
            ax.axvline(np.median(v), ls="--", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("units")
    legend(ax, handles, labels)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def sweep_grid(sweep, path):
    """Fig. 2B / 3B: one row of n images per λ, labelled with λ and the mean activation."""
    from .images import to_uint8

    plt = pyplot()
    L, n = sweep.images.shape[:2]
    tiles = [to_uint8(sweep.images[r, c]) for r in range(L) for c in range(n)]  # H x W x 3
    h, w, gap = tiles[0].shape[0], tiles[0].shape[1], 2
    # one mosaic in one axes: a grid of L x n axes costs matplotlib seconds per unit
    mosaic = np.full((L * (h + gap) - gap, n * (w + gap) - gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, n)
        mosaic[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    fig, ax = plt.subplots(figsize=(1.1 * n + 1.4, 1.1 * L + 0.4))
    ax.imshow(mosaic, interpolation="nearest")
    acts = sweep.normalized_activation
    marks = ["  ← chosen" if r == sweep.chosen else "" for r in range(L)]
    ax.set_yticks(
        [r * (h + gap) + h / 2 for r in range(L)],
        [f"λ={sweep.lambdas[r]:g}\n{float(acts[r]):.2f}{marks[r]}" for r in range(L)],
        fontsize=7,
    )
    ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.tick_params(length=0)
    fig.suptitle(f"{sweep.layer}:{sweep.channel}  (λ, mean activation / λ=0)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def invariance_panel(unit, path):
    """Fig. 8A for one unit: the texture, windowed crops of it, the templates, and the template-pair
    averages.
    """
    from .images import to_uint8

    plt = pyplot()
    rows = [
        ("templates", unit.templates),
        ("pair averages", unit.pairs),
        ("windowed crops", unit.crops),
    ]
    cols = max(len(r[1]) for r in rows)
    fig = plt.figure(figsize=(1.1 * cols + 2.8, 1.2 * len(rows) + 0.5))
    grid = fig.add_gridspec(len(rows), cols + 3)
    ax = fig.add_subplot(grid[:, :3])
    ax.imshow(to_uint8(unit.texture), interpolation="nearest")
    ax.set_title(
        (
            f"texture (SII {unit.shift_invariance_index:.2f})"
            if unit.shift_invariance_index is not None
            else "texture"
        ),
        fontsize=8,
    )
    ax.axis("off")
    for r, (label, images) in enumerate(rows):
        for c in range(cols):
            ax = fig.add_subplot(grid[r, 3 + c])
            ax.axis("off")
            if c < len(images):
                ax.imshow(to_uint8(images[c]), interpolation="nearest")
        fig.add_subplot(grid[r, 3]).set_title(label, fontsize=7, loc="left")
        fig.axes[-1].axis("off")
    lci = unit.linear_combination_index
    fig.suptitle(
        (
            f"{unit.layer}:{unit.channel}   LCI {lci:.2f}"
            if lci is not None
            else f"{unit.layer}:{unit.channel}"
        ),
        fontsize=9,
    )
    save_figure(fig, path)


def scatter(groups, path, xlabel, ylabel, title=None):
    """Fig. 8E: one point per unit, a colour per group ({name: (x values, y values)})."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    handles = [ax.scatter(x, y, s=14, alpha=0.7) for x, y in groups.values()]
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    legend(ax, handles, [f"{name} (n={len(x)})" for name, (x, _) in groups.items()])
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


INVARIANCE_PLOTS = ("shift_invariance.png", "linear_combination.png", "scatter.png")


def invariance_plots(groups, folder, prefix="", title=None):
    """Both invariance indices as histograms and against each other (Fig. 8), one colour per group.

    groups: {label: [(shift invariance index, linear combination index), ...]}, None for a unit
    that was never active. Writes ``folder/prefix`` + each name of INVARIANCE_PLOTS; returns their
    paths.
    """
    paths = [os.path.join(folder, prefix + name) for name in INVARIANCE_PLOTS]
    for k, label in enumerate(("shift invariance index", "linear combination index")):
        values = {name: [pair[k] for pair in v] for name, v in groups.items()}
        histograms(values, paths[k], xlabel=label, title=title, log=False)
    both = {k: [(s, c) for s, c in v if s is not None and c is not None] for k, v in groups.items()}
    scatter(
        {k: ([s for s, _ in v], [c for _, c in v]) for k, v in both.items()},
        paths[2],
        xlabel="shift invariance index",
        ylabel="linear combination index",
        title=title,
    )
    return paths


def logits_plot(logits, path, classes=100, title=None):
    """Finzi Fig. 4b: the logits of the first ``classes`` classes, one line per repeat."""
    plt = pyplot()
    logits = np.asarray(logits)[:, :classes]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for row in logits:
        ax.plot(np.arange(logits.shape[1]), row, lw=0.8, alpha=0.6)
    ax.set_xlabel(f"class index (first {logits.shape[1]})")
    ax.set_ylabel("logit")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def image_rows(rows, path, columns=None, row_height=1.6):
    """Labelled rows of images: [(row label, [(title, image N x 3 x H x W in [0, 1] or None)])]."""
    from .images import to_uint8

    plt = pyplot()
    columns = columns or max(len(images) for _, images in rows)
    fig, axes = plt.subplots(
        len(rows),
        columns,
        figsize=(row_height * columns + 1.2, row_height * len(rows) + 0.3),
        squeeze=False,
    )
    for r, (label, images) in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(images) and images[c][1] is not None:
                title, image = images[c]
                ax.imshow(to_uint8(image))
                if title:
                    ax.set_title(title, fontsize=7)
        axes[r][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    save_figure(fig, path)
