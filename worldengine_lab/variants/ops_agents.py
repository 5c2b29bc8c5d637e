"""Generic agent edits: TimeShift, SpeedScale, LateralOffset, InsertAgent, RemoveAgent.

Units and frames: see :mod:`.ops`. Retimed agents keep their own path (history and logged future, extended
straight ahead at the end); only when along it they are changes. Every edit starts from the agent's logged
state at "now" (``t0``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..datatypes import EGO_INDEX, AgentType, Scenario
from ._edit import Tracks, find_agent, integrate_progress, onset_index, own_path, with_tracks
from ._paths import SMOOTHSTEP5_PEAK_ACCEL, Path, smoothstep5
from .limits import active_config
from .ops import Op, register_op

__all__ = ["TimeShift", "SpeedScale", "LateralOffset", "InsertAgent", "RemoveAgent", "AGENT_TYPE_NAMES",
           "DEFAULT_SIZES_LWH"]

AGENT_TYPE_NAMES: dict[str, int] = {
    "vehicle": int(AgentType.VEHICLE), "pedestrian": int(AgentType.PEDESTRIAN), "bicycle": int(AgentType.BICYCLE),
    "cyclist": int(AgentType.BICYCLE), "traffic_cone": int(AgentType.TRAFFIC_CONE),
    "barrier": int(AgentType.BARRIER), "czone_sign": int(AgentType.CZONE_SIGN),
    "generic_object": int(AgentType.GENERIC_OBJECT),
}
"""Agent type names accepted by :class:`InsertAgent` -> :class:`AgentType` codes."""

DEFAULT_SIZES_LWH: dict[int, tuple[float, float, float]] = {
    int(AgentType.VEHICLE): (4.6, 1.9, 1.6), int(AgentType.PEDESTRIAN): (0.6, 0.6, 1.75),
    int(AgentType.BICYCLE): (1.8, 0.6, 1.7), int(AgentType.TRAFFIC_CONE): (0.4, 0.4, 0.7),
    int(AgentType.BARRIER): (2.0, 0.5, 1.0), int(AgentType.CZONE_SIGN): (0.6, 0.4, 1.2),
    int(AgentType.GENERIC_OBJECT): (1.0, 1.0, 1.0),
}
"""Box size (length, width, height), m, of an inserted agent of each type."""


def _retimed(s: Scenario, tr: Tracks, i: int, v_future: np.ndarray) -> None:
    """Agent ``i`` drives its own path from its state at t0 with speeds ``v_future [T - t0 - 1]`` (m/s)."""
    path, s_all, _ = own_path(tr, i, s.dt)
    s_new = integrate_progress(float(s_all[s.t0]), np.maximum(v_future, 0.0), s.dt)
    tr.set_motion(i, s.t0 + 1, path.point(s_new), s.dt, float(tr.yaw[s.t0, i]))


@register_op
@dataclass(frozen=True)
class TimeShift(Op):
    """Shift an agent's future *timing* along its own path by ``shift_s``.

    The agent's speed at a future time t becomes its logged speed at ``t - shift_s`` (its history where that
    falls before now, its last speed past the end of the log), integrated from its position at now: what it
    did at time t it now does at ``t + shift_s`` (starting, braking, arriving). For an agent standing at now
    its future positions are exactly the logged ones shifted by ``shift_s``.
    """

    name = "time_shift"
    blame = {"deceleration": ("shift_s", "a smaller |shift_s|"), "kinematics": ("shift_s", "a smaller |shift_s|")}

    agent: str
    """Track id of the agent."""
    shift_s: float
    """Delay in seconds (> 0 later, < 0 earlier)."""

    def check(self) -> None:
        self.require(isinstance(self.agent, str) and bool(self.agent), "agent", "expected a track id",
                     "pass the agent's track id")

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        s = scenario
        window = (s.num_steps - 1) * s.dt
        self.require(abs(self.shift_s) < window, "shift_s", f"|{self.shift_s}| s is not shorter than the "
                     f"scenario ({window:.1f} s)", f"pass |shift_s| < {window:.1f}")
        tr = Tracks.of(s.agents)
        i = find_agent(s, self.agent, self)
        _, _, speed = own_path(tr, i, s.dt)
        t = np.arange(s.num_steps)
        known = np.isfinite(speed)
        query = t[s.t0 + 1:] * s.dt - self.shift_s
        v_future = np.interp(query, t[known] * s.dt, speed[known])
        _retimed(s, tr, i, v_future)
        return with_tracks(s, tr)


@register_op
@dataclass(frozen=True)
class SpeedScale(Op):
    """Scale an agent's future speed profile along its own path by ``factor`` from ``onset_s`` on (so its future
    distance travelled after the onset scales by ``factor``)."""

    name = "speed_scale"
    blame = {"deceleration": ("factor", "a factor closer to 1 or a later onset_s"),
             "kinematics": ("factor", "a factor closer to 1")}

    agent: str
    """Track id of the agent."""
    factor: float
    """Speed multiplier (>= 0; 0 stops the agent)."""
    onset_s: float = 0.0
    """When the scaling starts, s after now."""

    def check(self) -> None:
        self.require(self.factor >= 0, "factor", f"expected a speed multiplier >= 0, received {self.factor}",
                     "pass factor >= 0")

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        s = scenario
        k_on = onset_index(s, self.onset_s, self)
        tr = Tracks.of(s.agents)
        i = find_agent(s, self.agent, self)
        _, _, speed = own_path(tr, i, s.dt)
        t = np.arange(s.t0 + 1, s.num_steps)
        v_future = np.where(t > k_on, self.factor, 1.0) * speed[s.t0 + 1:]
        lim = active_config().limits_for(int(tr.agent_type[i]))
        top = max(lim.max_speed_mps, float(np.linalg.norm(tr.vel_xy[s.t0, i])))
        self.require(float(v_future.max(initial=0.0)) <= top + 1e-6, "factor",
                     f"the scaled speed reaches {float(v_future.max()):.1f} m/s, above the "
                     f"{lim.max_speed_mps:g} m/s limit of this agent type", "pass a smaller factor")
        _retimed(s, tr, i, v_future)
        return with_tracks(s, tr)


@register_op
@dataclass(frozen=True)
class LateralOffset(Op):
    """Move an agent sideways off its own path by ``offset_m`` (positive = to its left), blended in with a
    minimum-jerk profile over ``ramp_s`` seconds from ``onset_s``, then kept."""

    name = "lateral_offset"
    blame = {"curvature": ("ramp_s", "a longer ramp_s (a standing vehicle cannot move sideways)"),
             "lateral_acceleration": ("ramp_s", "a longer ramp_s"),
             "off_road": ("offset_m", "a smaller |offset_m| that keeps the vehicle on the drivable area"),
             "kinematics": ("ramp_s", "a longer ramp_s")}
    checks_on_road = True

    agent: str
    """Track id of the agent."""
    offset_m: float
    """Lateral offset, m, positive to the left of the agent's direction of travel."""
    onset_s: float = 0.0
    """When the sideways move starts, s after now."""
    ramp_s: float = 2.0
    """Duration of the sideways move, s (> 0)."""

    def check(self) -> None:
        self.require(self.ramp_s > 0, "ramp_s", f"expected a positive duration, received {self.ramp_s}",
                     "pass ramp_s > 0")

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        s = scenario
        k_on = onset_index(s, self.onset_s, self)
        tr = Tracks.of(s.agents)
        i = find_agent(s, self.agent, self)
        cfg = active_config()
        lim = cfg.limits_for(int(tr.agent_type[i]))
        need = SMOOTHSTEP5_PEAK_ACCEL * abs(self.offset_m) / self.ramp_s ** 2
        allowed = cfg.margin * lim.max_lat_accel_mps2
        self.require(need <= allowed, "ramp_s", f"moving {abs(self.offset_m):g} m sideways in {self.ramp_s:g} s "
                     f"needs {need:.1f} m/s^2 of lateral acceleration (limit {allowed:.1f})",
                     f"pass ramp_s >= {np.sqrt(SMOOTHSTEP5_PEAK_ACCEL * abs(self.offset_m) / allowed):.2f}")
        path, s_all, _ = own_path(tr, i, s.dt)
        t = np.arange(s.t0 + 1, s.num_steps)
        d = self.offset_m * smoothstep5((t - k_on) * s.dt / self.ramp_s)
        xy = path.to_xy(s_all[s.t0 + 1:], d)
        tr.set_motion(i, s.t0 + 1, xy, s.dt, float(tr.yaw[s.t0, i]))
        return with_tracks(s, tr)


