"""Intelligent Driver Model (IDM) along paths, batched over scenarios and agents.

Two parametrisations:

* :class:`PDMIDMParams` / :func:`pdm_idm_accel` / :func:`pdm_idm_profile`: the longitudinal model of the
  PDM-Closed reference planner (spec/metrics.md §2.14), SI units, exponent 10, Euler steps of 0.1 s.
* :class:`ReactiveIDMParams` / :func:`reactive_idm_accel`: World Engine's reactive agents (spec §3.2, MetaDrive
  style). **[quirk]** speeds enter the formula in km/h while distances are metres, as in MetaDrive; the
  resulting acceleration is m/s^2.

:func:`find_leaders` finds, for every reactive agent, the nearest agent ahead on its reference path (the ego
included; lateral offset from the path within 2 m, heading difference at most 90 deg) and the nearest red
traffic-light stop line ahead; :func:`reactive_agent_step` advances the agents by one step along their paths.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .paths import AgentPaths, lookup_rows

__all__ = [
    "PDMIDMParams",
    "pdm_idm_accel",
    "pdm_idm_profile",
    "ReactiveIDMParams",
    "reactive_idm_accel",
    "Leaders",
    "find_leaders",
    "reactive_agent_step",
    "KMH_PER_MPS",
]

KMH_PER_MPS = 3.6


# -- §2.14: PDM-Closed proposals ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PDMIDMParams:
    """IDM of PDM-Closed proposals (spec §2.14)."""

    min_gap_m: float = 1.0
    """g0, minimum gap to the leader, m."""
    headway_s: float = 1.5
    """T, time headway, s."""
    accel_max_mps2: float = 1.5
    """a_max, m/s^2."""
    decel_max_mps2: float = 3.0
    """b_max (comfortable and hard limit), m/s^2."""
    exponent: float = 10.0
    """delta, the free-road exponent."""
    dt_s: float = 0.1
    """Euler step, s."""


def pdm_idm_accel(
    v: torch.Tensor, v_target: torch.Tensor, gap: torch.Tensor, v_leader: torch.Tensor,
    params: PDMIDMParams = PDMIDMParams(),
) -> torch.Tensor:
    """dv/dt (m/s^2) = a_max (1 - (v/v0)^delta - (s*/s)^2), clipped to [-b_max, a_max].

    Args (broadcastable, SI): speed ``v`` m/s, target speed ``v_target`` m/s (> 0), ``gap`` s = max(x_leader -
    x - leader rear length, g0) before clamping, m (+inf when there is no leader), leader speed ``v_leader`` m/s.
    """
    p = params
    s = gap.clamp(min=p.min_gap_m)
    dv = v - v_leader
    s_star = p.min_gap_m + v * p.headway_s + v * dv / (2.0 * math.sqrt(p.accel_max_mps2 * p.decel_max_mps2))
    interaction = torch.where(torch.isfinite(s), (s_star / s) ** 2, torch.zeros_like(s))
    free = (v / v_target.clamp(min=1e-6)) ** p.exponent
    return (p.accel_max_mps2 * (1.0 - free - interaction)).clamp(-p.decel_max_mps2, p.accel_max_mps2)


def pdm_idm_profile(
    progress0: torch.Tensor, v0: torch.Tensor, v_target: torch.Tensor, leader_progress: torch.Tensor,
    leader_v: torch.Tensor, leader_rear_m: torch.Tensor, num_steps: int = 40,
    params: PDMIDMParams = PDMIDMParams(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euler-integrate the §2.14 IDM along a path for ``num_steps`` steps of ``params.dt_s``.

    Args:
        progress0: ``[...]`` initial arc length, m; ``v0`` ``[...]`` initial speed, m/s; ``v_target`` ``[...]``.
        leader_progress: ``[..., num_steps]`` leader arc length at each step before the update, m (+inf = none).
        leader_v: ``[..., num_steps]`` leader speed, m/s; ``leader_rear_m`` ``[...]`` leader's centre-to-rear, m.
    Returns:
        ``(progress [..., num_steps + 1], speed [..., num_steps + 1])``; speed never drops below 0.
    """
    x, v = progress0, v0
    xs, vs = [x], [v]
    for k in range(num_steps):  # time steps
        gap = leader_progress[..., k] - x - leader_rear_m
        a = pdm_idm_accel(v, v_target, gap, leader_v[..., k], params)
        x = x + v * params.dt_s
        v = (v + a * params.dt_s).clamp(min=0.0)
        xs.append(x)
        vs.append(v)
    return torch.stack(xs, dim=-1), torch.stack(vs, dim=-1)


