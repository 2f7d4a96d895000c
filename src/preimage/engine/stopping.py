"""When to stop an optimization early: once no element's objective has improved for a while."""

from __future__ import annotations

import torch


class Convergence:
    """Stop once no element's smoothed objective has improved for ``patience`` steps.

    The objective under random transforms is noisy, so each element's value is smoothed with an
    exponential moving average (``smoothing``); an improvement must exceed ``rtol`` times the
    current magnitude (plus ``atol``). ``min_steps``: never stop before this many steps.
    """

    def __init__(self, patience=50, rtol=1e-3, atol=1e-6, smoothing=0.9, min_steps=0):
        self.patience, self.rtol, self.atol = patience, rtol, atol
        self.smoothing, self.min_steps = smoothing, min_steps
        self.ema = self.best = self.last = None

    def __call__(self, step, values):
        v = values.detach().double().cpu()
        if self.ema is None:
            self.ema, self.best = v.clone(), v.clone()
            self.last = torch.zeros_like(v, dtype=torch.long)
            return False
        # in place: new state tensors each step would fragment the heap that render keeps
        self.ema.mul_(self.smoothing).add_(v, alpha=1 - self.smoothing)
        better = self.ema > self.best + self.rtol * self.best.abs() + self.atol
        self.best.copy_(torch.where(better, self.ema, self.best))
        self.last.masked_fill_(better, step)
        stalled = bool(((step - self.last) >= self.patience).all())
        return step + 1 >= self.min_steps and stalled

    def describe(self):
        return {
            "patience": self.patience,
            "rtol": self.rtol,
            "atol": self.atol,
            "smoothing": self.smoothing,
        }


def convergence(patience):
    """A Convergence with this patience, or None (run every step) for patience 0."""
    return Convergence(patience=patience) if patience else None
