"""Rare events with traffic from other directions: oncoming drift over the centre line, red-light runner,
unprotected left turn against a fast oncoming car - and the forced ego routes that lead to such junctions.

Each ``try_<event>(ctx, params, attempt)`` inspects the current step and either returns None or sets the hazard
up and returns its behaviour (see ``hazard_common.Behaviour``). Parameters and intent: ``events``.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .events import EventAttempt, OncomingDrift, RedLightRunner, UnprotectedLeftFastOncoming
from .hazard_common import Behaviour, dsmooth, next_slot_length, route_from, smooth, wake
from .hazard_controller import StepContext
from .lane_graph import CONFLICT_CROSS, LaneGraph
from .lane_relations import LaneRelations, lateral_between
from .road_network import TURN_LEFT, TURN_RIGHT, TURN_STRAIGHT
from .routes import random_route
from .signals import GREEN, RED
from .traffic_state import PROFILE_DS

__all__ = ["try_oncoming_drift", "try_red_light_runner", "try_unprotected_left", "forced_junction_route"]


# ------------------------------------------------------------------------------------------ oncoming drift
def _overlap_window(p: OncomingDrift, hold: float, threshold: float) -> tuple[float, float, float]:
    """(start, end, total duration) in s of the part of the drift where the lateral offset exceeds
    ``threshold`` m (then the drifting box overlaps a car centred in the other lane)."""
    t = np.arange(0.0, 2 * p.ramp_s + hold + 0.05, 0.02)
    x_in, x_out = np.clip(t / p.ramp_s, 0.0, 1.0), np.clip((t - p.ramp_s - hold) / p.ramp_s, 0.0, 1.0)
    lat = p.offset_m * (x_in * x_in * (3 - 2 * x_in) - x_out * x_out * (3 - 2 * x_out))  # smooth in - smooth out
    over = np.flatnonzero(lat > threshold)
    if not len(over):
        return np.inf, -np.inf, 2 * p.ramp_s + hold
    return float(t[over[0]]), float(t[over[-1]]), 2 * p.ramp_s + hold


def _drift_lat(p: OncomingDrift, hold: float, tau: float) -> tuple[float, float]:
    """Lateral offset (m) and its rate (m/s) ``tau`` s into the drift."""
    r = p.ramp_s
    if tau < r:
        return p.offset_m * smooth(tau / r), p.offset_m * dsmooth(tau / r) / r
    if tau < r + hold:
        return p.offset_m, 0.0
    x = (tau - r - hold) / r
    return p.offset_m * (1.0 - smooth(x)), -p.offset_m * dsmooth(x) / r


def _meet_when_braking(gap: float, v_e: float, v_o: float, b: float = 6.0, react: float = 0.2) -> float:
    """Time (s) until the fronts of the ego (braking at ``b`` after ``react`` s) and an oncoming car at
    constant ``v_o`` meet, starting ``gap`` m apart."""
    t = np.arange(0.0, 12.0, 0.02)
    tb = np.clip(t - react, 0.0, v_e / b)
    x_e = v_e * np.minimum(t, react) + v_e * tb - 0.5 * b * tb * tb
    hit = np.flatnonzero(gap - v_o * t - x_e <= 0.0)
    return float(t[hit[0]]) if len(hit) else np.inf


class _DriftBehaviour(Behaviour):
    tag = "rare_oncoming_drift"

    def __init__(self, p: OncomingDrift, a: EventAttempt, j: int, e_l: int, e_o: int, t0: float) -> None:
        super().__init__(p, a)
        self.j, self.e_l, self.e_o, self.t0 = j, e_l, e_o, t0
        self.sep, self.hold = 0.0, p.hold_s

    def update(self, ctx: StepContext) -> bool:
        st, obs, g, p, j = ctx.st, ctx.obs, ctx.g, self.params, self.j
        ratio = g.length[self.e_o] / g.length[self.e_l]
        on_lanes = obs["elem"][j] == self.e_o and obs["elem"][0] == self.e_l
        u_front_l = g.length[self.e_l] - (obs["u"][j] + st.length[j] / 2.0) / ratio
        if not self.began:
            if not on_lanes or ctx.t_s > self.attempt.latest_s or ctx.t_s - self.t0 > 15.0:
                return False
            v_e, v_o = float(st.v[0]), float(st.v[j])
            gap = float(u_front_l - ctx.ego_front_u())
            threshold = self._threshold(ctx)
            _, end, _ = _overlap_window(p, p.hold_s, threshold)
            if gap > (v_e + v_o) * (end - 0.5):
                return True
            hold = self._avoidable_hold(gap, v_e, v_o, threshold)
            # nobody else in the ego's lane between the ego and the drifting car's rear
            u_rear_l = u_front_l + st.length[j] + 5.0
            others = st.active & (obs["elem"] == self.e_l) & (obs["u"] - st.fleet.rear > ctx.ego_front_u() - 1.0) \
                & (obs["u"] - st.fleet.rear < u_rear_l)
            others[0] = False
            if hold is None or others.any() or not ctx.visible(j):
                return False  # not a fair hazard here: the car just drives by
            self.hold = hold
            self.sep = lateral_between(g, self.e_o, float(obs["u"][j]), self.e_l)[1]
            self.begin(ctx, ("vehicle", j), replace(p, hold_s=round(hold, 3), meet_s=round(gap / (v_e + v_o), 3)))
        tau = ctx.t_s - self.t_start
        lat, lat_v = _drift_lat(p, self.hold, tau)
        done = tau >= 2 * p.ramp_s + self.hold or not on_lanes
        st.lat[j], st.lat_v[j] = (0.0, 0.0) if done else (lat, lat_v)
        if done:
            return False
        u_c = u_front_l + st.length[j] / 2.0
        ctx.obstacles.append((self.e_l, float(u_c), self.sep - lat, st.length[j] / 2.0, st.width[j] / 2.0,
                              -float(st.v[j]), -lat_v))
        return True

    def _threshold(self, ctx: StepContext) -> float:
        """Drift beyond which the car overlaps the ego centred in its lane, m."""
        sep = abs(lateral_between(ctx.g, self.e_o, 0.5 * ctx.g.length[self.e_o], self.e_l)[1])
        return sep - ctx.st.width[self.j] / 2.0 - ctx.st.width[0] / 2.0

    def _avoidable_hold(self, gap: float, v_e: float, v_o: float, threshold: float) -> float | None:
        """Shortest hold >= the drawn one such that the unperturbed ego meets the car while it overlaps the
        ego's lane (a real hazard) and an ego braking at 6 m/s^2 after 0.2 s meets it >= 0.3 s after it is
        back (avoidable); None if no hold up to 2.5 s does."""
        meet = gap / max(v_e + v_o, 1e-6)
        meet_b = _meet_when_braking(gap, v_e, v_o)
        for hold in np.arange(self.params.hold_s, 2.51, 0.1):
            start, end, _ = _overlap_window(self.params, float(hold), threshold)
            if start + 0.2 <= meet <= end - 0.2 and meet_b >= end + 0.3:
                return float(hold)
        return None


def try_oncoming_drift(ctx: StepContext, p: OncomingDrift, a: EventAttempt):
    st, obs, g, rel = ctx.st, ctx.obs, ctx.g, ctx.rel
    if not a.start_s - 1.0 <= ctx.t_s < a.end_s - 1.0 or not ctx.ctl.slots_left():
        return None
    e_l = int(obs["elem"][0])
    e_o = int(rel.opposite[e_l])
    v_e = float(st.v[0])
    if e_o < 0 or v_e < 6.0:
        return None
    u_ef = ctx.ego_front_u()
    room = g.length[e_l] - u_ef
    length = next_slot_length(ctx)
    dist = min(95.0, room - length - 2.0)
    if room < 70.0 or dist < 60.0 or obs["lead_gap"][0] < 35.0:
        return None
    ratio = g.length[e_o] / g.length[e_l]
    u_c = (g.length[e_l] - (u_ef + dist)) * ratio - length / 2.0
    if u_c - length / 2.0 < 1.0 or not ctx.clear(e_o, u_c - length / 2.0 - 15.0, u_c + length / 2.0 + 10.0):
        return None
    v_o = 0.95 * float(g.speed_limit[e_o])
    j = wake(ctx, route_from(ctx, [e_o], u_c), u_c, v_o)
    return _DriftBehaviour(p, a, j, e_l, e_o, ctx.t_s)



# ------------------------------------------------------------------------------------------ junction hazards
def _crossing_straights(g: LaneGraph, c: int, priority: bool | None) -> np.ndarray:
    """Signalised straight connectors whose path crosses connector ``c`` (``priority``: only those with right
    of way over ``c``)."""
    row = g.conflict[c]
    cand = np.flatnonzero(row >= 0)
    pc = row[cand]
    ok = (g.conflict_kind[pc] == CONFLICT_CROSS) & (g.turn[cand] == TURN_STRAIGHT) & (g.signal[cand] >= 0)
    if priority:
        ok &= g.other_has_priority[pc]
    return cand[ok]


def _cross_traffic(g: LaneGraph, c: int, far_turn: int) -> np.ndarray:
    """Signalised connectors of a perpendicular approach going straight or turning across ``c``'s path."""
    row = g.conflict[c]
    cand = np.flatnonzero(row >= 0)
    pc = row[cand]
    head = g.pts_yaw[g.elem_p0[cand]] - g.pts_yaw[g.elem_p0[c]]
    perpendicular = np.abs(np.cos(head)) < np.cos(np.pi / 4)
    ok = ((g.conflict_kind[pc] == CONFLICT_CROSS) & np.isin(g.turn[cand], (TURN_STRAIGHT, far_turn))
          & (g.signal[cand] >= 0) & perpendicular)
    return cand[ok]


