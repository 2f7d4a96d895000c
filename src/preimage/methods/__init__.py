"""The methods of the three papers, one module each, behind one protocol (see ``base``).

``get_method(name)`` gives a method's ``Method``: its settings class and its ``run``, whose
result saves itself. ``methods()`` lists them all.
"""

from .base import Method, Result, Settings
from .registry import get_method, methods, register


def run(name, model, *, progress=True, load=None, **settings):
    """Run a method by name: ``run("diverse", model, target="_blocks.2:0-7", steps=200)``.

    settings: the fields of the method's settings class (``get_method(name).settings``), checked
    before any work. Returns the method's result; ``result.save(folder)`` writes its files.
    """
    from dataclasses import fields

    from ..errors import PreimageError, suggest

    method = get_method(name)
    known = [f.name for f in fields(method.settings)]
    for key in settings:
        if key not in known:
            raise PreimageError(
                f"unknown setting {key!r} of {name}; its settings: {suggest(key, known)}"
            )
    return method.run(model, method.settings(**settings), progress=progress, load=load)


__all__ = ["Method", "Result", "Settings", "get_method", "methods", "register", "run"]
