"""Speed of the HOG / HOGb / DSIFT CNNs against VLFeat, in one process.

On a 512 x 512 sample photograph (scikit-image's astronaut), for each model:
our forward + backward (the backward of the output's sum to the input image,
what an inversion step costs) against cyvlfeat's forward alone (VLFeat has
no backward). Our input is what the registered model feeds its module: the
0-255 image with the mean colour removed, in channels-last memory. Rounds
alternate the two so that machine noise hits both alike; the figures are
medians over rounds. PyTorch runs on one thread by default, as VLFeat's HOG
and DSIFT do.

    python benchmarks/bench_handcrafted.py [--rounds 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from cyvlfeat.hog import hog as vl_hog
from cyvlfeat.sift import dsift as vl_dsift

import preimage
from preimage.io.samples import sample_images

SIZE = 512


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    photo = sample_images(SIZE, ["astronaut"])  # 1 x 3 x 512 x 512 in [0, 1]
    array = np.ascontiguousarray(
        (photo[0] * 255).permute(1, 2, 0).numpy()
    )  # what VLFeat gets: H x W x 3, 0-255
    cases = []
    for name in ("hog", "hogb", "dsift"):
        model = preimage.load_model(name)
        module, inputs = model.module, model.preprocess(photo)
        if name == "dsift":
            grey = np.ascontiguousarray(
                module.grey(torch.from_numpy(array).permute(2, 0, 1)[None])[0, 0].numpy()
            )

            def reference(grey=grey, m=module):
                vl_dsift(grey, step=m.step, size=m.bin_size, fast=m.fast, float_descriptors=True)

        else:

            def reference(m=module):
                vl_hog(
                    array,
                    m.cell_size,
                    n_orientations=m.num_orientations,
                    bilinear_interpolation=m.bilinear,
                )

        def ours(module=module, inputs=inputs):
            x = inputs.detach().requires_grad_(True)
            module(x).sum().backward()

        def forward(module=module, inputs=inputs):
            with torch.no_grad():
                module(inputs)

        cases.append((name, ours, forward, reference))

    for _, ours, forward, reference in cases:  # warm up
        ours(), forward(), reference()
    times = {name: ([], [], []) for name, *_ in cases}
    for _ in range(args.rounds):
        for name, ours, forward, reference in cases:
            a, b, c = times[name]
            a.append(timed(ours))
            c.append(timed(reference))
            b.append(timed(forward))

    print(
        f"{SIZE}x{SIZE} RGB photograph, median of {args.rounds} alternating rounds, torch threads:"
        f" {args.threads}"
    )
    print(
        f"{'model':<7} {'ours fwd+bwd':>13} {'ours fwd':>9} {'VLFeat fwd':>11}"
        f" {'ratio fwd+bwd/VLFeat':>21}"
    )
    for name, (a, b, c) in times.items():
        ours_ms, fwd_ms, ref_ms = (1e3 * statistics.median(v) for v in (a, b, c))
        print(
            f"{name:<7} {ours_ms:>10.1f} ms {fwd_ms:>6.1f} ms {ref_ms:>8.1f} ms"
            f" {ours_ms / ref_ms:>20.1f}x"
        )


if __name__ == "__main__":
    main()