class _CrossingCarBehaviour(Behaviour):
    """A car on a straight movement ``c`` through a junction; done once it has passed the junction."""

    def __init__(self, tag: str, p, a: EventAttempt, j: int, runner: bool, t0: float) -> None:
        super().__init__(p, a)
        self.tag, self.j, self.runner, self.t0 = tag, j, runner, t0

    def update(self, ctx: StepContext) -> bool:
        st, obs, j = ctx.st, ctx.obs, self.j
        if obs["k"][j] >= 2 or ctx.t_s - self.t0 > 20.0:
            st.ignore_signal[j] = False
            return False
        f = st.fleet
        k = int(np.clip((st.s[j] - f.route_start[j, 0]) / PROFILE_DS, 0, f.profile.shape[1] - 1))
        if min(obs["lead_gap"][j], obs["gap_yield"][j]) > 40.0 and st.v[j] <= f.profile[j, k] + 0.5:
            ctx.drive(j, 0.0)  # keeps its speed until something is close ahead (slows for bends only)
        if not self.began:
            to_line = obs["dc"][j] - st.fleet.front[j]
            soon = to_line <= 3.0 * max(float(st.v[j]), 1.0) if self.runner else True
            if soon and ctx.visible(j):
                self.begin(ctx, ("vehicle", j))
        return True


