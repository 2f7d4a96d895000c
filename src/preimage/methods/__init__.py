"""The methods of the three papers, one module each, behind one protocol (see ``base``).

``get_method(name)`` gives a method's ``Method``: its settings class and its ``run``, whose
result saves itself. ``methods()`` lists them all.
"""

from .base import Method, Result, Settings
from .registry import get_method, methods, register

__all__ = ["Method", "Result", "Settings", "get_method", "methods", "register"]
