"""AgentTracks: time-major tracks of every agent in a scenario (the ego is agent 0)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ScenarioValidationError
from ._checks import check_array, freeze

__all__ = ["AgentType", "AgentTracks", "EGO_INDEX"]

EGO_INDEX = 0


class AgentType(enum.IntEnum):
    """Agent classes; integer codes are nuPlan's ``TrackedObjectType`` (spec §1.3)."""

    VEHICLE = 0
    PEDESTRIAN = 1
    BICYCLE = 2
    TRAFFIC_CONE = 3
    BARRIER = 4
    CZONE_SIGN = 5
    GENERIC_OBJECT = 6
    EGO = 7

    @property
    def is_static(self) -> bool:
        """True for object classes that never move (cones, barriers, signs, generic objects)."""
        return self in (AgentType.TRAFFIC_CONE, AgentType.BARRIER, AgentType.CZONE_SIGN, AgentType.GENERIC_OBJECT)


@dataclass(frozen=True, eq=False)
class AgentTracks:
    """Tracks of N agents over T steps, time-major. Agent 0 is the ego.

    All positions are **box centres** in the scenario's local frame (world frame translated by
    ``Scenario.origin_xy``; axes east/north or the dataset's x/y, metres). Headings are radians,
    counter-clockwise from +x, in the same frame (a pure translation leaves them unchanged).

    Attributes:
        xy: ``[T, N, 2]`` float32, m, local frame, box centre.
        yaw: ``[T, N]`` float32, rad, CCW from +x.
        vel_xy: ``[T, N, 2]`` float32, m/s, local frame axes.
        size_lwh: ``[N, 3]`` float32, m: length (along heading), width, height.
        agent_type: ``[N]`` int8, :class:`AgentType` codes; ``agent_type[0] == AgentType.EGO``.
        valid: ``[T, N]`` bool; False where the agent was not observed (its other fields are then 0).
        track_ids: ``[N]`` str (numpy unicode); the dataset's track id (hex token, UUID, ...); ego is ``"ego"``.
    """

    xy: np.ndarray  # [T, N, 2] float32, m, local frame
    yaw: np.ndarray  # [T, N] float32, rad
    vel_xy: np.ndarray  # [T, N, 2] float32, m/s
    size_lwh: np.ndarray  # [N, 3] float32, m
    agent_type: np.ndarray  # [N] int8
    valid: np.ndarray  # [T, N] bool
    track_ids: np.ndarray = field(default=None)  # type: ignore[assignment]  # [N] str

    def __post_init__(self) -> None:
        if self.track_ids is None:
            n = self.size_lwh.shape[0] if isinstance(self.size_lwh, np.ndarray) else 0
            object.__setattr__(self, "track_ids", np.array(["ego"] + [f"agent_{i}" for i in range(1, n)]))
        self.validate()
        freeze(self.xy, self.yaw, self.vel_xy, self.size_lwh, self.agent_type, self.valid, self.track_ids)

    @property
    def num_steps(self) -> int:
        """T, the number of time steps."""
        return int(self.xy.shape[0])

    @property
    def num_agents(self) -> int:
        """N, the number of agents including the ego."""
        return int(self.xy.shape[1])

    def validate(self) -> None:
        """Check shapes, dtypes, finiteness of valid entries and the ego convention."""
        d: dict[str, int] = {}
        o = "AgentTracks"
        check_array(o, "xy", self.xy, ("T", "N", 2), "f", d)
        check_array(o, "yaw", self.yaw, ("T", "N"), "f", d)
        check_array(o, "vel_xy", self.vel_xy, ("T", "N", 2), "f", d)
        check_array(o, "size_lwh", self.size_lwh, ("N", 3), "f", d, finite=True)
        check_array(o, "agent_type", self.agent_type, ("N",), "iu", d)
        check_array(o, "valid", self.valid, ("T", "N"), "b", d)
        check_array(o, "track_ids", self.track_ids, ("N",), "UO", d)
        if d["N"] < 1:
            raise ScenarioValidationError("AgentTracks: expected at least the ego (N >= 1), received N = 0")
        if int(self.agent_type[0]) != AgentType.EGO:
            raise ScenarioValidationError(
                f"AgentTracks.agent_type[0]: expected AgentType.EGO ({int(AgentType.EGO)}) for the ego at index 0, "
                f"received {int(self.agent_type[0])}; put the ego first"
            )
        for name in ("xy", "yaw", "vel_xy"):
            arr = getattr(self, name)
            v = self.valid if arr.ndim == 2 else self.valid[..., None]
            if not np.isfinite(np.where(v, arr, 0.0)).all():
                raise ScenarioValidationError(
                    f"AgentTracks.{name}: expected finite values where valid, received NaN/inf; "
                    "mark unobserved steps invalid"
                )
        if (self.size_lwh < 0).any():
            raise ScenarioValidationError("AgentTracks.size_lwh: expected sizes >= 0 m, received a negative size")

    def with_arrays(self, **changes: np.ndarray) -> "AgentTracks":
        """Return a validated copy with some fields replaced."""
        return replace(self, **changes)

    def slice_time(self, start: int, stop: int) -> "AgentTracks":
        """Return the steps ``[start, stop)`` as a new AgentTracks."""
        return AgentTracks(
            xy=self.xy[start:stop].copy(),
            yaw=self.yaw[start:stop].copy(),
            vel_xy=self.vel_xy[start:stop].copy(),
            size_lwh=self.size_lwh.copy(),
            agent_type=self.agent_type.copy(),
            valid=self.valid[start:stop].copy(),
            track_ids=self.track_ids.copy(),
        )
