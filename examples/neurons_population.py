"""From an .npz of recordings to the report of the population: fit, MEIs, diverse images, atlas.

    python examples/neurons_population.py [--data sim.npz] [--out neurons-out] [--quick]

Without --data it first simulates a V1 population (half simple, half complex cells) to stand in
for a recording. Then, each step one call:

1. ``load_recording``: the .npz checked and split (train, validation, test);
2. ``fit``: the data-driven model (a three-layer cnn core and factorized readouts, an ensemble of
   two so that one member is held out of the optimizations), saved as OUT/fit/model.pt with its
   metrics and figures;
3. ``visualize`` on the layer ``neurons``: every neuron's most exciting image at the data's size,
   norm and pixel range, with its response relative to the best training image's, by the model
   and by the held-out member;
4. ``preimage atlas`` and ``preimage report``: MEIs, diverse images and invariance indices of the
   whole population, browsable as OUT/atlas/index.html.

--quick shrinks everything (8 cells, 600 images of 24 px, short optimizations): about a minute.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from preimage.cli import main as preimage
from preimage.io.files import save_npz
from preimage.methods.visualize import VisualizeSettings
from preimage.methods.visualize import run as visualize
from preimage.neurons import fit, load_recording, simulate
from preimage.neurons.settings import FitSettings


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="an .npz recording (default: simulate one into OUT/sim.npz)")
    ap.add_argument("--out", default="neurons-out")
    ap.add_argument("--quick", action="store_true", help="a small population, short runs")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    quick = a.quick
    if a.data is None:
        a.data = os.path.join(a.out, "sim.npz")
        cells, images, size = (8, 600, 24) if quick else (40, 5000, 40)
        save_npz(a.data, **simulate(cells=cells, images=images, size=size, seed=21))

    # 1-2: the recording, and a model of its neurons
    recording = load_recording(a.data, seed=0)
    settings = FitSettings(ensemble=2, epochs=20 if quick else 200)
    fitted = fit(recording, settings)
    fitted.save(os.path.join(a.out, "fit"))
    print("\n".join(fitted.summary(os.path.join(a.out, "fit"))))

    # 3: the most exciting image of every neuron
    model = fitted.model()
    meis = visualize(model, VisualizeSettings(targets=["neurons:all"], steps=100 if quick else 256))
    meis.save(os.path.join(a.out, "meis"))
    ratios = np.array(meis.extra["relative_to_best_training"])
    held = np.array(meis.extra["held_out_relative_to_best_training"])
    print(f"MEI / best training image: median {np.median(ratios):.2f} (model),"
          f" {np.median(held):.2f} (held-out member)")  # fmt: skip

    # 4: the whole population, every method, one report
    weights = os.path.join(a.out, "fit", "model.pt")
    steps = ["--steps", "60", "--lambdas", "0,0.32,1.28,5.12", "--n", "4"] if quick else []
    preimage(["atlas", "--model", "neurons", "--weights", weights, "--layers", "neurons",
              "--units", "all", "--methods", "visualize,diverse,invariance",
              "--out", os.path.join(a.out, "atlas"), *steps])  # fmt: skip
    preimage(["report", os.path.join(a.out, "atlas")])


if __name__ == "__main__":
    main()
