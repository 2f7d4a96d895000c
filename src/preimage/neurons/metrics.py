"""How well a model predicts neurons: correlations and the fraction of explainable variance
explained (FEVE; Cadena et al. 2019), per neuron, on a repeated test set."""

from __future__ import annotations

import warnings

import numpy as np


def _pearson(a, b):
    """Pearson's r along axis 0, per column; NaN rows (missing repeats) left out of each column."""
    out = np.full(a.shape[1], np.nan)
    for k in range(a.shape[1]):
        ok = np.isfinite(a[:, k]) & np.isfinite(b[:, k])
        x, y = a[ok, k] - a[ok, k].mean(), b[ok, k] - b[ok, k].mean()
        denominator = np.sqrt((x * x).sum() * (y * y).sum())
        out[k] = (x * y).sum() / denominator if denominator > 0 else np.nan
    return out


def trial_correlation(predicted, responses):
    """Per neuron: r between the prediction and every single trial. predicted M x K, responses
    M x R x K (NaN where a repeat is missing)."""
    m, r, k = responses.shape
    repeated = np.broadcast_to(predicted[:, None, :], (m, r, k)).reshape(m * r, k)
    return _pearson(repeated, responses.reshape(m * r, k))


def average_correlation(predicted, responses):
    """Per neuron: r between the prediction and the trial average of each image."""
    return _pearson(predicted, np.nanmean(responses, axis=1))


def feve(predicted, responses):
    """Per neuron: 1 - (MSE - σ²_noise) / (Var - σ²_noise).

    MSE: the mean squared error of the prediction over every trial; Var: the variance of every
    trial's response; σ²_noise: the mean over images of the variance across an image's repeats
    (unbiased, ddof 1) over the images with at least two repeats of that neuron. NaN where no
    variance is explainable (σ²_noise >= Var) or no image has two repeats.
    """
    err = (responses - predicted[:, None, :]) ** 2
    mse = np.nanmean(err.reshape(-1, err.shape[-1]), axis=0)
    total = np.nanvar(responses.reshape(-1, responses.shape[-1]), axis=0)
    counts = np.isfinite(responses).sum(1)  # M x K
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # images of one repeat: left out below
        spread = np.where(counts >= 2, np.nanvar(responses, axis=1, ddof=1), np.nan)
        noise = np.nanmean(spread, axis=0)
        explainable = total - noise
        return np.where(explainable > 0, 1 - (mse - noise) / explainable, np.nan)
