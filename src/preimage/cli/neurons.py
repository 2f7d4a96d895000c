"""`preimage neurons simulate|fit`: a simulated V1 recording, or a model fitted to a recording."""

from __future__ import annotations

import os
import sys

from ..errors import PreimageError
from ..neurons.settings import FitSettings, SimulateSettings
from .args import add_settings, settings_from

HELP = "recorded neurons: simulate a V1 recording, or fit a model of a recording's responses"


def add(sub):
    """The `preimage neurons` subcommand and its two actions, each with its own flags."""
    p = sub.add_parser("neurons", help=HELP, description=HELP)
    actions = p.add_subparsers(
        dest="action", metavar="ACTION", parser_class=type(p), help="simulate or fit"
    )
    actions.required = True
    s = actions.add_parser(
        "simulate", help="simulate a V1 population's responses to natural patches"
    )
    add_settings(s, SimulateSettings)
    s.add_argument("--out", required=True, help="the .npz file to write")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    s.set_defaults(run=simulate)
    f = actions.add_parser(
        "fit", help="fit a core and readouts to a recording; --out gets model.pt and metrics"
    )
    f.add_argument(
        "--data", required=True,
        help="an .npz with images (N x H x W[ x 3]) and responses (N x K), optionally"
        " test_images and test_responses (M x R x K)",
    )  # fmt: skip
    add_settings(f, FitSettings)
    f.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.add_argument("--out", required=True, help="output folder, written whole once the fit is done")
    f.add_argument(
        "--overwrite", action="store_true",
        help="replace the run --out holds (by default a folder holding files is refused)",
    )  # fmt: skip
    f.set_defaults(run=fit)


def simulate(args):
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


def fit(args):
    """Fit the model, then write --out whole: model.pt, metrics.json and the figures."""
    from ..io.rundir import RunFolder
    from ..neurons import fit, load_recording
    from .common import check_device

    s = settings_from(args, FitSettings)  # every check before any work
    check_device(args.device)
    if not os.path.isfile(args.data):
        raise PreimageError(f"bad --data {args.data!r}: no such file; give an .npz of a recording")
    recording = load_recording(args.data, seed=s.seed)
    with RunFolder(args.out, args.overwrite) as folder:
        fitted = fit(recording, s, device=args.device, progress=not args.quiet)
        fitted.save(folder, argv=getattr(args, "argv", None) or sys.argv[1:])
    for line in fitted.summary(args.out):
        print(line)
