"""The settings of `preimage neurons simulate`: each default, help text and check once."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PreimageError
from ..settings import Settings, at_least, between, positive, seed_check, setting


@dataclass
class SimulateSettings(Settings):
    """A simulated V1 recording (``neurons.simulate``); each field's help is its flag's."""

    cells: int = setting(
        40, "cells in the population, half simple and half complex", check=between(1, 10000)
    )
    images: int = setting(5000, "training images (natural patches)", check=between(1, 1000000))
    size: int = setting(40, "patch side in pixels", check=between(8, 512))
    rate: float = setting(2.0, "mean response in spikes per image (Poisson counts)", check=positive)
    test_images: int = setting(100, "images of the repeated test set", check=between(1, 100000))
    repeats: int = setting(10, "repeats of each test image", check=between(1, 1000))
    seed: int = setting(0, "seed of the cells, the patches and the noise", check=seed_check)


def _core(flag, value):
    if value != "cnn" and (":" not in value or not all(value.rsplit(":", 1))):
        raise PreimageError(
            f"bad {flag} {value!r}; give 'cnn' (a data-driven core) or MODEL:LAYER (a frozen layer"
            " of a model, such as efficientnet_lite0:_blocks.3)"
        )


def _kernels(text, flag):
    try:
        values = [int(v) for v in str(text).split(",")] if isinstance(text, str) else list(text)
    except ValueError:
        values = []
    if not values or any(v < 1 or v % 2 == 0 for v in values):
        raise PreimageError(f"bad {flag} {text!r}; give odd kernel sizes separated by commas")
    return values


@dataclass
class FitSettings(Settings):
    """The fit of a model of recorded neurons (``neurons.fit``); each field's help is its flag's."""

    core: str = setting("cnn", "'cnn' (data-driven) or MODEL:LAYER (a frozen layer)", check=_core)
    readout: str = setting(
        "factorized", "readout of each neuron", choices=("factorized", "gaussian")
    )
    loss: str = setting("poisson", "loss of the responses", choices=("poisson", "mse"))
    ensemble: int = setting(1, "members trained from seeds seed, seed+1, ...", check=between(1, 32))
    epochs: int = setting(200, "maximum epochs", check=between(1, 100000))
    patience: int = setting(
        5, "a plateau: the validation correlation has not improved for this many epochs",
        check=between(1, 100000),
    )  # fmt: skip
    lr_decays: int = setting(
        3, "on each plateau, go back to the best epoch and cut the learning rate by LR_DECAY;"
        " stop at the plateau after this many cuts", check=between(0, 100),
    )  # fmt: skip
    lr_decay: float = setting(0.3, "the learning rate's factor at each decay", check=positive)
    batch: int = setting(64, "images per optimizer step", check=between(1, 100000))
    lr: float = setting(0.005, "Adam's learning rate", check=positive)
    sparsity: float = setting(0.01, "weight of the readout's L1 penalty", check=at_least(0))
    smoothness: float = setting(
        0.01, "weight of the Laplacian penalty on the core's first layer", check=at_least(0)
    )
    core_channels: int = setting(
        16, "channels of each layer of the cnn core", check=between(1, 1024)
    )
    kernels: list = setting([13, 3, 3], "kernel sizes of the cnn core's layers", parse=_kernels)
    core_size: int = setting(
        None, "image side fed to a frozen core (default: twice the data's)", type=int,
        check=between(8, 4096),
    )  # fmt: skip
    backbone_weights: str = setting(
        None, "weights of a frozen core's model (default: the model's own)", type=str
    )
    seed: int = setting(
        0, "seed of the splits, the initial weights and the batches", check=seed_check
    )
