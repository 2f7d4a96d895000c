"""Has the λ = 0 batch of a diverse sweep converged? Its minimum distance at 1000 and 3000 steps.

    python examples/lambda0_convergence.py [--model efficientnet_lite0] [--units 8]
        [--layers _blocks.1,_blocks.2,_blocks.3] [--weights imagenet,random]

Every diversity gain divides by the λ = 0 batch's minimum distance, so an unconverged λ = 0
batch (six images still spread out) understates the gains of its network. For a seeded sample of
units per layer, trained and with random weights, the λ = 0 batch alone is optimized without
early stopping for 1000 (the paper's maximum) and for 3000 steps; printed per layer and network:
the median ratio of the minimum distance at 3000 steps to that at 1000, and the median ratio of
the mean activation (both 1.0 for a converged batch).
"""

from __future__ import annotations

import argparse

import numpy as np

import preimage
from preimage.methods.cadena.diverse import DiverseSettings
from preimage.methods.cadena.diverse import run as diverse


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--layers", default="_blocks.1,_blocks.2,_blocks.3")
    ap.add_argument("--units", type=int, default=8, help="channels sampled per layer (seed 0)")
    ap.add_argument("--weights", default="imagenet,random")
    args = ap.parse_args(argv)
    for weights in args.weights.split(","):
        model = preimage.load_model(args.model, weights=weights)
        for layer in args.layers.split(","):
            channels = model.layer_info(layer).shape[0]
            rng = np.random.default_rng(0)
            units = sorted(rng.choice(channels, min(args.units, channels), replace=False))
            target = f"{layer}:{','.join(map(str, units))}"
            found = {}
            for steps in (1000, 3000):
                s = DiverseSettings(target=target, lambdas=[0.0], steps=steps, patience=0)
                sweeps = diverse(model, s, progress=False).sweeps
                found[steps] = (
                    np.array([float(w.min_distance[0]) for w in sweeps]),
                    np.array([float(w.mean_activation[0]) for w in sweeps]),
                )
            d = np.median(found[3000][0] / found[1000][0])
            a = np.median(found[3000][1] / found[1000][1])
            print(
                f"{args.model} ({weights}) {layer}, {len(units)} units: min distance at λ = 0,"
                f" 3000 / 1000 steps {d:.3f}; mean activation {a:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