# -- §3.2: reactive agents -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReactiveIDMParams:
    """World Engine reactive-agent IDM (spec §3.2); speeds in km/h where marked."""

    target_speed_kmh: float = 35.0
    """v0, km/h."""
    accel_factor: float = 2.5
    """Acceleration scale and hard limit, m/s^2."""
    decel_factor: float = 2.5
    """Deceleration scale (the sqrt(a b) term uses accel_factor * decel_factor), m/s^2."""
    exponent: float = 4.0
    """Free-road exponent delta."""
    distance_wanted_m: float = 10.0
    """d0 of the desired gap d*, m (centre-to-centre)."""
    time_wanted_s: float = 1.5
    """Headway; multiplies the speed in km/h [quirk]."""
    default_distance_m: float = 15.0
    """d when there is no leader, m."""
    standstill_speed_kmh: float = 0.008
    """Below this speed and closer than ``standstill_distance_m`` the agent holds (a = 0)."""
    standstill_distance_m: float = 10.5
    """m."""
    lateral_window_m: float = 2.0
    """A leader's lateral offset from the follower's path must be within this, m."""
    max_heading_diff_rad: float = math.pi / 2
    """A leader's heading may differ from the path direction by at most this, rad."""
    max_range_m: float = 150.0
    """Leaders farther than this (centre distance) are not considered, m (workbench bound; the spec has none)."""


def reactive_idm_accel(
    v_mps: torch.Tensor, v_leader_mps: torch.Tensor, dist_m: torch.Tensor, has_leader: torch.Tensor,
    params: ReactiveIDMParams = ReactiveIDMParams(),
) -> torch.Tensor:
    """Acceleration (m/s^2) of reactive agents, spec §3.2, elementwise over broadcastable ``[...]`` inputs.

    Args:
        v_mps: follower speed, m/s. v_leader_mps: leader speed along the follower's direction, m/s.
        dist_m: centre-to-centre distance to the leader, m (ignored without a leader: d = 15 m).
        has_leader: bool.
    """
    p = params
    v = v_mps * KMH_PER_MPS
    v0 = p.target_speed_kmh
    a = p.accel_factor * (1.0 - (v / v0).clamp(max=1.0) ** p.exponent)
    d = torch.where(has_leader, dist_m, torch.full_like(dist_m, p.default_distance_m))
    dv = v - v_leader_mps * KMH_PER_MPS
    d_star = p.distance_wanted_m + (p.time_wanted_s * v + v * dv / (2.0 * math.sqrt(p.accel_factor * p.decel_factor))
                                    ).clamp(min=0.0)
    follow = a - p.accel_factor * (d_star / d.clamp(min=1e-3)) ** 2
    cruise = torch.where(v >= v0, a - p.accel_factor * (v - v0) / v0, a)
    a = torch.where(has_leader, follow, cruise).clamp(-p.accel_factor, p.accel_factor)
    hold = (v < p.standstill_speed_kmh) & (d < p.standstill_distance_m)
    return torch.where(hold, torch.zeros_like(a), a)


@dataclass(frozen=True)
class Leaders:
    """Leader of every agent (meaningful for reactive agents only).

    Attributes:
        has_leader: ``[B, N]`` bool.
        distance: ``[B, N]`` m, centre-to-centre (agents) or along the path (stop lines); +inf if none.
        speed: ``[B, N]`` m/s, the leader's velocity along the follower's path (0 for a stop line).
        index: ``[B, N]`` int64 leading agent, -1 for none or a stop line.
    """

    has_leader: torch.Tensor
    distance: torch.Tensor
    speed: torch.Tensor
    index: torch.Tensor


