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
    p.add_argument(
        "--model",
        default="efficientnet_lite0",
        help="model name (default: efficientnet_lite0; `preimage models` lists them)",
    )
    p.add_argument(
        "--weights", default=None, help="'imagenet' (default), 'random', or a state-dict file"
    )
    p.add_argument(
        "--weights-seed", type=int, default=0, help="seed of --weights random (default 0)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")


def _check_device(device):
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PreimageError(f"device {device!r} is not available on this machine; valid: cpu")


def _load(args):
    from .models import load_model

    _check_device(args.device)
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
        print(
            f"{info.name:{width}}  {info.alias or '':8} {shape:>16} {str(info.rf_size):>8}"
            f" {str(info.rf_stride):>9}"
        )


def cmd_visualize(args):
    from .io.store import save_render
    from .methods.visualize import visualize

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
        prior=_prior(args),
        prior_weight=_prior_weight(args),
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
    print(
        f"wrote {len(result.labels)} images to {os.path.join(args.out, 'images')}/, the grid"
        f" {os.path.join(args.out, 'grid.png')}, result.npz and metrics.json"
    )
    print(
        f"steps {metrics['steps']}, {metrics['seconds']:.1f} s; mean activation"
        f" {float(result.activations.mean()):.4g}"
    )
    if "ratio_to_natural_p99" in extra:
        ratios = extra["ratio_to_natural_p99"]
        print(
            f"activation / natural 99th percentile: median {sorted(ratios)[len(ratios) // 2]:.3g},"
            f" min {min(ratios):.3g} over {extra['natural_images']} natural patches"
        )


CONSTANT_RANGE = (0.1, 10000.0)  # B and V in the paper's 0-255 units (it uses 80 and 12.3)


def _energy_args(args):
    """--steps, --jitter, --B and --V checked before any work: ({name: number}, {name: True}) for B and V."""
    if args.steps < 1:
        raise PreimageError(f"bad --steps {args.steps}; it must be at least 1")
    if args.jitter is not None and args.jitter < 0:
        raise PreimageError(f"bad --jitter {args.jitter}; it must be 0 or more")
    given, measure = {}, {}
    lo, hi = CONSTANT_RANGE
    for name in ("B", "V"):
        value = getattr(args, name, None)
        if value is None:
            continue
        if value == "measured":
            measure[name] = True
            continue
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not lo <= number <= hi:
            raise PreimageError(
                f"bad --{name} {value!r}; valid: a number from {lo:g} to {hi:g} in the paper's"
                " 0-255 units, or 'measured'"
            )
        given[name] = number
    return given, measure


def _energy(args, constants, model=None, images=None):
    """The energy of eq. 1: the paper's constants, or B and V given or measured on the images.

    constants: what ``_energy_args`` returned.
    """
    from .methods.mahendran.preimages import Energy

    given, measure = constants
    if not measure:
        return Energy(steps=args.steps, **given)
    energy = Energy.measured(
        model,
        images,
        B=measure.get("B", False),
        V=measure.get("V", False),
        steps=args.steps,
        **given,
    )
    lo, hi = CONSTANT_RANGE
    for name in measure:
        value = getattr(energy, name)
        if not lo <= value <= hi:
            raise PreimageError(
                f"bad --{name} measured: {value:.3g} on these images (flat or blank?); valid: from"
                f" {lo:g} to {hi:g}, or give a number"
            )
    return energy


def _size(args, model):
    size = int(args.size or model.input_size)
    if size < 1:
        raise PreimageError(f"bad --size {size}; it must be positive")
    return size


def _channel_range(text):
    a, sep, b = (text or "").partition(":")
    try:
        if not sep:
            raise ValueError
        return int(a), int(b)
    except ValueError:
        raise PreimageError(
            f"bad --mask-channels {text!r}; expected A:B, channels A to B-1"
        ) from None


def _numbers(text, flag):
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise PreimageError(
            f"bad {flag} {text!r}; expected numbers separated by commas, such as 1,20,100,300"
        )
    return values


def cmd_invert(args):
    from .io.images import load_image_arg
    from .methods.mahendran.preimages import feature_mask, invert, window_box
    from .io.store import save_preimages

    constants = _energy_args(args)  # bad values before any loading
    model = _load(args)
    size = _size(args, model)
    image = load_image_arg(args.image, size)
    info = model.layer_info(args.layer, size)
    channels = _channel_range(args.mask_channels) if args.mask_channels else None
    if args.mask_window is not None or channels is not None:
        feature_mask(info.shape, args.mask_window, channels)  # check before the run
    result = invert(
        model,
        args.layer,
        image,
        C=args.C,
        mask_window=args.mask_window,
        mask_channels=channels,
        seeds=args.seeds,
        seed=args.seed,
        energy=_energy(args, constants, model, image),
        jitter=args.jitter,
        progress=not args.quiet,
        **_prior_kw(args),
    )
    box = window_box(info, args.mask_window) if args.mask_window else None
    errors = [round(float(e), 5) for e in result.scores]
    config = {
        "command": "invert",
        "model": model.name,
        "weights": model.weights,
        "image": args.image,
        "size": size,
        "argv": sys.argv[1:],
    }
    extra = {"reconstruction_error": errors}
    if box:
        extra["window_receptive_field"] = {
            "top": box[0],
            "bottom": box[1],
            "left": box[2],
            "right": box[3],
        }
    save_preimages(
        result,
        args.out,
        config,
        originals=image,
        labels=[f"seed{m['seed']}_C{m['C']:g}" for m in result.meta],
        box=box,
        extra_metrics=extra,
    )
    print(
        f"wrote {len(errors)} reconstruction(s) from {args.layer} to"
        f" {os.path.join(args.out, 'images')}/, {os.path.join(args.out, 'grid.png')}, result.npz"
        " and metrics.json"
    )
    print(
        f"reconstruction error ‖Φ(x*) - Φ0‖/‖Φ0‖: {', '.join(f'{100 * e:.1f} %' for e in errors)}"
        f" (C = {result.config['C'][0]:g}, {result.render.steps} steps)"
    )


