"""Shared plumbing of the ops: agent and onset lookup with clear errors, mutable copies of the tracks, the ego's
path and Frenet frame, an agent's own path and speed profile, and writing a new future for one agent.

Frames: every position is in the scenario's local frame (metres); headings are radians CCW from +x. Arc
positions ``s`` are metres along a path; lateral offsets ``d`` are metres, positive to the left of the path.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..datatypes import EGO_INDEX, AgentTracks, Scenario
from ..errors import InfeasibleEditError
from ._paths import Path, headings_from_positions

if TYPE_CHECKING:
    from .ops import Op

__all__ = ["edit_error", "onset_index", "find_agent", "Tracks", "with_tracks", "with_lights", "ego_path", "own_path",
           "integrate_progress", "EGO_PATH_EXTENSION_M"]

EGO_PATH_EXTENSION_M = 300.0
"""Straight extension of the ego's logged path at both ends, m (the Frenet frame of cut-ins and dart-outs)."""


def edit_error(op: "Op | str", param: str, reason: str, fix: str) -> InfeasibleEditError:
    """``InfeasibleEditError("<op>: <param>: <reason>; <fix>")``."""
    where = op if isinstance(op, str) else op.describe()
    return InfeasibleEditError(f"{where}: parameter {param!r}: {reason}; {fix}")


def onset_index(s: Scenario, onset_s: float, op: "Op", param: str = "onset_s", room_steps: int = 1) -> int:
    """Step index ``t0 + round(onset_s / dt)``; raises unless ``0 <= onset_s`` and at least ``room_steps`` steps
    remain after it in the window."""
    latest = (s.num_steps - 1 - room_steps - s.t0) * s.dt
    k = s.t0 + int(round(onset_s / s.dt))
    if not np.isfinite(onset_s) or onset_s < 0 or k > s.num_steps - 1 - room_steps:
        raise edit_error(op, param, f"{onset_s!r} s falls outside the scenario's future (0 .. {latest:.1f} s after "
                                    f"now, t0 = {s.t0}, {s.num_steps} steps of {s.dt:g} s)",
                         f"pass a value in [0, {latest:.1f}]")
    return k


def find_agent(s: Scenario, track_id: str, op: "Op", param: str = "agent", at: int | None = None,
               observed: bool = True) -> int:
    """Index of the agent with ``track_id``; raises for the ego, an unknown id or (with ``observed``) an agent
    not observed at step ``at`` (default t0)."""
    ids = s.agents.track_ids
    hits = np.flatnonzero(ids == track_id)
    if not len(hits):
        some = ", ".join(repr(str(x)) for x in ids[1:9])
        raise edit_error(op, param, f"no agent with track id {track_id!r} in scenario {s.scenario_id!r}",
                         f"pass one of its {len(ids) - 1} track ids ({some}{', ...' if len(ids) > 9 else ''})"
                         + (" or 'auto'" if getattr(op, "supports_auto", False) else ""))
    i = int(hits[0])
    if i == EGO_INDEX:
        raise edit_error(op, param, "the ego (agent 0) cannot be edited: the planner drives it",
                         "pass another agent's track id")
    t = s.t0 if at is None else at
    if observed and not s.agents.valid[t, i]:
        raise edit_error(op, param, f"agent {track_id!r} is not observed at step {t} (t0 = {s.t0})",
                         "pick an agent observed then, or move the onset")
    return i