def find_leaders(
    paths: AgentPaths, s: torch.Tensor, xy: torch.Tensor, yaw: torch.Tensor, vel: torch.Tensor,
    valid: torch.Tensor, follower: torch.Tensor, half_length: torch.Tensor, red: torch.Tensor,
    params: ReactiveIDMParams = ReactiveIDMParams(),
) -> Leaders:
    """Leaders of the ``follower`` agents on their own paths (other agents and red-light stop lines).

    A candidate leader j of follower i is valid, lies ahead of i on i's path (positive longitudinal offset),
    within ``params.lateral_window_m`` of the path, within ``params.max_range_m`` (centre distance) and heads
    within ``params.max_heading_diff_rad`` of the path direction at its position. The nearest (centre
    distance) wins. Pairs are first filtered in i's body frame (ahead, in range), then the survivors are
    projected on i's path.

    Args:
        paths: reference paths ``[B, N, ...]``; ``s [B, N]`` each agent's arc length on its own path, m.
        xy: ``[B, N, 2]`` box centres of all agents (ego included), m; ``yaw [B, N]`` rad; ``vel [B, N, 2]`` m/s.
        valid: ``[B, N]`` bool, present at this step. follower: ``[B, N]`` bool, agents that need a leader.
        half_length: ``[B, N]`` half box length, m. red: ``[B, M]`` bool, signalised lane m shows red now.
    Returns:
        :class:`Leaders` (computed in float32).
    """
    bsz, n = s.shape
    f32 = torch.float32
    far = torch.full((), 1e7, dtype=f32)  # absent agents are moved out of range
    x = torch.where(valid, xy[..., 0].to(f32), far).reshape(-1)  # [B * N]
    y = torch.where(valid, xy[..., 1].to(f32), far).reshape(-1)
    cos, sin = torch.cos(yaw).to(f32).reshape(-1), torch.sin(yaw).to(f32).reshape(-1)
    fi = torch.nonzero(follower.reshape(-1)).squeeze(1)  # [F] flat follower rows b * N + i
    fb = fi // n  # scenario of each follower
    xf, yf = x.index_select(0, fi).unsqueeze(1), y.index_select(0, fi).unsqueeze(1)
    cf, sf = cos.index_select(0, fi).unsqueeze(1), sin.index_select(0, fi).unsqueeze(1)
    dx = x.view(bsz, n).index_select(0, fb) - xf  # [F, N]: x_j - x_i
    dy = y.view(bsz, n).index_select(0, fb) - yf
    lon_body = dx * cf + dy * sf
    lat_body = dy * cf - dx * sf
    d2 = dx * dx + dy * dy
    # broad phase: ahead, in range, and within the lateral window widened by the path's bending: a path of
    # curvature <= k deviates from its tangent by at most k d^2 / 2 at chord distance d (equality on a circle);
    # (d + w)^2 / 2 <= d^2 + w^2 keeps the bound without a square root
    k_max = paths.max_curvature.to(f32).reshape(-1).index_select(0, fi).unsqueeze(1)
    bend = k_max * (d2 + params.lateral_window_m ** 2)
    near = (lon_body > 0) & (d2 <= params.max_range_m ** 2) & (lat_body.abs() <= params.lateral_window_m + 0.5 + bend)
    pf, j = torch.nonzero(near, as_tuple=True)  # survivors (self pairs have lon_body = 0)
    fbi, fbj = fi.index_select(0, pf), fb.index_select(0, pf) * n + j
    pair = pf * n + j
    lon_b = lon_body.reshape(-1).index_select(0, pair)
    q_xy, q_tan, _ = lookup_rows(paths, fbi, s.reshape(-1).to(f32).index_select(0, fbi) + lon_b)
    ex = x.index_select(0, fbj) - q_xy[:, 0]
    ey = y.index_select(0, fbj) - q_xy[:, 1]
    tx, ty = q_tan[:, 0], q_tan[:, 1]
    lat = tx * ey - ty * ex
    lon = lon_b + tx * ex + ty * ey
    head_ok = tx * cos.index_select(0, fbj) + ty * sin.index_select(0, fbj) \
        >= math.cos(params.max_heading_diff_rad) - 1e-6
    ok = (lon > 0) & (lat.abs() <= params.lateral_window_m) & head_ok
    dist = torch.where(ok, d2.reshape(-1).index_select(0, pair).sqrt(), torch.full_like(lon, math.inf))
    d_agent = torch.full((bsz * n,), math.inf, dtype=f32).scatter_reduce_(0, fbi, dist, "amin")
    is_min = ok & (dist <= d_agent.index_select(0, fbi))
    slot = torch.where(is_min, fbi, bsz * n)  # non-minimal pairs write to a spare slot; ties: any nearest
    lead = torch.zeros(bsz * n + 1, dtype=torch.int64).scatter_(0, slot, fbj % n)[:-1]
    d_agent, lead = d_agent.view(bsz, n), lead.view(bsz, n)
    cos, sin = cos.view(bsz, n), sin.view(bsz, n)
    lead_vel = torch.gather(vel.to(f32), 1, lead.unsqueeze(-1).expand(-1, -1, 2))
    v_lead = lead_vel[..., 0] * cos + lead_vel[..., 1] * sin
    # red-light stop lines ahead of the front bumper
    if paths.stop_s.shape[-1]:
        gap = paths.stop_s.to(f32) - s.to(f32).unsqueeze(-1)  # [B, N, M]
        stop_ok = red.unsqueeze(1) & (gap >= half_length.to(f32).unsqueeze(-1))
        d_stop = torch.where(stop_ok, gap, torch.full_like(gap, math.inf)).amin(dim=-1)
    else:
        d_stop = torch.full_like(d_agent, math.inf)
    use_stop = d_stop < d_agent
    distance = torch.minimum(d_agent, d_stop)
    has = torch.isfinite(distance) & follower
    speed = torch.where(has & ~use_stop, v_lead, torch.zeros_like(v_lead))
    index = torch.where(has & ~use_stop, lead, torch.full_like(lead, -1))
    return Leaders(has_leader=has, distance=distance, speed=speed, index=index)


def reactive_agent_step(
    s: torch.Tensor, v: torch.Tensor, accel: torch.Tensor, dt: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advance agents along their paths with constant acceleration over ``dt`` (speed floored at 0).

    Args: ``s, v, accel [B, N]`` (m, m/s, m/s^2). Positions follow from :func:`~worldengine_lab.sim.paths.lookup`.
    Returns: ``(s [B, N] m, v [B, N] m/s)`` after the step.
    """
    v_new = (v + accel * dt).clamp(min=0.0)
    # braking to standstill inside the step: move only until the speed reaches 0
    t_move = torch.where(v_new > 0, torch.full_like(v, dt), v / (-accel).clamp(min=1e-9))
    s_new = s + v * t_move + 0.5 * accel * t_move * t_move
    return torch.maximum(s_new, s), v_new
