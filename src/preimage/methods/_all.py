"""Every method module, imported so that it registers itself: a new method is one line here."""

from . import visualize  # noqa: F401
from .cadena import diverse, invariance  # noqa: F401
from .finzi import reliability, study  # noqa: F401
from .mahendran import caricature, invert, maximize, table  # noqa: F401