@dataclass
class Tracks:
    """Writable copies of an :class:`AgentTracks`' arrays (``[T, N, ...]``, local frame, SI units)."""

    xy: np.ndarray  # [T, N, 2] float64, m
    yaw: np.ndarray  # [T, N] float64, rad
    vel_xy: np.ndarray  # [T, N, 2] float64, m/s
    size_lwh: np.ndarray  # [N, 3] float64, m
    agent_type: np.ndarray  # [N] int8
    valid: np.ndarray  # [T, N] bool
    track_ids: np.ndarray  # [N] str

    @staticmethod
    def of(a: AgentTracks) -> "Tracks":
        return Tracks(a.xy.astype(np.float64), a.yaw.astype(np.float64), a.vel_xy.astype(np.float64),
                      a.size_lwh.astype(np.float64), a.agent_type.copy(), a.valid.copy(), a.track_ids.copy())

    def to_agents(self) -> AgentTracks:
        v = self.valid
        return AgentTracks(
            xy=np.where(v[..., None], self.xy, 0.0).astype(np.float32),
            yaw=np.where(v, self.yaw, 0.0).astype(np.float32),
            vel_xy=np.where(v[..., None], self.vel_xy, 0.0).astype(np.float32),
            size_lwh=self.size_lwh.astype(np.float32), agent_type=self.agent_type.astype(np.int8),
            valid=v.copy(), track_ids=self.track_ids.copy())

    def add_agent(self, agent_type: int, size_lwh: np.ndarray, track_id: str) -> int:
        """Append an agent that is invalid everywhere; return its index."""
        t = self.xy.shape[0]
        self.xy = np.concatenate([self.xy, np.zeros((t, 1, 2))], axis=1)
        self.yaw = np.concatenate([self.yaw, np.zeros((t, 1))], axis=1)
        self.vel_xy = np.concatenate([self.vel_xy, np.zeros((t, 1, 2))], axis=1)
        self.valid = np.concatenate([self.valid, np.zeros((t, 1), bool)], axis=1)
        self.size_lwh = np.concatenate([self.size_lwh, np.asarray(size_lwh, np.float64).reshape(1, 3)])
        self.agent_type = np.concatenate([self.agent_type, np.array([agent_type], np.int8)])
        self.track_ids = np.concatenate([self.track_ids.astype(object), np.array([track_id], object)]).astype(str)
        return self.xy.shape[1] - 1

    def set_motion(self, i: int, start: int, xy: np.ndarray, dt: float, yaw_before: float) -> None:
        """Agent ``i`` follows ``xy [L, 2]`` from step ``start`` on (L = T - start): positions, headings of motion
        (held while standing, ``yaw_before`` until the first move), finite-difference velocities, valid where
        ``xy`` is finite (NaN rows — before an agent appears — stay unobserved)."""
        t = self.xy.shape[0]
        prev = self.xy[start - 1, i] if start > 0 and self.valid[start - 1, i] else xy[0]
        path = np.concatenate([prev[None], xy], axis=0)
        yaw = headings_from_positions(path, np.asarray(yaw_before))[1:]
        vel = np.diff(path, axis=0) / dt
        if start == 0 or not self.valid[start - 1, i]:
            vel[0] = vel[1] if len(vel) > 1 else 0.0
        # steps with no position (an agent not yet observed: its own path is undefined there) stay unobserved
        seen = np.isfinite(xy).all(axis=-1) & np.isfinite(vel).all(axis=-1) & np.isfinite(yaw)
        self.xy[start:, i] = np.where(seen[:, None], xy, 0.0)
        self.yaw[start:, i] = np.where(seen, yaw, 0.0)
        self.vel_xy[start:, i] = np.where(seen[:, None], vel, 0.0)
        self.valid[start:t, i] = seen


def with_tracks(s: Scenario, tr: Tracks, **changes: Any) -> Scenario:
    """A validated copy of ``s`` with the edited tracks."""
    return s.with_agents(tr.to_agents(), **changes)


def ego_path(s: Scenario) -> Path:
    """The ego's logged box-centre path over the whole window (history and future), extended straight
    :data:`EGO_PATH_EXTENSION_M` at both ends; ``s = 0`` at the ego's position at t0."""
    a = s.agents
    v = a.valid[:, EGO_INDEX]
    idx = np.flatnonzero(v)
    pts = a.xy[idx, EGO_INDEX].astype(np.float64)
    origin = int(np.searchsorted(idx, s.t0))
    return Path.from_points(pts, float(a.yaw[idx[0], EGO_INDEX]), float(a.yaw[idx[-1], EGO_INDEX]),
                            EGO_PATH_EXTENSION_M, EGO_PATH_EXTENSION_M, origin_index=origin)


def own_path(tr: Tracks, i: int, dt: float, extend_ahead_m: float = 2000.0) -> tuple[Path, np.ndarray, np.ndarray]:
    """Agent ``i``'s path through its valid positions (history and future), extended straight ahead; its arc
    position ``s [T]`` (m) and speed ``v [T]`` (m/s, backward differences) at every step.

    After its last valid step the agent is taken to continue at its last speed (``s`` grows linearly); before its
    first valid step both are NaN.
    """
    v = tr.valid[:, i]
    idx = np.flatnonzero(v)
    pts = tr.xy[idx, i]
    path = Path.from_points(pts, float(tr.yaw[idx[0], i]), float(tr.yaw[idx[-1], i]), 0.0, extend_ahead_m)
    s_valid = path.s[: len(idx)]
    t = np.arange(tr.xy.shape[0])
    # arc position at every step: interpolate between valid steps, extrapolate at the last speed afterwards
    s_all = np.interp(t, idx, s_valid) if len(idx) > 1 else np.full(len(t), s_valid[0])
    last_v = float(np.linalg.norm(tr.vel_xy[idx[-1], i]))
    s_all = np.where(t > idx[-1], s_valid[-1] + last_v * (t - idx[-1]) * dt, s_all)
    s_all = np.where(t < idx[0], np.nan, s_all)
    speed = np.empty_like(s_all)
    speed[1:] = np.diff(s_all) / dt
    speed[0] = speed[1] if len(speed) > 1 else 0.0
    speed[idx[0]] = float(np.linalg.norm(tr.vel_xy[idx[0], i]))
    return path, s_all, speed


def integrate_progress(s_start: float, v: np.ndarray, dt: float) -> np.ndarray:
    """Arc positions ``[L]`` after a start position, from the mean speeds ``v [L]`` (m/s) of the following steps
    (each step's speed is its length / dt, the convention of :func:`own_path`)."""
    return s_start + np.cumsum(np.asarray(v, np.float64) * dt)


def with_lights(s: Scenario, status: np.ndarray) -> Scenario:
    """A copy of ``s`` with new traffic-light status ``[T, M]``."""
    from ..datatypes import TrafficLights

    return replace(s, traffic_lights=TrafficLights(status.astype(np.int8)))
