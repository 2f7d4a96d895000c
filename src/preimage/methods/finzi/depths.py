"""Finzi's depth study (Fig. 8): one channel at every depth of each network, one batch each.

Files: one folder per model (a visualization result: a picture per depth), depths.png with a
row per model, metrics.json.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from torch import nn

from ...errors import PreimageError
from ...io import figures
from ...io.files import safe_name, write_metrics
from ..base import Result
from ..common import model_record
from ..visualize import VisualizeSettings
from ..visualize import run as visualize


def depth_layers(model):
    """The successive stages of a network, for a figure of one channel at every depth (Fig. 8).

    Networks made of blocks (EfficientNet's ``_blocks.K``, ResNet's ``layerN.K``)
    give every block; plain stacks (AlexNet, VGG) give their convolutions,
    by the papers' names where there are some.
    """
    blocks = []
    for path, container in model.module.named_modules():
        if isinstance(container, (nn.Sequential, nn.ModuleList)) and path:
            children = list(container.named_children())
            if children and all(len(list(c.children())) > 0 for _, c in children):
                blocks += [f"{path}.{name}" for name, _ in children]
    known = {info.name for info in model.layers()}
    blocks = [b for b in blocks if b in known and not any(b.startswith(o + ".") for o in blocks)]
    if len(blocks) >= 2:
        return blocks
    by_address = {v: k for k, v in model.aliases.items()}
    convs = [info for info in model.layers() if info.kind == "Conv2d"]
    if not convs:
        raise PreimageError(
            f"model {model.name} has neither blocks nor convolutions to show by depth; give"
            " --layers"
        )
    return [by_address.get(info.name, info.name) for info in convs]


@dataclass
class DepthsResult(Result):
    """runs: [(model, layers, its VisualizeResult)]."""

    runs: list
    channel: int
    config: dict
    method = "study"

    def folders(self):
        """One folder name per model: its name, with its weights where two share a name."""
        names = [m.name for m, _, _ in self.runs]
        return [
            f"{m.name}_{safe_name(str(m.weights).split(' ')[0])}"
            if names.count(m.name) > 1
            else m.name
            for m, _, _ in self.runs
        ]

    def save(self, folder, argv=None):
        os.makedirs(folder, exist_ok=True)
        rows = []
        for sub, (model, layers, result) in zip(self.folders(), self.runs):
            result.save(os.path.join(folder, sub))
            label = f"{model.name}\n({str(model.weights).split(' ')[0]})"
            rows.append((label, list(zip(layers, result.render.images))))
        figures.image_rows(rows, os.path.join(folder, "depths.png"))
        return write_metrics(
            folder,
            self.config,
            argv,
            layers={sub: layers for sub, (_, layers, _) in zip(self.folders(), self.runs)},
            files=["depths.png"] + self.folders(),
        )

    def summary(self, folder):
        counts = ", ".join(str(len(layers)) for _, layers, _ in self.runs)
        return [
            f"wrote depths.png (channel {self.channel} at {counts} depths) and one folder per model"
            f" to {folder}/"
        ]


def depth_study(models, settings, progress=True):
    """One channel at every depth of each network (``settings.layers`` for a single one)."""
    if settings.layers and len(models) > 1:
        raise PreimageError(
            "--layers names one network's layers; with several --model, leave it out and each"
            " network shows its own depths"
        )
    plans = []
    for m in models:
        layers = (
            [x for x in settings.layers.split(",") if x] if settings.layers else depth_layers(m)
        )
        size = settings.size or m.input_size
        for layer in layers:
            channels = m.layer_info(layer, size).shape[0]
            if settings.channel >= channels:
                raise PreimageError(
                    f"bad --channel {settings.channel}; layer {layer} of {m.name} has {channels}"
                    f" channels (0-{channels - 1})"
                )
        plans.append((m, layers))
    fields = {
        k: v for k, v in settings.as_dict().items() if k in VisualizeSettings.__dataclass_fields__
    }
    runs = []
    for m, layers in plans:
        targets = [f"{layer}:{settings.channel}" for layer in layers]
        s = VisualizeSettings(**{**fields, "targets": targets})
        runs.append((m, layers, visualize(m, s, progress=progress)))
    config = {"method": "study", "models": [model_record(m) for m in models], **settings.as_dict()}
    return DepthsResult(runs, settings.channel, config)