def try_red_light_runner(ctx: StepContext, p: RedLightRunner, a: EventAttempt):
    st, obs, g, rel, f = ctx.st, ctx.obs, ctx.g, ctx.rel, ctx.st.fleet
    if not a.start_s - 4.0 <= ctx.t_s < a.end_s - 1.5 or not ctx.ctl.slots_left():
        return None
    nc, dc, v_e = int(obs["nc"][0]), float(obs["dc"][0]), float(st.v[0])
    if nc < 0 or dc <= 0.0 or g.signal[nc] < 0 or obs["signal_state"][0] != GREEN:
        return None
    length = next_slot_length(ctx)
    far = TURN_RIGHT if ctx.ctl.net.drive_on_left else TURN_LEFT
    for c_r in _cross_traffic(g, nc, far).tolist():
        t_e = (dc + g.zone_lo[g.conflict[nc, c_r]] - f.front[0]) / max(v_e, 3.0)
        if not 4.0 <= t_e <= 7.0 or not ctx.green_for(int(g.signal[nc]), t_e + 3.0, GREEN):
            continue
        preds = rel.predecessors(c_r)
        if not len(preds) or not ctx.green_for(int(g.signal[c_r]), t_e + 3.0, RED):
            continue
        l_r = int(preds[0])
        to_zone = p.speed_mps * (t_e + p.arrival_offset_s) - g.zone_lo[g.conflict[c_r, nc]]
        u_c = g.length[l_r] - to_zone - length / 2.0
        entry = int(g.successors(c_r)[0])
        if u_c - length / 2.0 < 3.0 or not (ctx.clear(l_r, u_c - length / 2.0 - 15.0, g.length[l_r])
                                            and ctx.clear(c_r, 0.0, g.length[c_r]) and ctx.clear(entry, 0.0, 30.0)):
            continue
        j = wake(ctx, route_from(ctx, [l_r, c_r], u_c), u_c, p.speed_mps,
                  p.speed_mps / g.speed_limit[l_r] + 0.15)
        st.ignore_signal[j] = True
        return _CrossingCarBehaviour("rare_red_light_runner", p, a, j, True, ctx.t_s)
    return None


