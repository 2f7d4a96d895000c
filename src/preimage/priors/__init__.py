"""Natural-image priors: the PixelCNN++ (``pixelcnn``), its training and the Gaussian baselines
(``training``). A prior's ``log P(x)`` joins an objective through ``objectives.log_prior``.

The names below are loaded on first use.
"""

_EXPORTS = ("load_prior", "train", "evaluate", "export")

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import training

    value = getattr(training, name)
    globals()[name] = value
    return value