def cmd_caricature(args):
    from .io.images import load_image_arg
    from .methods.mahendran.preimages import caricature
    from .io.store import save_preimages

    constants = _energy_args(args)  # bad values before any loading
    model = _load(args)
    size = _size(args, model)
    image = load_image_arg(args.image, size)
    layers = [l for l in args.layer.split(",") if l]
    for layer in layers:
        model.layer_info(layer, size)
    energy = _energy(args, constants, model, image)
    for layer in layers:
        result = caricature(
            model,
            layer,
            image,
            C=args.C,
            seed=args.seed,
            energy=energy,
            jitter=args.jitter,
            progress=not args.quiet,
            **_prior_kw(args),
        )
        out = (
            os.path.join(args.out, layer.replace(".", "_").replace("#", "_"))
            if len(layers) > 1
            else args.out
        )
        config = {
            "command": "caricature",
            "model": model.name,
            "weights": model.weights,
            "image": args.image,
            "size": size,
            "argv": sys.argv[1:],
        }
        factor = float(result.scores[0])
        save_preimages(
            result,
            out,
            config,
            originals=image,
            labels=[layer],
            extra_metrics={"exaggeration": factor},
        )
        print(
            f"{layer}: caricature in {out}/ (⟨Φ(x*), Φ0⟩/‖Φ0‖² = {factor:.2f}, 1 at the original)"
        )


def cmd_maximize(args):
    from .io.images import load_folder, natural_crops
    from .methods.mahendran.preimages import maximize
    from .io.store import save_preimages
    from .engine.targets import parse_target

    constants = _energy_args(args)  # bad values before any loading
    model = _load(args)
    elements = parse_target(model, args.target, args.size or model.input_size)
    layers = {e.layer for e in elements}
    if len(layers) != 1 or any(e.kind not in ("channel", "unit") for e in elements):
        raise PreimageError(
            f"bad --target {args.target!r}; maximize takes channels of one layer: LAYER:C,"
            " LAYER:A-B, LAYER:all or LAYER:C@Y,X"
        )
    layer = elements[0].layer
    position = (elements[0].y, elements[0].x) if elements[0].y is not None else None
    info = model.layer_info(layer, args.size or model.input_size)
    rf = info.rf_size if not isinstance(info.rf_size, list) else max(info.rf_size)
    size = int(args.size or min(model.input_size, rf))
    natural = load_folder(args.images, size)[0] if args.images else natural_crops(size)
    result = maximize(
        model,
        layer,
        [e.channel for e in elements],
        natural,
        size=size,
        C=args.C,
        position=position,
        seed=args.seed,
        energy=_energy(args, constants, model, natural),
        jitter=args.jitter,
        progress=not args.quiet,
        **_prior_kw(args),
    )
    config = {
        "command": "maximize",
        "model": model.name,
        "weights": model.weights,
        "target": args.target,
        "natural_images": args.images or "samples",
        "argv": sys.argv[1:],
    }
    ratios = [round(float(r), 3) for r in result.scores]
    save_preimages(
        result,
        args.out,
        config,
        labels=[e.label() for e in elements],
        extra_metrics={"activation_over_M": ratios},
    )
    print(
        f"wrote {len(ratios)} image(s) to {os.path.join(args.out, 'images')}/ and"
        f" {os.path.join(args.out, 'grid.png')}; activation / natural maximum M:"
        f" {', '.join(f'{r:.2f}' for r in ratios)}"
    )


def cmd_invert_table(args):
    from .io.images import SAMPLE_IMAGES, load_folder, sample_images
    from .methods.mahendran.table import column_name, inversion_table, write_table
    from .models import load_model
    from .methods.mahendran.preimages import HAND_CRAFTED

    constants = _energy_args(args)  # bad values before any loading
    names = [m for m in args.model.split(",") if m]
    if not names:
        raise PreimageError("bad --model ''; give one model name, or several separated by commas")
    if args.device.startswith("cuda"):
        _load(args)  # the device check
    models = [
        load_model(n, weights=args.weights, seed=args.weights_seed, device=args.device)
        for n in names
    ]
    size = _size(args, models[0])
    layers = [l for l in (args.layers or "").split(",") if l]
    columns = []
    for model in models:
        for layer in layers or [
            model.layers(size)[-1].name
        ]:  # without --layers, the model's output
            model.layer_info(layer, size)
            name = (
                model.name
                if not layers and len(models) > 1
                else column_name(model, layer, with_model=len(models) > 1)
            )
            columns.append((model, layer, name))
    default_C = "20" if all(m.name in HAND_CRAFTED for m in models) else "1,20,100,300"
    Cs = _numbers(args.C or default_C, "--C")
    if any(c <= 0 for c in Cs):
        raise PreimageError(f"bad --C {args.C!r}; every C must be positive")
    if args.images:
        images, files = load_folder(args.images, size, args.limit)
    else:
        images = sample_images(size)[: args.limit] if args.limit else sample_images(size)
        files = [f"sample:{n}" for n in SAMPLE_IMAGES][: images.shape[0]]
    if "measured" in (args.B, args.V) and len({(m.mean, m.input_range) for m in models}) > 1:
        raise PreimageError(
            "bad --B/--V 'measured' with models whose preprocessing differs; give numbers, or one"
            " model at a time"
        )
    energy = _energy(args, constants, models[0], images)
    prior_kw = _prior_kw(args)
    errors, first, bounded = inversion_table(
        columns,
        Cs,
        images,
        seeds=1,
        seed=args.seed,
        energy=energy,
        jitter=args.jitter,
        progress=not args.quiet,
        **prior_kw,
    )
    config = {
        "command": "invert-table",
        "models": [m.name for m in models],
        "weights": [m.weights for m in models],
        "size": size,
        "images": files,
        "seed": args.seed,
        "energy": energy.describe(),
        "prior": prior_kw["prior"].describe() if prior_kw else None,
        "prior_weight": args.prior_weight,
        "argv": sys.argv[1:],
    }
    write_table(args.out, columns, Cs, errors, first, images, config, bounded)
    print(open(os.path.join(args.out, "table.md")).read().rstrip())
    print(
        "wrote table.csv, table.md, errors.png, inversions.png, result.npz and metrics.json to"
        f" {args.out}/"
    )


