"""The statistics of a comparison (scipy.stats): medians with bootstrap 95 % intervals, the
bootstrap interval of a difference of medians, and the one-sided Mann-Whitney U test."""

from __future__ import annotations

import numpy as np

RESAMPLES = 10000
LEVEL = 0.95


def _median(x, axis=-1):
    return np.median(x, axis=axis)


def _median_difference(a, b, axis=-1):
    return np.median(a, axis=axis) - np.median(b, axis=axis)


def median_interval(values, seed=0):
    """{'median', 'low', 'high'}: the median and its percentile bootstrap 95 % interval (None
    fields for fewer than two values)."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return {"median": float(x[0]) if len(x) else None, "low": None, "high": None}
    ci = bootstrap(
        (x,), _median, n_resamples=RESAMPLES, confidence_level=LEVEL, method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval  # fmt: skip
    return {"median": float(np.median(x)), "low": float(ci.low), "high": float(ci.high)}


def difference_interval(a, b, seed=0):
    """{'difference', 'low', 'high'}: median(a) - median(b) and its bootstrap 95 % interval, the
    two samples resampled independently."""
    from scipy.stats import bootstrap

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return {"difference": None, "low": None, "high": None}
    ci = bootstrap(
        (a, b), _median_difference, n_resamples=RESAMPLES, confidence_level=LEVEL,
        method="percentile", paired=False, rng=np.random.default_rng(seed),
    ).confidence_interval  # fmt: skip
    diff = float(np.median(a) - np.median(b))
    return {"difference": diff, "low": float(ci.low), "high": float(ci.high)}


def greater_test(a, b):
    """The one-sided Mann-Whitney U test that a's values exceed b's: {'U', 'p'} (None fields for
    fewer than two values on a side)."""
    from scipy.stats import mannwhitneyu

    if len(a) < 2 or len(b) < 2:
        return {"U": None, "p": None}
    r = mannwhitneyu(a, b, alternative="greater")
    return {"U": float(r.statistic), "p": float(r.pvalue)}


def rank_correlation(x, y):
    """Spearman's ρ of paired values and its two-sided p: {'rho', 'p', 'units'} (None fields for
    fewer than three pairs)."""
    from scipy.stats import spearmanr

    if len(x) < 3:
        return {"rho": None, "p": None, "units": len(x)}
    r = spearmanr(x, y)
    return {"rho": float(r.statistic), "p": float(r.pvalue), "units": len(x)}
