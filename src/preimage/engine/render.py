"""The optimization loop: one batch, one objective value per element.

    theta -> images -> random transforms -> preprocessing -> truncated forward
          -> objective per element -> backward -> optimizer step -> constraints

The loop holds the model's hooks only for its own duration, reads nothing
deeper than the deepest layer the objective needs, and records the
objective of every element at every step.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from .fast.cpu_memory import keep_freed_memory
from ..errors import PreimageError
from ..models.layers import capture
from .objectives import Context
from .optim import make_optimizer
from .params import ImageParam, NormalizedParam
from .transforms import parse_transforms


class Convergence:
    """Stop once no element's smoothed objective has improved for ``patience`` steps.

    The objective under random transforms is noisy, so each element's value is
    smoothed with an exponential moving average; an improvement must exceed
    ``rtol`` times the current magnitude (plus ``atol``).
    """

    def __init__(self, patience=50, rtol=1e-3, atol=1e-6, smoothing=0.9, min_steps=0):
        self.patience, self.rtol, self.atol, self.smoothing, self.min_steps = (
            patience,
            rtol,
            atol,
            smoothing,
            min_steps,
        )
        self.ema = self.best = self.last = None

    def __call__(self, step, values):
        v = values.detach().double().cpu()
        if self.ema is None:
            self.ema, self.best, self.last = (
                v.clone(),
                v.clone(),
                torch.zeros_like(v, dtype=torch.long),
            )
            return False
        self.ema = self.smoothing * self.ema + (1 - self.smoothing) * v
        better = self.ema > self.best + self.rtol * self.best.abs() + self.atol
        self.best = torch.where(better, self.ema, self.best)
        self.last = torch.where(better, torch.full_like(self.last, step), self.last)
        return step + 1 >= self.min_steps and bool(((step - self.last) >= self.patience).all())

    def describe(self):
        return {
            "patience": self.patience,
            "rtol": self.rtol,
            "atol": self.atol,
            "smoothing": self.smoothing,
        }


@dataclass
class RenderResult:
    images: torch.Tensor  # N x 3 x H x W, display space [0, 1], on the CPU
    inputs: (
        torch.Tensor
    )  # the exact tensors fed to the network in the final, deterministic evaluation
    objective: torch.Tensor  # final objective per element (targets plus weighted penalties)
    activations: torch.Tensor  # final value of the target terms per element (no penalties)
    trace: torch.Tensor  # steps x N objective per element per step
    steps: int
    seconds: float
    config: dict = field(default_factory=dict)
    labels: list = field(default_factory=list)


@torch.no_grad()
def _project(image_param, constraints, model):
    x = image_param()
    for c in constraints:
        x = c(x, model)
    image_param.set_images(x)


def _finite_or_raise(loss, step, objective, ctx):
    if math.isfinite(loss):
        return
    with torch.no_grad():
        parts = objective.breakdown(ctx)
    bad = [name for name, v in parts.items() if not torch.isfinite(v).all()]
    culprit = ", ".join(bad) if bad else "the objective's gradient (the images became non-finite)"
    raise PreimageError(
        f"optimization diverged at step {step}: non-finite value in term {culprit}; lower the"
        " learning rate or strengthen the penalties"
    )


def render(
    model,
    objective,
    n=1,
    size=None,
    param="fourier",
    decorrelate=True,
    output="sigmoid",
    decay=1.0,
    transforms="none",
    optimizer="adam",
    lr=0.05,
    steps=256,
    seed=0,
    constraints=(),
    stop=None,
    init=None,
    progress=True,
    desc="optimizing",
    labels=None,
):
    """Optimize N images to maximize ``objective``; returns a RenderResult.

    model: a VisionModel. objective: an Objective giving (N,) scores.
    param: 'pixel', 'fourier', an ImageParam or a NormalizedParam. transforms: a preset name, a
    spec string or a Pipeline. optimizer: 'adam' or 'adagrad-momentum'.
    constraints: projections applied after each step (such as params.PixelNormBound). stop: a Convergence (or None for exactly ``steps``).
    init: images (N x 3 x H x W in [0, 1]) to start from instead of noise.
    """
    device = model.device
    if device.type == "cpu":
        keep_freed_memory()
    size = int(size or model.input_size)
    generator = torch.Generator().manual_seed(int(seed))
    if isinstance(param, (ImageParam, NormalizedParam)):
        image_param = param.to(device)
    else:
        image_param = ImageParam(
            n,
            size,
            basis=param,
            decorrelate=decorrelate,
            output=output,
            decay=decay,
            generator=generator,
            device=device,
        )
    if init is not None:
        image_param.set_images(init)
    if constraints:  # the constraints hold from the start, not only after the first step
        _project(image_param, constraints, model)
    pipeline = parse_transforms(transforms)
    # transforms act on the normalized image, so the mean-colour fill is zero there: plain zero
    # padding
    fill = None
    if pipeline.fill != "mean":
        fill_display = (
            torch.as_tensor(pipeline.fill, dtype=torch.float32, device=device)
            .expand(3)
            .view(1, 3, 1, 1)
        )
        fill = model.normalize(fill_display).flatten().tolist()
    opt = make_optimizer(optimizer, image_param.parameters(), lr)
    names = sorted(objective.layers)
    addresses = [model.resolve_layer(name) for name in names]
    cscale, cshift = model.centering(torch.zeros(1, device=device))

    def context(images, inputs, cap):
        found = cap.run(inputs) if addresses else {}
        acts = {name: found[a] for name, a in zip(names, addresses)}
        return Context(acts, images, lambda: images * cscale + cshift)

    trace = []
    step = 0
    start = time.perf_counter()
    bar = tqdm(
        total=steps,
        desc=desc,
        disable=not progress,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )
    try:
        with capture(model.runner(addresses), addresses) as cap:
            for step in range(steps):
                opt.zero_grad(set_to_none=True)
                images = image_param()
                # the preprocessing runs inside the resampling when there are transforms
                seen = (
                    pipeline(images, generator, fill, model.affine(images), model.channels_last)
                    if pipeline
                    else model.normalize(images)
                )
                ctx = context(images, model.memory_format(seen), cap)
                values = objective(ctx)
                loss = -values.sum()
                loss.backward()
                total = float(loss.detach())
                _finite_or_raise(total, step, objective, ctx)
                opt.step()
                if constraints:
                    _project(image_param, constraints, model)
                values = values.detach()
                trace.append(values)
                bar.set_postfix_str(f"objective={-total / values.numel():.4g}", refresh=False)
                bar.update()
                if stop is not None and stop(step, values):
                    break
            seconds = time.perf_counter() - start
            with torch.no_grad():
                images = image_param()
                inputs = model.memory_format(pipeline.final_view(model.normalize(images)))
                ctx = context(images, inputs, cap)
                targets, penalties = objective.split(ctx)
                final = objective(ctx)
                _finite_or_raise(float(final.sum()), step + 1, objective, ctx)
    finally:
        bar.close()

    def per_element(v):
        return (
            (v if torch.is_tensor(v) else torch.full((images.shape[0],), float(v)))
            .detach()
            .float()
            .cpu()
        )

    config = {
        "n": images.shape[0],
        "size": size,
        "param": image_param.describe(),
        "transforms": pipeline.describe(),
        "optimizer": optimizer,
        "lr": lr,
        "max_steps": steps,
        "seed": seed,
        "constraints": [c.describe() for c in constraints],
        "stop": stop.describe() if stop is not None else None,
        "objective": repr(objective),
        "device": str(device),
    }
    return RenderResult(
        images=images.detach().float().cpu().contiguous(),
        inputs=inputs.detach().float().cpu().contiguous(),
        objective=per_element(final),
        activations=per_element(targets),
        trace=torch.stack(trace).float().cpu() if trace else torch.zeros(0, images.shape[0]),
        steps=len(trace),
        seconds=seconds,
        config=config,
        labels=list(labels) if labels else [str(i) for i in range(images.shape[0])],
    )
