"""The optimization loop: one batch, one objective value per element.

    theta -> images -> random transforms -> preprocessing -> views -> truncated forward
          -> objective per element -> backward -> optimizer step -> constraints

``render`` takes objects: the model, the objective, the parameterization, the transforms, the
views, the optimizer and the stop criterion. The loop holds the model's hooks only for its own
duration, reads nothing deeper than the deepest layer the objective needs, and records the
objective of every element at every step.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm  # a notebook bar in Jupyter, a text bar in a terminal

from ..errors import PreimageError
from ..models.layers import capture
from .fast.cpu_memory import keep_freed_memory
from .objectives import Context
from .optim import Optimizer
from .retirement import ActiveSet
from .stopping import Convergence, GroupConvergence
from .transforms import Pipeline

__all__ = ["render", "RenderResult", "Convergence"]


@dataclass
class RenderResult:
    """What a render returns; images and values are on the CPU.

    images: N x C x H x W, display space [0, 1]. inputs: the exact tensors fed to the network in
    the final, deterministic evaluation (N·K views when there is a views stage). objective: the
    final objective per element (targets plus weighted regularizers). activations: the final
    value of the target terms per element. trace: steps x N, the objective per element per
    step. measurements: what the objective's terms measured on the final images (such as the
    diversity term's closest distances), by term name. element_steps: the steps each element was
    optimized (fewer than ``steps`` for a group retired early by a ``GroupConvergence``).
    """

    images: torch.Tensor
    inputs: torch.Tensor
    objective: torch.Tensor
    activations: torch.Tensor
    trace: torch.Tensor
    steps: int
    seconds: float
    config: dict = field(default_factory=dict)
    labels: list = field(default_factory=list)
    measurements: dict = field(default_factory=dict)
    element_steps: torch.Tensor | None = None

    def picture(self):
        """The images with their labels and final activations (a ``Picture``)."""
        from ..io.display import show

        labels = self.labels or [str(i) for i in range(len(self.images))]
        values = self.activations.reshape(len(self.images), -1).mean(1).tolist()
        return show(self.images, labels, values)

    def _repr_png_(self):
        return self.picture().png


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


def _objects(model, param, transforms, optimizer):
    if not (callable(param) and hasattr(param, "parameters") and hasattr(param, "set_images")):
        raise PreimageError(
            f"render takes a parameterization object, not {type(param).__name__}: such as"
            " preimage.ImageParam(n, size) (or a module with set_images and describe)"
        )
    channels = getattr(param, "channels", model.channels)
    if channels != model.channels:
        raise PreimageError(
            f"the parameterization makes {channels}-channel images and model {model.name} takes"
            f" {model.channels}; give ImageParam(..., channels={model.channels})"
        )
    if isinstance(transforms, str) or isinstance(optimizer, str):
        raise PreimageError(
            "render takes objects: transforms=preimage.parse_transforms('finzi'),"
            " optimizer=preimage.Optimizer('adam', lr=0.05)"
        )
    return (
        transforms if transforms is not None else Pipeline([]),
        optimizer if optimizer is not None else Optimizer(),
    )


class _Forward:
    """Images -> what the network sees -> a Context with the activations the objective reads."""

    def __init__(self, model, objective, pipeline, views):
        self.model, self.pipeline, self.views = model, pipeline, views
        self.names = sorted(objective.layers)
        self.addresses = [model.resolve_layer(name) for name in self.names]
        device = model.device
        self.centering = model.centering(torch.zeros(1, device=device))
        self.fill = None
        if pipeline.fill != "mean":
            # transforms act on the normalized image, where the mean colour is zero (no fill)
            channels = model.channels
            shape = (1, channels, 1, 1)
            fill = torch.as_tensor(pipeline.fill, dtype=torch.float32, device=device).flatten()
            if fill.numel() not in (1, channels):
                raise PreimageError(
                    f"bad fill {pipeline.fill!r} for a model of {channels} channel(s): give one"
                    " value, or one per channel"
                )
            self.fill = model.normalize(fill.expand(channels).view(shape)).flatten().tolist()

    def step(self, images, generator, cap):
        """The random view of one optimization step."""
        model = self.model
        if self.pipeline:  # the preprocessing runs inside the resampling
            channels_last = model.channels_last and self.views is None
            seen = self.pipeline(images, generator, self.fill, model.affine(images), channels_last)
        else:
            seen = model.normalize(images)
        groups = None
        if self.views is not None:
            seen, groups = self.views(seen, generator)
        return self.context(images, model.memory_format(seen), groups, cap)

    def final(self, images, cap):
        """The deterministic view of the final evaluation: (inputs, Context)."""
        seen = self.pipeline.final_view(self.model.normalize(images))
        groups = None
        if self.views is not None:
            seen, groups = self.views.final(seen)
        inputs = self.model.memory_format(seen)
        return inputs, self.context(images, inputs, groups, cap)

    def context(self, images, inputs, groups, cap):
        found = cap.run(inputs) if self.addresses else {}
        acts = {name: found[a] for name, a in zip(self.names, self.addresses)}
        for name, a in zip(self.names, self.addresses):
            if f"{a}@prefix" in found:  # a token layer's class and register tokens
                acts[f"{name}@prefix"] = found[f"{a}@prefix"]
        scale, shift = self.centering
        return Context(acts, images, lambda: images * scale + shift, views=groups)


def render(
    model,
    objective,
    param,
    *,
    transforms=None,
    views=None,
    optimizer=None,
    steps=256,
    stop=None,
    constraints=(),
    seed=None,
    generator=None,
    init=None,
    progress=True,
    desc="optimizing",
    labels=None,
):
    """Optimize a batch of images to maximize ``objective``; returns a RenderResult.

    model: a VisionModel. objective: an Objective giving one score per element. param: the
    parameterization (an ``ImageParam``, a ``NormalizedParam``, or any module whose call returns
    the N images and which has ``set_images`` and ``describe``). transforms: a ``Pipeline`` of
    random transforms (``parse_transforms``), or None. views: a views stage (such as
    ``WindowedCrops``), or None. optimizer: an ``Optimizer`` (default Adam at 0.05). steps: the
    most steps. stop: a ``Convergence`` (None: exactly ``steps``), or a ``GroupConvergence``,
    which drops each group from the batch once it has converged. constraints: projections
    applied after each step (such as ``PixelNormBound``). generator: the random transforms and
    views draw from it (default: a new one seeded with ``seed``, 0 when neither is given; the
    record keeps ``seed``). init: images to start from.
    """
    if model.device.type == "cpu":
        keep_freed_memory()
    pipeline, optimizer = _objects(model, param, transforms, optimizer)
    if generator is None:
        seed = 0 if seed is None else seed
        generator = torch.Generator().manual_seed(int(seed))
    image_param = param.to(model.device) if hasattr(param, "to") else param
    if init is not None:
        image_param.set_images(init)
    if constraints:  # the constraints hold from the start, not only after the first step
        _project(image_param, constraints, model)
    forward = _Forward(model, objective, pipeline, views)
    opt = optimizer(image_param.parameters())
    bar = tqdm(
        total=steps,
        desc=desc,
        disable=not progress,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )
    loop = (image_param, forward, objective, opt, constraints, stop, bar)
    try:
        with capture(model.runner(forward.addresses), forward.addresses, model.layout_at) as cap:
            trace, seconds, element_steps = _optimize(model, loop, steps, generator, cap)
            final = _evaluate(image_param, forward, objective, len(trace), cap)
    finally:
        bar.close()
    images, inputs, final_values, targets, measured = final
    config = _config(model, objective, images, image_param, pipeline, views, optimizer, steps, stop)
    config.update(n=images.shape[0], seed=seed, constraints=[c.describe() for c in constraints])
    n = images.shape[0]
    return RenderResult(
        images=images.detach().float().cpu().contiguous(),
        inputs=inputs.detach().float().cpu().contiguous(),
        objective=_per_element(final_values, n),
        activations=_per_element(targets, n),
        trace=trace.float().cpu() if len(trace) else torch.zeros(0, n),
        steps=len(trace),
        seconds=seconds,
        config=config,
        labels=list(labels) if labels else [str(i) for i in range(n)],
        measurements={k: v.detach().float().cpu() for k, v in measured.items()},
        element_steps=element_steps
        if len(element_steps) == n
        else torch.zeros(n, dtype=torch.long),
    )


def _optimize(model, loop, steps, generator, cap):
    """The steps: returns the objective of every element at every step, the seconds, and the
    steps of each element."""
    image_param, opt, stop = loop[0], loop[3], loop[5]
    active = None
    if isinstance(stop, GroupConvergence):
        with torch.no_grad():
            active = ActiveSet(image_param, opt, stop, image_param())
    start = time.perf_counter()
    try:
        trace, step = _steps(model, loop, steps, generator, cap, active)
    except BaseException:  # every row back in the caller's parameterization, even on failure
        if active is not None:
            active.restore(0)
        raise
    seconds = time.perf_counter() - start
    if trace is None:  # no step
        return torch.zeros(0, 0), seconds, torch.zeros(0, dtype=torch.long)
    if active is None:
        return trace[: step + 1], seconds, torch.full((trace.shape[1],), step + 1)
    active.restore(step + 1)
    return trace[: step + 1], seconds, active.steps


def _steps(model, loop, steps, generator, cap, active):
    """The loop itself: (the trace buffer, the last step), (None, None) for no step."""
    image_param, forward, objective, opt, constraints, stop, bar = loop
    # One buffer for the whole trace: a small tensor kept alive every step would sit in a hole of
    # the freed activations that malloc keeps (keep_freed_memory) and fragment the heap, which
    # then grows by the size of a step's activations each step.
    trace = step = None
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        parts = [(None, objective)] if active is None else active.parts
        values, ctx, last = _gradient(image_param, forward, parts, generator, cap, step)
        total = -float(values.sum())
        _finite_or_raise(total, step, last, ctx)
        opt.step()
        if constraints:
            _project(image_param, constraints, model)
        values = values.detach()
        if trace is None:
            trace = torch.empty((steps, values.numel()), dtype=values.dtype, device=values.device)
        if active is None:
            trace[step] = values
        else:
            active.record(trace, step, values)
        bar.set_postfix_str(f"objective={-total / values.numel():.4g}", refresh=False)
        bar.update()
        if active is not None:
            done = stop.stalled_groups(step, values)
            if bool(done.all()):
                break
            if bool(done.any()):
                active.retire(done, step)
        elif stop is not None and stop(step, values):
            break
    return trace, step


def _gradient(image_param, forward, parts, generator, cap, step):
    """One step's forward and backward, part by part: (values, the last part's Context and
    objective). parts: [(rows, objective)], rows None for the whole batch."""
    images = image_param()
    grads, out = [], []
    for rows, objective in parts:
        piece = images if rows is None else images[rows].detach().requires_grad_()
        ctx = forward.step(piece, generator, cap)
        values = objective(ctx)
        if tuple(values.shape) != (piece.shape[0],):
            raise PreimageError(
                f"the objective gives {tuple(values.shape)} values for {piece.shape[0]} images;"
                " it must give one per image (with a views stage, wrap per-view terms in"
                " objectives.over_views)"
            )
        if len(parts) > 1:  # name the term where it went wrong, in whichever part
            _finite_or_raise(-float(values.detach().sum()), step, objective, ctx)
        (-values.sum()).backward()
        out.append(values.detach())
        if rows is not None:
            grads.append(piece.grad)
    if grads:
        images.backward(torch.cat(grads))
    return (out[0] if len(out) == 1 else torch.cat(out)), ctx, objective


@torch.no_grad()
def _evaluate(image_param, forward, objective, steps, cap):
    """The final images, once more without randomness: their inputs, objective, targets and
    measurements."""
    images = image_param()
    inputs, ctx = forward.final(images, cap)
    targets, _ = objective.split(ctx)
    final = objective(ctx)
    _finite_or_raise(float(final.sum()), steps, objective, ctx)
    return images, inputs, final, targets, objective.measurements(ctx)


def _config(model, objective, images, image_param, pipeline, views, optimizer, steps, stop):
    """What a render records of how it was made."""
    h, w = images.shape[-2:]
    return {
        "size": h if h == w else [h, w],
        "param": image_param.describe(),
        "transforms": pipeline.describe(),
        "views": views.describe() if views is not None else None,
        "optimizer": optimizer.name,
        "lr": optimizer.lr,
        "max_steps": steps,
        "stop": stop.describe() if stop is not None else None,
        "objective": repr(objective),
        "device": str(model.device),
    }


def _per_element(v, n):
    return (v if torch.is_tensor(v) else torch.full((n,), float(v))).detach().float().cpu()
