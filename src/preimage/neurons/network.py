"""A fitted model of recorded neurons: an ensemble of cores and readouts, saved as one file.

The module's layer ``neurons`` is the population's response, N x K (one channel per neuron, no
spatial axes): the mean of the ensemble's members, each a core, a readout and a positive output
nonlinearity (ELU + 1, as a Poisson rate needs). With two or more members, the first is kept out
of ``neurons`` and answers at its own layer ``held_out``: images optimized for ``neurons`` are
scored there by a model that never saw them optimized (the in-silico check of Walker et al. 2019).

``model.pt`` holds {"config": JSON text, "state_dict": tensors}, readable with
``torch.load(weights_only=True)``; a task-driven model's frozen backbone is not in it but loaded
again by name (its weights named in the configuration).
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PreimageError
from .cores import CNNCore, TaskCore
from .readouts import make_readout

FORMAT = "preimage-neurons/1"


class Mean(nn.Module):
    """The mean over the first axis: the members' responses -> the ensemble's."""

    def forward(self, stacked):
        return stacked.mean(0)


class NeuronNet(nn.Module):
    """Members i = 0..M-1: ``cores[i]`` (or the one shared frozen core) then ``readouts[i]``."""

    def __init__(self, cores, readouts):
        super().__init__()
        self.cores = nn.ModuleList(cores)
        self.readouts = nn.ModuleList(readouts)
        self.neurons = Mean()
        self.held_out = nn.Identity()

    @property
    def members(self):
        return len(self.readouts)

    def member(self, i, x):
        """Member i's responses (N x K)."""
        core = self.cores[i if len(self.cores) > 1 else 0]
        return F.elu(self.readouts[i](core(x))) + 1

    def optimized(self):
        """The members ``neurons`` averages: all but the first when there are two or more."""
        return list(range(1, self.members)) if self.members > 1 else [0]

    def forward(self, x):
        out = self.neurons(torch.stack([self.member(i, x) for i in self.optimized()]))
        if self.members > 1:
            self.held_out(self.member(0, x))
        return out


def build(config):
    """The NeuronNet a configuration describes (weights as initialised)."""
    members = int(config["ensemble"])
    k = int(config["neurons"])
    seed = int(config["seed"])
    grid = config["grid"]  # the core's output: channels, height, width
    if config["core"] == "cnn":
        cores = [
            CNNCore(config["channels"], config["core_channels"], tuple(config["kernels"]), seed + i)
            for i in range(members)
        ]
    else:
        from ..models import load_model

        name, layer = config["core"].rsplit(":", 1)
        backbone = load_model(name, weights=config.get("backbone_weights"), seed=seed)
        cores = [
            TaskCore(backbone, backbone.resolve_layer(layer), config["core_size"], config["zscore"])
        ]
    readouts = [make_readout(config["readout"], *grid, k, seed=seed + i) for i in range(members)]
    return NeuronNet(cores, readouts)


def trained_state(net):
    """The state dict to save: everything but a frozen backbone's own weights."""
    return {k: v for k, v in net.state_dict().items() if ".backbone." not in k}


def save(path, net, config):
    """Write model.pt: the configuration as JSON text and the trained tensors."""
    import io

    from ..io.files import atomic_write

    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in trained_state(net).items()}
    torch.save({"format": FORMAT, "config": json.dumps(config), "state_dict": state}, buf)
    atomic_write(path, buf.getvalue())


def load(path):
    """(NeuronNet, configuration) from a model.pt, with weights_only=True."""
    from ..models.weights import non_finite, safe_load

    obj = safe_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise PreimageError(
            f"{path!r} is not a fitted model of neurons (written by `preimage neurons fit`)"
        )
    config = json.loads(obj["config"])
    net = build(config)
    state = obj["state_dict"]
    bad = non_finite(state)
    if bad is not None:
        raise PreimageError(f"{path!r} holds NaN or infinite values in {bad!r}")
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [m for m in missing if ".backbone." not in m]
    if missing or unexpected:
        raise PreimageError(
            f"{path!r} does not match its configuration: {(missing + unexpected)[:3]}"
        )
    return net, config
