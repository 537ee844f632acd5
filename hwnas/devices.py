"""The old name of :mod:`hwnas.hosts` (reaching a device); kept so old imports work."""

from .hosts import *  # noqa: F403
from .hosts import __all__  # noqa: F401
