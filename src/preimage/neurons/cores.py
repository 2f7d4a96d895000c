"""Cores: the shared feature maps a readout reads neurons from.

``CNNCore`` is the data-driven core (Klindt et al. 2017; Cadena et al. 2018 §6, 2019): a few
convolution, batch-norm and ELU layers, trained end to end with the readout, on z-scored grey
images. ``TaskCore`` is a frozen layer of any model preimage loads (Cadena et al. 2019 read V1 from
VGG-19): the z-scored image is turned back into the data's grey values, repeated to three equal
channels for an RGB network, resized, preprocessed as that network expects, and run as far as the
layer only. Each core ends in the module ``output``, the layer a diversity distance is taken on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.fast import weight_gradient

LAPLACE = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


class CNNCore(nn.Module):
    """Convolutions without padding (each layer shrinks the map), batch norm, ELU."""

    def __init__(self, in_channels=1, channels=16, kernels=(13, 3, 3), seed=0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            layers = []
            c_in = in_channels
            for k in kernels:
                layers += [nn.Conv2d(c_in, channels, k), nn.BatchNorm2d(channels), nn.ELU()]
                c_in = channels
            self.layers = nn.Sequential(*layers)
        self.output = nn.Identity()

    def forward(self, x):
        first = self.layers[0]
        cpu = x.device.type == "cpu"  # cuDNN's own backward-weights kernels are fast
        if self.training and cpu and first.weight.requires_grad and weight_gradient.fits(first):
            # training: the first layer's weight gradient as a forward convolution
            x = weight_gradient.conv2d(x, first.weight, first.bias, first.padding)
            return self.output(self.layers[1:](x))
        return self.output(self.layers(x))

    def smoothness(self):
        """The Laplacian's energy over the first layer's filters, relative to their own energy
        (scale-free, so that it shapes the filters without shrinking them)."""
        w = self.layers[0].weight
        lap = F.conv2d(w.flatten(0, 1)[:, None], LAPLACE.to(w)[None, None], padding=1)
        return (lap**2).sum() / (w**2).sum().clamp_min(1e-12)


class _Reached(Exception):
    """Raised once the backbone has produced the core's layer."""


class TaskCore(nn.Module):
    """A frozen layer of another model, fed the data's grey images."""

    def __init__(self, backbone, layer, size, zscore):
        super().__init__()
        self.backbone = backbone.module
        self.layer = layer
        self.size = int(size)
        self.in_channels = backbone.channels
        lo, hi = backbone.input_range
        scale = torch.tensor([(hi - lo) / s for s in backbone.std]).view(1, -1, 1, 1)
        shift = torch.tensor([(lo - m) / s for m, s in zip(backbone.mean, backbone.std)])
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift.view(1, -1, 1, 1))
        self.register_buffer("zscore", torch.tensor([float(z) for z in zscore]))
        self.output = nn.Identity()
        for p in self.backbone.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        grey = x * self.zscore[1] + self.zscore[0]  # back to the data's values in [0, 1]
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            grey = F.interpolate(grey, size=(self.size, self.size), mode="bilinear")
        images = grey.expand(-1, self.in_channels, -1, -1) if grey.shape[1] == 1 else grey
        found = {}

        def hook(module, inputs, output):
            found["out"] = output
            raise _Reached

        # looked up at each call: a fused fast copy holds its own module at this path
        handle = self.backbone.get_submodule(self.layer).register_forward_hook(hook)
        try:
            self.backbone(images * self.scale + self.shift)
        except _Reached:
            pass
        finally:
            handle.remove()
        return self.output(found["out"])

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()  # frozen: its batch norms keep their statistics
        return self