def cmd_diverse(args):
    from .methods.cadena.diverse import LAMBDAS, PIXELS, diverse
    from .io.images import load_folder
    from .models import load_model
    from .io.store import save_diverse
    from .engine.targets import parse_target

    model = _load(args)
    elements = parse_target(model, args.target, None, unit_mode=True)
    if len({e.layer for e in elements}) != 1 or any(
        e.kind not in ("channel", "unit") for e in elements
    ):
        raise PreimageError(
            f"bad --target {args.target!r}; diverse takes channels of one layer: LAYER:C, LAYER:A-B"
            " or LAYER:all"
        )
    if any(e.y is not None for e in elements):
        raise PreimageError(
            f"bad --target {args.target!r}; diverse always uses the centre unit of an image as"
            " large as its receptive field, so @Y,X does not apply"
        )
    layer = elements[0].layer
    channels = [e.channel for e in elements]
    lambdas = _numbers(args.lambdas, "--lambdas") if args.lambdas else list(LAMBDAS)
    distance = None if args.distance == "auto" else args.distance
    if distance not in (None, PIXELS):
        model.resolve_layer(distance)
    if args.steps < 1:
        raise PreimageError(f"bad --steps {args.steps}; it must be at least 1")
    natural = load_folder(args.images, model.input_size)[0] if args.images else None
    prior = _prior(args)
    alpha = _prior_weight(args)
    kw = dict(
        n=args.n,
        lambdas=lambdas,
        threshold=args.threshold,
        steps=args.steps,
        lr=args.lr,
        distance=distance,
        size=args.size,
        natural=natural,
        seed=args.seed,
        patience=args.patience,
        progress=not args.quiet,
    )
    if prior is not None:
        from .engine import objectives as O

        kw.update(prior=O.log_prior(prior.to(model.device)), alpha=alpha)
    sweeps = diverse(model, layer, channels, **kw)
    baseline = None
    if args.baseline == "random":
        twin = load_model(args.model, weights="random", seed=args.weights_seed, device=args.device)
        baseline = {
            "sweeps": diverse(twin, layer, channels, **kw),
            "weights": twin.weights,
            "label": "random weights",
        }
    config = {
        "command": "diverse",
        "model": model.name,
        "weights": model.weights,
        "target": args.target,
        **{k: v for k, v in kw.items() if k not in ("natural", "progress", "prior")},
        "prior": prior.describe() if prior is not None else None,
        "natural_images": args.images or "samples",
        "baseline": args.baseline,
        "argv": sys.argv[1:],
    }
    metrics = save_diverse(sweeps, args.out, config, baseline)
    print(f"wrote grid.png, tradeoff.png, result.npz and metrics.json to {args.out}/")
    for s in sweeps[:10]:
        print(
            f"{s.layer}:{s.channel}: chosen λ = {s.chosen_lambda}, mean activation"
            f" {float(s.normalized_activation[s.chosen or 0]):.2f} of λ=0, diversity gain"
            f" {s.diversity_gain if s.diversity_gain is None else round(s.diversity_gain, 3)}"
        )
    if len(sweeps) > 10:
        print(
            f"... {len(sweeps) - 10} more units; median diversity gain"
            f" {metrics['summary']['median_diversity_gain']}"
        )
    if baseline:
        test = metrics["baseline"]["trained_greater"]
        p = f"; one-sided Mann-Whitney p = {test['p']:.3g}" if test else ""

        def fmt(v):
            return "n/a" if v is None else f"{v:.3f}"

        print(
            "random-weights twin: median diversity gain"
            f" {fmt(metrics['baseline']['summary']['median_diversity_gain'])} (trained"
            f" {fmt(metrics['summary']['median_diversity_gain'])}){p}; histogram in gains.png"
        )


def cmd_invariance(args):
    import time

    from .methods.cadena.invariance import invariance
    from .io.store import save_invariance
    from .engine.targets import parse_target

    start = time.perf_counter()

    def units_of(model, target):
        elements = parse_target(model, target, None, unit_mode=True)
        if len({e.layer for e in elements}) != 1 or any(
            e.kind not in ("channel", "unit") or e.y is not None for e in elements
        ):
            raise PreimageError(
                f"bad --target {target!r}; invariance takes channels of one layer: LAYER:C,"
                " LAYER:A-B or LAYER:all"
            )
        return elements[0].layer, [e.channel for e in elements]

    model = _load(args)
    layer, channels = units_of(model, args.target)
    other = None
    if args.compare:
        other = _other_model(args.compare, args, "--compare")
        other_target = args.compare_target or args.target
        other_layer, other_channels = units_of(other, other_target)
    if args.steps < 1:
        raise PreimageError(f"bad --steps {args.steps}; it must be at least 1")
    kw = dict(n=args.n, steps=args.steps, seed=args.seed, progress=not args.quiet)
    runs = [
        (
            f"{model.name} ({model.weights.split(' ')[0]})",
            invariance(model, layer, channels, **kw)[0],
        )
    ]
    if other is not None:
        runs.append(
            (
                f"{other.name} ({other.weights.split(' ')[0]})",
                invariance(other, other_layer, other_channels, **kw)[0],
            )
        )
    config = {
        "command": "invariance",
        "model": model.name,
        "weights": model.weights,
        "target": args.target,
        "compare": args.compare,
        "compare_target": args.compare_target,
        **kw,
        "argv": sys.argv[1:],
    }
    del config["progress"]
    metrics = save_invariance(runs, args.out, config, time.perf_counter() - start)
    for label, s in metrics["summary"].items():
        sp = s["spearman"]
        rho = (
            "n/a"
            if sp["rho"] is None
            else f"{sp['rho']:.2f} (p = {sp['p']:.2g}, {sp['units']} units)"
        )
        print(
            f"{label}: median shift invariance {s['median_shift_invariance_index']}, median linear"
            f" combination {s['median_linear_combination_index']}; Spearman ρ {rho}"
        )
    print(
        "wrote metrics.json, result.npz, shift_invariance.png, linear_combination.png, scatter.png"
        f" and per-unit panels to {args.out}/ in {metrics['wall_seconds']:.0f} s"
    )


def _other_model(spec, args, flag):
    """MODEL or MODEL:WEIGHTS, as --classifier and --compare take it."""
    from .models import load_model

    name, _, weights = spec.partition(":")
    if not name:
        raise PreimageError(f"bad {flag} {spec!r}; give MODEL or MODEL:WEIGHTS")
    return load_model(name, weights=weights or None, seed=args.weights_seed, device=args.device)


