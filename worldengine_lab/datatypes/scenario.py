"""Scenario: one window of a driving log (agents, map, route, traffic lights, tags, provenance)."""
from __future__ import annotations

import enum
import html
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from ..errors import ScenarioValidationError, WindowOutOfRangeError
from ._checks import check_array, freeze
from .agents import AgentTracks
from .map import MapData

__all__ = ["TrafficLightStatus", "TrafficLights", "Route", "Provenance", "Scenario"]


class TrafficLightStatus(enum.IntEnum):
    """nuPlan ``TrafficLightStatusType`` codes."""

    GREEN = 0
    YELLOW = 1
    RED = 2
    UNKNOWN = 3


@dataclass(frozen=True, eq=False)
class TrafficLights:
    """Per-step status of the map's signalised lane connectors.

    Attributes:
        status: ``[T, M]`` int8 :class:`TrafficLightStatus`, column m is lane ``MapData.signalized_lanes[m]``;
            UNKNOWN where the log has no information at that step.
    """

    status: np.ndarray  # [T, M] int8

    def __post_init__(self) -> None:
        check_array("TrafficLights", "status", self.status, (None, None), "iu")
        if self.status.size and (self.status.min() < 0 or self.status.max() > 3):
            raise ScenarioValidationError(
                f"TrafficLights.status: expected codes 0..3 (green, yellow, red, unknown), received "
                f"[{self.status.min()}, {self.status.max()}]"
            )
        freeze(self.status)


@dataclass(frozen=True, eq=False)
class Route:
    """The ego's mission.

    Attributes:
        roadblock_ids: ordered roadblock (and roadblock-connector) ids of the route, as in nuPlan
            ``scene.roadblock_ids``; empty where the source has none.
        lane_indices: ``[R]`` int32 indices into ``MapData.lanes`` of the lanes on the route roadblocks.
        goal_xy: ``[2]`` float32, m, local frame; NaN if the source has no goal.
        goal_yaw: rad; NaN if unknown.
    """

    roadblock_ids: tuple[str, ...] = ()
    lane_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # [R] int32
    goal_xy: np.ndarray = field(default_factory=lambda: np.full(2, np.nan, np.float32))  # [2] float32
    goal_yaw: float = float("nan")

    def __post_init__(self) -> None:
        check_array("Route", "lane_indices", self.lane_indices, (None,), "iu")
        check_array("Route", "goal_xy", self.goal_xy, (2,), "f")
        freeze(self.lane_indices, self.goal_xy)

    @property
    def has_goal(self) -> bool:
        return bool(np.isfinite(self.goal_xy).all())