def try_unprotected_left(ctx: StepContext, p: UnprotectedLeftFastOncoming, a: EventAttempt):
    st, obs, g, rel, f = ctx.st, ctx.obs, ctx.g, ctx.rel, ctx.st.fleet
    c_l = int(obs["nc"][0])
    if c_l not in ctx.ctl.forced_lefts or not a.start_s - 2.0 <= ctx.t_s < a.latest_s - 3.0 \
            or not ctx.ctl.slots_left() or obs["signal_state"][0] != GREEN:
        return None
    v_e, dfront = float(st.v[0]), float(obs["dc"][0] - f.front[0])
    # near its turn, with green left to turn after the car has passed
    if dfront > 30.0 or not ctx.green_for(int(g.signal[c_l]), p.time_to_zone_s + 3.0, GREEN):
        return None
    length = next_slot_length(ctx)
    for c_s in _crossing_straights(g, c_l, True).tolist():
        if ctx.ctl.lights[ctx.t, g.signal[c_s]] != GREEN or not len(rel.predecessors(c_s)):
            continue
        zone_e = float(g.zone_lo[g.conflict[c_l, c_s]])
        if v_e * v_e / 6.0 >= dfront + zone_e - 1.0:
            return None  # the ego could not stop comfortably before the crossing zone any more
        if obs["lead_gap"][0] < dfront + zone_e and dfront > 12.0:
            return None  # the ego is not among the first in line
        l_s = int(rel.predecessors(c_s)[0])
        v_f = float(g.speed_limit[l_s] * p.speed_factor)
        zone = float(g.zone_lo[g.conflict[c_s, c_l]])
        t_zone = min(p.time_to_zone_s, (g.length[l_s] - 3.0 - length + zone) / v_f)
        if t_zone < 3.2:
            continue
        u_c = g.length[l_s] - (v_f * t_zone - zone) - length / 2.0
        if not ctx.clear(l_s, u_c - length / 2.0 - 10.0, u_c + length / 2.0 + 25.0) \
                or _caught_up(ctx, [l_s, c_s], u_c + length / 2.0, v_f, t_zone):
            continue
        j = wake(ctx, route_from(ctx, [l_s, c_s], u_c), u_c, v_f, p.speed_factor)
        p2 = replace(p, time_to_zone_s=round(t_zone, 3))
        return _CrossingCarBehaviour("rare_unprotected_left_fast_oncoming", p2, a, j, False, ctx.t_s)
    return None


