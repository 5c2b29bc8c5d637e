"""Rare-event edits around the ego: CutIn, HardBrake, Stall, PedestrianDartOut (RedLightRun: :mod:`.ops_crossing`).

They follow the embedded world's long-tail events (``logs/synthetic/events.py``) as one-shot edits of a logged
scene. Lanes are taken from the ego's **logged** path (its box centre over the whole window, extended straight at
both ends): "the ego's lane" is that path, ``s`` is the arc position along it (m, 0 at the ego's position at
now) and ``d`` the lateral offset from it (m, positive left). Gaps and arrival times refer to the logged ego;
in closed loop the planner drives the ego, and these edits set up the situation it has to handle.

Units and frames: see :mod:`.ops`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from ..datatypes import EGO_INDEX, AgentType, Scenario
from ._edit import Tracks, edit_error, ego_path, find_agent, onset_index, own_path, with_tracks
from ._paths import SMOOTHSTEP5_PEAK_ACCEL, Path, smoothstep5
from .limits import active_config
from .ops import AUTO, Op, register_op
from .ops_agents import DEFAULT_SIZES_LWH

__all__ = ["CutIn", "HardBrake", "Stall", "PedestrianDartOut", "LEAD_RANGE_M", "NEIGHBOUR_LANE_M"]

LEAD_RANGE_M = 80.0
"""An automatic lead is at most this far ahead of the ego (bumper to bumper), m."""
NEIGHBOUR_LANE_M = (1.5, 6.0)
"""A cut-in car starts this far (|d|, m) beside the ego's path: a neighbouring lane."""
_SAME_LANE_M = 1.75
_ALIGNED_COS = 0.8
_DART_OUT_AUTO_D_M = -3.25  # right kerb: half a 3.5 m lane + 1.5 m



def _frenet(s: Scenario, e: Path, k: int) -> dict[str, np.ndarray]:
    """Every agent at step ``k`` in the ego path's frame: ``s``, ``d`` (m), speed along the path (m/s), heading
    alignment (cos), plus the ego's own arc position ``s_ego``."""
    a = s.agents
    pos = a.xy[k].astype(np.float64)
    sa, da = e.project(pos)
    tan = e.tangent(sa)
    heading = np.stack([np.cos(a.yaw[k]), np.sin(a.yaw[k])], -1)
    return {"s": sa, "d": da, "v": (a.vel_xy[k] * tan).sum(-1), "cos": (heading * tan).sum(-1),
            "s_ego": sa[EGO_INDEX], "length": a.size_lwh[:, 0].astype(np.float64)}


def _lead(s: Scenario, e: Path, k: int, op: Op, param: str) -> int:
    """Index of the ego's lead at step ``k``: the nearest vehicle or bicycle ahead on the ego's path."""
    f = _frenet(s, e, k)
    a = s.agents
    gap = f["s"] - f["s_ego"] - 0.5 * (f["length"] + f["length"][EGO_INDEX])
    kinds = np.isin(a.agent_type, [int(AgentType.VEHICLE), int(AgentType.BICYCLE)])
    ok = a.valid[k] & kinds & (np.abs(f["d"]) <= _SAME_LANE_M) & (f["cos"] > _ALIGNED_COS) & (gap > 0) \
        & (gap <= LEAD_RANGE_M)
    ok[EGO_INDEX] = False
    if not ok.any():
        raise edit_error(op, param, f"'auto' found no vehicle ahead of the ego on its path within {LEAD_RANGE_M:g} m "
                                    f"at step {k}", "name an agent, or insert a lead first with InsertAgent")
    return int(np.flatnonzero(ok)[np.argmin(gap[ok])])


def _brake_to_stop(s: Scenario, tr: Tracks, i: int, k_on: int, decel: float) -> None:
    """Agent ``i`` follows its own path as logged until step ``k_on``, then brakes at ``decel`` m/s^2 to a stop
    and stands for the rest of the window."""
    path, s_all, speed = own_path(tr, i, s.dt)
    t = np.arange(s.num_steps)
    v_on = max(float(speed[k_on]), 0.0)
    tau = np.minimum(np.maximum(t - k_on, 0) * s.dt, v_on / decel)
    s_new = np.where(t <= k_on, s_all, s_all[k_on] + v_on * tau - 0.5 * decel * tau ** 2)
    # an agent that appears after "now" is edited from its first valid step (before it, it stays unobserved)
    start = max(s.t0 + 1, int(np.flatnonzero(tr.valid[:, i])[0]))
    yaw_before = float(tr.yaw[s.t0 if start == s.t0 + 1 else start, i])
    tr.set_motion(i, start, path.point(s_new[start:]), s.dt, yaw_before)


