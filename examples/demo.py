"""The demo: channel visualizations of EfficientNet-Lite0 at five depths.

For each layer, eight channels are optimized in one batch (Fourier
parameterization, decorrelated colour, Finzi's transforms, Adam at 0.05), and
each channel's activation is compared with its 99th percentile over 252
natural patches from scikit-image's photographs.

    python examples/demo.py --out demo-out [--size 128] [--steps 256] [--quiet]

Writes DIR/<layer>/{grid.png, images/*.png, result.npz, metrics.json},
DIR/depths.png (one row per depth) and DIR/summary.json.
"""

from __future__ import annotations

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import preimage  # noqa: E402
from preimage.io.files import save_json  # noqa: E402
from preimage.io.images import to_uint8  # noqa: E402

LAYERS = ["_blocks.0", "_blocks.3", "_blocks.6", "_blocks.10", "_blocks.14"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo-out")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--channels", default="0-7")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    model = preimage.load_model("efficientnet_lite0")
    rows, summary = [], {}
    for layer in LAYERS:
        run = preimage.run(
            "visualize",
            model,
            targets=[f"{layer}:{args.channels}"],
            size=args.size,
            steps=args.steps,
            transforms="finzi",
            progress=not args.quiet,
            compare_natural=True,
        )
        run.save(os.path.join(args.out, layer.replace(".", "_")), argv=["examples/demo.py"])
        result, extra = run.render, run.extra
        ratios = torch.tensor(extra["ratio_to_natural_p99"])
        summary[layer] = {
            "ratio_to_natural_p99": [round(float(r), 2) for r in ratios],
            "median_ratio": round(float(ratios.median()), 2),
            "min_ratio": round(float(ratios.min()), 2),
            "steps": result.steps,
            "seconds": round(result.seconds, 1),
        }
        rows.append((layer, result.images))
        print(
            f"{layer:11} {result.steps} steps in {result.seconds:5.1f} s; activation / natural p99:"
            f" median {ratios.median():.2f}, min {ratios.min():.2f}",
            flush=True,
        )

    figure = os.path.join(args.out, "depths.png")
    _depth_figure(rows, figure)
    save_json(
        os.path.join(args.out, "summary.json"),
        {"model": model.name, "size": args.size, "steps": args.steps, "layers": summary},
    )
    print(
        f"\nwrote {figure} (one row per depth), per-layer folders under {args.out}/ and"
        f" {os.path.join(args.out, 'summary.json')}"
    )
    return 0


def _depth_figure(rows, path):
    n = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n, 1.7 * len(rows)), squeeze=False)
    for r, (layer, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(to_uint8(images[c]))
                ax.set_title(f"{layer}:{c}", fontsize=7)
    fig.suptitle("EfficientNet-Lite0 channel visualizations, early to deep", fontsize=10)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
