"""Baseline planners: constant velocity and log replay (batched, no learning).

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> from worldengine_lab.sim import rollout
    >>> r = rollout([make_scenario()], ConstantVelocityPlanner())[0]
    >>> r.planner_id, r.plans.shape
    ('constant_velocity', (8, 40, 3))
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..datatypes import Scenario
from ..errors import WorldEngineLabError
from ..sim.poses import global_to_body
from ..sim.scene_batch import ego_states_from_log
from ..sim.state import VX, X, Y, YAW
from .base import PLAN_DT_S, PLAN_NUM_POSES, Observation

__all__ = ["ConstantVelocityPlanner", "LogReplayPlanner"]


class ConstantVelocityPlanner:
    """Drives straight ahead at the current longitudinal speed: pose k = (v t_k, 0, 0), t_k = 0.1 k s."""

    planner_id = "constant_velocity"

    def plan(self, obs: Observation) -> torch.Tensor:
        """``[B, 40, 3]`` body-frame poses."""
        t = torch.arange(1, PLAN_NUM_POSES + 1, dtype=obs.dtype) * PLAN_DT_S  # [40] s
        out = torch.zeros(obs.batch_size, PLAN_NUM_POSES, 3, dtype=obs.dtype)
        out[..., 0] = obs.ego_state[:, VX].unsqueeze(1) * t
        return out


class LogReplayPlanner:
    """Plans the logged ego trajectory: the logged rear-axle poses of the next 4 s, expressed in the current
    (simulated) ego body frame, so the tracker pulls the ego back onto the log. Past the end of a log the last
    logged pose is extrapolated straight ahead at the last logged speed."""

    planner_id = "log_replay"

    def __init__(self) -> None:
        self._ids: tuple[str, ...] = ()
        self._poses: torch.Tensor | None = None  # [B, T_max + 40, 3] global rear-axle poses

    def reset(self, scenarios: Sequence[Scenario], seed: int = 0) -> None:
        """Cache each scenario's logged rear-axle poses (extended by 4 s of straight extrapolation)."""
        t_max = max(s.num_steps for s in scenarios)
        out = np.zeros((len(scenarios), t_max + PLAN_NUM_POSES, 3), np.float64)
        for i, s in enumerate(scenarios):  # gathering per-scenario logs; once per episode
            states = ego_states_from_log(s)
            t = s.num_steps
            out[i, :t] = states[:, [X, Y, YAW]]
            k = np.arange(1, t_max + PLAN_NUM_POSES - t + 1)
            yaw = states[-1, YAW]
            dist = k * s.dt * max(float(states[-1, VX]), 0.0)
            out[i, t:, 0] = states[-1, X] + dist * np.cos(yaw)
            out[i, t:, 1] = states[-1, Y] + dist * np.sin(yaw)
            out[i, t:, 2] = yaw
        self._ids = tuple(s.scenario_id for s in scenarios)
        self._poses = torch.from_numpy(out)

    def plan(self, obs: Observation) -> torch.Tensor:
        """``[B, 40, 3]`` body-frame poses of the logged future after ``obs.log_step``."""
        if self._poses is None or self._ids != obs.scenario_ids:
            raise WorldEngineLabError(
                f"LogReplayPlanner.plan: expected reset() with the scenarios {list(obs.scenario_ids)[:3]}..., "
                f"received an observation for scenarios it was not reset with; call planner.reset(scenarios, seed) "
                "(sim.rollout does this)"
            )
        idx = obs.log_step.view(-1, 1) + torch.arange(1, PLAN_NUM_POSES + 1).view(1, -1)  # [B, 40]
        poses = torch.gather(self._poses, 1, idx.unsqueeze(-1).expand(-1, -1, 3)).to(obs.dtype)
        return global_to_body(poses, obs.ego_state[:, :3])
