"""`preimage neurons simulate`: a simulated V1 recording with known ground truth, as an .npz."""

from __future__ import annotations

import os

from ..errors import PreimageError
from ..neurons.settings import SimulateSettings
from .args import add_settings, settings_from

HELP = "recorded neurons: simulate a V1 population's responses to natural patches"


def add(sub):
    """The `preimage neurons` subcommand: the action, the simulation's settings, --out."""
    p = sub.add_parser("neurons", help=HELP, description=HELP)
    p.add_argument("action", choices=("simulate",), help="simulate a recording")
    add_settings(p, SimulateSettings)
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(run=run)


def run(args):
    """Write the simulated recording to --out (whole or not at all) and say what it holds."""
    from ..io.files import save_npz
    from ..neurons import simulate

    s = settings_from(args, SimulateSettings)  # every check before any work
    if not args.out.endswith(".npz"):
        raise PreimageError(f"bad --out {args.out!r}; give a file name ending in .npz")
    if os.path.isdir(args.out):
        raise PreimageError(f"bad --out {args.out!r}: it is a folder; give a .npz file name")
    if os.path.exists(args.out) and not args.overwrite:
        raise PreimageError(f"--out {args.out!r} exists; give --overwrite to replace it")
    data = simulate(**s.as_dict())
    save_npz(args.out, **data)
    kinds = data["cell_types"]
    print(
        f"wrote {args.out}: {s.cells} cells ({int((kinds == 'simple').sum())} simple,"
        f" {int((kinds == 'complex').sum())} complex), {s.images} training images of {s.size} px,"
        f" {s.test_images} test images x {s.repeats} repeats; mean response"
        f" {float(data['responses'].mean()):.3f} spikes per image"
    )
