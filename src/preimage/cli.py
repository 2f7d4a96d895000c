"""The `preimage` command: parse, call the library, print. Bad input: one line, exit 2."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import PreimageError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's own usage block is several lines; keep the promise of one line
        self.exit(EXIT_USAGE, f"preimage: error: {message} (see `{self.prog} --help`)\n")


def _model_args(p):
    p.add_argument("--model", default="efficientnet_lite0", help="model name (default: efficientnet_lite0; `preimage models` lists them)")
    p.add_argument("--weights", default=None, help="'imagenet' (default), 'random', or a state-dict file")
    p.add_argument("--weights-seed", type=int, default=0, help="seed of --weights random (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")


def _load(args):
    import torch

    from .models import load_model

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise PreimageError(f"device {args.device!r} is not available on this machine; valid: cpu")
    return load_model(args.model, weights=args.weights, seed=args.weights_seed, device=args.device)


def cmd_models(args):
    from .models import model_names

    print("\n".join(model_names()))


def cmd_layers(args):
    model = _load(args)
    table = model.layers(args.size)
    if args.json:
        print(json.dumps([info.as_dict() for info in table], indent=1))
        return
    width = max(len(info.name) for info in table)
    print(f"{'layer':{width}}  {'alias':8} {'shape':>16} {'rf_size':>8} {'rf_stride':>9}")
    for info in table:
        shape = "x".join(str(s) for s in info.shape)
        print(f"{info.name:{width}}  {info.alias or '':8} {shape:>16} {str(info.rf_size):>8} {str(info.rf_stride):>9}")


def cmd_visualize(args):
    from .store import save_render
    from .visualize import visualize

    model = _load(args)
    result, extra = visualize(
        model,
        args.target,
        size=args.size,
        steps=args.steps,
        seed=args.seed,
        param=args.param,
        decorrelate=not args.no_decorrelate,
        transforms=args.transforms,
        optimizer=args.optimizer,
        lr=args.lr,
        l2=args.l2,
        tv=args.tv,
        tv_beta=args.tv_beta,
        unit_mode=args.unit,
        patience=args.patience,
        progress=not args.quiet,
        compare_natural=args.compare_natural,
    )
    config = {
        "command": "visualize",
        "model": model.name,
        "weights": model.weights,
        "targets": args.target,
        "l2": args.l2,
        "tv": args.tv,
        "tv_beta": args.tv_beta,
        "unit_mode": args.unit,
        "patience": args.patience,
        "argv": sys.argv[1:],
    }
    metrics = save_render(result, args.out, config, extra)
    print(f"wrote {len(result.labels)} images to {os.path.join(args.out, 'images')}/, the grid {os.path.join(args.out, 'grid.png')}, result.npz and metrics.json")
    print(f"steps {metrics['steps']}, {metrics['seconds']:.1f} s; mean activation {float(result.activations.mean()):.4g}")
    if extra:
        ratios = extra["ratio_to_natural_p99"]
        print(f"activation / natural 99th percentile: median {sorted(ratios)[len(ratios) // 2]:.3g}, min {min(ratios):.3g} over {extra['natural_images']} natural patches")


def build_parser():
    from .optim import OPTIMIZERS

    parser = _Parser(prog="preimage", description="Natural pre-images of vision models: what units respond to and what they are invariant to.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("models", help="list the model names")
    p.set_defaults(run=cmd_models)

    p = sub.add_parser("layers", help="every addressable layer with its shape and receptive field")
    _model_args(p)
    p.add_argument("--size", type=int, default=None, help="input size in pixels (default: the model's)")
    p.add_argument("--json", action="store_true", help="print a JSON list with name, shape, rf_size, rf_stride")
    p.set_defaults(run=cmd_layers)

    p = sub.add_parser("visualize", help="activation maximization of channels, units, layers, classes or directions")
    _model_args(p)
    p.add_argument("--target", action="append", required=True, help="LAYER, LAYER:C, LAYER:C@Y,X, LAYER:all, LAYER:A-B, LAYER:dir=FILE.npy, class:N|NAME; repeatable")
    p.add_argument("--steps", type=int, default=256, help="maximum optimization steps (default 256)")
    p.add_argument("--size", type=int, default=None, help="image size in pixels (default: the model's input size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial noise and the random transforms (default 0)")
    p.add_argument("--param", choices=("pixel", "fourier"), default="fourier", help="image parameterization (default fourier, 1/f scaled)")
    p.add_argument("--no-decorrelate", action="store_true", help="optimize RGB directly instead of decorrelated colour")
    p.add_argument("--transforms", default="finzi", help="'none', 'finzi' (pad 12, jitter 8, scale .9-1.1, rotate ±10, jitter 4), or a list like 'jitter:4,rotate:-5:5:1'")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05, Finzi's)")
    p.add_argument("--l2", type=float, default=0.0, help="weight of the L2 image penalty (Finzi's λ1)")
    p.add_argument("--tv", type=float, default=0.0, help="weight of the total-variation penalty (Finzi's λ2)")
    p.add_argument("--tv-beta", type=float, default=1.0, help="exponent β of TV^β (1: Finzi; 2: Mahendran & Vedaldi)")
    p.add_argument("--unit", action="store_true", help="LAYER:C means the centre unit instead of the channel mean")
    p.add_argument("--patience", type=int, default=50, help="stop once no image has improved for this many steps (default 50; 0 runs every step)")
    p.add_argument("--compare-natural", action="store_true", help="also report activation / 99th percentile over natural image patches")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=cmd_visualize)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except PreimageError as e:
        print(f"preimage: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `preimage layers | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("preimage: interrupted; nothing was saved for the unfinished run", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
