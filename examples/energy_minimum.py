"""Why EfficientNet-Lite0's first blocks invert above 15 % with the paper's constants.

    python examples/energy_minimum.py

Prints, for the astronaut at 224 px and C = 300 (the figures the README quotes):
1. the regularizers of the 14 sample photographs themselves under B = 80, V = B/6.5,
   their median RGB norm, and B, V measured on them (``Energy.measured``); the share of
   their pixels beyond the hard bound B+ = 160, and the error of the photographs brought
   inside it (``bounded_photograph_error``) at the stem and the first blocks;
2. ``_blocks.0``: error and energy per pixel after 100, 300 and 600 steps of Algorithm 1,
   and after Adam at learning rates 1.0 (600 steps) and 0.3 (1500 steps) on the same energy:
   all reach the same minimum, so the error is the energy's, not the optimizer's;
3. ``_blocks.2``: where the optimizer is the limit: C = 30000 for 300 and 1000 steps, and the
   paper's C = 300 for 300, 1000 and 3000 steps.
About 6 minutes on two CPU cores.
"""

from __future__ import annotations

import torch

import preimage
from preimage import objectives as O
from preimage.io.samples import SAMPLE_IMAGES, sample_images
from preimage.methods import mahendran as NP
from preimage.methods.mahendran.invert import invert


def energy_per_pixel(result):
    # the render trace holds -(C ℓ + N_α + R_TV) summed over pixels for every step
    return -float(result.preset.per_pixel(result.render.trace[-1, 0]))


def adam(model, layer, image, C, lr, steps):
    """The same energy and start as ``NP.invert``, optimized by Adam instead of Algorithm 1."""
    pre = NP.preset(model, layer, image.shape[-1])
    with torch.no_grad():
        target = model.activations(image, [layer])[layer].float()
    area = pre.area
    generator = torch.Generator().manual_seed(0)
    result = preimage.render(
        model,
        pre.objective(O.inversion(layer, target, weight=torch.tensor([C]))),
        pre.param(model, 1, generator),
        transforms=pre.pipeline,
        optimizer=preimage.Optimizer("adam", lr),
        steps=steps,
        seed=0,
        constraints=(pre.constraint,),
        progress=False,
    )
    error = (-result.activations[0] / area / C).clamp(min=0).sqrt()
    return float(error), -float(result.trace[-1, 0]) / area


def main():
    model = preimage.load_model("efficientnet_lite0")
    photos = sample_images(224)
    scale, shift = model.centering(photos)
    centred = photos * scale + shift
    paper = NP.Energy()
    unit = 1 / 255  # Lite0's input range is [0, 1]
    ctx = O.Context({}, photos, centred)
    n_alpha = O.bounded_range(paper.alpha, paper.B * unit)(ctx)
    tv = O.tv(paper.beta, paper.V * unit)(ctx)
    rgb = (centred * 255).pow(2).sum(1).sqrt().median()
    measured = NP.Energy.measured(model, photos)
    print(
        f"1. 14 photographs, B = 80, V = 12.3: N_α {float(n_alpha.min()):.1f} to"
        f" {float(n_alpha.max()):.1f}, R_TV {float(tv.min()):.2f} to {float(tv.max()):.1f}"
    )
    print(
        f"   astronaut: N_α {float(n_alpha[0]):.1f}, R_TV {float(tv[0]):.1f}; median RGB norm"
        f" {float(rgb):.1f}; measured B = {measured.B:.1f}, V = {measured.V:.1f}"
    )
    beyond = ((centred * 255).pow(2).sum(1).sqrt() > paper.B_plus).float().flatten(1).mean(1)
    worst = ", ".join(
        f"{SAMPLE_IMAGES[i]} {100 * float(beyond[i]):.1f} %"
        for i in beyond.argsort(descending=True)[:3]
    )
    print(
        f"   pixels beyond B+ = {paper.B_plus:g} (black and white are at about 220):"
        f" {100 * float(beyond.mean()):.1f} % on average; {worst}"
    )
    floors = {
        layer: NP.bounded_photograph_error(model, layer, photos)
        for layer in ("_bn0", "_blocks.0", "_blocks.1", "_blocks.2")
    }
    print(
        "   the photographs brought inside B+, error of their own code: "
        + ", ".join(f"{k} {100 * float(v.mean()):.1f} %" for k, v in floors.items())
    )

    astronaut = sample_images(224, ["astronaut"])
    print("2. _blocks.0, C = 300, paper's constants")
    for steps in (100, 300, 600):
        r = invert(
            model, "_blocks.0", astronaut, C=300, energy=NP.Energy(steps=steps), progress=False
        )
        print(
            f"   Algorithm 1, {steps:4d} steps: error {100 * float(r.scores[0]):.1f} %, energy"
            f" {energy_per_pixel(r):.2f} per pixel"
        )
    for lr, steps in ((1.0, 600), (0.3, 1500)):
        error, energy = adam(model, "_blocks.0", astronaut, 300.0, lr, steps)
        print(
            f"   Adam lr {lr}, {steps:4d} steps: error {100 * error:.1f} %, energy {energy:.2f} per"
            " pixel"
        )

    print("3. _blocks.2, paper's constants")
    for C, steps in ((30000, 300), (30000, 1000), (300, 300), (300, 1000), (300, 3000)):
        r = invert(
            model, "_blocks.2", astronaut, C=C, energy=NP.Energy(steps=steps), progress=False
        )
        print(f"   C = {C:5d}, {steps:4d} steps: error {100 * float(r.scores[0]):.1f} %")


if __name__ == "__main__":
    main()
