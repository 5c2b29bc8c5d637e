"""Rollout: one closed-loop episode of a planner on a scenario (numpy only)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import ScenarioValidationError
from ._checks import check_array, freeze
from .agents import AgentTracks

__all__ = ["Rollout", "EGO_STATE_FIELDS"]

EGO_STATE_FIELDS = ("x", "y", "yaw", "vx", "vy", "ax", "ay", "steer", "yaw_rate", "yaw_acc")


@dataclass(frozen=True, eq=False)
class Rollout:
    """The executed episode of planner ``planner_id`` on scenario ``scenario_id``, on the scenario's timeline.

    Steps ``[0, t0]`` are copied from the log; steps ``t0 + 1 .. t0 + num_sim_steps`` were simulated; later
    steps (when the log is longer than the episode) are marked invalid / not simulated. T is the scenario's
    length, extended when the episode runs past the end of the log.

    Attributes:
        scenario_id, planner_id: provenance; seed: the episode's seed.
        dt: step, s. t0: index of the first simulated state (the scenario's "now"). num_sim_steps: S.
        timestamps_s: ``[T]`` float64, s (extrapolated at ``dt`` past the end of the log).
        agents: :class:`AgentTracks` ``[T, N]`` as simulated, agent 0 the ego box (centre = rear axle + r2c).
        ego_states: ``[T, D]`` float64 rear-axle states (D = 10, fields :data:`EGO_STATE_FIELDS`, local frame);
            estimated from the log for steps <= t0, simulated after, 0 where not simulated.
        actions: ``[T, 2]`` float64, (acceleration command m/s^2, steering-rate command rad/s) applied from
            each step (0 for perfect tracking and outside the episode).
        plans: ``[num_plans, 40, 3]`` float64, the planner's outputs in the ego body frame at planning time.
        plan_steps: ``[num_plans]`` int64, the step (scenario timeline) of each plan.
        info: ``name -> [T, ...]`` arrays, namespaced: ``sim/simulated`` [T] bool, ``sim/collision`` [T] bool
            (any ego-agent box overlap), ``sim/collision_agents`` [T, N] bool, ``sim/offroad`` [T] bool,
            ``sim/oncoming`` [T] bool, ``sim/plan_index`` [T] int64 (-1 outside), ``sim/agent_is_reactive``
            [T, N] bool.
        meta: provenance (config, code version) as plain strings and numbers.
    """

    scenario_id: str
    planner_id: str
    seed: int
    dt: float
    t0: int
    num_sim_steps: int
    timestamps_s: np.ndarray  # [T] float64, s
    agents: AgentTracks  # [T, N]
    ego_states: np.ndarray  # [T, 10] float64
    actions: np.ndarray  # [T, 2] float64
    plans: np.ndarray  # [P, 40, 3] float64, body frame
    plan_steps: np.ndarray  # [P] int64
    info: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()
        freeze(self.timestamps_s, self.ego_states, self.actions, self.plans, self.plan_steps, *self.info.values())

    @property
    def num_steps(self) -> int:
        """T."""
        return int(len(self.timestamps_s))

    @property
    def sim_slice(self) -> slice:
        """Steps of the executed episode, t0 .. t0 + num_sim_steps (inclusive)."""
        return slice(self.t0, self.t0 + self.num_sim_steps + 1)

    @property
    def has_collision(self) -> bool:
        """Any ego-agent box overlap during the episode (regardless of fault)."""
        return bool(np.asarray(self.info.get("sim/collision", np.zeros(1, bool))).any())

    @property
    def has_offroad(self) -> bool:
        """Any ego corner outside the drivable area during the episode."""
        return bool(np.asarray(self.info.get("sim/offroad", np.zeros(1, bool))).any())

    def validate(self) -> None:
        """Check field types, shapes and finiteness; raise ScenarioValidationError / ShapeError naming the field."""
        o = "Rollout"
        for name in ("scenario_id", "planner_id"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise ScenarioValidationError(f"{o}.{name}: expected a non-empty str, received {v!r}")
        if not isinstance(self.seed, (int, np.integer)):
            raise ScenarioValidationError(f"{o}.seed: expected an int, received {self.seed!r}")
        if not (isinstance(self.dt, (float, int)) and np.isfinite(self.dt) and self.dt > 0):
            raise ScenarioValidationError(f"{o}.dt: expected a positive number of seconds, received {self.dt!r}")
        if not isinstance(self.agents, AgentTracks):
            raise ScenarioValidationError(f"{o}.agents: expected AgentTracks, received {type(self.agents).__name__}")
        d: dict[str, int] = {"T": self.agents.num_steps, "N": self.agents.num_agents}
        check_array(o, "timestamps_s", self.timestamps_s, ("T",), "f", d, finite=True)
        check_array(o, "ego_states", self.ego_states, ("T", len(EGO_STATE_FIELDS)), "f", d, finite=True)
        check_array(o, "actions", self.actions, ("T", 2), "f", d, finite=True)
        check_array(o, "plans", self.plans, ("P", 40, 3), "f", d, finite=True)
        check_array(o, "plan_steps", self.plan_steps, ("P",), "iu", d)
        if self.ego_states.dtype != np.float64:
            raise ScenarioValidationError(f"{o}.ego_states: expected float64, received {self.ego_states.dtype}")
        t = d["T"]
        if not (isinstance(self.t0, (int, np.integer)) and 0 <= self.t0 < t):
            raise ScenarioValidationError(f"{o}.t0: expected an index in [0, {t}), received {self.t0!r}")
        if not (isinstance(self.num_sim_steps, (int, np.integer)) and 0 <= self.num_sim_steps <= t - 1 - self.t0):
            raise ScenarioValidationError(
                f"{o}.num_sim_steps: expected 0 <= S <= T - 1 - t0 = {t - 1 - self.t0}, "
                f"received {self.num_sim_steps!r}")
        for key, arr in self.info.items():
            if not isinstance(arr, np.ndarray) or arr.ndim < 1 or arr.shape[0] != t:
                got = list(arr.shape) if isinstance(arr, np.ndarray) else type(arr).__name__
                raise ScenarioValidationError(f"{o}.info[{key!r}]: expected an array [T = {t}, ...], received {got}")
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise ScenarioValidationError(f"{o}.info[{key!r}]: expected finite values, received NaN/inf")
