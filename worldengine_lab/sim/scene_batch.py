"""Pack B scenarios into padded, time-aligned torch tensors for the batched closed loop.

Each scenario has its own length T_b, "now" index t0_b and number of agents N_b. The simulator works on a
common window aligned at every scenario's t0: window index ``w`` is log step ``t0_b - hist + w`` of scenario
``b``; ``w = hist`` is "now". Steps outside a scenario's log, and padded agents, are marked invalid.

Frames: all positions are metres in each scenario's local frame; agent positions are box centres; the ego
state is the rear axle (spec/metrics.md §0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..datatypes import AgentType, MapData, Scenario, TrafficLightStatus
from ..errors import ScenarioValidationError
from .state import AX, AY, EGO_STATE_DIM, EGO_WHEEL_BASE_M, STEER, VX, VY, X, Y, YAW, YAW_ACC, YAW_RATE

__all__ = ["LaneBatch", "SceneBatch", "pack_scenarios", "ego_states_from_log"]


@dataclass(frozen=True)
class LaneBatch:
    """Lane centrelines of B maps, padded.

    Attributes:
        xy: ``[B, L, K, 2]`` centreline points, m, local frame (driving direction).
        valid: ``[B, L, K]`` bool, a prefix of each row.
        present: ``[B, L]`` bool, a real lane (not padding) with at least 2 points.
        center: ``[B, L, 2]`` m, centre of each lane's bounding box; ``radius [B, L]`` m bounds every point.
        on_route: ``[B, L]`` bool, lane in ``Scenario.route.lane_indices``.
        speed_limit: ``[B, L]`` m/s, NaN where unknown.
        next_lane: ``[B, L]`` int64, the successor whose start heading best continues the lane, -1 if none.
        signal_col: ``[B, L]`` int64, column of the lane in the traffic-light status (-1: not signalised).
    """

    xy: torch.Tensor  # [B, L, K, 2]
    valid: torch.Tensor  # [B, L, K]
    present: torch.Tensor  # [B, L]
    center: torch.Tensor  # [B, L, 2]
    radius: torch.Tensor  # [B, L]
    on_route: torch.Tensor  # [B, L]
    speed_limit: torch.Tensor  # [B, L]
    next_lane: torch.Tensor  # [B, L]
    signal_col: torch.Tensor  # [B, L]


@dataclass(frozen=True)
class SceneBatch:
    """B scenarios as padded tensors; window index ``w`` <-> log step ``t0_b - hist + w``.

    Attributes:
        scenarios: the packed scenarios (kept for the output assembly).
        dt: step, s.
        hist: number of window steps before t0.
        t0: ``[B]`` int64 index of "now" in each scenario.
        num_log_steps: ``[B]`` int64, T_b.
        log_xy: ``[W, B, N, 2]`` box centres, m; ``log_yaw [W, B, N]`` rad; ``log_vel [W, B, N, 2]`` m/s;
            ``log_valid [W, B, N]`` bool.
        future_xy / future_yaw / future_valid: ``[B, N, F, ...]`` the whole logged future from t0 (F =
            max_b(T_b - t0_b)), used to build reference paths.
        size_lwh: ``[B, N, 3]`` m; agent_type ``[B, N]`` int64; present ``[B, N]`` bool (a real agent).
        position_std: ``[B, N]`` m, max over x and y of the standard deviation of the logged box centre over
            the whole log (observed steps); "dynamic" agents exceed a threshold (spec §3.2).
        ego_state: ``[B, D]`` rear-axle state at t0 estimated from the log.
        ego_log_states: per scenario, ``[T_b, D]`` float64 numpy rear-axle states over the whole log
            (:func:`ego_states_from_log`).
        lanes: :class:`LaneBatch`.
        signal_status: ``[W, B, M]`` int64 :class:`TrafficLightStatus` of each signalised lane per window step
            (held at the last logged value past the log end; UNKNOWN for padding).
        signal_lane: ``[B, M]`` int64 lane index of each status column, -1 for padding.
    """

    scenarios: tuple[Scenario, ...]
    dt: float
    hist: int
    t0: torch.Tensor
    num_log_steps: torch.Tensor
    log_xy: torch.Tensor
    log_yaw: torch.Tensor
    log_vel: torch.Tensor
    log_valid: torch.Tensor
    future_xy: torch.Tensor
    future_yaw: torch.Tensor
    future_valid: torch.Tensor
    size_lwh: torch.Tensor
    agent_type: torch.Tensor
    present: torch.Tensor
    position_std: torch.Tensor
    ego_state: torch.Tensor
    ego_log_states: tuple[np.ndarray, ...]
    lanes: LaneBatch
    signal_status: torch.Tensor
    signal_lane: torch.Tensor

    @property
    def batch_size(self) -> int:
        return len(self.scenarios)

    @property
    def num_agents(self) -> int:
        return int(self.size_lwh.shape[1])

    @property
    def scenario_ids(self) -> tuple[str, ...]:
        return tuple(s.scenario_id for s in self.scenarios)


def _fill_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid steps (axis 0) by the nearest earlier valid value, or the first valid one before it."""
    t = np.arange(len(valid))
    last = np.maximum.accumulate(np.where(valid, t, -1))
    first = int(np.argmax(valid)) if valid.any() else 0
    return values[np.where(last >= 0, last, first)]


