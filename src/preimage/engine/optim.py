"""Optimizers: the one torch.optim does not have (Algorithm 1 of Mahendran & Vedaldi), and the
builder that turns a name and a learning rate into an optimizer."""

from __future__ import annotations

import torch

from ..errors import PreimageError


class AdaGradMomentum(torch.optim.Optimizer):
    """Algorithm 1 of Mahendran & Vedaldi: AdaGrad over a short window, with momentum.

        G_t  = ρ G_{t-1} + g_t²            (component-wise)
        η_t  = 1 / (1/η0 + sqrt(G_t))
        μ_t  = ρ μ_{t-1} - η_t g_t
        x_t+1 = Π(x_t + μ_t)

    The projection Π (onto pixels with RGB norm at most B+) is a constraint of
    the render loop, applied after every step; see ``params.PixelNormBound``.
    """

    def __init__(self, params, lr=0.01, rho=0.9):
        if lr <= 0:
            raise PreimageError(f"bad learning rate {lr}; it must be positive")
        super().__init__(params, {"lr": lr, "rho": rho})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            inv_lr, rho = 1.0 / group["lr"], group["rho"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["G"] = torch.zeros_like(p)
                    state["mu"] = torch.zeros_like(p)
                g = p.grad
                G, mu = state["G"], state["mu"]
                G.mul_(rho).addcmul_(g, g)
                eta = G.sqrt().add_(inv_lr).reciprocal_()
                mu.mul_(rho).addcmul_(eta, g, value=-1.0)
                p.add_(mu)
        return loss


OPTIMIZERS = ("adam", "adagrad-momentum")


class Optimizer:
    """Which optimizer and learning rate, before there are parameters to optimize.

    ``optimizer(params)`` builds the torch optimizer; ``describe()`` is what a result records.
    """

    def __init__(self, name="adam", lr=0.05):
        if name not in OPTIMIZERS:
            raise PreimageError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
        if not lr > 0:
            raise PreimageError(f"bad learning rate {lr}; it must be positive")
        self.name, self.lr = name, float(lr)

    def __call__(self, params):
        if self.name == "adagrad-momentum":
            return AdaGradMomentum(params, lr=self.lr)
        params = list(params)
        try:
            # the fused kernel is one pass over the parameters instead of several
            return torch.optim.Adam(params, lr=self.lr, fused=True)
        except (RuntimeError, TypeError):
            return torch.optim.Adam(params, lr=self.lr)

    def describe(self):
        return {"name": self.name, "lr": self.lr}
