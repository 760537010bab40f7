"""The typed errors of neurochip (public name; they live in :mod:`neurochip.core.errors`)."""

from neurochip.core.errors import *  # noqa: F403
from neurochip.core.errors import __all__  # noqa: F401
