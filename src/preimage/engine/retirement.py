"""The shrinking batch of a render whose groups retire as they converge (``GroupConvergence``).

The parameterization's tensors and the optimizer's state keep only the rows still optimized; a
retired group's rows are parked, as they were when it stalled, until the end, when every row is
put back in its place for the final evaluation. The stop criterion's state shrinks with them.

Since the groups are independent, a step also runs them through the network in parts of whole
groups (``parts``), each part's forward and backward before the next, so that a step holds one
part's activations, not the whole batch's (on the CPU; a GPU takes the batch at once). On these
2-core machines a population of neurons' sweep (2,880 images of 40 px) ran at the same speed
either way (1.05-1.22 s a step in parts of 156 images, 1.06-1.07 s whole).
"""

from __future__ import annotations

import torch

from ..errors import PreimageError

PART_PIXELS = 256_000  # input pixels per part of a step on the CPU (a cnn core's 40 px: 160 images)


def part_size(images, group):
    """Images per part of a step for a batch like ``images``: whole groups of ``group``, about
    PART_PIXELS pixels on the CPU, the whole batch on a GPU (whose kernels want large batches)."""
    if images.device.type != "cpu":
        return images.shape[0]
    per = max(1, PART_PIXELS // (images.shape[-2] * images.shape[-1]) // group)
    return per * group


class ActiveSet:
    """Which of a render's n elements are still optimized, and the rows of the retired ones."""

    def __init__(self, param, optimizer, stop, images):
        n = images.shape[0]
        self.module = param
        self.names = [name for name, _ in param.named_parameters()]
        self.params = list(param.parameters())
        if not self.params or any(p.dim() == 0 or p.shape[0] != n for p in self.params):
            raise PreimageError(
                "group convergence retires images from the batch, so it needs a parameterization"
                f" whose every parameter has one row per image ({n}); use Convergence instead"
            )
        if n % stop.size:
            raise PreimageError(
                f"group convergence in groups of {stop.size} does not divide a batch of {n} images"
            )
        self.optimizer, self.stop, self.n = optimizer, stop, n
        self.parked = [p.detach().clone() for p in self.params]
        self.index = torch.arange(n)  # the original element of each current row
        self.steps = torch.zeros(n, dtype=torch.long)  # steps each element was optimized
        self.part = part_size(images, stop.size)
        self._split()

    def _split(self):
        """The current rows in parts of whole groups: [(rows, the objective of their groups)]."""
        size = self.stop.size
        groups = (self.index[::size] // size).tolist()
        per = self.part // size
        self.parts = [
            (slice(a * size, (a + len(chunk)) * size), self.stop.objective_for(chunk))
            for a, chunk in ((a, groups[a : a + per]) for a in range(0, len(groups), per))
        ]

    def record(self, trace, step, values):
        """This step's values into the trace row; a retired element keeps its last value."""
        if step and len(self.index) < self.n:
            trace[step] = trace[step - 1]
        trace[step, self.index.to(trace.device)] = values

    def retire(self, done, step):
        """Drop the groups ``done`` (a bool per current group) after ``step``."""
        rows = (~done).repeat_interleave(self.stop.size)
        self.steps[self.index[~rows]] = step + 1
        for i, (p, parked) in enumerate(zip(self.params, self.parked)):
            keep, gone = rows.to(p.device), (~rows).to(p.device)
            parked[self.index[~rows].to(p.device)] = p.detach()[gone]
            state = self.optimizer.state.pop(p, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.dim() and value.shape[0] == p.shape[0]:
                    state[key] = value[keep]
            self._swap(i, p.detach()[keep], state)
        self.stop.keep(~done)
        self.index = self.index[rows]
        self._split()

    def restore(self, steps):
        """Every element back in its place, after ``steps`` steps in all."""
        self.steps[self.index] = steps
        for i, (p, parked) in enumerate(zip(self.params, self.parked)):
            parked[self.index.to(p.device)] = p.detach()
            self._swap(i, parked, {})
        self.index = torch.arange(self.n)

    def _swap(self, i, value, state):
        """A new parameter for parameter i (resizing one in place through ``.data`` would leave
        autograd's cached record of its old shape), in the module and in the optimizer."""
        old, new = self.params[i], torch.nn.Parameter(value.contiguous())
        owner, _, leaf = self.names[i].rpartition(".")
        setattr(self.module.get_submodule(owner) if owner else self.module, leaf, new)
        for group in self.optimizer.param_groups:
            group["params"] = [new if q is old else q for q in group["params"]]
        if state:
            self.optimizer.state[new] = state
        self.params[i] = new
