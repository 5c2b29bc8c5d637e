"""Rare events in the ego's own lane: cut-in, lead braking hard, pedestrian dart-out, stalled vehicle.

Each ``try_<event>(ctx, params, attempt)`` inspects the current step and either returns None or sets the hazard
up and returns its behaviour (see ``hazard_common.Behaviour``). Parameters and intent: ``events``.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .dart_out import PED_SIZE_M
from .events import CutIn, EventAttempt, HardBrake, PedestrianDartOut, StalledVehicle
from .hazard_common import Behaviour, copy_route, dsmooth, next_slot_length, route_from, smooth, wake
from .hazard_controller import StepContext
from .lane_relations import lateral_between
from .traffic import VEHICLE

__all__ = ["try_cut_in", "try_hard_brake", "try_dart_out", "try_stalled"]


# ------------------------------------------------------------------------------------------ cut-in
class _CutInBehaviour(Behaviour):
    tag = "rare_cut_in"

    def __init__(self, p: CutIn, a: EventAttempt, j: int, k: int, e_a: int, e_b: int, t0: float) -> None:
        super().__init__(p, a)
        self.j, self.k, self.e_a, self.e_b, self.t0 = j, k, e_a, e_b, t0
        self.phase, self.y0 = "approach", 0.0

    def update(self, ctx: StepContext) -> bool:
        st, obs, g, p, f = ctx.st, ctx.obs, ctx.g, self.params, ctx.st.fleet
        j, k = self.j, self.k
        if self.phase == "approach":
            ratio = g.length[self.e_a] / g.length[self.e_b]
            if obs["elem"][j] != self.e_a or obs["elem"][0] != self.e_b or ctx.t_s > self.attempt.latest_s \
                    or ctx.t_s - self.t0 > 20.0:
                ctx.ctl.free_slot(k)
                return False  # gave up: the car drives on as ordinary (fast) traffic
            u_ef = ctx.ego_front_u()
            x_rel = (obs["u"][j] - f.rear[j]) / ratio - u_ef
            v_e, v_j = st.v[0], st.v[j]
            dv = np.clip(0.5 * (p.gap_m - x_rel), -3.0, p.overtake_mps)
            acc = float(np.clip(1.2 * (v_e + dv - v_j), -3.0, 2.0))
            if obs["lead_gap"][j] < 10.0 + v_j:  # never close in on a car ahead in its own lane
                acc = min(acc, -1.0)
            ctx.drive(j, acc)
            remain_a = g.length[self.e_a] - obs["u"][j] - f.front[j]
            if (abs(x_rel - p.gap_m) < 1.0 and abs(v_j - v_e) < 1.0 and ctx.t_s >= self.attempt.start_s
                    and v_e >= 7.0 and p.gap_m / v_e < 1.0 and g.length[self.e_b] - u_ef >= 40.0
                    and remain_a >= 40.0 and obs["lead_gap"][0] >= p.gap_m + st.length[j] + 12.0):
                self._switch(ctx, float(x_rel))
            return True
        tau = ctx.t_s - self.t_start
        if self.phase == "change":
            x = tau / p.lane_change_s
            st.lat[k] = self.y0 * (1.0 - smooth(x))
            st.lat_v[k] = -self.y0 * dsmooth(x) / p.lane_change_s
            ctx.limit(k, 0.0)
            ctx.limit(j, 0.0)
            if x >= 1.0:
                st.lat[k] = st.lat_v[k] = 0.0
                st.active[j] = False  # the ghost in the old lane is no longer needed
                self.phase = "brake"
            return True
        if tau < p.lane_change_s + p.brake_s:
            ctx.limit(k, -p.brake_mps2)
            return True
        return False

    def _switch(self, ctx: StepContext, x_rel: float) -> None:
        """Start the lane change: vehicle k continues j's track in the ego's lane (offset sideways into the
        old lane); j stays in the old lane as an invisible ghost so that traffic there still sees the car."""
        st, f, j, k = ctx.st, ctx.st.fleet, self.j, self.k
        for arr in (st.length, st.width, st.height):
            arr[k] = arr[j]
        f.front[k] = f.rear[k] = st.length[j] / 2.0
        f.half_width[k] = st.width[j] / 2.0
        copy_route(st, 0, k)
        st.s[k] = st.s[0] + f.front[0] + x_rel + f.rear[k]
        st.v[k] = st.v[j]
        self.y0 = lateral_between(ctx.g, self.e_a, float(ctx.obs["u"][j]), self.e_b)[1]
        st.lat[k] = self.y0
        st.active[k] = st.shown[k] = True
        st.shown[j] = False
        ctx.ctl.merges.append((j, k))
        self.phase = "change"
        self.begin(ctx, ("vehicle", j))


def try_cut_in(ctx: StepContext, p: CutIn, a: EventAttempt):
    st, obs, g, rel, f = ctx.st, ctx.obs, ctx.g, ctx.rel, ctx.st.fleet
    e_b, v_e = int(obs["elem"][0]), float(st.v[0])
    if ctx.ctl.slots_left() < 1 or g.is_connector[e_b] or v_e < 8.0 or obs["lead_gap"][0] < p.gap_m + 25.0:
        return None
    u_ef = ctx.ego_front_u()
    for e_a in (int(rel.left[e_b]), int(rel.right[e_b])):
        if e_a < 0:
            continue
        ratio = g.length[e_a] / g.length[e_b]
        ua_ef = u_ef * ratio
        # cars in the neighbour lane near the ego: one ordinary car may become the cut-in car
        near = st.active & (obs["elem"] == e_a) & (np.abs(obs["u"] - ua_ef) < 60.0)
        near[0] = False
        cand = np.flatnonzero(near)
        if len(cand) > 1:
            continue
        if len(cand) == 1:
            j = int(cand[0])
            if j >= ctx.ctl.first_slot or st.category[j] != VEHICLE or st.length[j] > 6.5:
                continue
            x_rel = (obs["u"][j] - f.rear[j]) / ratio - u_ef
            lo = min(obs["u"][j] - f.rear[j], ua_ef) - 20.0
            hi = max(obs["u"][j] + f.front[j], ua_ef + p.gap_m + st.length[j]) + 30.0
            others = st.active & (obs["elem"] == e_a) & (obs["u"] > lo) & (obs["u"] < hi)
            others[j] = False
            if others.any() or not ctx.clear(e_a, lo, lo + 1.0):
                continue
        else:
            if ctx.ctl.slots_left() < 2:
                continue
            length = next_slot_length(ctx)
            behind = min(30.0, ua_ef - length - 5.0)
            if behind < 12.0:
                continue
            x_rel = -behind - length
            u_c = ua_ef - behind - length / 2.0
            if not ctx.clear(e_a, u_c - length / 2.0 - 20.0, ua_ef + 60.0):
                continue
            j = -1
        t_app = abs(x_rel - p.gap_m) / min(p.overtake_mps, 3.0) + 2.0
        if not a.start_s - 1.0 <= ctx.t_s + t_app <= a.latest_s - 0.5:
            continue
        if g.length[e_b] - u_ef < v_e * (t_app + p.lane_change_s + 1.0) + 30.0 \
                or g.length[e_a] - ua_ef < v_e * t_app + 40.0:
            continue
        if j < 0:
            v_a = v_e + p.overtake_mps
            j = wake(ctx, route_from(ctx, [e_a], u_c), u_c, v_a, (v_a + 2.0) / g.speed_limit[e_a])
        k = ctx.ctl.take_slot()
        return _CutInBehaviour(p, a, j, k, e_a, e_b, ctx.t_s)
    return None


# ------------------------------------------------------------------------------------------ hard brake
class _HardBrakeBehaviour(Behaviour):
    tag = "rare_hard_brake"

    def __init__(self, p: HardBrake, a: EventAttempt, j: int) -> None:
        super().__init__(p, a)
        self.j, self.stopped_at = j, None

    def update(self, ctx: StepContext) -> bool:
        j, p = self.j, self.params
        if self.stopped_at is None:
            if ctx.st.v[j] > 0.0:
                ctx.drive(j, -p.decel_mps2)
                return True
            self.stopped_at = ctx.t_s
        if ctx.t_s - self.stopped_at < p.hold_s:
            ctx.drive(j, 0.0)
            return True
        return False


def try_hard_brake(ctx: StepContext, p: HardBrake, a: EventAttempt):
    st, obs, g, f = ctx.st, ctx.obs, ctx.g, ctx.st.fleet
    if not a.start_s <= ctx.t_s < a.end_s:
        return None
    j = int(obs["lead"][0])
    if j < 1 or not obs["lead_on_path"][0] or (j >= ctx.ctl.first_slot and j != ctx.ctl.companion) \
            or st.category[j] != VEHICLE or st.length[j] > 6.5:
        return None
    gap, v_e, v_j = float(obs["lead_gap"][0]), float(st.v[0]), float(st.v[j])
    if not (6.0 <= gap <= 40.0 and v_e >= 5.0 and 0.9 <= gap / v_e <= 3.0 and v_j >= 5.0 and abs(v_j - v_e) <= 3.0):
        return None
    if g.is_connector[obs["elem"][j]] or obs["dc"][j] - f.front[j] < 15.0 or obs["stop_sig"][j]:
        return None
    b = _HardBrakeBehaviour(p, a, j)
    b.begin(ctx, ("vehicle", j))
    b.update(ctx)
    return b


# ------------------------------------------------------------------------------------------ dart-out
class _DartOutBehaviour(Behaviour):
    tag = "rare_pedestrian_dart_out"

    def __init__(self, p: PedestrianDartOut, a: EventAttempt, k: int) -> None:
        super().__init__(p, a)
        self.k = k

    def update(self, ctx: StepContext) -> bool:
        return not ctx.ctl.peds.finished(self.k, ctx.t_s)


def try_dart_out(ctx: StepContext, p: PedestrianDartOut, a: EventAttempt):
    st, obs, peds = ctx.st, ctx.obs, ctx.ctl.peds
    v_e = float(st.v[0])
    if not len(peds) or not a.start_s <= ctx.t_s < a.end_s or not 5.0 <= v_e <= 14.0:
        return None
    # a waiting pedestrian at a site in the ego's lane, the ego about to reach it, nobody in between
    d_c = peds.u_c - PED_SIZE_M / 2 - ctx.ego_front_u()  # [P] m
    ok = (np.isnan(peds.t0) & (peds.elem == obs["elem"][0]) & (d_c >= 8.0) & (d_c <= p.time_to_arrival_s * v_e)
          & (obs["lead_gap"][0] > d_c + 5.0))
    if not ok.any():
        return None
    k = int(np.argmax(ok))
    peds.start(k, ctx.t_s, p.speed_mps, p.depth_m, p.hesitate_s)
    b = _DartOutBehaviour(p, a, k)
    b.begin(ctx, ("pedestrian", k))
    return b


# ------------------------------------------------------------------------------------------ stalled vehicle
class _StalledBehaviour(Behaviour):
    tag = "rare_stalled_vehicle"

    def __init__(self, p: StalledVehicle, a: EventAttempt, j: int, t0: float, stalling_lead: bool = False) -> None:
        super().__init__(p, a)
        self.j, self.t0, self.waited, self.stalling = j, t0, 0.0, stalling_lead

    def update(self, ctx: StepContext) -> bool:
        st, obs, f, j = ctx.st, ctx.obs, ctx.st.fleet, self.j
        if self.stalling:  # the engine died: it rolls to a stop
            if st.v[j] > 0.0:
                ctx.drive(j, -_STALL_DECEL)
                return True
            self.stalling = False
        if not self.began:
            gap = st.s[j] - f.rear[j] - (st.s[0] + f.front[0])
            if gap <= 75.0 and ctx.visible(j):
                self.begin(ctx, ("vehicle", j))
            elif ctx.t_s - self.t0 > 30.0:
                return False  # never reached: it restarts unseen
        elif st.v[0] < 0.2 and obs["lead"][0] == j and obs["lead_gap"][0] < 20.0:
            self.waited += ctx.ctl.dt
        if self.began and (self.waited >= self.params.wait_s or ctx.t_s - self.t_start > 25.0):
            return False  # restarts and drives off
        st.v[j] = 0.0
        ctx.drive(j, 0.0)
        return True


_STALL_DECEL = 2.5  # a lead whose engine dies rolls to a stop at this deceleration, m/s^2


def _stall_lead(ctx: StepContext, p: StalledVehicle, a: EventAttempt):
    """The ego's lead stalls mid-block: 10-60 m ahead on the ego's path, on a lane where it comes to rest
    >= 15 m before the junction."""
    st, obs, g, f = ctx.st, ctx.obs, ctx.g, ctx.st.fleet
    j = int(obs["lead"][0])
    if j < 1 or not obs["lead_on_path"][0] or j >= ctx.ctl.first_slot or st.category[j] != VEHICLE:
        return None
    v_j = float(st.v[j])
    stop = v_j * v_j / (2.0 * _STALL_DECEL)
    if not (10.0 <= obs["lead_gap"][0] <= 60.0 and v_j >= 3.0) or g.is_connector[obs["elem"][j]] \
            or obs["dc"][j] - f.front[j] - stop < 15.0 or obs["stop_sig"][j]:
        return None
    b = _StalledBehaviour(replace(p, distance_m=round(float(obs["lead_gap"][0]), 3)), a, j, ctx.t_s, True)
    b.begin(ctx, ("vehicle", j))
    b.update(ctx)
    return b


def try_stalled(ctx: StepContext, p: StalledVehicle, a: EventAttempt):
    st, obs, g, f = ctx.st, ctx.obs, ctx.g, ctx.st.fleet
    if not a.start_s - 0.5 <= ctx.t_s < a.end_s or st.v[0] < 3.0 or not ctx.ctl.slots_left():
        return None
    if a.start_s <= ctx.t_s and obs["lead_gap"][0] <= 60.0:
        return _stall_lead(ctx, p, a)
    if ctx.t_s >= a.latest_s - 6.0:  # a car appearing ahead needs time to come into view
        return None
    length = next_slot_length(ctx)
    dist = np.arange(p.distance_m, 84.9, -1.0)  # candidate distances, the drawn one first
    s_c = st.s[0] + f.front[0] + dist + length / 2.0
    n_r = int(f.route_len[0])
    k = np.searchsorted(f.route_start[0, :n_r], s_c, side="right") - 1
    e = f.routes[0, k]
    u = s_c - f.route_start[0, k]
    ok = ~g.is_connector[e] & (u - length / 2.0 >= 12.0) & (u + length / 2.0 <= g.length[e] - 25.0)
    if not ok.any():
        return None
    i = int(np.argmax(ok))
    e_i, u_i = int(e[i]), float(u[i])
    if not ctx.clear(e_i, u_i - length / 2.0 - 20.0, u_i + length / 2.0 + 20.0):
        return None
    # nobody between the ego and the car who will still be on the ego's path there
    where = np.full(g.num_elements + 1, -1)
    k0, k1 = int(obs["k"][0]), int(k[i])
    where[f.routes[0, k0:k1 + 1][::-1]] = np.arange(k1, k0 - 1, -1)
    pos = np.where(where[obs["elem"]] >= 0, f.route_start[0, np.maximum(where[obs["elem"]], 0)] + obs["u"], -np.inf)
    between = st.active & (pos - f.rear > st.s[0]) & (pos - f.rear < s_c[i])
    between[0] = False
    if np.any(between & (f.routes == e_i).any(axis=1)):
        return None
    j = ctx.ctl.take_slot()
    copy_route(st, 0, j)
    st.s[j], st.v[j] = float(s_c[i]), 0.0
    st.active[j] = st.shown[j] = True
    ctx.drive(j, 0.0)
    return _StalledBehaviour(replace(p, distance_m=round(float(dist[i]), 3)), a, j, ctx.t_s)