def _classifier(args, model):
    classifier = _other_model(args.classifier, args, "--classifier") if args.classifier else model
    if not classifier.classes:
        raise PreimageError(
            f"model {classifier.name} has no class names to classify with; give --classifier MODEL"
            " (for example efficientnet_lite0)"
        )
    return classifier


def cmd_reliability(args):
    from .methods.finzi.reliability import reliability
    from .io.store import save_reliability

    model = _load(args)
    classifier = _classifier(args, model)
    rel = reliability(
        model,
        args.target,
        repeats=args.repeats,
        classifier=classifier,
        size=args.size,
        seed=args.seed,
        unit_mode=args.unit,
        progress=not args.quiet,
        **_method(args),
    )
    save_reliability(
        rel,
        args.out,
        {
            "command": "reliability",
            "model": model.name,
            "weights": model.weights,
            "argv": sys.argv[1:],
        },
    )
    s = rel.stats
    sp = s["spearman"]
    print(
        f"top-1: {s['top1_most_common']['name']} in {s['top1_most_common']['count']} of"
        f" {s['repeats']} repeats (agreement {s['top1_agreement']:.2f})"
    )
    print(
        f"top-5 labels shared by at least two repeats: {100 * s['top5_shared']:.0f} %"
        f" ({s['top5_unique_to_one_repeat']} of {s['top5_labels']} unique to one repeat)"
    )
    print(
        f"Spearman ρ of the logits over {sp['pairs']} pairs: mean {sp['mean_rho']:.3f}, min"
        f" {sp['min_rho']:.3f}, p < {sp['alpha']:g} in {100 * sp['fraction_p_below']:.0f} %; first"
        f" pair ρ = {sp['first_pair']['rho']:.3f} (p = {sp['first_pair']['p']:.2g})"
    )
    print(
        f"mean pairwise correlation: pixels {s['pixel_correlation']:.3f}, {s['feature_layer']}"
        f" features {s['feature_correlation']:.3f}"
    )
    print(f"wrote grid.png, logits.png, images/, result.npz and metrics.json to {args.out}/")


def cmd_study(args):
    from .models import load_model
    from .io.store import save_study
    from .methods.finzi.study import between_conditions, conditions, run_study

    specs = [m for m in args.model.split(",") if m]
    if not specs:
        raise PreimageError(
            "bad --model ''; give one model, or several separated by commas (MODEL or"
            " MODEL:WEIGHTS)"
        )
    models = []
    for spec in specs:
        name, _, weights = spec.partition(":")
        models.append(
            load_model(
                name, weights=weights or args.weights, seed=args.weights_seed, device=args.device
            )
        )
    config = {
        "command": "study",
        "study": args.study,
        "models": [m.name for m in models],
        "weights": [m.weights for m in models],
        "argv": sys.argv[1:],
        **_method(args),
        "seed": args.seed,
        "size": args.size,
    }
    if args.study == "depths":
        return _depth_study(args, models, config)
    conditions(args.study, args.tv_with)  # a bad --study fails before any work
    targets = args.target or []
    if len(targets) not in (1, len(models)):
        raise PreimageError(
            f"bad --target: {len(targets)} given for {len(models)} models; give one target for all,"
            " or one per model in the order of --model"
        )
    targets = targets * len(models) if len(targets) == 1 else targets
    if args.repeats < 2:
        raise PreimageError(
            f"bad --repeats {args.repeats}; a study needs at least 2 repeats per condition"
        )
    classifiers = [_classifier(args, m) for m in models]
    from .methods.finzi.reliability import _repeatable_target

    for m, t in zip(models, targets):
        _repeatable_target(m, t, args.size or m.input_size, args.unit)
    studies, scales = [], {}
    for m, t, c in zip(models, targets, classifiers):
        method = {**_method(args), "tv": 0.0}  # the conditions set TV
        runs, scale = run_study(
            m,
            t,
            args.study,
            repeats=args.repeats,
            classifier=c,
            tv_with=args.tv_with,
            tv_scale=args.tv_scale,
            size=args.size,
            seed=args.seed,
            unit_mode=args.unit,
            progress=not args.quiet,
            **method,
        )
        scales[m.name] = scale
        # a sweep is read against its unregularized start; the preprocessing conditions pairwise
        studies.append(
            (
                m.name,
                t,
                runs,
                between_conditions(
                    runs, reference=next(iter(runs)) if args.study == "tv" else None
                ),
            )
        )
    save_study(
        studies,
        args.out,
        {
            **config,
            "targets": targets,
            "repeats": args.repeats,
            "tv_with": args.tv_with,
            "tv_scale": scales,
        },
    )
    print(open(os.path.join(args.out, "summary.md")).read().rstrip())
    print(
        "wrote summary.csv, summary.md, conditions.png, metrics.json and one folder per condition"
        f" to {args.out}/"
    )


def _depth_study(args, models, config):
    """Finzi Fig. 8: one channel at every depth of each network, one batch per network."""
    from .io.figures import image_rows
    from .io.images import save_json
    from .io.store import save_render
    from .methods.finzi.study import depth_layers
    from .methods.visualize import visualize

    if args.layers and len(models) > 1:
        raise PreimageError(
            "--layers names one network's layers; with several --model, leave it out and each"
            " network shows its own depths"
        )
    plans = []
    for m in models:
        layers = [l for l in args.layers.split(",") if l] if args.layers else depth_layers(m)
        size = args.size or m.input_size
        for layer in layers:
            channels = m.layer_info(layer, size).shape[0]
            if args.channel >= channels:
                raise PreimageError(
                    f"bad --channel {args.channel}; layer {layer} of {m.name} has {channels}"
                    f" channels (0-{channels - 1})"
                )
        plans.append((m, layers))
    rows, runs = [], {}
    for m, layers in plans:
        result, _ = visualize(
            m,
            [f"{layer}:{args.channel}" for layer in layers],
            size=args.size,
            seed=args.seed,
            unit_mode=args.unit,
            progress=not args.quiet,
            **_method(args),
        )
        runs[m.name] = (result, layers)
        rows.append(
            (
                f"{m.name}\n({m.weights.split(' ')[0]})",
                [(layer, image) for layer, image in zip(layers, result.images)],
            )
        )
    os.makedirs(args.out, exist_ok=True)
    for name, (result, layers) in runs.items():
        save_render(
            result,
            os.path.join(args.out, name),
            {**config, "channel": args.channel, "layers": layers},
        )
    image_rows(rows, os.path.join(args.out, "depths.png"))
    save_json(
        os.path.join(args.out, "metrics.json"),
        {
            "config": {**config, "channel": args.channel},
            "layers": {n: l for n, (_, l) in runs.items()},
            "files": ["depths.png"] + list(runs),
        },
    )
    print(
        f"wrote depths.png (channel {args.channel} at"
        f" {', '.join(str(len(l)) for _, (_, l) in runs.items())} depths) and one folder per model"
        f" to {args.out}/"
    )


