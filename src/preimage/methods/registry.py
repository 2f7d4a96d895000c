"""The methods, by name: each method's module registers its ``Method`` here when imported.

The built-in methods are imported on first use (``_all.BUILTIN``), so that listing them, as
``preimage --help`` does, imports no PyTorch: their help is read from their modules' source.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util

from ..errors import PreimageError, suggest
from ._all import BUILTIN

_METHODS = {}


def register(method):
    """Add a ``Method``; the command line, the atlas and the report find it by its name."""
    _METHODS[method.name] = method
    return method


def _import(name):
    if name not in _METHODS and name in BUILTIN:
        importlib.import_module(f"{__package__}.{BUILTIN[name]}")


def get_method(name):
    """The registered ``Method`` of a name; one clear error for an unknown one."""
    _import(name)
    if name not in _METHODS:
        names = list(dict.fromkeys([*BUILTIN, *_METHODS]))
        raise PreimageError(f"unknown method {name!r}; valid: {suggest(name, names)}")
    return _METHODS[name]


def methods():
    """Every method, the built-in ones first in their order, then those registered at run time."""
    for name in BUILTIN:
        _import(name)
    return [_METHODS[n] for n in dict.fromkeys([*BUILTIN, *_METHODS])]


def summaries():
    """[(name, help)] of every method, without importing the modules not imported yet."""
    out = []
    for name, module in BUILTIN.items():
        known = _METHODS.get(name)
        out.append((name, known.help if known else _declared_help(module) or name))
    return out + [(n, m.help) for n, m in _METHODS.items() if n not in BUILTIN]


def _declared_help(module):
    """The ``help=`` of the ``Method(...)`` a module's source declares (None if not found)."""
    spec = importlib.util.find_spec(f"{__package__}.{module}")
    if spec is None or spec.origin is None:
        return None
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Method":
            for kw in node.keywords:
                if kw.arg == "help" and isinstance(kw.value, ast.Constant):
                    return kw.value.value
    return None
