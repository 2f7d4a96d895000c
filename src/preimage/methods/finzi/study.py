"""Finzi's design-choice studies (§IV.B.2-3, §IV.C): the same target under several conditions.

A study is a list of conditions, each a set of overrides of the visualization
method (TV weight, transforms). Every condition runs the same repeats and gets
the same reliability statistics; the conditions are then compared with each
other by Spearman's ρ between their mean logits, as Finzi compares one image
with and without preprocessing (ρ = 0.07, p = .02).
"""

from __future__ import annotations

from torch import nn

from ...engine import objectives as O
from ...errors import PreimageError
from .reliability import condition_correlation, reliability

STUDIES = ("tv", "preprocessing", "depths")
TV_WEIGHTS = tuple(round(0.1 * k, 1) for k in range(11))  # Fig. 7: 0 to 1 in steps of 0.1


def conditions(study, tv_with=0.5):
    """[(name, overrides of the visualization method)] of a study; the first has no TV.

    TV weights here are relative (see ``run_study``). tv_with: the weight of
    the conditions "with TV" in the preprocessing study.
    """
    if study == "tv":
        return [(f"tv={w:g}", {"tv": w}) for w in TV_WEIGHTS]
    if study == "preprocessing":
        # Fig. 6 is the first pair; Fig. 5 adds the two without TV
        return [
            ("transforms", {"transforms": "finzi", "tv": 0.0}),
            ("transforms+tv", {"transforms": "finzi", "tv": tv_with}),
            ("no-transforms+tv", {"transforms": "none", "tv": tv_with}),
            ("no-transforms", {"transforms": "none", "tv": 0.0}),
        ]
    raise PreimageError(f"bad --study {study!r}; valid studies: {', '.join(STUDIES)}")


def tv_value(model, images, beta=1.0):
    """The TV^β term of the objective (per pixel, input units) of display-space images."""
    scale, shift = model.centering(images)
    ctx = O.Context(activations={}, images=images, centered=images * scale + shift)
    return O.tv(beta=beta)(ctx)


def run_study(
    model,
    target,
    study,
    repeats=10,
    classifier=None,
    tv_with=0.5,
    tv_scale=None,
    log=print,
    **method,
):
    """Run every condition of a study on one target: ({condition name: Reliability}, tv_scale).

    Finzi's TV weights (0 to 1) are relative to his loss, a channel's activation
    against TV summed over pixels; ours is averaged over pixels in input units,
    so the same numbers would do nothing. A condition's TV weight w is therefore
    applied as w * tv_scale, where tv_scale (unless given) makes the TV of the
    first condition's images, which are optimized without TV, equal to their
    mean activation: at w = 1 the penalty is as large as the objective it
    regularizes, and the sweep spans none to strong smoothing.
    """
    runs = {}
    for name, overrides in conditions(study, tv_with):
        kw = {**method, **overrides}
        if kw.get("tv"):
            kw["tv"] = kw["tv"] * tv_scale
        runs[name] = reliability(model, target, repeats=repeats, classifier=classifier, **kw)
        # how smooth the images came out, in the same units whatever the condition's weight
        runs[name].stats["image_tv"] = float(
            tv_value(
                model, runs[name].result.images.to(model.device), method.get("tv_beta", 1.0)
            ).mean()
        )
        if tv_scale is None:
            first = runs[name].result
            penalty = float(tv_value(model, first.images, method.get("tv_beta", 1.0)).mean())
            tv_scale = abs(float(first.activations.mean())) / max(penalty, 1e-12)
        s = runs[name].stats
        log(
            f"{model.name} {target} [{name}]: top-1 {s['top1_most_common']['name']} in"
            f" {s['top1_most_common']['count']}/{repeats}, top-5 shared"
            f" {100 * s['top5_shared']:.0f} %, mean ρ {s['spearman']['mean_rho']:.3f}, activation"
            f" {float(runs[name].result.activations.mean()):.3g}"
        )
    return runs, tv_scale


def between_conditions(runs, reference=None):
    """Spearman's ρ and p between conditions' mean logits: every pair, or each condition against ``reference``."""
    names = list(runs)
    pairs = (
        [(reference, b) for b in names if b != reference]
        if reference
        else [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    )
    return [
        {
            "a": a,
            "b": b,
            **dict(zip(("rho", "p"), condition_correlation(runs[a].logits, runs[b].logits))),
        }
        for a, b in pairs
    ]


def depth_layers(model):
    """The successive stages of a network, for a figure of one channel at every depth (Fig. 8).

    Networks made of blocks (EfficientNet's ``_blocks.K``, ResNet's ``layerN.K``)
    give every block; plain stacks (AlexNet, VGG) give their convolutions,
    by the papers' names where there are some.
    """
    blocks = []
    for path, container in model.module.named_modules():
        if isinstance(container, (nn.Sequential, nn.ModuleList)) and path:
            children = list(container.named_children())
            if children and all(len(list(c.children())) > 0 for _, c in children):
                blocks += [f"{path}.{name}" for name, _ in children]
    known = {info.name for info in model.layers()}
    blocks = [b for b in blocks if b in known and not any(b.startswith(o + ".") for o in blocks)]
    if len(blocks) >= 2:
        return blocks
    by_address = {v: k for k, v in model.aliases.items()}
    convs = [info for info in model.layers() if info.kind == "Conv2d"]
    if not convs:
        raise PreimageError(
            f"model {model.name} has neither blocks nor convolutions to show by depth; give"
            " --layers"
        )
    return [by_address.get(info.name, info.name) for info in convs]
