"""preimage: what units of vision models respond to, and what they are invariant to."""

__version__ = "0.1.0"

from .engine import objectives
from .errors import PreimageError
from .models import VisionModel, load_model, wrap_model
from .engine.objectives import Objective
from .engine.params import ImageParam, PixelNormBound
from .engine.render import Convergence, RenderResult, render
from .engine.transforms import parse_transforms

__all__ = [
    "objectives",
    "PreimageError",
    "VisionModel",
    "load_model",
    "wrap_model",
    "Objective",
    "ImageParam",
    "PixelNormBound",
    "Convergence",
    "RenderResult",
    "render",
    "parse_transforms",
]
