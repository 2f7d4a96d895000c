"""The Mahendran & Vedaldi figures for EfficientNet-Lite0 and a random-weights VGG-16.

    python examples/natural_preimages.py --out mv-out [--quick]

1. Table 5 for EfficientNet-Lite0: the inversion error at the end of every stage,
   for C = 1, 20, 100, 300, on the 14 sample photographs at 224 px
   (`preimage invert-table`), with the Fig. 5-style figure.
2. The same table on torchvision's VGG-16 with random weights (64 px, 4 images).
3. Caricatures of `chelsea` at three depths, at the paper's C = 1 and at C = 10.
4. A masked inversion from the central 5x5 window of `_blocks.4` (Fig. 9), with
   the window's receptive field drawn on it.

Each part writes its own folder; the long tables take about an hour on two CPU
cores (--quick runs a small version in a few minutes).
"""

from __future__ import annotations

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from preimage.cli import main as cli  # noqa: E402
from preimage.io.files import atomic_write  # noqa: E402
from preimage.io.images import load_image  # noqa: E402

LITE0_STAGES = (
    "_bn0,_blocks.0,_blocks.1,_blocks.2,_blocks.4,_blocks.7,_blocks.10,_blocks.14,_blocks.15,"
    "_swish#1,_fc"
)
VGG_LAYERS = "conv1_1,conv2_1,conv3_1,conv4_1,conv5_1,conv5_3,fc6,fc8"
CARICATURE_LAYERS = ["_blocks.2", "_blocks.6", "_blocks.10"]


def run(argv):
    print("$ preimage " + " ".join(argv), flush=True)
    code = cli(argv)
    if code:
        sys.exit(code)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="mv-out")
    ap.add_argument(
        "--quick", action="store_true", help="small images, few steps: checks the pipeline only"
    )
    ap.add_argument("--parts", default="lite0,vgg,caricature,window")
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    quiet = ["--quiet"]
    quick = ["--size", "64", "--steps", "40", "--limit", "3"] if args.quick else []

    if "lite0" in parts:
        run(
            [
                "invert-table",
                "--layers",
                LITE0_STAGES,
                "--C",
                "1,20,100,300",
                "--out",
                os.path.join(args.out, "lite0-table"),
            ]
            + quick
            + quiet
        )
    if "vgg" in parts:
        vgg_size = (
            ["--size", "32", "--steps", "40", "--limit", "2"]
            if args.quick
            else ["--size", "64", "--limit", "4"]
        )
        run(
            [
                "invert-table",
                "--model",
                "vgg16",
                "--weights",
                "random",
                "--layers",
                VGG_LAYERS,
                "--C",
                "1,20,100,300",
                "--out",
                os.path.join(args.out, "vgg16-random-table"),
            ]
            + vgg_size
            + quiet
        )
    if "caricature" in parts:
        folders = {}
        for C in ("1", "10"):
            out = os.path.join(args.out, f"caricature-C{C}")
            run(
                [
                    "caricature",
                    "--layer",
                    ",".join(CARICATURE_LAYERS),
                    "--image",
                    "sample:chelsea",
                    "--C",
                    C,
                    "--out",
                    out,
                ]
                + (["--size", "64", "--steps", "40"] if args.quick else [])
                + quiet
            )
            folders[C] = out
        _caricature_figure(folders, os.path.join(args.out, "caricatures.png"))
    if "window" in parts:
        run(
            [
                "invert",
                "--layer",
                "_blocks.4",
                "--image",
                "sample:astronaut",
                "--mask-window",
                "5",
                "--out",
                os.path.join(args.out, "window-blocks4"),
            ]
            + (["--size", "96", "--steps", "40"] if args.quick else [])
            + quiet
        )
    return 0


def _caricature_figure(folders, path):
    import io

    from preimage.io.images import to_uint8

    original = None
    fig, axes = plt.subplots(
        len(folders),
        len(CARICATURE_LAYERS) + 1,
        figsize=(2.4 * (len(CARICATURE_LAYERS) + 1), 2.6 * len(folders)),
        squeeze=False,
    )
    for r, (C, folder) in enumerate(folders.items()):
        for c, layer in enumerate(CARICATURE_LAYERS):
            sub = os.path.join(folder, layer.replace(".", "_"))
            image = load_image(
                os.path.join(sub, "images", os.listdir(os.path.join(sub, "images"))[0])
            )[0]
            if original is None:
                import numpy as np

                original = np.load(os.path.join(sub, "result.npz"))["originals"][0]
            axes[r][c + 1].imshow(to_uint8(image))
            axes[r][c + 1].set_title(f"{layer}, C = {C}", fontsize=8)
        axes[r][0].imshow(to_uint8(original))
        axes[r][0].set_title("original", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