def _caught_up(ctx: StepContext, path: list[int], front_u: float, speed: float, horizon_s: float) -> bool:
    """A car whose front is ``front_u`` m along ``path[0]``, driving at ``speed``, would come within 10 m of a
    slower vehicle ahead on ``path`` (elements, in order) within ``horizon_s`` (vectorised over vehicles)."""
    obs, st, f = ctx.obs, ctx.st, ctx.st.fleet
    offset = np.concatenate([[0.0], np.cumsum(ctx.g.length[path[:-1]])])
    on = np.zeros(obs["win"].shape, bool)
    pos = np.full(obs["win"].shape, np.inf)
    for e, off in zip(path, offset):
        m = (obs["win"] == e) & obs["valid_w"] & st.active[:, None]
        on |= m
        pos = np.where(m, np.minimum(pos, st.s[:, None] - obs["win_s"] + off), pos)
    rear = pos.min(axis=1) - f.rear  # rear bumper along the path, m
    ahead = on.any(axis=1) & (rear > front_u)
    return bool(np.any(ahead & (rear - front_u - 10.0 < (speed - st.v) * horizon_s)))


def forced_junction_route(g: LaneGraph, rel: LaneRelations, rng: np.random.Generator, horizon_m: float,
                          drive_on_left: bool, kind: str, distance_m: float
                          ) -> tuple[np.ndarray, float, tuple[int, ...]] | None:
    """An ego route through a signalised junction about ``distance_m`` after its start: ``kind`` "left" turns
    across oncoming traffic there, "cross" goes straight with perpendicular traffic crossing its path; at the
    next junction it makes the same kind of movement again where it can. Returns (elements ``[R]``, start arc
    length on the first one in m, the connectors of those movements), or None if the map has none."""
    far = TURN_RIGHT if drive_on_left else TURN_LEFT
    if kind == "left":
        conns = np.flatnonzero(g.is_connector & (g.turn == far) & (g.signal >= 0))
        cands = [int(c) for c in conns if len(_crossing_straights(g, int(c), True))]
    else:
        conns = np.flatnonzero(g.is_connector & (g.turn == TURN_STRAIGHT) & (g.signal >= 0))
        cands = [int(c) for c in conns if len(_cross_traffic(g, int(c), far))]
    cands = [c for c in cands if len(rel.predecessors(c))]
    if not cands:
        return None
    fitting = set(cands)
    c_j = cands[int(rng.integers(len(cands)))]
    chain = [int(rel.predecessors(c_j)[0])]
    total = float(g.length[chain[0]])
    while total < distance_m or g.is_connector[chain[0]]:
        preds = rel.predecessors(chain[0])
        if not len(preds):
            break
        straight = [int(x) for x in preds if not g.is_connector[x] or g.turn[x] == TURN_STRAIGHT]
        e = straight[0] if straight else int(preds[int(rng.integers(len(preds)))])
        chain.insert(0, e)
        total += float(g.length[e])
    if g.is_connector[chain[0]]:
        total -= float(g.length[chain.pop(0)])
    u0 = float(np.clip(total - distance_m, 0.0, g.length[chain[0]] - 1.0))
    entry = int(g.successors(c_j)[0])
    # the same movement again at the next junction when it has one (a second chance if the ego arrives early)
    again = [int(c) for c in g.successors(entry) if int(c) in fitting]
    rest_m = max(horizon_m - distance_m, 100.0)
    if again:
        c_2 = again[int(rng.integers(len(again)))]
        tail = random_route(g, rng, int(g.successors(c_2)[0]), 0.0, rest_m, explore=True)
        return np.array(chain + [c_j, entry, c_2] + tail.tolist(), np.int64), u0, (c_j, c_2)
    tail = random_route(g, rng, entry, 0.0, rest_m, explore=True)
    return np.array(chain + [c_j] + tail.tolist(), np.int64), u0, (c_j,)


