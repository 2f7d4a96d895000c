"""Natural-image priors: the PixelCNN++ (``pixelcnn``), its training and the Gaussian baselines
(``training``). A prior's ``log P(x)`` joins an objective through ``objectives.log_prior``."""

from .training import evaluate, export, load_prior, train

__all__ = ["load_prior", "train", "evaluate", "export"]
