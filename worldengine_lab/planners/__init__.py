"""Planners: the batched :class:`Planner` protocol, its :class:`Observation`, and baseline planners."""
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
]
