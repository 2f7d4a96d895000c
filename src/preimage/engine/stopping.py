"""When to stop an optimization early: once no element's objective has improved for a while, or,
group by group, once a group's elements have all stopped improving (``GroupConvergence``)."""

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

    def stalled(self, step, values):
        """Update with this step's values; a bool per element: no improvement for ``patience``
        steps (all False before ``min_steps``)."""
        v = values.detach().double().cpu()
        if self.ema is None:
            self.ema, self.best = v.clone(), v.clone()
            self.last = torch.zeros_like(v, dtype=torch.long)
            return torch.zeros(v.shape, dtype=torch.bool)
        # in place: new state tensors each step would fragment the heap that render keeps
        self.ema.mul_(self.smoothing).add_(v, alpha=1 - self.smoothing)
        better = self.ema > self.best + self.rtol * self.best.abs() + self.atol
        self.best.copy_(torch.where(better, self.ema, self.best))
        self.last.masked_fill_(better, step)
        if step + 1 < self.min_steps:
            return torch.zeros(v.shape, dtype=torch.bool)
        return (step - self.last) >= self.patience

    def __call__(self, step, values):
        return bool(self.stalled(step, values).all())

    def describe(self):
        return {
            "patience": self.patience,
            "rtol": self.rtol,
            "atol": self.atol,
            "smoothing": self.smoothing,
        }


class GroupConvergence(Convergence):
    """The same rule per group of ``size`` consecutive elements: a group whose elements have all
    stalled is retired, and ``render`` optimizes the rest without it (a smaller batch each time),
    stopping when none is left.

    objective_for: kept -> the objective of a batch of only the groups ``kept`` (indices into the
    original groups, in order), for each smaller batch. The final evaluation uses the original
    objective on all the images. For batches of independent groups, such as a diverse sweep's
    (unit, λ) pairs, where one slow group would otherwise keep every finished one running.
    """

    def __init__(self, size, objective_for, **kwargs):
        super().__init__(**kwargs)
        self.size, self.objective_for = int(size), objective_for

    def stalled_groups(self, step, values):
        """A bool per group of the current batch: all its elements stalled."""
        return self.stalled(step, values).view(-1, self.size).all(1)

    def keep(self, groups):
        """Keep the state of these groups of the current batch (a bool per group)."""
        rows = groups.repeat_interleave(self.size)
        self.ema, self.best, self.last = self.ema[rows], self.best[rows], self.last[rows]

    def describe(self):
        return {**super().describe(), "per_group": self.size}


def convergence(patience):
    """A Convergence with this patience, or None (run every step) for patience 0."""
    return Convergence(patience=patience) if patience else None
