"""SimConfig: the settings of a closed-loop episode (a frozen dataclass, one docstring per field)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..datatypes import AgentType
from ..errors import ScenarioValidationError
from ..planners.base import PLAN_NUM_POSES
from .idm import ReactiveIDMParams
from .tracker import TrackerParams

__all__ = ["SimConfig"]


@dataclass(frozen=True)
class SimConfig:
    """Closed-loop settings (defaults: World Engine's 4 s episodes, 2 Hz replanning, LQR tracking, log replay)."""

    num_steps: int = 40
    """Episode length in steps after t0 (40 x 0.1 s = 4 s); may run past the end of the log."""
    dt_s: float = 0.1
    """Simulation step, s; scenarios must have this ``dt``."""
    replan_period_s: float = 0.5
    """Time between planner calls, s; a multiple of ``dt_s``, at most the 4 s plan horizon."""
    tracking: Literal["lqr", "perfect"] = "lqr"
    """``"lqr"``: LQR tracker + kinematic bicycle at every step; ``"perfect"``: the ego is placed on the plan."""
    agents: Literal["log_replay", "reactive"] = "log_replay"
    """Other agents: replay the log, or reactive IDM for dynamic agents (others still replay)."""
    history_steps: int = 11
    """H, steps of agent history in the observation (the current one included)."""
    obs_radius_m: float = 100.0
    """Lanes whose bounding circle comes within this distance of the ego are observed, m."""
    obs_max_lanes: int = 64
    """At most this many lanes (the nearest) in an observation."""
    check_collisions: bool = True
    """Flag ego-vs-agent box overlaps at every step."""
    check_areas: bool = True
    """Flag the drivable-area and on-route-lane tests of the ego at every step."""
    raster_resolution_m: float = 0.25
    """Cell size of the area rasters, m (flags are exact farther than resolution/sqrt(2) from a boundary)."""
    dynamic_std_m: float = 3.0
    """Reactive mode: agents whose logged x or y standard deviation exceeds this are dynamic, m."""
    reactive_types: tuple[int, ...] = (int(AgentType.VEHICLE), int(AgentType.BICYCLE))
    """Reactive mode: agent types that may run IDM."""
    allow_missing_lanes: bool = False
    """Reactive mode on a map without lanes: False raises; True drives agents along their logged paths."""
    path_spacing_m: float = 1.0
    """Resampling step of reactive paths, m."""
    agent_period_s: float = 0.5
    """Reactive mode: the IDM acceleration (leaders, lights) is recomputed every this many seconds and held
    in between, as World Engine's agents make a constant-acceleration plan at 2 Hz; a multiple of dt_s."""
    idm: ReactiveIDMParams = ReactiveIDMParams()
    """Reactive-agent IDM constants."""
    tracker: TrackerParams = TrackerParams()
    """LQR tracker and bicycle constants."""
    dtype: torch.dtype = torch.float64
    """Float dtype of the simulation."""

    @property
    def replan_every(self) -> int:
        """Steps between planner calls."""
        return int(round(self.replan_period_s / self.dt_s))

    def validate(self) -> None:
        k = self.replan_period_s / self.dt_s
        if not (self.dt_s > 0 and abs(k - round(k)) < 1e-6 and 1 <= round(k) <= PLAN_NUM_POSES):
            raise ScenarioValidationError(
                f"SimConfig.replan_period_s: expected a multiple of dt_s = {self.dt_s} s between {self.dt_s} and "
                f"{PLAN_NUM_POSES * self.dt_s} s, received {self.replan_period_s}"
            )
        if self.num_steps < 1:
            raise ScenarioValidationError(f"SimConfig.num_steps: expected >= 1, received {self.num_steps}")
        if self.tracking not in ("lqr", "perfect"):
            raise ScenarioValidationError(
                f"SimConfig.tracking: expected 'lqr' or 'perfect', received {self.tracking!r}")
        if self.agents not in ("log_replay", "reactive"):
            raise ScenarioValidationError(
                f"SimConfig.agents: expected 'log_replay' or 'reactive', received {self.agents!r}")
        a = self.agent_period_s / self.dt_s
        if not (abs(a - round(a)) < 1e-6 and round(a) >= 1):
            raise ScenarioValidationError(
                f"SimConfig.agent_period_s: expected a positive multiple of dt_s = {self.dt_s} s, received "
                f"{self.agent_period_s}")
        if self.history_steps < 1:
            raise ScenarioValidationError(f"SimConfig.history_steps: expected >= 1, received {self.history_steps}")
        if self.dtype not in (torch.float32, torch.float64):
            raise ScenarioValidationError(f"SimConfig.dtype: expected torch.float32 or float64, received {self.dtype}")
