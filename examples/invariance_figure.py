"""One figure from `preimage invariance --compare` runs: per layer, both indices and their scatter.

    python examples/invariance_figure.py runs/inv-b2 runs/inv-b3 runs/inv-b5 --out invariance.png

Each run folder holds metrics.json of one layer with two models (trained and
random weights, say). Row per layer: the shift invariance index histogram, the
linear combination index histogram, and the scatter of the two with each
model's Spearman ρ, as Cadena et al. Figs. 8E and 10B.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from preimage.io.figures import pyplot, save_figure


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    plt = pyplot()
    fig, axes = plt.subplots(len(args.runs), 3, figsize=(12, 3.2 * len(args.runs)), squeeze=False)
    for row, run in zip(axes, args.runs):
        with open(os.path.join(run, "metrics.json")) as f:
            m = json.load(f)
        layer = m["config"]["target"]
        for (label, units), colour in zip(m["units"].items(), ("C0", "C1")):
            sii = np.array(
                [
                    np.nan if u["shift_invariance_index"] is None else u["shift_invariance_index"]
                    for u in units
                ],
                dtype=float,
            )
            lci = np.array(
                [
                    (
                        np.nan
                        if u["linear_combination_index"] is None
                        else u["linear_combination_index"]
                    )
                    for u in units
                ],
                dtype=float,
            )
            s = m["summary"][label]
            short = label.split(" ")[-1].strip("()")
            row[0].hist(
                sii[~np.isnan(sii)],
                bins=np.linspace(0, 1, 21),
                alpha=0.6,
                color=colour,
                label=f"{short} (median {s['median_shift_invariance_index']:.2f})",
            )
            row[1].hist(
                lci[~np.isnan(lci)],
                bins=np.linspace(0, 1, 21),
                alpha=0.6,
                color=colour,
                label=f"{short} (median {s['median_linear_combination_index']:.2f})",
            )
            sp = s["spearman"]
            rho = "" if sp["rho"] is None else f", ρ = {sp['rho']:.2f} (p = {sp['p']:.2g})"
            row[2].scatter(sii, lci, s=14, alpha=0.7, color=colour, label=f"{short}{rho}")
        row[0].set_ylabel(f"{layer}\nunits")
        row[0].set_xlabel("shift invariance index")
        row[1].set_xlabel("linear combination index")
        row[2].set_xlabel("shift invariance index")
        row[2].set_ylabel("linear combination index")
        for ax in row:
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