def cmd_atlas(args):
    from .atlas import Campaign, Settings, estimate, make_executor, plan, run_campaign
    from .atlas.executors import default_threads
    from .atlas.plan import parse_methods
    from .atlas.run import CATALOG

    methods = parse_methods(args.methods)
    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    if not layers:
        raise PreimageError(
            f"bad --layers {args.layers!r}; expected layer names separated by commas (`preimage"
            " layers` lists them)"
        )
    lambdas = _numbers(args.lambdas, "--lambdas") if args.lambdas else []
    for flag, value in (("--workers", args.workers), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise PreimageError(f"bad {flag} {value}; it must be at least 1")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise PreimageError(f"bad --out {args.out!r}: it is a file; the campaign needs a folder")
    settings = Settings(
        model=args.model,
        weights=args.weights,
        weights_seed=args.weights_seed,
        device=args.device,
        steps=args.steps,
        seed=args.seed,
        size=args.size,
        n=args.n,
        lambdas=lambdas,
        repeats=args.repeats,
        chunk=args.chunk,
    )
    if args.plan:
        import torch

        from .models import load_model

        _check_device(args.device)
        # the plan times the architecture; the weights do not change the time, and need not be at hand
        model = load_model(args.model, weights="random", seed=0, device=args.device)
        specs = plan(model, layers, args.units, methods, settings)
        workers = args.workers or 1
        torch.set_num_threads(args.threads or default_threads(1))
        table, total, rates = estimate(
            model,
            specs,
            workers=workers,
            progress=(
                None
                if args.quiet
                else lambda key, rate: print(
                    f"timed {key[0]} at {key[1]} px, batch {key[2]}: {rate * 1000:.2f} ms per"
                    " image-step",
                    file=sys.stderr,
                )
            ),
        )
        width = max(len(r["layer"]) for r in table)
        print(f"plan: {args.model}, methods {','.join(methods)}, {settings.chunk} units per job")
        print(
            f"{'layer':{width}} {'alias':8} {'units':>6} {'jobs':>6} {'image-steps':>14}"
            f" {'hours':>9}"
        )
        for r in table:
            print(
                f"{r['layer']:{width}} {r['alias']:8} {r['units']:>6} {r['jobs']:>6}"
                f" {r['image_steps']:>14,} {r['seconds'] / 3600:>9.1f}"
            )
        print(
            f"total: {total['jobs']} jobs, {total['image_steps']:,} image-steps,"
            f" {total['seconds'] / 3600:.1f} hours of one worker ({torch.get_num_threads()} threads"
            f" on {args.device}, forward+backward timed here, at full steps without early"
            f" stopping); {total['seconds_per_worker'] / 3600:.1f} hours per worker with {workers}"
            " workers"
        )
        return
    if not args.out:
        raise PreimageError("bad arguments: --out DIR is required (or --plan for a dry run)")
    from .models import load_model

    if args.executor == "local":
        _check_device(args.device)
    # the driver only plans (layer shapes, classes); workers load the network on --device, so a
    # CPU-only driver can run a campaign on a GPU cluster
    model = load_model(args.model, weights=args.weights, seed=args.weights_seed, device="cpu")
    specs = plan(model, layers, args.units, methods, settings)
    threads = args.threads or default_threads(args.workers or (2 if args.executor == "ray" else 1))
    executor = make_executor(
        args.executor,
        workers=args.workers,
        threads=threads,
        address=args.ray_address,
        device=args.device,
    )
    try:
        with Campaign(args.out) as campaign:
            config = {
                "command": "atlas",
                "model": model.name,
                "weights": model.weights,
                "layers": layers,
                "units": args.units,
                "methods": methods,
                "settings": vars(settings),
                "executor": args.executor,
                "workers": args.workers,
                "threads": threads,
            }
            try:
                summary = run_campaign(
                    campaign,
                    specs,
                    executor,
                    progress=not args.quiet,
                    argv=sys.argv[1:],
                    config=config,
                )
            except KeyboardInterrupt:
                counts = campaign.catalog.counts()
                print(
                    f"preimage: interrupted with {counts.get('done', 0)} of {len(specs)} jobs done;"
                    " run the same command to resume",
                    file=sys.stderr,
                )
                raise SystemExit(130) from None
    finally:
        executor.close()
    print(
        f"{summary['jobs']} jobs: {summary['done_before']} were done, ran {summary['ran']} in"
        f" {summary['wall_seconds']:.0f} s"
        + (
            f", {summary['interrupted_reset']} interrupted earlier and redone"
            if summary["interrupted_reset"]
            else ""
        )
        + f"; failed {len(summary['failed'])}"
    )
    print(f"catalog: {os.path.join(args.out, CATALOG)}; browse with `preimage report {args.out}`")
    if summary["failed"]:
        raise SystemExit(1)


def cmd_report(args):
    from .atlas.report import write_report

    index, counts = write_report(args.dir)
    print(f"wrote {counts['unit_pages']} unit pages over {counts['layers']} layers; open {index}")


def _prior_args(p):
    p.add_argument(
        "--prior",
        default=None,
        help=(
            "a natural-image prior: 'default' (the packaged PixelCNN++) or a file from `preimage"
            " prior train`"
        ),
    )
    p.add_argument(
        "--prior-weight",
        type=float,
        default=None,
        help="its weight α (default 0.0005, Cadena et al.'s)",
    )


def _prior(args):
    if args.prior is None:
        if args.prior_weight is not None:
            raise PreimageError(
                f"bad --prior-weight {args.prior_weight}: it weighs a prior, so give --prior"
                " default or --prior FILE too"
            )
        return None
    from .priors.training import load_prior

    return load_prior(args.prior, args.device)


def _prior_kw(args):
    """prior and prior_weight for the Mahendran & Vedaldi presets (their default weight unless given)."""
    prior = _prior(args)
    return (
        {}
        if prior is None
        else {
            "prior": prior,
            **({} if args.prior_weight is None else {"prior_weight": args.prior_weight}),
        }
    )


def _prior_weight(args):
    return 0.0005 if args.prior_weight is None else args.prior_weight


def cmd_prior(args):
    from .io.images import save_json
    from .priors.training import evaluate, export, load_prior, train

    if args.action == "train":
        if args.patch < 4 or args.steps < 1 or args.batch < 1:
            raise PreimageError(
                f"bad --patch {args.patch} / --steps {args.steps} / --batch {args.batch}; the patch"
                " must be at least 4 pixels and the others positive"
            )
        network = {
            "filters": args.filters,
            "resnets": args.resnets,
            "scales": args.scales,
            "mixtures": args.mixtures,
        }
        prior, history = train(
            args.out,
            images=args.images,
            patch=args.patch,
            steps=args.steps,
            batch=args.batch,
            lr=args.lr,
            network=network,
            seed=args.seed,
            device=args.device,
            progress=not args.quiet,
            eval_every=args.eval_every,
            save_every=args.eval_every,
        )
        if args.export:
            export(args.out, args.export)
        last = history[-1] if history else {}
        print(
            f"wrote {args.out} (step {prior.steps}; held-out"
            f" {last.get('held_out_bpd', float('nan')):.3f} bpd)"
            + (f" and {args.export}" if args.export else "")
        )
        return
    prior = load_prior(args.prior, args.device)
    result = evaluate(
        prior,
        images=args.images,
        train_count=args.train_patches,
        test_count=args.test_patches,
        components=args.components,
        seed=args.seed,
    )
    os.makedirs(args.out, exist_ok=True)
    save_json(
        os.path.join(args.out, "metrics.json"),
        {
            "config": {
                "command": "prior evaluate",
                "prior": args.prior,
                **prior.describe(),
                "argv": sys.argv[1:],
            },
            **result,
        },
    )
    print(
        f"held-out bits per dimension on {result['patch']}x{result['patch']} patches: PixelCNN++"
        f" {result['pixelcnn_bpd']:.3f}, Gaussian {result['gaussian_bpd']:.3f}, Gaussian mixture"
        f" {result['gmm_bpd']:.3f}"
    )
    print(f"wrote {os.path.join(args.out, 'metrics.json')}")


def _method_args(p, optimizers):
    """The activation-maximization method, shared by visualize, reliability and study."""
    p.add_argument(
        "--steps", type=int, default=256, help="maximum optimization steps (default 256)"
    )
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="image size in pixels (default: the model's input size)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the initial noise and the random transforms (default 0)",
    )
    p.add_argument(
        "--param",
        choices=("pixel", "fourier"),
        default="fourier",
        help="image parameterization (default fourier, 1/f scaled)",
    )
    p.add_argument(
        "--no-decorrelate",
        action="store_true",
        help="optimize RGB directly instead of decorrelated colour",
    )
    p.add_argument(
        "--transforms",
        default="finzi",
        help=(
            "'none', 'finzi' (pad 12, jitter 8, scale .9-1.1, rotate ±10, jitter 4), or a list like"
            " 'jitter:4,rotate:-5:5:1'"
        ),
    )
    p.add_argument("--optimizer", choices=optimizers, default="adam")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05, Finzi's)")
    p.add_argument(
        "--l2", type=float, default=0.0, help="weight of the L2 image penalty (Finzi's λ1)"
    )
    p.add_argument(
        "--tv", type=float, default=0.0, help="weight of the total-variation penalty (Finzi's λ2)"
    )
    p.add_argument(
        "--tv-beta",
        type=float,
        default=1.0,
        help="exponent β of TV^β (1: Finzi; 2: Mahendran & Vedaldi)",
    )
    p.add_argument(
        "--unit",
        action="store_true",
        help="LAYER:C means the centre unit instead of the channel mean",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=50,
        help="stop once no image has improved for this many steps (default 50; 0 runs every step)",
    )


