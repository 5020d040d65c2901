"""checkout-chaos: the command line. Errors say what to fix; --debug shows tracebacks.

The commands live by subject (stack, experiments, tools); importing them registers each
on `main`.
"""

from . import experiments, stack, tools  # noqa: F401  (each registers its commands)
from .common import main

__all__ = ["main"]