def _check_decel(op: Op, s: Scenario, i: int, decel: float, param: str) -> None:
    cfg = active_config()
    lim = cfg.limits_for(int(s.agents.agent_type[i]))
    top = cfg.margin * lim.max_decel_mps2
    op.require(0 < decel <= top, param, f"{decel:g} m/s^2 is outside (0, {top:.2f}] for this agent type "
               f"({lim.max_decel_mps2:g} m/s^2 limit x margin {cfg.margin:g})", f"pass a value in (0, {top:.2f}]")


@register_op
@dataclass(frozen=True)
class HardBrake(Op):
    """The ego's lead (or a named agent) brakes hard from ``onset_s`` at ``decel_mps2`` to a standstill and stays
    stopped (the projection ramps the deceleration in and out within the jerk limit)."""

    name = "hard_brake"
    supports_auto = True
    blame = {"deceleration": ("decel_mps2", "a smaller decel_mps2"), "kinematics": ("decel_mps2",
                                                                                   "a smaller decel_mps2")}

    lead: str = AUTO
    """Track id of the braking agent, or ``"auto"``: the nearest vehicle/bicycle ahead on the ego's path at the
    onset (within :data:`LEAD_RANGE_M`)."""
    decel_mps2: float = 6.0
    """Braking deceleration, m/s^2 (> 0, at most the agent type's limit x margin)."""
    onset_s: float = 1.0
    """When the braking starts, s after now."""

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        s = scenario
        k_on = onset_index(s, self.onset_s, self)
        i = _lead(s, ego_path(s), k_on, self, "lead") if self.lead == AUTO else find_agent(s, self.lead, self, "lead")
        _check_decel(self, s, i, self.decel_mps2, "decel_mps2")
        tr = Tracks.of(s.agents)
        _brake_to_stop(s, tr, i, k_on, self.decel_mps2)
        return with_tracks(s, tr)


@register_op
@dataclass(frozen=True)
class Stall(Op):
    """An agent's engine dies at ``at_s``: it rolls to a stop at ``decel_mps2`` and stays there (a broken-down
    vehicle in its lane)."""

    name = "stall"
    supports_auto = True
    blame = {"deceleration": ("decel_mps2", "a smaller decel_mps2"), "kinematics": ("decel_mps2",
                                                                                   "a smaller decel_mps2")}

    agent: str = AUTO
    """Track id of the stalling agent, or ``"auto"``: the ego's lead at ``at_s`` (as in :class:`HardBrake`)."""
    at_s: float = 1.0
    """When it starts to roll out, s after now."""
    decel_mps2: float = 2.5
    """Roll-out deceleration, m/s^2 (> 0)."""

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        s = scenario
        k_on = onset_index(s, self.at_s, self, "at_s")
        i = _lead(s, ego_path(s), k_on, self, "agent") if self.agent == AUTO else find_agent(s, self.agent, self)
        _check_decel(self, s, i, self.decel_mps2, "decel_mps2")
        tr = Tracks.of(s.agents)
        _brake_to_stop(s, tr, i, k_on, self.decel_mps2)
        return with_tracks(s, tr)


