"""Planners: the batched :class:`Planner` protocol, its :class:`Observation`, baseline planners and the PDM-Closed expert."""
from .base import PLAN_DT_S, PLAN_NUM_POSES, Observation, Planner, ResettablePlanner
from .baselines import ConstantVelocityPlanner, LogReplayPlanner

__all__ = [
    "Observation",
    "Planner",
    "ResettablePlanner",
    "PLAN_NUM_POSES",
    "PLAN_DT_S",
    "ConstantVelocityPlanner",
    "LogReplayPlanner",
    "PDMClosedConfig",
    "PDMClosedPlanner",
]


def __getattr__(name: str) -> object:
    """Load the PDM-Closed expert on first use: it needs ``metrics``, which itself imports ``sim``, and
    ``sim`` imports this package's protocol (``planners.base``), so an eager import would be circular."""
    if name in ("PDMClosedConfig", "PDMClosedPlanner"):
        from . import pdm_closed

        return getattr(pdm_closed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