@dataclass(frozen=True)
class Provenance:
    """Where a scenario came from.

    Attributes:
        source: 'nuplan', 'av2', 'av2_forecasting', 'synthetic', or 'variant'.
        path: the log file or folder, as given by the user.
        log_id: the log's name (nuPlan .db stem, AV2 log UUID).
        map_name: dataset map name.
        location: city / location label.
        first_token: source token (hex) of the first step, '' where not applicable.
        t0_token: source token (hex) of the "now" step ('' if none).
        extra: free-form strings (e.g. the generator seed of the embedded world).
    """

    source: str
    path: str = ""
    log_id: str = ""
    map_name: str = ""
    location: str = ""
    first_token: str = ""
    t0_token: str = ""
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, eq=False)
class Scenario:
    """A window of a driving log, ready to simulate: T steps at ``dt`` seconds, "now" at index ``t0``.

    Frame: all positions are metres in the scenario's **local frame** = the dataset's world frame (nuPlan
    UTM, AV2 city frame) translated by ``-origin_xy``: ``world = local + origin_xy``. No rotation, so
    headings are those of the world frame.

    Attributes:
        scenario_id: unique id (nuPlan: the t0 lidar_pc token; AV2: ``<log>:<t0 ns>``).
        log_id: the source log.
        dt: step, s (0.1 at 10 Hz).
        t0: index of "now"; history is ``[:t0 + 1]``, future ``[t0 + 1:]``.
        timestamps_s: ``[T]`` float64, s on the dataset's clock.
        origin_xy: ``[2]`` float64, m, world coordinates of the local frame's origin.
        agents: :class:`AgentTracks`, ego first.
        map: :class:`MapData` cropped around the scenario.
        route: :class:`Route`.
        traffic_lights: :class:`TrafficLights`, ``status [T, M]`` with M = len(map.signalized_lanes).
        tags: scenario tags (nuPlan scenario types and user tags).
        provenance: :class:`Provenance`.
        ego_rear_axle_to_center_m: distance from the ego rear axle forward to its box centre, m.
        meta: small free-form metadata (strings and numbers).
    """

    scenario_id: str
    log_id: str
    dt: float
    t0: int
    timestamps_s: np.ndarray  # [T] float64, s
    origin_xy: np.ndarray  # [2] float64, m, world frame
    agents: AgentTracks
    map: MapData
    route: Route = field(default_factory=Route)
    traffic_lights: TrafficLights | None = None
    tags: frozenset[str] = frozenset()
    provenance: Provenance = field(default_factory=lambda: Provenance(source="unknown"))
    ego_rear_axle_to_center_m: float = 1.461
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.tags, frozenset):
            object.__setattr__(self, "tags", frozenset(self.tags))
        if self.traffic_lights is None:
            m = len(self.map.signalized_lanes) if isinstance(self.map, MapData) else 0
            t = len(self.timestamps_s) if isinstance(self.timestamps_s, np.ndarray) else 0
            object.__setattr__(self, "traffic_lights", TrafficLights(np.full((t, m), 3, np.int8)))
        self.validate()
        freeze(self.timestamps_s, self.origin_xy)

    @property
    def num_steps(self) -> int:
        return int(len(self.timestamps_s))

    @property
    def duration_s(self) -> float:
        return float(self.timestamps_s[-1] - self.timestamps_s[0]) if self.num_steps else 0.0

    def validate(self) -> None:
        """Check every field; raise ScenarioValidationError naming the field, expectation and value."""
        o = "Scenario"
        if not isinstance(self.scenario_id, str) or not self.scenario_id:
            raise ScenarioValidationError(f"{o}.scenario_id: expected a non-empty str, received {self.scenario_id!r}")
        if not (isinstance(self.dt, (float, int)) and np.isfinite(self.dt) and self.dt > 0):
            raise ScenarioValidationError(f"{o}.dt: expected a positive number of seconds, received {self.dt!r}")
        check_array(o, "timestamps_s", self.timestamps_s, (None,), "f", finite=True)
        check_array(o, "origin_xy", self.origin_xy, (2,), "f", finite=True)
        if self.origin_xy.dtype != np.float64:
            raise ScenarioValidationError(f"{o}.origin_xy: expected float64 (world coordinates), received {self.origin_xy.dtype}")
        t = len(self.timestamps_s)
        if t < 1:
            raise ScenarioValidationError(f"{o}.timestamps_s: expected at least one step, received 0")
        if t > 1 and not (np.diff(self.timestamps_s) > 0).all():
            raise ScenarioValidationError(f"{o}.timestamps_s: expected strictly increasing timestamps")
        if not (isinstance(self.t0, (int, np.integer)) and 0 <= self.t0 < t):
            raise ScenarioValidationError(f"{o}.t0: expected an index in [0, {t}), received {self.t0!r}")
        if not isinstance(self.agents, AgentTracks):
            raise ScenarioValidationError(f"{o}.agents: expected AgentTracks, received {type(self.agents).__name__}")
        if self.agents.num_steps != t:
            raise ScenarioValidationError(
                f"{o}.agents: expected T = {t} steps (len(timestamps_s)), received {self.agents.num_steps}"
            )
        if not isinstance(self.map, MapData):
            raise ScenarioValidationError(f"{o}.map: expected MapData, received {type(self.map).__name__}")
        if not isinstance(self.route, Route):
            raise ScenarioValidationError(f"{o}.route: expected Route, received {type(self.route).__name__}")
        if self.route.lane_indices.size and self.route.lane_indices.max() >= self.map.num_lanes:
            raise ScenarioValidationError(f"{o}.route.lane_indices: expected indices < {self.map.num_lanes} (lanes in map)")
        tl = self.traffic_lights
        assert tl is not None
        want = (t, len(self.map.signalized_lanes))
        if tl.status.shape != want:
            raise ScenarioValidationError(
                f"{o}.traffic_lights.status: expected shape {list(want)} (steps x signalised lanes), received "
                f"{list(tl.status.shape)}"
            )
        if not self.agents.valid[self.t0, 0]:
            raise ScenarioValidationError(f"{o}.agents.valid[t0, 0]: the ego must be observed at t0 = {self.t0}")

    # -- copies -----------------------------------------------------------------------------------------
    def with_agents(self, agents: AgentTracks, **changes: Any) -> "Scenario":
        """Return a validated copy with new agents (e.g. an edited variant)."""
        return replace(self, agents=agents, **changes)

    def with_tags(self, *tags: str) -> "Scenario":
        """Return a copy with extra tags."""
        return replace(self, tags=self.tags | frozenset(tags))

    def window(self, start: int, stop: int, t0: int | None = None) -> "Scenario":
        """Return steps ``[start, stop)`` as a new Scenario; ``t0`` is given in the new indexing
        (default: the old t0 shifted, which must fall inside the window)."""
        t = self.num_steps
        if not (0 <= start < stop <= t):
            raise WindowOutOfRangeError(f"Scenario.window: expected 0 <= start < stop <= {t}, received [{start}, {stop})")
        new_t0 = self.t0 - start if t0 is None else t0
        if not 0 <= new_t0 < stop - start:
            raise WindowOutOfRangeError(
                f"Scenario.window: t0 = {new_t0} falls outside the new window of {stop - start} steps; pass t0="
            )
        assert self.traffic_lights is not None
        return replace(
            self,
            t0=new_t0,
            timestamps_s=self.timestamps_s[start:stop].copy(),
            agents=self.agents.slice_time(start, stop),
            traffic_lights=TrafficLights(self.traffic_lights.status[start:stop].copy()),
        )

    # -- display ----------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Plain-data summary (what the catalog stores)."""
        return {
            "scenario_id": self.scenario_id,
            "log_id": self.log_id,
            "source": self.provenance.source,
            "map_name": self.provenance.map_name or self.map.map_id,
            "location": self.provenance.location,
            "start_time_s": float(self.timestamps_s[0]),
            "duration_s": self.duration_s,
            "num_steps": self.num_steps,
            "t0": int(self.t0),
            "num_agents": self.agents.num_agents,
            "num_lanes": self.map.num_lanes,
            "tags": sorted(self.tags),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"Scenario({s['scenario_id']!r}, source={s['source']}, map={s['map_name']!r}, T={s['num_steps']} "
            f"(dt={self.dt:g} s, t0={s['t0']}), agents={s['num_agents']}, lanes={s['num_lanes']}, tags={s['tags']})"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in self.summary().items()
        )
        return f"<table><caption>Scenario</caption>{rows}</table>"