def _method(args):
    """The method flags as keyword arguments of ``visualize``."""
    return dict(
        steps=args.steps,
        param=args.param,
        decorrelate=not args.no_decorrelate,
        transforms=args.transforms,
        optimizer=args.optimizer,
        lr=args.lr,
        l2=args.l2,
        tv=args.tv,
        tv_beta=args.tv_beta,
        patience=args.patience,
    )


def _preimage_args(p, steps=300):
    _model_args(p)
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="the network's window in pixels (default: the model's input size)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=steps,
        help=f"optimization steps (default {steps}, the paper's T)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the initial noise and the jitter (default 0)"
    )
    p.add_argument(
        "--jitter",
        type=int,
        default=None,
        help=(
            "jitter amount T (default: a quarter of the layer's stride, as the paper; 0 or 1 for"
            " none)"
        ),
    )
    p.add_argument(
        "--B",
        default=None,
        help=(
            "B of N_α in the paper's 0-255 units (default 80), or 'measured': N_α = 1 for the"
            " images given (B+ = 2B)"
        ),
    )
    p.add_argument(
        "--V",
        default=None,
        help=(
            "V of TV^β in the paper's 0-255 units (default B/6.5), or 'measured': R_TV = 1 for the"
            " images given"
        ),
    )
    p.add_argument(
        "--prior",
        default=None,
        help=(
            "a natural-image prior: 'default' (the packaged PixelCNN++) or a file from `preimage"
            " prior train`"
        ),
    )
    p.add_argument(
        "--prior-weight",
        type=float,
        default=None,
        help=(
            "weight of log P(x) per pixel in the energy (default 0.1, which makes it a term near 1)"
        ),
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="output directory")


