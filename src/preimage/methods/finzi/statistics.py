"""Finzi's agreement statistics (§IV.B.1): how much repeated visualizations of one target agree,
read off a classifier's logits, and how two conditions' repeats compare."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import PreimageError


@torch.no_grad()
def classify(classifier, images, chunk=16):
    """Logits (N x classes, float64) of display-space images at the classifier's input size."""
    size = classifier.input_size
    out = []
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(classifier.device, torch.float32)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(
                x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
        y = classifier.logits(x)
        if y.dim() != 2:
            raise PreimageError(
                f"classifier {classifier.name} returns shape {tuple(y.shape)}; a classifier must"
                " return N x classes logits"
            )
        out.append(y.double().cpu())
    return torch.cat(out).numpy()


def _correlations(vectors):
    """Pearson correlation of every pair of rows (flattened), as a list in combinations order."""
    v = vectors.reshape(vectors.shape[0], -1).astype(np.float64)
    v = v - v.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.where(norm > 0, norm, 1.0)
    c = v @ v.T
    return [float(c[i, j]) for i, j in combinations(range(len(v)), 2)]


def repeat_statistics(logits, class_names=None, images=None, features=None, alpha=0.05):
    """The reliability statistics of N repeats from their logits (N x classes).

    - top-1 label of each repeat and the top-1 agreement: the share of repeats
      whose top-1 is the most common one;
    - the top-5 sets, and the share of all N x 5 top-5 labels that also appear
      in another repeat's top 5 (Finzi: 125 labels, 14 unique to a repeat, 89 % shared);
    - Spearman's ρ of the logits for every pair of repeats, with scipy's p-values:
      mean, min, max, the share with p < alpha, and the first pair alone (the paper's sample);
    - with images and features (N x ...), the mean pairwise Pearson correlation
      in pixel space and in feature space.
    """
    from scipy.stats import spearmanr

    logits = np.asarray(logits, dtype=np.float64)
    n, k = logits.shape
    if n < 2:
        raise PreimageError(f"bad --repeats {n}; reliability needs at least 2 repeats")
    name = (lambda i: class_names[i]) if class_names else (lambda i: str(i))
    top1 = logits.argmax(axis=1)
    label, count = Counter(top1.tolist()).most_common(1)[0]
    top5 = np.argsort(-logits, axis=1)[:, : min(5, k)]
    in_repeats = Counter(c for row in top5 for c in set(row.tolist()))
    total = top5.size
    shared = sum(1 for row in top5 for c in row if in_repeats[c] >= 2)

    pairs = list(combinations(range(n), 2))
    rho, p = [], []
    for i, j in pairs:
        r = spearmanr(logits[i], logits[j])
        rho.append(float(r.statistic))
        p.append(float(r.pvalue))
    rho, p = np.array(rho), np.array(p)
    stats = {
        "repeats": n,
        "classes": k,
        "top1": [int(c) for c in top1],
        "top1_names": [name(int(c)) for c in top1],
        "top1_most_common": {"class": int(label), "name": name(int(label)), "count": int(count)},
        "top1_agreement": count / n,
        "top5": [[int(c) for c in row] for row in top5],
        "top5_names": [[name(int(c)) for c in row] for row in top5],
        "top5_labels": int(total),
        "top5_unique_to_one_repeat": int(total - shared),
        "top5_shared": shared / total,
        "spearman": {
            "pairs": len(pairs),
            "mean_rho": float(rho.mean()),
            "min_rho": float(rho.min()),
            "max_rho": float(rho.max()),
            "fraction_p_below": float((p < alpha).mean()),
            "alpha": alpha,
            "max_p": float(p.max()),
            "first_pair": {"rho": float(rho[0]), "p": float(p[0])},
        },
    }
    if images is not None:
        stats["pixel_correlation"] = float(np.mean(_correlations(np.asarray(images))))
    if features is not None:
        stats["feature_correlation"] = float(np.mean(_correlations(np.asarray(features))))
    return stats


def logits_and_features(model, images, layer, classifier=None):
    """The classifier's logits (default: ``model``'s) and ``model``'s activations at ``layer``
    (NumPy) for images."""
    logits = classify(classifier or model, images)
    with torch.no_grad():
        features = model.activations(images.to(model.device), [layer])[layer].float().cpu().numpy()
    return logits, features


def condition_correlation(logits_a, logits_b):
    """Spearman's ρ (and p) between two conditions' mean logits over repeats (Finzi Fig. 6)."""
    from scipy.stats import spearmanr

    r = spearmanr(np.asarray(logits_a).mean(axis=0), np.asarray(logits_b).mean(axis=0))
    return float(r.statistic), float(r.pvalue)