@register_op
@dataclass(frozen=True)
class InsertAgent(Op):
    """Insert a new agent moving at constant speed along a straight line (``pose``) or a polyline (``path``).

    The agent is at the start of its line at now and has driven/walked it at ``speed_mps`` before (a made-up
    but consistent history, so planners see it coming); past the last waypoint it goes straight on.
    """

    name = "insert_agent"
    blame = {"off_road": ("pose", "a pose or path on the drivable area"),
             "curvature": ("path", "a smoother path or a lower speed_mps"),
             "lateral_acceleration": ("speed_mps", "a lower speed_mps"),
             "kinematics": ("speed_mps", "a lower speed_mps")}
    checks_on_road = True

    agent_type: str = "vehicle"
    """One of :data:`AGENT_TYPE_NAMES` (``vehicle``, ``pedestrian``, ``bicycle``, static objects...)."""
    pose: Optional[tuple[float, float, float]] = None
    """``(x m, y m, yaw rad)`` at now, in ``frame``; the agent moves straight along ``yaw``."""
    path: Optional[tuple[tuple[float, float], ...]] = None
    """``((x, y), ...)`` waypoints (m, in ``frame``, >= 2), followed from the first one."""
    speed_mps: float = 0.0
    """Constant speed, m/s (0 for a standing agent; static object types must be 0)."""
    frame: str = "local"
    """``"local"``: the scenario's local frame; ``"ego"``: the ego's box frame at now (x forward, y left)."""
    size_lwh: Optional[tuple[float, float, float]] = None
    """Box length, width, height, m (default: :data:`DEFAULT_SIZES_LWH` of the type)."""
    track_id: Optional[str] = None
    """Track id of the new agent (default ``"inserted-<hash of this op>"``)."""

    def check(self) -> None:
        self.require(self.agent_type in AGENT_TYPE_NAMES, "agent_type", f"unknown type {self.agent_type!r}",
                     f"pass one of {sorted(AGENT_TYPE_NAMES)}")
        self.require((self.pose is None) != (self.path is None), "pose", "expected exactly one of pose and path",
                     "pass pose=(x, y, yaw) or path=((x, y), ...)")
        self.require(self.pose is None or len(self.pose) == 3, "pose", f"expected (x, y, yaw), received "
                     f"{self.pose}", "pass three numbers")
        self.require(self.path is None or (len(self.path) >= 2 and all(len(p) == 2 for p in self.path)),
                     "path", "expected at least two (x, y) waypoints", "pass ((x0, y0), (x1, y1), ...)")
        self.require(self.frame in ("local", "ego"), "frame", f"expected 'local' or 'ego', received {self.frame!r}",
                     "pass frame='local' or 'ego'")
        self.require(self.speed_mps >= 0, "speed_mps", f"expected >= 0, received {self.speed_mps}",
                     "pass a non-negative speed")
        static = AgentType(AGENT_TYPE_NAMES[self.agent_type]).is_static
        self.require(not static or self.speed_mps == 0, "speed_mps", f"a {self.agent_type} does not move",
                     "pass speed_mps=0")
        self.require(self.size_lwh is None or (len(self.size_lwh) == 3 and min(self.size_lwh) > 0), "size_lwh",
                     f"expected three positive sizes, received {self.size_lwh}", "pass (length, width, height)")

    def default_track_id(self) -> str:
        """``"inserted-<hash8 of this op>"``."""
        return f"inserted-{self.hash8()}"

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        s = scenario
        code = AGENT_TYPE_NAMES[self.agent_type]
        lim = active_config().limits_for(code)
        self.require(self.speed_mps <= lim.max_speed_mps, "speed_mps", f"{self.speed_mps:g} m/s is above the "
                     f"{lim.max_speed_mps:g} m/s limit of a {self.agent_type}", "pass a lower speed")
        tid = self.track_id or self.default_track_id()
        self.require(tid not in set(s.agents.track_ids.tolist()), "track_id", f"{tid!r} is already an agent of "
                     f"{s.scenario_id!r}", "pass another track_id")
        if self.pose is not None:
            pts, yaw = np.array([self.pose[:2]], np.float64), float(self.pose[2])
        else:
            pts = np.array(self.path, np.float64)
            yaw = float(np.arctan2(*(pts[1] - pts[0])[::-1]))
        if self.frame == "ego":
            c, sn = np.cos(float(s.agents.yaw[s.t0, EGO_INDEX])), np.sin(float(s.agents.yaw[s.t0, EGO_INDEX]))
            rot = np.array([[c, -sn], [sn, c]])
            pts = pts @ rot.T + s.agents.xy[s.t0, EGO_INDEX].astype(np.float64)
            yaw += float(s.agents.yaw[s.t0, EGO_INDEX])
        reach = self.speed_mps * s.num_steps * s.dt + 10.0
        line = Path.from_points(pts, yaw, yaw, reach, reach)
        arc = (np.arange(s.num_steps) - s.t0) * s.dt * self.speed_mps
        tr = Tracks.of(s.agents)
        size = self.size_lwh if self.size_lwh is not None else DEFAULT_SIZES_LWH[code]
        i = tr.add_agent(code, np.array(size), tid)
        tr.set_motion(i, 0, line.point(arc), s.dt, yaw)
        tr.vel_xy[:, i] = self.speed_mps * np.stack([np.cos(tr.yaw[:, i]), np.sin(tr.yaw[:, i])], -1)
        return with_tracks(s, tr)


@register_op
@dataclass(frozen=True)
class RemoveAgent(Op):
    """Remove an agent from the future: it is invalid after now (its history stays). The agent need not be
    observed at now (an agent that would appear later is removed too)."""

    name = "remove_agent"

    agent: str
    """Track id of the agent."""

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        s = scenario
        i = find_agent(s, self.agent, self, observed=False)
        tr = Tracks.of(s.agents)
        tr.valid[s.t0 + 1:, i] = False
        return with_tracks(s, tr)