def build_parser():
    from .engine.optim import OPTIMIZERS

    parser = _Parser(
        prog="preimage",
        description=(
            "Natural pre-images of vision models: what units respond to and what they are"
            " invariant to."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("models", help="list the model names")
    p.set_defaults(run=cmd_models)

    p = sub.add_parser("layers", help="every addressable layer with its shape and receptive field")
    _model_args(p)
    p.add_argument(
        "--size", type=int, default=None, help="input size in pixels (default: the model's)"
    )
    p.add_argument(
        "--json", action="store_true", help="print a JSON list with name, shape, rf_size, rf_stride"
    )
    p.set_defaults(run=cmd_layers)

    p = sub.add_parser(
        "visualize",
        help="activation maximization of channels, units, layers, classes or directions",
    )
    _model_args(p)
    p.add_argument(
        "--target",
        action="append",
        required=True,
        help=(
            "LAYER, LAYER:C, LAYER:C@Y,X, LAYER:all, LAYER:A-B, LAYER:dir=FILE.npy, class:N|NAME;"
            " repeatable"
        ),
    )
    _method_args(p, OPTIMIZERS)
    p.add_argument(
        "--compare-natural",
        action="store_true",
        help="also report activation / 99th percentile over natural image patches",
    )
    _prior_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=cmd_visualize)

    p = sub.add_parser(
        "diverse",
        help=(
            "diverse feature visualizations: a unit's invariances by a λ sweep (Cadena et al. 2018)"
        ),
    )
    _model_args(p)
    p.add_argument(
        "--target",
        required=True,
        help="LAYER:C, LAYER:A-B or LAYER:all (the centre unit of each channel)",
    )
    p.add_argument("--n", type=int, default=6, help="images per batch (default 6)")
    p.add_argument(
        "--lambdas",
        default=None,
        help="λ values separated by commas, starting at 0 (default 0,0.02,0.04,...,20.48)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help=(
            "keep λ while the mean activation is at least this share of the λ=0 one (default 0.9;"
            " 0.8 for the toy complex cells)"
        ),
    )
    p.add_argument("--steps", type=int, default=1000, help="maximum steps (default 1000)")
    p.add_argument("--lr", type=float, default=0.1, help="Adam's learning rate (default 0.1)")
    p.add_argument(
        "--patience",
        type=int,
        default=50,
        help="stop once no image has improved for this many steps (default 50; 0 runs every step)",
    )
    p.add_argument(
        "--distance", default="auto", help="'auto' (the preceding layer), 'pixels', or a layer name"
    )
    p.add_argument(
        "--size", type=int, default=None, help="image size (default: the unit's receptive field)"
    )
    p.add_argument(
        "--images",
        default=None,
        help="folder of natural images for the image norm (default: the sample photographs)",
    )
    p.add_argument(
        "--baseline",
        choices=("none", "random"),
        default="none",
        help="also run the same architecture with random weights and compare",
    )
    _prior_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=cmd_diverse)

    p = sub.add_parser(
        "invariance",
        help="shift invariance and linear combination indices per unit (Cadena et al. §4.4-4.6)",
    )
    _model_args(p)
    p.add_argument("--target", required=True, help="LAYER:C, LAYER:A-B or LAYER:all")
    p.add_argument(
        "--compare",
        default=None,
        help=(
            "another model to run side by side: MODEL or MODEL:WEIGHTS (e.g."
            " efficientnet_lite0:random)"
        ),
    )
    p.add_argument(
        "--compare-target", default=None, help="the other model's units (default: the same target)"
    )
    p.add_argument("--n", type=int, default=6, help="templates per unit (default 6)")
    p.add_argument(
        "--steps", type=int, default=1000, help="maximum steps of each optimization (default 1000)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=cmd_invariance)

    p = sub.add_parser(
        "reliability",
        help="repeat one visualization and measure how much the repeats agree (Finzi §IV.B.1)",
    )
    _model_args(p)
    p.add_argument(
        "--target",
        required=True,
        help="one channel, unit or class: LAYER:C, LAYER:C@Y,X, class:N|NAME",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=25,
        help="optimizations from different noise (default 25, Finzi's)",
    )
    p.add_argument(
        "--classifier",
        default=None,
        help=(
            "classify the repeats with this model, MODEL or MODEL:WEIGHTS (default: the model"
            " itself)"
        ),
    )
    _method_args(p, OPTIMIZERS)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=cmd_reliability)

    p = sub.add_parser(
        "study",
        help="Finzi's design-choice studies: TV sweep, preprocessing, one channel across depths",
    )
    p.add_argument(
        "--model",
        default="efficientnet_lite0",
        help="a model, or several separated by commas, each MODEL or MODEL:WEIGHTS",
    )
    p.add_argument("--weights", default=None, help="weights of models given without :WEIGHTS")
    p.add_argument("--weights-seed", type=int, default=0, help="seed of random weights (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument(
        "--study",
        required=True,
        choices=("tv", "preprocessing", "depths"),
        help=(
            "tv: TV weight 0 to 1 by 0.1 (Fig. 7); preprocessing: with and without transforms and"
            " TV (Figs. 5, 6); depths: one channel at every depth (Fig. 8)"
        ),
    )
    p.add_argument(
        "--target",
        action="append",
        default=None,
        help="tv and preprocessing: the target, once for all models or once per model",
    )
    p.add_argument("--repeats", type=int, default=10, help="repeats per condition (default 10)")
    p.add_argument(
        "--classifier", default=None, help="classify with this model instead of each model itself"
    )
    p.add_argument(
        "--tv-with",
        type=float,
        default=0.5,
        help=(
            "the relative TV weight of the 'with TV' conditions of the preprocessing study (default"
            " 0.5)"
        ),
    )
    p.add_argument(
        "--tv-scale",
        type=float,
        default=None,
        help=(
            "absolute TV weight = relative weight x this (default: the first condition's activation"
            " / its TV, so 1 balances them)"
        ),
    )
    p.add_argument(
        "--channel",
        type=int,
        default=0,
        help="depths: the channel shown at every depth (default 0)",
    )
    p.add_argument(
        "--layers",
        default=None,
        help="depths: the layers of a single model (default: every block, or every convolution)",
    )
    _method_args(p, OPTIMIZERS)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=cmd_study)

    p = sub.add_parser(
        "prior",
        help=(
            "a PixelCNN++ natural-image prior: train it on patches, or evaluate it against Gaussian"
            " baselines"
        ),
    )
    p.add_argument("action", choices=("train", "evaluate"))
    p.add_argument(
        "--images",
        default="samples",
        help="a folder of images, or 'samples' (scikit-image's photographs; default)",
    )
    p.add_argument("--patch", type=int, default=32, help="train: patch size in pixels (default 32)")
    p.add_argument(
        "--steps",
        type=int,
        default=2000,
        help="train: total steps, counting those of a resumed checkpoint (default 2000)",
    )
    p.add_argument("--batch", type=int, default=32, help="train: patches per step (default 32)")
    p.add_argument(
        "--lr", type=float, default=1e-3, help="train: Adam's learning rate (default 0.001)"
    )
    p.add_argument(
        "--filters", type=int, default=32, help="train: channels of the network (default 32)"
    )
    p.add_argument(
        "--resnets", type=int, default=2, help="train: gated ResNet blocks per scale (default 2)"
    )
    p.add_argument("--scales", type=int, default=2, help="train: resolutions (default 2)")
    p.add_argument(
        "--mixtures", type=int, default=5, help="train: logistic mixture components (default 5)"
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=200,
        help="train: held-out evaluation and checkpoint every N steps (default 200)",
    )
    p.add_argument(
        "--export",
        default=None,
        help=(
            "train: also write the model alone, in float16, to this file (how the packaged prior is"
            " made)"
        ),
    )
    p.add_argument("--prior", default="default", help="evaluate: 'default' or a checkpoint file")
    p.add_argument(
        "--train-patches",
        type=int,
        default=20000,
        help="evaluate: patches the baselines are fitted on (default 20000)",
    )
    p.add_argument(
        "--test-patches", type=int, default=2000, help="evaluate: held-out patches (default 2000)"
    )
    p.add_argument(
        "--components",
        type=int,
        default=8,
        help="evaluate: Gaussian mixture components (default 8)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--out",
        required=True,
        help=(
            "train: the checkpoint file (resumed if it exists); evaluate: a folder for metrics.json"
        ),
    )
    p.set_defaults(run=cmd_prior)

    p = sub.add_parser(
        "atlas",
        help=(
            "a resumable campaign: many units x layers x methods as jobs, here or on Ray, in an"
            " SQLite catalog"
        ),
    )
    _model_args(p)
    p.add_argument("--layers", required=True, help="layer names separated by commas")
    p.add_argument(
        "--units",
        default="all",
        help="all, N (channels 0..N-1), or a list such as 3,7,10-15 (default all)",
    )
    p.add_argument(
        "--methods",
        default="visualize,diverse,invariance",
        help=(
            "visualize, diverse, invariance, reliability, separated by commas (default"
            " visualize,diverse,invariance)"
        ),
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=(
            "optimization steps of every method (default: each method's own, 256 or the paper's"
            " 1000)"
        ),
    )
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="image size of visualize and reliability (default: the model's input size)",
    )
    p.add_argument(
        "--n", type=int, default=6, help="diverse/invariance: images per unit (default 6)"
    )
    p.add_argument(
        "--lambdas",
        default=None,
        help=(
            "diverse/invariance: the λ sweep, starting at 0 (default 0,0.02,...,20.48, the paper's)"
        ),
    )
    p.add_argument(
        "--repeats", type=int, default=8, help="reliability: repeats per unit (default 8)"
    )
    p.add_argument("--chunk", type=int, default=8, help="units per job (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="local: one job at a time in this process (default); ray: Ray tasks",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help=(
            "join this Ray cluster (such as auto or 10.0.0.1:6379) instead of starting a local one"
        ),
    )
    p.add_argument(
        "--workers", type=int, default=None, help="ray: jobs at once (default 2 on a local cluster)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per worker (default: the cores divided by the workers)",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="dry run: print the jobs, image-steps and estimated time per worker, and run nothing",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--out",
        default=None,
        help="the campaign folder (catalog.sqlite, jobs/); rerunning resumes it",
    )
    p.set_defaults(run=cmd_atlas)

    p = sub.add_parser("report", help="a static HTML report of an atlas folder: DIR/index.html")
    p.add_argument("dir", help="the atlas folder (--out of preimage atlas)")
    p.set_defaults(run=cmd_report)

    p = sub.add_parser(
        "invert", help="reconstruct an image from its code at a layer (Mahendran & Vedaldi §5)"
    )
    _preimage_args(p)
    p.add_argument("--layer", required=True)
    p.add_argument(
        "--image",
        required=True,
        help="an image file, or sample:NAME (astronaut, chelsea, coffee, ...)",
    )
    p.add_argument(
        "--C",
        type=float,
        default=None,
        help="weight of the loss (default: the paper's choice by depth)",
    )
    p.add_argument(
        "--mask-window",
        type=int,
        default=None,
        help="invert only the central K x K window of the feature map",
    )
    p.add_argument(
        "--mask-channels", default=None, help="invert only channels A to B-1, given as A:B"
    )
    p.add_argument(
        "--seeds", type=int, default=1, help="reconstructions from different noise (default 1)"
    )
    p.set_defaults(run=cmd_invert)

    p = sub.add_parser(
        "caricature", help="exaggerate what layers see in an image (Mahendran & Vedaldi §7)"
    )
    _preimage_args(p)
    p.add_argument(
        "--layer", required=True, help="a layer, or several separated by commas (one folder each)"
    )
    p.add_argument("--image", required=True, help="an image file, or sample:NAME")
    p.add_argument("--C", type=float, default=1.0, help="weight of the loss (default 1)")
    p.set_defaults(run=cmd_caricature)

    p = sub.add_parser(
        "maximize", help="activation maximization with Mahendran & Vedaldi's energy (§6)"
    )
    _preimage_args(p)
    p.add_argument(
        "--target",
        required=True,
        help="LAYER:C, LAYER:A-B, LAYER:all, or LAYER:C@Y,X (one image per channel)",
    )
    p.add_argument(
        "--images",
        default=None,
        help="folder of natural images on which M is measured (default: the sample photographs)",
    )
    p.add_argument(
        "--C", type=float, default=1.0, help="weight of the loss (default 1, the paper's)"
    )
    p.set_defaults(run=cmd_maximize)

    p = sub.add_parser(
        "invert-table",
        help="inversion error per layer and per C, like Tables 4 and 5 of Mahendran & Vedaldi",
    )
    _preimage_args(p)
    p.add_argument(
        "--layers",
        default=None,
        help="layer names separated by commas (default: each model's output)",
    )
    p.add_argument(
        "--C",
        default=None,
        help=(
            "values of C separated by commas (default 1,20,100,300; 20 for hog, hogb and dsift, as"
            " in §5.1)"
        ),
    )
    p.add_argument(
        "--images", default=None, help="folder of images (default: the sample photographs)"
    )
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.set_defaults(run=cmd_invert_table)
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
