"""worldengine_lab: a notebook-first workbench for post-training driving planners on their own failures.

The headless library: imports nothing from the widgets and works on a CPU-only machine.
"""
from ._version import __version__
from .errors import WorldEngineLabError

__all__ = ["__version__", "WorldEngineLabError"]
