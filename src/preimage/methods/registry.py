"""The methods, by name: each method's module registers its ``Method`` here."""

from __future__ import annotations

from ..errors import PreimageError, suggest

_METHODS = {}


def register(method):
    """Add a ``Method``; the command line, the atlas and the report find it by its name."""
    _METHODS[method.name] = method
    return method


def get_method(name):
    """The registered ``Method`` of a name; one clear error for an unknown one."""
    _load()
    if name not in _METHODS:
        raise PreimageError(f"unknown method {name!r}; valid: {suggest(name, list(_METHODS))}")
    return _METHODS[name]


def methods():
    """Every registered method, in the order they were registered."""
    _load()
    return list(_METHODS.values())


def _load():
    from . import _all  # noqa: F401  (imports every method's module, which registers it)
