"""The batched planner interface: :class:`Observation` in, ``[B, 40, 3]`` body-frame poses out.

At every replanning step the closed loop (``worldengine_lab.sim``) builds one :class:`Observation` for the B
scenarios it simulates and calls ``planner.plan(obs)`` once. The planner returns, per scenario, 40 rear-axle
poses ``(x, y, yaw)`` at t = 0.1, 0.2, ..., 4.0 s in the ego's current rear-axle **body frame** (+x forward,
+y left, m and rad; the current pose is implicit).

Frames in the observation: ``ego_state`` is in the scenario's local frame; everything else (agents, lanes) is
expressed in the ego body frame at the current step, so a planner needs no frame bookkeeping.

Examples:
    >>> import torch
    >>> class Stay:
    ...     planner_id = "stay"
    ...     def plan(self, obs):
    ...         return torch.zeros(obs.batch_size, 40, 3, dtype=torch.float64)
    >>> isinstance(Stay(), Planner)
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import torch

from ..datatypes import Scenario

__all__ = ["Observation", "Planner", "ResettablePlanner", "PLAN_NUM_POSES", "PLAN_DT_S"]

PLAN_NUM_POSES = 40  # poses per plan
PLAN_DT_S = 0.1  # s between poses


@dataclass(frozen=True, eq=False)
class Observation:
    """What the planner sees at one step, for B scenarios (torch tensors; float tensors share one dtype).

    Attributes:
        scenario_ids: B scenario ids.
        step: simulation step since t0 (0 at t0); ``time_s = step * dt``.
        dt: simulation step, s.
        log_step: ``[B]`` int64, index of this step in each scenario's timeline (``t0_b + step``).
        ego_state: ``[B, D]`` ego rear-axle state in the scenario local frame (layout: ``sim.state``).
        agents_xy: ``[B, H, N, 2]`` box centres of all agents (index 0 is the ego itself), m, current ego body
            frame, over the last H steps (``[:, -1]`` is now).
        agents_yaw: ``[B, H, N]`` headings relative to the current ego heading, rad.
        agents_vel: ``[B, H, N, 2]`` velocities in the current ego body frame, m/s.
        agents_valid: ``[B, H, N]`` bool, observed (False for padding and before the log starts).
        agents_size: ``[B, N, 3]`` length, width, height, m.
        agents_type: ``[B, N]`` int64 :class:`~worldengine_lab.datatypes.AgentType` codes.
        lanes_xy: ``[B, P, K, 2]`` centrelines of the P lanes nearest the ego (within the radius), m, body frame.
        lanes_valid: ``[B, P, K]`` bool, a prefix of each row; a row without points is padding.
        lanes_index: ``[B, P]`` int64, index of each lane in its scenario's ``MapData`` (-1 for padding).
        lanes_on_route: ``[B, P]`` bool, lane is on the route.
        lanes_speed_limit: ``[B, P]`` m/s, NaN where unknown.
        lanes_traffic_light: ``[B, P]`` int64 :class:`~worldengine_lab.datatypes.TrafficLightStatus` of
            signalised lanes now, -1 for lanes without a light.
    """

    scenario_ids: tuple[str, ...]
    step: int
    dt: float
    log_step: torch.Tensor  # [B] int64
    ego_state: torch.Tensor  # [B, D]
    agents_xy: torch.Tensor  # [B, H, N, 2] m, ego frame
    agents_yaw: torch.Tensor  # [B, H, N] rad
    agents_vel: torch.Tensor  # [B, H, N, 2] m/s
    agents_valid: torch.Tensor  # [B, H, N] bool
    agents_size: torch.Tensor  # [B, N, 3] m
    agents_type: torch.Tensor  # [B, N] int64
    lanes_xy: torch.Tensor  # [B, P, K, 2] m, ego frame
    lanes_valid: torch.Tensor  # [B, P, K] bool
    lanes_index: torch.Tensor  # [B, P] int64
    lanes_on_route: torch.Tensor  # [B, P] bool
    lanes_speed_limit: torch.Tensor  # [B, P] m/s
    lanes_traffic_light: torch.Tensor  # [B, P] int64

    @property
    def batch_size(self) -> int:
        """B."""
        return len(self.scenario_ids)

    @property
    def time_s(self) -> float:
        """Seconds since t0."""
        return self.step * self.dt

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the tensors (plans should use it)."""
        return self.ego_state.dtype


@runtime_checkable
class Planner(Protocol):
    """A batched planner. ``plan`` returns ``[B, 40, 3]`` body-frame rear-axle poses at 0.1 .. 4.0 s."""

    planner_id: str
    """Identifies the planner (and checkpoint) in rollouts and tables."""

    def plan(self, obs: Observation) -> torch.Tensor:
        """``[B, 40, 3]`` poses (x m, y m, yaw rad) in the ego body frame for the B scenarios of ``obs``."""
        ...


@runtime_checkable
class ResettablePlanner(Planner, Protocol):
    """A planner that wants to know the episode: ``reset`` is called once before the first ``plan``."""

    def reset(self, scenarios: Sequence[Scenario], seed: int) -> None:
        """Prepare for an episode over ``scenarios`` (in batch order); seed any randomness with ``seed``."""
        ...
