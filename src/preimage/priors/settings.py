"""The settings of `preimage prior train` and `preimage prior evaluate`."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import Settings, at_least, between, positive, seed_check, setting


@dataclass
class TrainSettings(Settings):
    """The settings of `preimage prior train`; each field's help is its flag's."""

    images: str = setting(
        "samples", "a folder of images, or 'samples' (scikit-image's photographs)"
    )
    patch: int = setting(32, "train: patch size in pixels", check=between(4, 1024))
    steps: int = setting(
        2000, "train: total steps, counting those of a resumed checkpoint", check=at_least(1)
    )
    batch: int = setting(32, "train: patches per step", check=between(1, 4096))
    lr: float = setting(1e-3, "train: Adam's learning rate", check=positive)
    filters: int = setting(32, "train: channels of the network", check=at_least(1))
    resnets: int = setting(2, "train: gated ResNet blocks per scale", check=at_least(1))
    scales: int = setting(2, "train: resolutions", check=at_least(1))
    mixtures: int = setting(5, "train: logistic mixture components", check=at_least(1))
    eval_every: int = setting(
        200, "train: held-out evaluation and checkpoint every N steps", check=at_least(1)
    )
    export: str = setting(
        None,
        "train: also write the model alone, in float16, to this file (how the packaged prior is"
        " made)",
        type=str,
    )
    seed: int = setting(0, "seed of the patches and the initial weights", check=seed_check)

    def network(self):
        return {
            "filters": self.filters,
            "resnets": self.resnets,
            "scales": self.scales,
            "mixtures": self.mixtures,
        }


@dataclass
class EvaluateSettings(Settings):
    """The settings of `preimage prior evaluate`; each field's help is its flag's."""

    images: str = setting(
        "samples", "a folder of images, or 'samples' (scikit-image's photographs)"
    )
    prior: str = setting("default", "evaluate: 'default' or a checkpoint file")
    train_patches: int = setting(
        20000, "evaluate: patches the baselines are fitted on", check=at_least(2)
    )
    test_patches: int = setting(2000, "evaluate: held-out patches", check=at_least(1))
    components: int = setting(8, "evaluate: Gaussian mixture components", check=at_least(1))
    seed: int = setting(0, "seed of the patches and the initial weights", check=seed_check)
