"""The settings of `preimage neurons simulate`: each default, help text and check once."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import Settings, between, positive, seed_check, setting


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