def ego_states_from_log(scenario: Scenario) -> np.ndarray:
    """``[T, D]`` float64 rear-axle ego states estimated from the logged ego box (agent 0).

    Rear axle = centre - r2c (cos yaw, sin yaw); body velocities from the logged velocity (the rear-axle lateral
    velocity removes yaw_rate * r2c); yaw rate, accelerations (body frame) and yaw acceleration by central finite
    differences (one-sided at the ends); steering angle from the yaw rate, atan(wheel_base * yaw_rate / vx),
    where vx > 1 m/s (else 0), clipped to +-pi/3. Unobserved steps take the nearest observed values.
    """
    a = scenario.agents
    valid = a.valid[:, 0]
    c = _fill_invalid(a.xy[:, 0].astype(np.float64), valid)  # [T, 2]
    yaw = np.unwrap(_fill_invalid(a.yaw[:, 0].astype(np.float64), valid))
    vel = _fill_invalid(a.vel_xy[:, 0].astype(np.float64), valid)
    dt = float(scenario.dt)
    r2c = float(scenario.ego_rear_axle_to_center_m)
    cos, sin = np.cos(yaw), np.sin(yaw)
    t = len(yaw)
    grad = (lambda v: np.gradient(v, dt, axis=0)) if t > 1 else (lambda v: np.zeros_like(v))
    yaw_rate = grad(yaw)
    acc = grad(vel)
    vx = cos * vel[:, 0] + sin * vel[:, 1]
    vy = -sin * vel[:, 0] + cos * vel[:, 1] - yaw_rate * r2c
    out = np.zeros((t, EGO_STATE_DIM), np.float64)
    out[:, X] = c[:, 0] - r2c * cos
    out[:, Y] = c[:, 1] - r2c * sin
    out[:, YAW] = (yaw + math.pi) % (2 * math.pi) - math.pi
    out[:, VX] = vx
    out[:, VY] = vy
    out[:, AX] = cos * acc[:, 0] + sin * acc[:, 1]
    out[:, AY] = -sin * acc[:, 0] + cos * acc[:, 1]
    moving = vx > 1.0
    steer = np.arctan(EGO_WHEEL_BASE_M * yaw_rate / np.where(moving, vx, 1.0))
    out[:, STEER] = np.where(moving, np.clip(steer, -math.pi / 3, math.pi / 3), 0.0)
    out[:, YAW_RATE] = yaw_rate
    out[:, YAW_ACC] = grad(yaw_rate)
    return out