@register_op
@dataclass(frozen=True)
class CutIn(Op):
    """A vehicle in a neighbouring lane changes into the ego's lane and ends ``gap_m`` ahead of the ego.

    From ``onset_s`` it moves over within ``duration_s`` (minimum-jerk lateral profile) while adjusting its speed
    at a constant acceleration so that when the move ends its rear bumper is ``gap_m`` ahead of the (logged) ego's
    front bumper; afterwards it drives on in the ego's lane at the speed it reached.
    """

    name = "cut_in"
    supports_auto = True
    checks_on_road = True
    blame = {"curvature": ("duration_s", "a longer duration_s"),
             "lateral_acceleration": ("duration_s", "a longer duration_s"),
             "deceleration": ("gap_m", "a gap_m closer to the car's current gap"),
             "off_road": ("agent", "a car whose move stays on the drivable area"),
             "kinematics": ("duration_s", "a longer duration_s")}

    agent: str = AUTO
    """Track id of the cutting-in vehicle, or ``"auto"``: among the vehicles in a neighbouring lane (|d| within
    :data:`NEIGHBOUR_LANE_M`, same direction) that can make the move within their limits, the one that needs
    the gentlest speed change."""
    gap_m: float = 6.0
    """Bumper gap to the ego when the move ends, m (>= 0)."""
    duration_s: float = 2.0
    """Duration of the lane change, s (> 0)."""
    onset_s: float = 0.5
    """When the lane change starts, s after now."""

    def check(self) -> None:
        self.require(self.gap_m >= 0, "gap_m", f"expected a bumper gap >= 0 m, received {self.gap_m}",
                     "pass gap_m >= 0")
        self.require(self.duration_s > 0, "duration_s", f"expected > 0 s, received {self.duration_s}",
                     "pass duration_s > 0")

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        s = scenario
        cfg = active_config()
        lim = cfg.limits_for(int(AgentType.VEHICLE))
        k_on = onset_index(s, self.onset_s, self)
        n = int(round(self.duration_s / s.dt))
        end_s = (s.num_steps - 1 - s.t0) * s.dt - self.onset_s
        self.require(n >= 1 and k_on + n <= s.num_steps - 1, "duration_s", f"the lane change must end inside the "
                     f"window ({end_s:.1f} s left after onset_s)", f"pass duration_s <= {end_s:.1f} or an earlier "
                     "onset_s")
        dur = n * s.dt
        e = ego_path(s)
        f = _frenet(s, e, k_on)
        s_ego_end = float(e.project(s.agents.xy[k_on + n, EGO_INDEX].astype(np.float64))[0])
        target = s_ego_end + 0.5 * f["length"][EGO_INDEX] + self.gap_m + 0.5 * f["length"]  # [N] rear at gap
        acc = 2.0 * (target - f["s"] - f["v"] * dur) / dur ** 2
        v_end = f["v"] + acc * dur
        a_max, b_max = cfg.margin * lim.max_accel_mps2, cfg.margin * lim.max_decel_mps2
        side_ok = (np.abs(f["d"]) >= NEIGHBOUR_LANE_M[0]) & (np.abs(f["d"]) <= NEIGHBOUR_LANE_M[1])
        base = s.agents.valid[k_on] & (s.agents.agent_type == int(AgentType.VEHICLE)) & (f["cos"] > _ALIGNED_COS)
        lon_ok = (acc <= a_max) & (-acc <= b_max) & (v_end >= 0) & (v_end <= lim.max_speed_mps)
        lat_need = SMOOTHSTEP5_PEAK_ACCEL * np.abs(f["d"]) / dur ** 2  # [N] peak lateral acceleration, m/s^2
        v_slow = np.maximum(np.minimum(f["v"], v_end), 0.1)
        lat_ok = (lat_need <= cfg.margin * lim.max_lat_accel_mps2) & \
            (lat_need / v_slow ** 2 <= cfg.margin * lim.max_curvature_1pm)
        if self.agent == AUTO:
            ok = base & side_ok & lon_ok & lat_ok
            ok[EGO_INDEX] = False
            if not ok.any():
                lo_m, hi_m = NEIGHBOUR_LANE_M
                raise edit_error(self, "agent", f"'auto' found no vehicle in a neighbouring lane ({lo_m:g}-{hi_m:g} m "
                                 "beside the ego's path, same direction) at the onset that can reach a "
                                 f"{self.gap_m:g} m gap in {dur:g} s within its limits", "name an agent, change "
                                 "gap_m, duration_s or onset_s, or insert a car with InsertAgent first")
            i = int(np.flatnonzero(ok)[np.argmin(np.abs(acc[ok]))])
        else:
            i = find_agent(s, self.agent, self, at=k_on)
            self.require(bool(side_ok[i]) and f["cos"][i] > _ALIGNED_COS, "agent", f"{self.agent!r} is "
                         f"{f['d'][i]:+.1f} m beside the ego's path (heading cos {f['cos'][i]:.2f}) at the onset; a "
                         f"cut-in needs a same-direction car {NEIGHBOUR_LANE_M[0]:g}-{NEIGHBOUR_LANE_M[1]:g} m to the "
                         "side", "pick a car in a neighbouring lane or use 'auto'")
        d0, v0, v1 = float(f["d"][i]), float(f["v"][i]), float(v_end[i])
        need = SMOOTHSTEP5_PEAK_ACCEL * abs(d0) / dur ** 2
        lat_max = cfg.margin * lim.max_lat_accel_mps2
        self.require(need <= lat_max, "duration_s", f"moving {abs(d0):.1f} m sideways in {dur:g} s needs "
                     f"{need:.1f} m/s^2 of lateral acceleration (limit {lat_max:.1f})",
                     f"pass duration_s >= {np.sqrt(SMOOTHSTEP5_PEAK_ACCEL * abs(d0) / lat_max):.2f}")
        v_slow = max(min(v0, v1), 0.1)
        kappa = need / v_slow ** 2
        k_max = cfg.margin * lim.max_curvature_1pm
        self.require(kappa <= k_max, "duration_s", f"at {v_slow:.1f} m/s the move needs a path curvature of "
                     f"{kappa:.2f} 1/m (limit {k_max:.2f})", f"pass duration_s >= "
                     f"{np.sqrt(SMOOTHSTEP5_PEAK_ACCEL * abs(d0) / (k_max * v_slow ** 2)):.2f} or pick a faster car")
        if not lon_ok[i]:
            lo = max(f["v"][i] * dur - 0.5 * b_max * dur ** 2, 0.5 * max(f["v"][i], 0.0) * dur)
            hi = f["v"][i] * dur + 0.5 * a_max * dur ** 2
            base_gap = target[i] - self.gap_m - f["s"][i]
            raise edit_error(self, "gap_m", f"reaching a {self.gap_m:g} m gap in {dur:g} s needs a longitudinal "
                             f"acceleration of {acc[i]:+.1f} m/s^2 (limits +{a_max:.1f} / -{b_max:.1f})",
                             f"pass gap_m in [{max(lo - base_gap, 0.0):.1f}, {hi - base_gap:.1f}] or change "
                             "duration_s")
        tau = (np.arange(k_on + 1, s.num_steps) - k_on) * s.dt
        tc = np.minimum(tau, dur)
        arc = f["s"][i] + v0 * tc + 0.5 * acc[i] * tc ** 2 + v1 * np.maximum(tau - dur, 0.0)
        lat = d0 * (1.0 - smoothstep5(tau / dur))
        tr = Tracks.of(s.agents)
        # steps between now and the onset keep the car's current motion (extrapolated if its track ends)
        path, s_own, _ = own_path(tr, i, s.dt)
        tr.set_motion(i, s.t0 + 1, path.point(s_own[s.t0 + 1:]), s.dt, float(tr.yaw[s.t0, i]))
        tr.set_motion(i, k_on + 1, e.to_xy(arc, lat), s.dt, float(tr.yaw[k_on, i]))
        return with_tracks(s, tr)


