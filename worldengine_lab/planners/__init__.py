"""Planners: the batched :class:`Planner` protocol, its :class:`Observation`, baseline planners and the PDM-Closed expert."""
from .base import PLAN_DT_S, PLAN_NUM_POSES, Observation, Planner, ResettablePlanner
from .baselines import ConstantVelocityPlanner, LogReplayPlanner
from .pdm_closed import PDMClosedConfig, PDMClosedPlanner

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
