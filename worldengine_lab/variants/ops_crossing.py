"""RedLightRun: a crossing vehicle runs its red light across the ego's path.

The crossing is found geometrically: the first map lane (or the named agent's own path) whose centreline crosses
the ego's **logged** future path at 45 deg or more. Units and frames: see :mod:`.ops`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..datatypes import EGO_INDEX, AgentType, MapData, Scenario, TrafficLightStatus
from ._edit import Tracks, find_agent, own_path, with_lights, with_tracks
from ._paths import Path
from .limits import active_config
from .ops import AUTO, Op, register_op
from .ops_agents import DEFAULT_SIZES_LWH

__all__ = ["RedLightRun", "MIN_CROSSING_DEG"]

MIN_CROSSING_DEG = 45.0
"""Smallest angle between the ego's path and a crossing path, deg."""
_ALIGNED_COS = 0.8


def _crossing(ego_xy: np.ndarray, lines: np.ndarray, valid: np.ndarray,
              min_sin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First crossing of the ego polyline ``[F, 2]`` with each of ``lines [L, K, 2]`` (``valid [L, K]``) at an
    angle with |sin| >= ``min_sin``: ``(hit [L] bool, ego_time [L] in steps along ego_xy, point [L, 2])``."""
    a, r = ego_xy[:-1], np.diff(ego_xy, axis=0)  # [E, 2]
    c, q = lines[:, :-1], np.diff(lines, axis=1)  # [L, S, 2]
    seg_ok = valid[:, :-1] & valid[:, 1:]
    cross = lambda u, v: u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]  # noqa: E731
    den = cross(r[:, None, None], q[None])  # [E, L, S]
    ca = c[None] - a[:, None, None]
    safe = np.where(np.abs(den) > 1e-9, den, 1.0)
    tt, uu = cross(ca, q[None]) / safe, cross(ca, r[:, None, None]) / safe
    sin = np.abs(den) / np.maximum(np.linalg.norm(r, axis=-1)[:, None, None] * np.linalg.norm(q, axis=-1)[None],
                                   1e-9)
    hit = (np.abs(den) > 1e-9) & seg_ok[None] & (tt >= 0) & (tt <= 1) & (uu >= 0) & (uu <= 1) & (sin >= min_sin)
    when = np.where(hit, np.arange(len(a))[:, None, None] + tt, np.inf)  # [E, L, S]
    flat = when.transpose(1, 0, 2).reshape(len(lines), -1)
    best = np.argmin(flat, axis=1)
    first = flat[np.arange(len(lines)), best]
    e_idx = best // when.shape[2]
    frac = np.where(np.isfinite(first), first - e_idx, 0.0)
    point = a[e_idx] + frac[:, None] * r[e_idx] if len(a) else np.zeros((len(lines), 2))
    return np.isfinite(first), first, point


def _lane_chain(m: MapData, lane: int, back_m: float, ahead_m: float) -> np.ndarray:
    """Centreline points of ``lane`` preceded by its first predecessors (up to ``back_m``) and followed by its first
    successors (up to ``ahead_m``): a walk along the lane graph (a few lanes, not a hot path)."""
    parts = [m.lanes.get(lane).astype(np.float64)]
    cur, total = lane, 0.0
    for _ in range(16):  # bounded walk over the lane graph
        prev = m.predecessors_of(cur)
        if total >= back_m or not len(prev):
            break
        cur = int(prev[0])
        pts = m.lanes.get(cur).astype(np.float64)
        parts.insert(0, pts)
        total += float(np.linalg.norm(np.diff(pts, axis=0), axis=-1).sum())
    cur, total = lane, 0.0
    for _ in range(16):
        nxt = m.successors_of(cur)
        if total >= ahead_m or not len(nxt):
            break
        cur = int(nxt[0])
        pts = m.lanes.get(cur).astype(np.float64)
        parts.append(pts)
        total += float(np.linalg.norm(np.diff(pts, axis=0), axis=-1).sum())
    return np.concatenate(parts)


@register_op
@dataclass(frozen=True)
class RedLightRun(Op):
    """A crossing vehicle runs its red light across the ego's path.

    ``"auto"`` inserts a runner on the lane that crosses the ego's logged future path first (at >= 45 deg,
    signalised lanes preferred), driving at ``speed_mps``; a named agent is re-timed along its own path (constant
    acceleration) to cross then. The runner's box centre passes the crossing point ``onset_s`` after now, and the
    signalised lane it crosses on (if any) is set to red for the future.
    """

    name = "red_light_run"
    supports_auto = True
    checks_on_road = True
    blame = {"deceleration": ("onset_s", "a later onset_s"), "off_road": ("agent", "another runner"),
             "kinematics": ("onset_s", "a later onset_s"), "curvature": ("speed_mps", "a lower speed_mps"),
             "lateral_acceleration": ("speed_mps", "a lower speed_mps")}

    agent: str = AUTO
    """Track id of the runner, or ``"auto"`` (insert one)."""
    onset_s: Optional[float] = None
    """When the runner's box centre passes the crossing point, s after now; None: when the logged ego's does."""
    speed_mps: float = 12.0
    """Speed of an inserted runner, m/s."""

    def check(self) -> None:
        self.require(self.speed_mps > 0, "speed_mps", f"expected > 0, received {self.speed_mps}",
                     "pass a positive speed")

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        s = scenario
        tr = Tracks.of(s.agents)
        ego_future = s.agents.xy[s.t0:, EGO_INDEX].astype(np.float64)  # [F+1, 2]
        if self.agent == AUTO:
            onset, point, heading = self._insert_runner(s, tr, ego_future)
        else:
            onset, point, heading = self._retime_agent(s, tr, ego_future)
        self.require(0 < onset <= (s.num_steps - 1 - s.t0) * s.dt, "onset_s", f"{onset:.1f} s falls outside the "
                     "scenario's future", "pass an onset_s inside the window")
        return _red_for(with_tracks(s, tr), point, heading)

    def _insert_runner(self, s: Scenario, tr: Tracks, ego_future: np.ndarray) -> tuple[float, np.ndarray, float]:
        """Add a runner on the first crossing lane; return (onset s, crossing point, runner heading there)."""
        lim = active_config().vehicle
        self.require(self.speed_mps <= lim.max_speed_mps, "speed_mps", f"{self.speed_mps:g} m/s is above the "
                     f"vehicle limit {lim.max_speed_mps:g}", "pass a lower speed_mps")
        m = s.map
        lines, valid = m.lanes.xy.astype(np.float64), m.lanes.valid
        lo, hi = ego_future.min(0) - 1.0, ego_future.max(0) + 1.0
        top = np.where(valid[..., None], lines, -np.inf).max(axis=1, initial=-np.inf)
        bottom = np.where(valid[..., None], lines, np.inf).min(axis=1, initial=np.inf)
        near = np.flatnonzero((top >= lo).all(-1) & (bottom <= hi).all(-1))  # lanes whose box meets the ego's
        hit, when, point = _crossing(ego_future, lines[near], valid[near], np.sin(np.deg2rad(MIN_CROSSING_DEG)))
        self.require(bool(hit.any()), "agent", f"no lane crosses the ego's logged future path at >= "
                     f"{MIN_CROSSING_DEG:g} deg", "pick a scenario where the ego drives through a junction")
        signal = np.isin(near, m.signalized_lanes)
        best = int(np.argmin(np.where(hit, when + np.where(signal, 0.0, 1e6), np.inf)))  # signalised first
        lane = int(near[best])
        onset = when[best] * s.dt if self.onset_s is None else self.onset_s
        reach = self.speed_mps * s.num_steps * s.dt + 50.0
        path = Path.from_points(_lane_chain(m, lane, back_m=reach, ahead_m=reach), 0.0, 0.0, reach, reach)
        s_c = float(path.project(point[best])[0])
        arc = s_c + self.speed_mps * ((np.arange(s.num_steps) - s.t0) * s.dt - onset)
        code = int(AgentType.VEHICLE)
        i = tr.add_agent(code, np.array(DEFAULT_SIZES_LWH[code]), f"red_light_runner-{self.hash8()}")
        tr.set_motion(i, 0, path.point(arc), s.dt, float(path.heading(np.array(arc[0]))))
        tr.vel_xy[:, i] = self.speed_mps * np.stack([np.cos(tr.yaw[:, i]), np.sin(tr.yaw[:, i])], -1)
        return onset, point[best], float(path.heading(np.array(s_c)))

    def _retime_agent(self, s: Scenario, tr: Tracks, ego_future: np.ndarray) -> tuple[float, np.ndarray, float]:
        """Re-time the named agent along its own path to cross then; return (onset, crossing point, heading)."""
        cfg = active_config()
        lim = cfg.vehicle
        i = find_agent(s, self.agent, self)
        path, s_all, speed = own_path(tr, i, s.dt)
        ahead = path.point(np.linspace(s_all[s.t0], s_all[s.t0] + 300.0, 301))  # 1 m samples
        min_sin = np.sin(np.deg2rad(MIN_CROSSING_DEG))
        hit, when, point = _crossing(ahead, ego_future[None], np.ones((1, len(ego_future)), bool), min_sin)
        self.require(bool(hit[0]), "agent", f"{self.agent!r}'s path ahead does not cross the ego's logged future "
                     f"path at >= {MIN_CROSSING_DEG:g} deg", "pick a crossing agent or use 'auto'")
        _, ego_when, _ = _crossing(ego_future, ahead[None], np.ones((1, len(ahead)), bool), min_sin)
        onset = ego_when[0] * s.dt if self.onset_s is None else self.onset_s
        self.require(onset > 0, "onset_s", f"expected a crossing time after now, received {onset:g}",
                     "pass onset_s > 0")
        gap = float(when[0])  # metres along the agent's path
        v0 = float(speed[s.t0])
        acc = 2.0 * (gap - v0 * onset) / onset ** 2
        v1 = v0 + acc * onset
        a_max, b_max = cfg.margin * lim.max_accel_mps2, cfg.margin * lim.max_decel_mps2
        self.require(-b_max <= acc <= a_max and 0 <= v1 <= lim.max_speed_mps, "onset_s",
                     f"crossing {gap:.0f} m ahead after {onset:.1f} s needs {acc:+.1f} m/s^2 from {v0:.1f} m/s "
                     f"(limits +{a_max:.1f} / -{b_max:.1f})", f"pass an onset_s near {gap / max(v0, 1.0):.1f} s")
        tau = (np.arange(s.t0 + 1, s.num_steps) - s.t0) * s.dt
        tc = np.minimum(tau, onset)
        arc = s_all[s.t0] + v0 * tc + 0.5 * acc * tc ** 2 + v1 * np.maximum(tau - onset, 0.0)
        tr.set_motion(i, s.t0 + 1, path.point(arc), s.dt, float(tr.yaw[s.t0, i]))
        return onset, point[0], float(path.heading(np.array(s_all[s.t0] + gap)))


def _red_for(s: Scenario, point: np.ndarray, heading: float) -> Scenario:
    """Set to red, for the future, the signalised lanes that pass within 2 m of ``point`` in the direction
    ``heading`` (rad)."""
    m = s.map
    if not len(m.signalized_lanes):
        return s
    lines = m.lanes.xy[m.signalized_lanes].astype(np.float64)  # [M, K, 2]
    valid = m.lanes.valid[m.signalized_lanes]
    a, q = lines[:, :-1], np.diff(lines, axis=1)
    l2 = np.maximum((q * q).sum(-1), 1e-9)
    t = np.clip(((point - a) * q).sum(-1) / l2, 0.0, 1.0)
    dist = np.linalg.norm(a + t[..., None] * q - point, axis=-1)
    dist = np.where(valid[:, :-1] & valid[:, 1:], dist, np.inf)
    j = np.argmin(dist, axis=1)
    rows = np.arange(len(lines))
    dirs = q[rows, j] / np.sqrt(l2[rows, j])[:, None]
    aligned = dirs @ np.array([np.cos(heading), np.sin(heading)]) > _ALIGNED_COS
    mine = (dist[rows, j] <= 2.0) & aligned
    if not mine.any():
        return s
    assert s.traffic_lights is not None
    status = s.traffic_lights.status.copy()
    status[s.t0 + 1:, mine] = int(TrafficLightStatus.RED)
    return with_lights(s, status)
