"""The figures of a comparison, one panel per layer and one colour per run: Cadena et al.'s
Fig. 5A (normalized activation and distance against λ), Fig. 5B (the diversity gains'
histograms) and Fig. 8E (shift invariance against linear combination index)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..io.figures import lambda_axis, pyplot, save_figure

COLOURS = ("C0", "C1", "C2", "C3", "C4", "C5")


def _grid(plt, rows, layers, height=3.0):
    fig, axes = plt.subplots(rows, len(layers), figsize=(3.6 * len(layers) + 0.6, height * rows),
                             squeeze=False)  # fmt: skip
    return fig, axes


def curves(runs, layers, path):
    """Fig. 5A: per layer, the median normalized activation (top) and minimum distance (bottom)
    against λ with the interquartile band, each run's units."""
    plt = pyplot()
    fig, axes = _grid(plt, 2, layers)
    for col, layer in enumerate(layers):
        for run, colour in zip(runs, COLOURS):
            units = [u for u in run.layers.get(layer, {}).values() if u.lambdas]
            if not units:
                continue
            # a campaign rerun with other --lambdas holds several grids: draw the commonest
            grids = Counter(tuple(u.lambdas) for u in units)
            units = [u for u in units if tuple(u.lambdas) == grids.most_common(1)[0][0]]
            x, low = lambda_axis(units[0].lambdas)
            for row, key in enumerate(("normalized_activation", "normalized_distance")):
                values = np.array([getattr(u, key) for u in units], dtype=float)
                q1, med, q3 = np.nanpercentile(values, [25, 50, 75], axis=0)
                ax = axes[row][col]
                ax.plot(x, med, marker="o", ms=3, color=colour, label=f"{run.label} ({len(units)})")
                ax.fill_between(x, q1, q3, color=colour, alpha=0.2)
                ax.set_xscale("log")
                ax.set_xlabel(f"λ (λ = 0 at {low:g})", fontsize=8)
        axes[0][col].set_title(layer, fontsize=9)
        axes[0][col].axhline(0.9, color="k", ls=":", lw=0.8)
        axes[1][col].set_yscale("log")
        axes[0][col].legend(fontsize=7)
    axes[0][0].set_ylabel("activation / λ=0")
    axes[1][0].set_ylabel("min distance / λ=0")
    fig.tight_layout()
    save_figure(fig, path)


def gain_histograms(runs, layers, path):
    """Fig. 5B: per layer, the histograms of the diversity gains (log bins), medians dashed."""
    plt = pyplot()
    fig, axes = _grid(plt, 1, layers)
    for col, layer in enumerate(layers):
        ax = axes[0][col]
        groups = [[g for g in run.values(layer, "diversity_gain") if g > 0] for run in runs]
        every = [g for v in groups for g in v] or [1.0]
        bins = np.logspace(np.log10(min(every)), np.log10(max(every)) + 1e-9, 16)
        for run, v, colour in zip(runs, groups, COLOURS):
            if v:
                ax.hist(v, bins=bins, alpha=0.5, color=colour,
                        label=f"{run.label} (median {np.median(v):.2f})")  # fmt: skip
                ax.axvline(np.median(v), color=colour, ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(layer, fontsize=9)
        ax.set_xlabel("diversity gain (min distance at chosen λ / λ=0)", fontsize=8)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("units")
    fig.tight_layout()
    save_figure(fig, path)


def index_scatter(runs, layers, path):
    """Fig. 8E: per layer, each unit's shift invariance index against its linear combination
    index."""
    plt = pyplot()
    fig, axes = _grid(plt, 1, layers)
    for col, layer in enumerate(layers):
        ax = axes[0][col]
        for run, colour in zip(runs, COLOURS):
            s, c = run.index_pairs(layer)
            if s:
                ax.scatter(s, c, s=12, alpha=0.7, color=colour, label=f"{run.label} ({len(s)})")
        ax.set_title(layer, fontsize=9)
        ax.set_xlabel("shift invariance index", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("linear combination index")
    fig.tight_layout()
    save_figure(fig, path)