@register_op
@dataclass(frozen=True)
class PedestrianDartOut(Op):
    """A pedestrian standing beside the ego's path walks across it from ``onset_s``.

    It stands at ``spawn`` from the start of the window, facing the path; from the onset it walks straight
    across (perpendicular to the path) at up to ``speed_mps`` for ``walk_m`` metres (speeding up and slowing
    down briskly), then stands.
    """

    name = "pedestrian_dart_out"
    supports_auto = True
    blame = {"kinematics": ("speed_mps", "a lower speed_mps")}

    spawn: Union[tuple[float, float], str] = AUTO
    """``(s_m, d_m)``: arc position along the ego's logged path from its box centre at now (m, forward) and
    lateral offset from it (m, positive left); or ``"auto"``: on the right, 3.25 m from the path, where the
    logged ego's front bumper arrives just when the pedestrian reaches the path (a collision course)."""
    speed_mps: float = 2.0
    """Walking speed, m/s (> 0, at most the pedestrian limit)."""
    onset_s: float = 1.0
    """When it starts walking, s after now."""
    walk_m: Optional[float] = None
    """How far it walks, m (default: twice |d_m|, i.e. across to the mirror point)."""
    track_id: Optional[str] = None
    """Track id of the pedestrian (default ``"dart_out-<hash of this op>"``)."""

    def check(self) -> None:
        ok = self.spawn == AUTO or (isinstance(self.spawn, tuple) and len(self.spawn) == 2)
        self.require(ok, "spawn", f"expected (s_m, d_m) or 'auto', received {self.spawn!r}", "pass (s_m, d_m)")
        self.require(self.speed_mps > 0, "speed_mps", f"expected > 0, received {self.speed_mps}",
                     "pass a walking speed")
        self.require(self.walk_m is None or self.walk_m > 0, "walk_m", f"expected > 0, received {self.walk_m}",
                     "pass a positive distance or None")

    @staticmethod
    def _accel() -> float:
        """Speeding up and slowing down, m/s^2: 80 % of what the projection allows a pedestrian."""
        cfg = active_config()
        return 0.8 * cfg.margin * cfg.pedestrian.max_accel_mps2

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        s = scenario
        cfg = active_config()
        top = cfg.pedestrian.max_speed_mps
        self.require(self.speed_mps <= top, "speed_mps", f"{self.speed_mps:g} m/s is above the pedestrian limit "
                     f"{top:g} m/s", f"pass speed_mps <= {top:g}")
        k_on = onset_index(s, self.onset_s, self)
        e = ego_path(s)
        ego_len = float(s.agents.size_lwh[EGO_INDEX, 0])
        if self.spawn == AUTO:
            d0 = _DART_OUT_AUTO_D_M
            walk = self.walk_m if self.walk_m is not None else 2.0 * abs(d0)
            meet = self.onset_s + _walk_time(abs(d0), walk, self.speed_mps, self._accel())
            k_meet = s.t0 + int(round(meet / s.dt))
            self.require(k_meet <= s.num_steps - 1, "onset_s", f"the pedestrian would reach the ego's path "
                         f"{meet:.1f} s after now, past the end of the window", "pass an earlier onset_s or a "
                         "faster speed_mps")
            s0 = float(e.project(s.agents.xy[k_meet, EGO_INDEX].astype(np.float64))[0]) + 0.5 * ego_len
            self.require(s0 >= 0.5 * ego_len + 1.0, "spawn", "'auto': the logged ego hardly moves, so no crossing "
                         "point lies ahead of it", "pass spawn=(s_m, d_m)")
        else:
            s0, d0 = float(self.spawn[0]), float(self.spawn[1])
        self.require(abs(d0) > 0.1, "spawn", f"d_m = {d0:g} m puts the pedestrian on the ego's path",
                     "pass |d_m| > 0.1 (e.g. 3.25 for the kerb)")
        walk = self.walk_m if self.walk_m is not None else 2.0 * abs(d0)
        t = np.arange(s.num_steps)
        walked = _walked((t - k_on) * s.dt, walk, self.speed_mps, self._accel())
        d = d0 - np.sign(d0) * walked
        xy = e.to_xy(np.full(s.num_steps, s0), d)
        yaw = float(e.heading(np.array(s0))) - np.sign(d0) * np.pi / 2
        tr = Tracks.of(s.agents)
        code = int(AgentType.PEDESTRIAN)
        i = tr.add_agent(code, np.array(DEFAULT_SIZES_LWH[code]), self.track_id or f"dart_out-{self.hash8()}")
        self.require(self.track_id is None or self.track_id not in set(s.agents.track_ids.tolist()), "track_id",
                     f"{self.track_id!r} is already an agent", "pass another track_id")
        tr.set_motion(i, 0, xy, s.dt, yaw)
        return with_tracks(s, tr)