def _next_lanes(m: MapData) -> np.ndarray:
    """``[L]`` int64: per lane the successor whose first segment heading is closest to the lane's last one."""
    n = m.num_lanes
    out = np.full(n, -1, np.int64)
    e = m.lane_successors
    if not len(e) or not n:
        return out
    xy, lens = m.lanes.xy.astype(np.float64), m.lanes.lengths
    last = np.maximum(lens - 1, 1)
    end_dir = xy[np.arange(n), last] - xy[np.arange(n), last - 1]
    start_dir = xy[:, 1] - xy[:, 0]
    h_end = np.arctan2(end_dir[:, 1], end_dir[:, 0])
    h_start = np.arctan2(start_dir[:, 1], start_dir[:, 0])
    turn = np.abs((h_start[e[:, 1]] - h_end[e[:, 0]] + np.pi) % (2 * np.pi) - np.pi)
    order = np.lexsort((-turn, e[:, 0]))  # grouped by from-lane, the straightest edge last in its group
    src, dst = e[order, 0], e[order, 1]
    last = np.append(src[1:] != src[:-1], True)
    out[src[last]] = dst[last]
    return out


def pack_scenarios(
    scenarios: Sequence[Scenario], num_steps: int, hist: int, dtype: torch.dtype = torch.float64
) -> SceneBatch:
    """Pack scenarios for an episode of ``num_steps`` steps after t0, keeping ``hist`` steps of history.

    Raises:
        ScenarioValidationError: a valid non-ego agent with zero length or width (names scenario and track).
    """
    b = len(scenarios)
    n = max(s.agents.num_agents for s in scenarios)
    w = hist + num_steps + 1
    f = max(s.num_steps - s.t0 for s in scenarios)
    lanes_l = max(max(s.map.num_lanes for s in scenarios), 1)
    lanes_k = max(max(s.map.lanes.xy.shape[1] for s in scenarios), 2)
    m = max(max(len(s.map.signalized_lanes) for s in scenarios), 1)

    log_xy = np.zeros((w, b, n, 2), np.float64)
    log_yaw = np.zeros((w, b, n), np.float64)
    log_vel = np.zeros((w, b, n, 2), np.float64)
    log_valid = np.zeros((w, b, n), bool)
    fut_xy = np.zeros((b, n, f, 2), np.float64)
    fut_yaw = np.zeros((b, n, f), np.float64)
    fut_valid = np.zeros((b, n, f), bool)
    size = np.zeros((b, n, 3), np.float64)
    atype = np.full((b, n), int(AgentType.GENERIC_OBJECT), np.int64)
    present = np.zeros((b, n), bool)
    pos_std = np.zeros((b, n), np.float64)
    ego = np.zeros((b, EGO_STATE_DIM), np.float64)
    ego_log: list[np.ndarray] = []
    map_cache: dict[int, tuple[np.ndarray, ...]] = {}
    lane_xy = np.zeros((b, lanes_l, lanes_k, 2), np.float64)
    lane_valid = np.zeros((b, lanes_l, lanes_k), bool)
    on_route = np.zeros((b, lanes_l), bool)
    speed = np.full((b, lanes_l), np.nan, np.float64)
    next_lane = np.full((b, lanes_l), -1, np.int64)
    signal_col = np.full((b, lanes_l), -1, np.int64)
    sig_status = np.full((w, b, m), int(TrafficLightStatus.UNKNOWN), np.int64)
    sig_lane = np.full((b, m), -1, np.int64)

    for i, s in enumerate(scenarios):  # gathering B Python objects into arrays; the math below is batched
        a = s.agents
        na, t = a.num_agents, s.num_steps
        _check_sizes(s)
        steps = s.t0 - hist + np.arange(w)
        ok = (steps >= 0) & (steps < t)
        src = steps[ok]
        log_xy[ok, i, :na] = a.xy[src]
        log_yaw[ok, i, :na] = a.yaw[src]
        log_vel[ok, i, :na] = a.vel_xy[src]
        log_valid[ok, i, :na] = a.valid[src]
        nf = t - s.t0
        fut_xy[i, :na, :nf] = a.xy[s.t0 :].transpose(1, 0, 2)
        fut_yaw[i, :na, :nf] = a.yaw[s.t0 :].T
        fut_valid[i, :na, :nf] = a.valid[s.t0 :].T
        size[i, :na] = a.size_lwh
        atype[i, :na] = a.agent_type
        present[i, :na] = True
        cnt = np.maximum(a.valid.sum(0), 1)[:, None]  # [N, 1]
        mean = np.where(a.valid[..., None], a.xy, 0.0).sum(0) / cnt
        var = np.where(a.valid[..., None], (a.xy - mean) ** 2, 0.0).sum(0) / cnt
        pos_std[i, :na] = np.sqrt(var).max(-1)
        ego_log.append(ego_states_from_log(s))
        ego[i] = ego_log[-1][s.t0]
        mp = s.map
        nl, kl = mp.num_lanes, mp.lanes.xy.shape[1]
        if id(mp) not in map_cache:  # scenarios of one scene (variants) share their map object
            map_cache[id(mp)] = (mp.lanes.xy, mp.lanes.valid, mp.lane_speed_limit_mps, _next_lanes(mp))
        lane_xy[i, :nl, :kl], lane_valid[i, :nl, :kl], speed[i, :nl], next_lane[i, :nl] = map_cache[id(mp)]
        on_route[i, s.route.lane_indices] = True
        ms = len(mp.signalized_lanes)
        signal_col[i, mp.signalized_lanes] = np.arange(ms)
        sig_lane[i, :ms] = mp.signalized_lanes
        assert s.traffic_lights is not None
        if ms:
            sig_status[:, i, :ms] = s.traffic_lights.status[np.clip(steps, 0, t - 1)]

    lane_valid[..., 0] &= lane_valid[..., 1]  # a lane needs two points
    present_lane = lane_valid[..., 0]
    big = 1e9
    lo = np.where(lane_valid[..., None], lane_xy, big).min(axis=2)
    hi = np.where(lane_valid[..., None], lane_xy, -big).max(axis=2)
    center = np.where(present_lane[..., None], (lo + hi) / 2, 0.0)
    radius = np.where(present_lane, np.linalg.norm(hi - lo, axis=-1) / 2, 0.0)

    def tt(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(dtype) if x.dtype == np.float64 else torch.from_numpy(x)

    lanes = LaneBatch(
        xy=tt(lane_xy), valid=tt(lane_valid), present=tt(present_lane), center=tt(center), radius=tt(radius),
        on_route=tt(on_route), speed_limit=tt(speed), next_lane=tt(next_lane), signal_col=tt(signal_col),
    )
    return SceneBatch(
        scenarios=tuple(scenarios), dt=float(scenarios[0].dt), hist=hist,
        t0=torch.tensor([s.t0 for s in scenarios], dtype=torch.int64),
        num_log_steps=torch.tensor([s.num_steps for s in scenarios], dtype=torch.int64),
        log_xy=tt(log_xy), log_yaw=tt(log_yaw), log_vel=tt(log_vel), log_valid=tt(log_valid),
        future_xy=tt(fut_xy), future_yaw=tt(fut_yaw), future_valid=tt(fut_valid),
        size_lwh=tt(size), agent_type=tt(atype), present=tt(present), position_std=tt(pos_std),
        ego_state=torch.from_numpy(ego),
        ego_log_states=tuple(ego_log),
        lanes=lanes, signal_status=tt(sig_status), signal_lane=tt(sig_lane),
    )


def _check_sizes(s: Scenario) -> None:
    a = s.agents
    seen = a.valid.any(axis=0)
    seen[0] = False  # the ego footprint comes from the vehicle constants
    bad = seen & ((a.size_lwh[:, 0] <= 0) | (a.size_lwh[:, 1] <= 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ScenarioValidationError(
            f"Scenario {s.scenario_id!r}: agents.size_lwh[{i}] (track {a.track_ids[i]!r}): expected length and "
            f"width > 0 m for an observed agent, received {a.size_lwh[i].tolist()}; fix the sizes or mark the "
            f"agent invalid ({int(bad.sum())} such agents)"
        )
