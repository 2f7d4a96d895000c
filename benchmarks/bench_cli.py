"""How fast the command line answers a newcomer: `preimage --help`, `preimage`, `--version`,
`preimage models`, against a bare Python start, each the median of several fresh processes.

    python benchmarks/bench_cli.py [--runs 7]

Target: each under one second. None of them imports PyTorch (the commands list is built from
tables; a method's own flags, which import it, only for `preimage METHOD --help`, timed too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = [
    ("python -c pass", [sys.executable, "-c", "pass"]),
    ("preimage --help", ["--help"]),
    ("preimage", []),
    ("preimage --version", ["--version"]),
    ("preimage models", ["models"]),
    ("preimage visualize --help", ["visualize", "--help"]),
]


def timed(argv):
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=False)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "preimage")
    print(f"{'command':28} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, argv in COMMANDS:
        full = argv if name.startswith("python") else [exe, *argv]
        times = [timed(full) for _ in range(args.runs)]
        print(f"{name:28} {statistics.median(times):>9.3f} {min(times):>7.3f} {max(times):>7.3f}")


if __name__ == "__main__":
    main()
