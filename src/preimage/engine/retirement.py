"""The shrinking batch of a render whose groups retire as they converge (``GroupConvergence``).

The parameterization's tensors and the optimizer's state keep only the rows still optimized; a
retired group's rows are parked, as they were when it stalled, until the end, when every row is
put back in its place for the final evaluation. The stop criterion's state shrinks with them.
"""

from __future__ import annotations

import torch

from ..errors import PreimageError


class ActiveSet:
    """Which of a render's n elements are still optimized, and the rows of the retired ones."""

    def __init__(self, param, optimizer, stop, n):
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

    def record(self, trace, step, values):
        """This step's values into the trace row; a retired element keeps its last value."""
        if step and len(self.index) < self.n:
            trace[step] = trace[step - 1]
        trace[step, self.index.to(trace.device)] = values

    def retire(self, done, step):
        """Drop the groups ``done`` (a bool per current group) after ``step``; the objective of the
        groups left."""
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
        kept = (self.index[:: self.stop.size] // self.stop.size).tolist()
        return self.stop.objective_for(kept)

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