def _walk_profile(walk: float, v: float, a: float) -> tuple[float, float, float]:
    """Trapezoidal walk of ``walk`` metres from rest to rest, speeding up and slowing down at ``a`` m/s^2 with a
    top speed of ``v`` m/s: ``(top speed reached, ramp time s, total time s)``."""
    top = min(v, float(np.sqrt(a * walk)))
    ramp = top / a
    return top, ramp, 2.0 * ramp + (walk - top * ramp) / top


def _walked(tau: np.ndarray, walk: float, v: float, a: float) -> np.ndarray:
    """Distance (m) covered ``tau`` seconds after starting the walk of :func:`_walk_profile`."""
    top, ramp, total = _walk_profile(walk, v, a)
    t = np.clip(tau, 0.0, total)
    up = 0.5 * a * np.minimum(t, ramp) ** 2
    cruise = top * np.clip(t - ramp, 0.0, total - 2.0 * ramp)
    down_t = np.clip(t - (total - ramp), 0.0, ramp)
    return up + cruise + top * down_t - 0.5 * a * down_t ** 2


def _walk_time(dist: float, walk: float, v: float, a: float) -> float:
    """Seconds into the walk of :func:`_walk_profile` at which ``dist`` metres are covered."""
    top, ramp, total = _walk_profile(walk, v, a)
    ramp_m = 0.5 * top * ramp
    if dist <= ramp_m:
        return float(np.sqrt(2.0 * dist / a))
    if dist <= walk - ramp_m:
        return ramp + (dist - ramp_m) / top
    return total - float(np.sqrt(2.0 * max(walk - dist, 0.0) / a))
