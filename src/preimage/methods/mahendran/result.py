"""The result of an inversion, a caricature or an activation maximization, and its files.

images/NNN_LABEL.png   every reconstruction (the central window; a masked window's receptive
                       field drawn on it)
grid.png               the source images first, then the reconstructions
result.npz             images, canvas (what was optimized), inputs, scores, trace and
                       objective (the energy per pixel), originals
metrics.json           the configuration, the elements (image, C, seed), steps, the scores
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw

from ...io.files import save_npz, write_metrics
from ...io.images import png_bytes, png_pixels, save_grid
from ..base import Result
from ..common import image_files


@dataclass
class PreimageResult(Result):
    """images: N x C x S x S (central windows), display space; canvas: what was optimized.

    scores: ‖Φ(x*) - Φ0‖/‖Φ0‖ (inversion), ⟨Φ(x*), Φ0⟩/‖Φ0‖² (caricature), Φ_c(x*)/M (maximize).
    render: the RenderResult, whose values are of the energy summed over pixels; ``preset``
    gives them per pixel. meta: per element, which image, C and seed.
    """

    images: torch.Tensor
    canvas: torch.Tensor
    scores: torch.Tensor
    render: object
    preset: object
    meta: list
    config: dict
    originals: torch.Tensor | None = None
    labels: list | None = None
    box: tuple | None = None  # (top, bottom, left, right) drawn on every reconstruction
    extra: dict = field(default_factory=dict)
    headline: str = ""  # what the command line prints about the scores
    method = "preimage"

    def summary(self, folder):
        n = self.images.shape[0]
        files = f"{os.path.join(folder, 'images')}/, {os.path.join(folder, 'grid.png')}"
        lines = [f"wrote {n} image(s) to {files}, result.npz and metrics.json"]
        return lines + ([self.headline] if self.headline else [])

    def _write_image(self, path, image):
        array = png_pixels(image)
        if self.box is not None:
            im = Image.fromarray(array)
            top, bottom, left, right = self.box
            outline = 255 if array.ndim == 2 else (255, 255, 255)
            ImageDraw.Draw(im).rectangle([left, top, right - 1, bottom - 1], outline=outline)
            array = np.asarray(im)
        from ...io.files import atomic_write

        atomic_write(path, png_bytes(array))

    def save(self, folder, argv=None):
        os.makedirs(folder, exist_ok=True)
        labels = self.labels or [str(i) for i in range(self.images.shape[0])]
        names = image_files(folder, self.images, labels, writer=self._write_image)
        originals = self.originals
        tiles = (
            self.images if originals is None else torch.cat([originals.cpu(), self.images.cpu()])
        )
        columns = None
        if originals is not None:
            columns = max(originals.shape[0], len(self.images) // max(1, originals.shape[0]))
        save_grid(os.path.join(folder, "grid.png"), tiles, columns=columns)
        arrays = dict(
            images=self.images,
            canvas=self.canvas,
            inputs=self.render.inputs,
            scores=self.scores,
            trace=self.preset.per_pixel(self.render.trace),
            objective=self.preset.per_pixel(self.render.objective),
        )
        if originals is not None:
            arrays["originals"] = originals
        save_npz(os.path.join(folder, "result.npz"), **arrays)
        config = {**self.config, "render": self.render.config}
        return write_metrics(
            folder,
            config,
            argv,
            labels=labels,
            elements=self.meta,
            steps=self.render.steps,
            seconds=round(self.render.seconds, 3),
            images=names,
            grid="grid.png",
            **self.extra,
        )
