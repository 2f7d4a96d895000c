"""Tables 4 and 5 of Mahendran & Vedaldi for any model: inversion error per layer and per C.

A column is a layer of a model (several models side by side make Table 4). Each column is one
batch: every image at every C, inverted from noise with the energy of eq. 1. The error of an
inversion is ‖Φ(x*) - Φ0‖ / ‖Φ0‖ (§5.1); the table gives its mean ± standard deviation over the
images, in percent. Files: table.csv, table.md, errors.png, inversions.png, result.npz,
metrics.json.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass

import numpy as np

from ...errors import PreimageError
from ...io.figures import pyplot, save_figure
from ...io.files import atomic_write, environment, save_json, save_npz
from ...io.images import to_uint8
from ...settings import at_least, numbers, setting
from ..base import Method, Result
from ..registry import register
from .energy import EnergySettings, bounded_photograph_error, paper_C
from .invert import invert


def column_name(model, layer, with_model=False):
    """A table column: the layer's paper name where it has one, prefixed by the model when
    several are compared."""
    alias = {v: k for k, v in model.aliases.items()}.get(model.resolve_layer(layer))
    name = alias or layer
    return f"{model.name}:{name}" if with_model else name


def inversion_table(
    columns,
    Cs,
    images,
    seeds=1,
    seed=0,
    progress=True,
    log=None,
    **preset_kw,
):
    """Invert every image at every C from every (model, layer) column.

    Returns ({column name: {C: errors over images}}, {(column name, C): reconstruction of image 0},
    {column name: errors of the photographs themselves brought inside the hard bound B+}),
    the last from ``bounded_photograph_error``.
    preset_kw: energy, jitter, prior and prior_weight, as ``preset`` takes them.
    """
    if log is None:  # a line per column is progress too: silenced with the bars
        log = print if progress else (lambda line: None)
    errors, first, bounded = {}, {}, {}
    for i, (model, layer, name) in enumerate(columns):
        result = invert(
            model, layer, images, C=list(Cs), seeds=seeds, seed=seed, progress=progress, **preset_kw
        )
        per_c = {}
        for c in Cs:
            idx = [k for k, m in enumerate(result.meta) if m["C"] == float(c)]
            per_c[float(c)] = result.scores[idx].cpu().numpy()
            first[(name, float(c))] = result.images[idx[0]].cpu()
        errors[name] = per_c
        energy = preset_kw.get("energy")
        bounded[name] = bounded_photograph_error(model, layer, images, energy).numpy()
        summary = ", ".join(
            f"C={c:g}: {100 * v.mean():.1f} ± {100 * v.std():.1f} %" for c, v in per_c.items()
        )
        summary += f"; the photographs within B+: {100 * bounded[name].mean():.1f} %"
        log(f"[{i + 1}/{len(columns)}] {name}: {summary} ({result.render.seconds:.0f} s)")
    return errors, first, bounded


def _table_csv(columns, Cs, errors, chosen):
    buf = io.StringIO()
    w = csv.writer(buf)
    header = ["model", "layer", "name", "C", "mean_error_percent", "std_error_percent", "images"]
    w.writerow(header + ["paper_C"])
    for model, layer, name in columns:
        for c in Cs:
            v = errors[name][float(c)]
            mean, std = f"{100 * v.mean():.2f}", f"{100 * v.std():.2f}"
            paper = int(float(c) == chosen[name])
            w.writerow([model.name, model.resolve_layer(layer), name, c, mean, std, len(v), paper])
    return buf.getvalue()


def _spread(v):
    return {"mean": float(v.mean()), "std": float(v.std())}


def _cell(v):
    return f"{100 * v.mean():.1f} ± {100 * v.std():.1f}"


def _table_md(names, Cs, errors, chosen, bounded):
    lines = ["| C | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for c in Cs:
        lines.append(f"| {c:g} | " + " | ".join(_cell(errors[n][float(c)]) for n in names) + " |")
    # the paper's C by depth (§5.2.1), the setting of its Figs. 5-7: large C early, small C deep
    if any(chosen[n] in errors[n] for n in names):  # a column whose C was not run shows a dash
        cells = [
            f"{_cell(errors[n][chosen[n]])} (C={chosen[n]:g})"
            if chosen[n] in errors[n]
            else f"– (C={chosen[n]:g} not run)"
            for n in names
        ]
        lines.append("| paper's C by depth | " + " | ".join(cells) + " |")
    if bounded:
        cells = [_cell(bounded[n]) for n in names]
        lines.append("| the photographs within B+ | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(out, columns, Cs, errors, first, images, config, bounded=None):
    """table.csv, table.md, errors.png, inversions.png, result.npz and metrics.json.

    Beside one row per C, table.md has a row at the paper's C by depth (§5.2.1:
    300 early, down to 1 for the deepest layers), when those C were run: the
    setting of Figs. 5-7, and the one the inversion commands use by default;
    and a row with the error of the photographs themselves within the hard
    bound B+, the part of the error the bound alone explains.
    """
    os.makedirs(out, exist_ok=True)
    names = [name for _, _, name in columns]
    chosen = {name: paper_C(model, layer, images.shape[-1]) for model, layer, name in columns}
    atomic_write(os.path.join(out, "table.csv"), _table_csv(columns, Cs, errors, chosen).encode())
    md = _table_md(names, Cs, errors, chosen, bounded)
    atomic_write(os.path.join(out, "table.md"), md.encode())
    _plot(os.path.join(out, "errors.png"), names, Cs, errors, chosen)
    shown = {n: chosen[n] if chosen[n] in errors[n] else float(max(Cs)) for n in names}
    panels = [(n, first[(n, shown[n])], shown[n]) for n in names]
    _figure(os.path.join(out, "inversions.png"), images[0], panels)
    array = np.stack(
        [np.stack([errors[n][float(c)] for c in Cs]) for n in names]
    )  # columns x C x N
    save_npz(
        os.path.join(out, "result.npz"),
        errors=array,
        columns=np.array(names),
        C=np.array(Cs, dtype=float),
    )
    run = [n for n in names if chosen[n] in errors[n]]
    metrics = {
        "config": config,
        "columns": [
            {"model": m.name, "layer": m.resolve_layer(layer), "name": n} for m, layer, n in columns
        ],
        "C": list(Cs),
        "mean_error": {n: {str(c): float(errors[n][float(c)].mean()) for c in Cs} for n in names},
        "std_error": {n: {str(c): float(errors[n][float(c)].std()) for c in Cs} for n in names},
        "figure_C": shown,
        "paper_C": chosen,
        "bounded_photograph_error": {n: _spread(v) for n, v in (bounded or {}).items()},
        "paper_C_error": {n: {"C": chosen[n], **_spread(errors[n][chosen[n]])} for n in run},
        "files": ["table.csv", "table.md", "errors.png", "inversions.png", "result.npz"],
        "environment": environment(),
    }
    save_json(os.path.join(out, "metrics.json"), metrics)
    return metrics


def _plot(path, names, Cs, errors, chosen):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names)), 4))
    x = np.arange(len(names))
    for c in Cs:
        mean = np.array([100 * errors[n][float(c)].mean() for n in names])
        std = np.array([100 * errors[n][float(c)].std() for n in names])
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=f"C = {c:g}")
    picked = [
        (k, 100 * errors[n][chosen[n]].mean())
        for k, n in enumerate(names)
        if chosen[n] in errors[n]
    ]
    if picked:
        ax.plot(
            *zip(*picked), color="black", linestyle="--", marker="s", label="paper's C by depth"
        )
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("normalized reconstruction error (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def _figure(path, original, panels):
    plt = pyplot()
    n = len(panels) + 1
    cols = min(n, 6)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0][0].imshow(to_uint8(original))
    axes[0][0].set_title("original", fontsize=8)
    for k, (name, image, c) in enumerate(panels, start=1):
        ax = axes[k // cols][k % cols]
        ax.imshow(to_uint8(image))
        ax.set_title(f"{name} (C={c:g})", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _positive_all(flag, values):
    if any(not v > 0 for v in values):
        raise PreimageError(
            f"bad {flag} {','.join(f'{v:g}' for v in values)}; every C must be positive"
        )


@dataclass
class TableSettings(EnergySettings):
    """The settings of `preimage invert-table`; each field's help is its flag's."""

    layers: str = setting(
        None, "layer names separated by commas (default: each model's output)", type=str
    )
    C: list = setting(
        None,
        "values of C separated by commas (default: 1,20,100,300; the model's own C where it has"
        " one, 20 for hog, hogb and dsift as in §5.1)",
        parse=numbers,
        check=_positive_all,
    )
    images: str = setting(None, "folder of images (default: the sample photographs)", type=str)
    limit: int = setting(None, "use only the first N images", type=int, check=at_least(1))


def _columns(models, settings, size):
    layers = [x for x in (settings.layers or "").split(",") if x]
    columns = []
    for model in models:
        for layer in layers or [model.layers(size)[-1].name]:  # without --layers, the output
            model.layer_info(layer, size)
            several = len(models) > 1
            name = model.name if not layers and several else column_name(model, layer, several)
            columns.append((model, layer, name))
    return columns


def _images(settings, size, channels, resample):
    from ...io.images import load_folder
    from ...io.samples import SAMPLE_IMAGES, sample_images

    if settings.images:
        return load_folder(settings.images, size, settings.limit, channels, resample)
    images = sample_images(size, channels=channels, resample=resample)
    images = images[: settings.limit] if settings.limit else images
    return images, [f"sample:{n}" for n in SAMPLE_IMAGES][: images.shape[0]]


@dataclass
class TableResult(Result):
    """What `preimage invert-table` found: the errors, the reconstructions of image 0 and the
    photographs' errors within B+ (as ``inversion_table`` returns them), the images and the
    configuration.
    """

    columns: list
    Cs: list
    errors: dict
    first: dict
    bounded: dict
    images: object
    config: dict
    method = "invert-table"

    def save(self, folder, argv=None):
        config = dict(self.config)
        if argv is not None:
            config["argv"] = list(argv)
        args = (self.columns, self.Cs, self.errors, self.first, self.images, config, self.bounded)
        return write_table(folder, *args)

    def summary(self, folder):
        with open(os.path.join(folder, "table.md")) as f:
            table = f.read().rstrip()
        files = "table.csv, table.md, errors.png, inversions.png, result.npz and metrics.json"
        return [table, f"wrote {files} to {folder}/"]


def run(models, settings, *, progress=True, load=None):
    """Invert every image at every C from every (model, layer) column."""
    s = settings
    models = models if isinstance(models, (list, tuple)) else [models]
    size = int(s.size or models[0].input_size)
    columns = _columns(models, s, size)
    hinted = [m.inversion_C for m in models]
    if s.C:
        Cs = list(s.C)
    elif all(c is not None for c in hinted):
        Cs = sorted({float(c) for c in hinted})
    else:
        Cs = [1.0, 20.0, 100.0, 300.0]
    channels = {m.channels for m in models}
    if len(channels) > 1:
        raise PreimageError(
            f"models of {' and '.join(map(str, sorted(channels)))} input channels see different"
            " images; give models of one kind at a time"
        )
    # one set of photographs for every column: resized as the first model's training data was
    images, files = _images(s, size, channels.pop(), models[0].interpolation)
    if "measured" in (s.B, s.V) and len({(m.mean, m.input_range) for m in models}) > 1:
        raise PreimageError(
            "bad --B/--V 'measured' with models whose preprocessing differs; give numbers, or one"
            " model at a time"
        )
    energy = s.energy(models[0], images)
    preset_kw = s.preset_kw(models[0], energy)
    errors, first, bounded = inversion_table(
        columns,
        Cs,
        images,
        seeds=1,
        seed=s.seed,
        progress=progress,
        **preset_kw,
    )
    config = {
        "method": "invert-table",
        "models": [m.name for m in models],
        "weights": [m.weights for m in models],
        **s.as_dict(),
        "size": size,
        "images": files,
        "energy": energy.describe(),
        "prior": preset_kw["prior"].describe() if "prior" in preset_kw else None,
    }
    return TableResult(columns, Cs, errors, first, bounded, images, config)


METHOD = register(
    Method(
        name="invert-table",
        help="inversion error per layer and per C, like Tables 4 and 5 of Mahendran & Vedaldi",
        settings=TableSettings,
        run=run,
        models="many",
    )
)
