"""Vehicle traffic on the lane graph: IDM car following along seeded routes, obeying signals, yielding at
crossing conflicts and zipper-merging, vectorised over all vehicles at every step (vehicle 0 is the ego).

Each vehicle drives along its route (a list of lane / connector elements) at arc length ``s`` (m) measured
from its spawn point; its reference point is the box centre (the rear axle for the ego). At every step every
vehicle looks for the closest of these obstacles and applies the Intelligent Driver Model to it:

* the vehicle ahead on its own route (any element of the next ``_WINDOW`` elements of its route);
* at a merge (two connectors into one lane) the vehicle closer to the merge point (2 m bonus for right of
  way), its projected gap relaxed by half its distance to the merge point so the order forms smoothly; at a
  diverge the vehicle further past the shared start (as if on the same path);
* the stop line when its connector is red (or yellow and it can stop comfortably);
* the start of a crossing conflict zone while a vehicle occupies that zone, or while a vehicle with right of
  way (``LaneGraph.other_has_priority``) - or one visibly running its red light (``perception``) - will
  reach its zone within ``_GAP_S`` seconds;
* a non-vehicle obstacle in its lane ahead (``perception.LaneObstacles``, supplied by scripted hazards);
* the end of its route.

The free-road speed follows a per-route profile that respects speed limits and curvature and anticipates
them with comfortable braking. Vehicles spawn within ``SynthConfig.spawn_radius_m`` of the ego, long vehicles
avoid optional turns (their boxes sweep wide), and a burn-in lets the traffic settle before the log starts.
Steps run at ``dt`` (0.1 s) and are resampled along the route to the output rate. A kinematic clamp keeps
every vehicle behind its obstacles; ``Vehicles.num_clamps`` counts its uses. The ego brakes at most
``EGO_B_MAX``. Scripted hazards (``traffic_state.TrafficHooks``) may wake dormant vehicles, override
accelerations, shift vehicles sideways and make them ignore signals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SynthConfig
from .lane_graph import CONFLICT_CROSS, CONFLICT_DIVERGE, CONFLICT_MERGE, LaneGraph, locate
from .perception import violating_signal
from .routes import lane_points, random_route, spawn_on_lanes
from .signals import GREEN, RED, YELLOW
from .traffic_state import PROFILE_DS, Fleet, SimState, TrafficHooks, route_profiles

__all__ = ["Vehicles", "simulate_vehicles", "EGO_SIZE", "EGO_FRONT_M", "REAR_AXLE_TO_CENTER_M", "VEHICLE",
           "BICYCLE", "EGO_B_MAX"]

# ego = Chrysler Pacifica (spec §1.6): length, width, height, m; reference point = rear axle
EGO_SIZE = (5.176, 2.297, 1.777)
REAR_AXLE_TO_CENTER_M = 1.461
EGO_FRONT_M, _EGO_REAR_M = 4.049, 1.127  # rear axle -> front / rear bumper, m
VEHICLE, BICYCLE = 0, 2  # indices into schema.CATEGORY_NAMES
_WINDOW = 6  # route elements searched ahead for leaders and connectors
_GAP_S = 6.0  # a vehicle with right of way this close (time) to a crossing zone is waited for
_LOOK_M = 80.0  # junction interactions are considered within this distance
_SIGNAL_LOOK_M = 120.0  # signals are obeyed from this distance
_B_COMFORT, _B_HARD, _B_YIELD, _B_MAX = 3.0, 6.0, 4.0, 9.0  # decelerations, m/s^2
EGO_B_MAX = 8.0  # the ego never brakes harder than this, m/s^2


@dataclass(frozen=True)
class Vehicles:
    """Simulated vehicles over T output frames; vehicle 0 is the ego."""

    xy: np.ndarray  # [T, N, 2] float64, m, local: box centre (ego: rear axle)
    yaw: np.ndarray  # [T, N] float64, rad
    speed: np.ndarray  # [T, N] float64, m/s, along the heading
    accel: np.ndarray  # [T, N] float64, m/s^2, longitudinal
    kappa: np.ndarray  # [T, N] float64, 1/m, path curvature at the reference point
    elem: np.ndarray  # [T, N] int64 element under the reference point
    route_index: np.ndarray  # [T, N] int64 index of elem in the vehicle's route
    lead: np.ndarray  # [T, N] int64 vehicle followed (same path, merge or diverge), -1 none
    lead_gap: np.ndarray  # [T, N] float64 bumper-to-bumper gap to the lead, m (inf none)
    stop_signal: np.ndarray  # [T, N] bool stopping for a red / yellow signal
    yielding: np.ndarray  # [T, N] bool waiting at a crossing conflict
    next_conn: np.ndarray  # [T, N] int64 next (or current) connector element on the route, -1 none
    next_conn_dist: np.ndarray  # [T, N] float64 reference point to that connector's start, m (<= 0: on it)
    routes: np.ndarray  # [N, R] int64 route elements, padded with -1
    route_start: np.ndarray  # [N, R] float64 route arc length where each element starts, m (inf pad)
    length: np.ndarray  # [N] float64, m
    width: np.ndarray  # [N] float64, m
    height: np.ndarray  # [N] float64, m
    category: np.ndarray  # [N] int64 index into schema.CATEGORY_NAMES
    num_clamps: int  # kinematic clamp uses (a vehicle stopped short of an obstacle by fiat)
    present: np.ndarray  # [T, N] bool the vehicle exists and is visible (dormant hazard vehicles are not)
    lateral: np.ndarray  # [T, N] float64 lateral offset from the route centreline included in xy, m, left positive
    num_ego_clamps: int = 0  # kinematic clamp uses by the ego


def _sample_fleet(rng: np.random.Generator, n: int, cfg: SynthConfig, urban: bool):
    """Sizes and driver parameters of ``n`` vehicles (not the ego)."""
    u = rng.random(n)
    bike = (u < cfg.bicycle_fraction) if urban else np.zeros(n, bool)
    truck = ~bike & (u < cfg.bicycle_fraction * urban + cfg.long_vehicle_fraction)
    length = np.where(bike, 1.8, np.where(truck, rng.uniform(8.5, 10.0, n), rng.uniform(4.2, 5.2, n)))
    width = np.where(bike, 0.7, np.where(truck, 2.55, rng.uniform(1.75, 2.05, n)))
    height = np.where(bike, 1.7, np.where(truck, rng.uniform(3.0, 3.6, n), rng.uniform(1.4, 1.9, n)))
    factor = np.where(truck, rng.uniform(0.8, 0.95, n), rng.uniform(0.85, 1.1, n))
    a_max = np.where(bike, 1.0, np.where(truck, 0.9, rng.uniform(1.2, 2.0, n)))
    headway = rng.uniform(1.0, 1.6, n)
    cat = np.where(bike, BICYCLE, VEHICLE)
    vmax = np.where(bike, 5.5, np.inf)
    return length, width, height, factor, a_max, headway, cat, vmax


def simulate_vehicles(g: LaneGraph, light_states: np.ndarray, cfg: SynthConfig, rng: np.random.Generator,
                      dt: float, num_steps: int, burn_in_steps: int, out_per_step: int, urban: bool,
                      ego_start: tuple[int, float] | None = None, hooks: TrafficHooks | None = None) -> Vehicles:
    """Spawn the ego and the traffic, run ``burn_in_steps + num_steps`` steps of ``dt`` s, and return the
    last ``num_steps`` steps resampled to ``out_per_step`` frames per step.

    ``light_states [burn_in_steps + num_steps, M]`` holds the signal status (GREEN/YELLOW/RED) at each step;
    ``ego_start`` = (lane element, arc length in m) of the ego's rear axle, or None for a random lane.
    ``hooks`` (scripted hazards) may force the ego's route, add dormant vehicles to the fleet and steer the
    simulation at every step (see ``traffic_state.TrafficHooks``).
    """
    lanes = np.flatnonzero(~g.is_connector)
    horizon_m = (g.speed_limit.max() * 1.1) * (num_steps + burn_in_steps) * dt + 150.0
    # --- ego: a forced route, at a given start, else on a random lane of at least 40 m
    forced = hooks.ego_route(rng) if hooks is not None else None
    if forced is not None:
        ego_route, ego_u = forced
        ego_lane = int(ego_route[0])
    else:
        if ego_start is None:
            long_lanes = lanes[g.length[lanes] >= 40.0]
            ego_lane = int(rng.choice(long_lanes))
            ego_u = float(rng.uniform(0.2, 0.5) * g.length[ego_lane])
        else:
            ego_lane, ego_u = ego_start
        ego_route = random_route(g, rng, ego_lane, ego_u, horizon_m, explore=True)
    taken = {ego_lane: [(ego_u + 20.0, 24.0)]}  # keep the ego's first 40 m clear
    # --- traffic: within spawn_radius_m of the ego, partly on the roadblocks of its route
    n_want = int(min(cfg.max_vehicles, round(cfg.vehicles_per_km * g.length[lanes].sum() / 1000.0)))
    length, width, height, factor, a_max, headway, cat, vmax = _sample_fleet(rng, n_want, cfg, urban)
    p_elem, p_u, p_xy = lane_points(g)
    ego_xy = locate(g, np.array(ego_lane), np.array(ego_u))[0]
    near = np.linalg.norm(p_xy - ego_xy, axis=1) <= cfg.spawn_radius_m
    on_route = near & np.isin(g.lane_group[p_elem], np.unique(g.lane_group[ego_route]))
    n_route = int(round(cfg.route_fraction * n_want))
    spots = spawn_on_lanes(g, rng, p_elem[on_route], p_u[on_route], length[:n_route], taken)
    spots += spawn_on_lanes(g, rng, p_elem[near], p_u[near], length[n_route:], taken)
    keep = np.array([p is not None for p in spots], bool)
    spots = [p for p in spots if p is not None]
    length, width, height, factor = length[keep], width[keep], height[keep], factor[keep]
    a_max, headway, cat, vmax = a_max[keep], headway[keep], cat[keep], vmax[keep]
    # long vehicles sweep wide in tight turns: they turn only where the road leaves no other choice
    route_list = [ego_route] + [random_route(g, rng, e, u, horizon_m, turn_weight=0.001 if ln > 8.0 else 0.5)
                                for (e, u), ln in zip(spots, length)]
    starts_u = [ego_u] + [u for _, u in spots]
    # dormant vehicles for scripted hazards: parked on a copy of the ego route until a hazard wakes them
    slots = hooks.slot_sizes() if hooks is not None else np.zeros((0, 3))
    k_slots = len(slots)
    route_list += [ego_route] * k_slots
    starts_u += [ego_u] * k_slots
    length, width, height = (np.concatenate([x, slots[:, c]]) for c, x in enumerate((length, width, height)))
    factor = np.concatenate([factor, np.ones(k_slots)])
    a_max = np.concatenate([a_max, np.full(k_slots, 1.6)])
    headway = np.concatenate([headway, np.full(k_slots, 1.2)])
    cat = np.concatenate([cat, np.full(k_slots, VEHICLE)])
    vmax = np.concatenate([vmax, np.full(k_slots, np.inf)])
    n = len(route_list)
    r_max = max(len(r) for r in route_list)
    routes = np.full((n, r_max), -1, np.int64)
    route_start = np.full((n, r_max), np.inf)
    for i, r in enumerate(route_list):
        routes[i, :len(r)] = r
        route_start[i, :len(r)] = np.concatenate([[0.0], np.cumsum(g.length[r[:-1]])]) - starts_u[i]
    route_len = np.array([len(r) for r in route_list])
    route_end = np.array([route_start[i, route_len[i] - 1] + g.length[r[-1]] for i, r in enumerate(route_list)])

    length = np.concatenate([[EGO_SIZE[0]], length])
    width = np.concatenate([[EGO_SIZE[1]], width])
    height = np.concatenate([[EGO_SIZE[2]], height])
    cat = np.concatenate([[VEHICLE], cat]).astype(np.int64)
    front = np.concatenate([[EGO_FRONT_M], length[1:] / 2])
    rear = np.concatenate([[_EGO_REAR_M], length[1:] / 2])
    lat_acc = np.concatenate([[2.0], np.where(cat[1:] == BICYCLE, 2.0, 2.5)])
    profile = route_profiles(g, route_start, routes, route_end, np.concatenate([[1.0], factor]),
                             np.concatenate([[np.inf], vmax]), lat_acc)
    b_max = np.full(n, _B_MAX)
    b_max[0] = EGO_B_MAX
    fleet = Fleet(routes, route_start, route_len, route_end, front, rear, width / 2.0,
                  np.concatenate([[1.6], a_max]), np.concatenate([[1.3], headway]),
                  np.where(cat == BICYCLE, 1.5, 2.0), b_max, profile)
    active = np.ones(n, bool)
    active[n - k_slots:] = False
    state = SimState(fleet=fleet, s=np.zeros(n), v=np.zeros(n), active=active, shown=active.copy(),
                     lat=np.zeros(n), lat_v=np.zeros(n), ignore_signal=np.zeros(n, bool), length=length,
                     width=width, height=height, category=cat, accel=np.zeros(n),
                     violator_conn=np.full(n, -1, np.int64))
    if hooks is not None:
        hooks.bind(state)
    return _run(g, state, light_states, dt, num_steps, burn_in_steps, out_per_step, hooks)


def _observe(g: LaneGraph, st: SimState, lights: np.ndarray) -> dict[str, np.ndarray]:
    """Every vehicle's obstacles at the current state (all arrays over N vehicles or N x N pairs)."""
    with np.errstate(invalid="ignore"):  # inf - inf where no pair applies; masked below
        return _observe_pairs(g, st, lights)


def _observe_pairs(g: LaneGraph, st: SimState, lights: np.ndarray) -> dict:
    f, s, v, active = st.fleet, st.s, st.v, st.active
    n = len(s)
    ar = np.arange(n)
    k = (f.route_start <= s[:, None]).sum(1) - 1
    kw = k[:, None] + np.arange(_WINDOW)[None, :]
    valid_w = kw < f.route_len[:, None]
    kw = np.minimum(kw, f.route_len[:, None] - 1)
    win = np.take_along_axis(f.routes, kw, axis=1)  # [N, H]
    win_s = np.take_along_axis(f.route_start, kw, axis=1)
    e = np.where(active, win[:, 0], g.num_elements)  # dormant vehicles sit on a void element
    u = s - win_s[:, 0]

    # the vehicle ahead on the own route: next one on the same element, else the rearmost one on the first
    # occupied element of the route window (vehicles sorted by element, then arc length)
    order = np.lexsort((u, e))
    e_sorted = e[order]
    follows = e_sorted[1:] == e_sorted[:-1]
    ahead = np.full(n, -1)
    ahead[order[:-1][follows]] = order[1:][follows]
    rearmost = np.full(g.num_elements + 1, -1)
    starts = np.concatenate([[True], ~follows])
    rearmost[e_sorted[starts]] = order[starts]
    cand = rearmost[win[:, 1:]]  # [N, H-1]
    ok = (cand >= 0) & valid_w[:, 1:] & (cand != ar[:, None])
    d_win = np.where(ok, win_s[:, 1:] + u[np.maximum(cand, 0)] - s[:, None], np.inf)
    h = d_win.argmin(axis=1)
    path_lead = np.where(ahead >= 0, ahead, np.where(np.isfinite(d_win[ar, h]), cand[ar, h], -1))
    path_dist = np.where(ahead >= 0, u[np.maximum(ahead, 0)] - u, d_win[ar, h])
    gap_path = path_dist - f.front - f.rear[np.maximum(path_lead, 0)]  # [N], inf when none

    # next connector on the route
    isc = g.is_connector[win] & valid_w
    has = isc.any(axis=1) & active
    hc = isc.argmax(axis=1)
    nc = np.where(has, win[ar, hc], -1)
    dc = np.where(has, win_s[ar, hc] - s, np.inf)
    nci = np.maximum(nc, 0)

    # signals
    sig = np.where(has, g.signal[nci], -1)
    state = np.where(sig >= 0, lights[np.maximum(sig, 0)], GREEN) if lights.size else np.full(n, GREEN)
    dfront = dc - f.front
    before = has & (hc > 0) & (dc < _SIGNAL_LOOK_M)
    stop_sig = before & (sig >= 0) & ~st.ignore_signal & (
        ((state == RED) & (v * v / (2 * _B_HARD) < dfront + 1.0))
        | ((state == YELLOW) & (v * v / (2 * _B_COMFORT) < dfront)))
    # a car seen running its red stays a violator until it has passed that connector
    violating = (violating_signal(has, before, state, v, dfront, st.accel) & ~stop_sig) \
        | (has & (st.violator_conn == nc))
    gap_sig = np.where(stop_sig, dfront + 1.0, np.inf)

    # junction conflicts between next connectors
    near = has & (dc < _LOOK_M)
    pair = g.conflict[nci[:, None], nci[None, :]]
    pair = np.where(near[:, None] & near[None, :], pair, -1)
    pair[ar, ar] = -1
    pc = np.maximum(pair, 0)
    kind = np.where(pair >= 0, g.conflict_kind[pc], -1)
    lo_i, hi_j_merge = g.zone_lo[pc], g.zone_hi[pc.T]
    lo_j = g.zone_lo[pc.T]
    past = -dc  # reference point past the connector start, m
    remain = dc + g.length[nci]  # reference point to the connector end, m
    # zipper merge: j goes first when (with a 2 m bonus for right of way) it is closer to the merge point; the
    # projected gap is relaxed by half of j's distance to the merge point so that the order forms smoothly
    prio_j = g.other_has_priority[pc]
    order_j = remain[None, :] - 2.0 * prio_j
    order_i = remain[:, None] - 2.0 * g.other_has_priority[pc.T]
    merge = (kind == CONFLICT_MERGE) & (remain[None, :] >= 0) & (order_j < order_i)
    gap_merge = np.where(merge, remain[:, None] - remain[None, :] - f.front[:, None] - f.rear[None, :]
                         + 0.5 * remain[None, :], np.inf)
    div = ((kind == CONFLICT_DIVERGE) & (past[None, :] > past[:, None])
           & (past[None, :] - f.rear[None, :] < hi_j_merge + 1.0))
    gap_div = np.where(div, past[None, :] - past[:, None] - f.front[:, None] - f.rear[None, :], np.inf)
    gap_pair = np.minimum(gap_merge, gap_div)
    pair_lead = gap_pair.argmin(axis=1)
    pair_gap = gap_pair[ar, pair_lead]
    use_path = gap_path <= pair_gap
    lead_gap = np.where(use_path, gap_path, pair_gap)
    lead = np.where(np.isfinite(lead_gap), np.where(use_path, path_lead, pair_lead), -1)

    cross = kind == CONFLICT_CROSS
    to_zone = lo_i - past[:, None] - f.front[:, None]  # i's front to the start of its zone, m
    j_to_zone = lo_j - past[None, :] - f.front[None, :]
    occupied = (past[None, :] + f.front[None, :] > lo_j - 0.5) & (past[None, :] - f.rear[None, :] < hi_j_merge + 0.5)
    coming = (j_to_zone > 0) & (j_to_zone < _GAP_S * np.maximum(v[None, :], 1.0)) & ~stop_sig[None, :]
    can_stop = (v * v / (2 * _B_YIELD))[:, None] < to_zone + 0.5
    can_stop_hard = (v * v / (2 * _B_HARD))[:, None] < to_zone + 0.5
    # right of way, or a crossing vehicle that visibly runs its red; drivers who ignore signals yield to neither
    give_way = ((prio_j & can_stop) | (violating[None, :] & can_stop_hard)) & ~st.ignore_signal[:, None]
    must = cross & (to_zone > 0) & (occupied | (coming & give_way))
    # vehicles that just left a connector still occupy its zone with their rear
    kp = np.maximum(k - 1, 0)
    prev = f.routes[ar, kp]
    prev_past = s - f.route_start[ar, kp]
    has_prev = (k >= 1) & g.is_connector[prev] & (prev_past - f.rear < g.length[prev] + 0.5) & active
    pair2 = np.where(near[:, None] & has_prev[None, :], g.conflict[nci[:, None], prev[None, :]], -1)
    pair2[ar, ar] = -1
    p2 = np.maximum(pair2, 0)
    p2t = np.maximum(g.conflict[prev[None, :], nci[:, None]], 0)
    to_zone2 = g.zone_lo[p2] - past[:, None] - f.front[:, None]
    must2 = ((pair2 >= 0) & (g.conflict_kind[p2] == CONFLICT_CROSS) & (to_zone2 > 0)
             & (prev_past[None, :] - f.rear[None, :] < g.zone_hi[p2t] + 0.5))
    gap_yield = np.minimum(np.where(must, to_zone - 0.5, np.inf), np.where(must2, to_zone2 - 0.5, np.inf)).min(1)
    gap_end = f.route_end - s - f.front
    lead = np.where(active, lead, -1)
    lead_gap = np.where(active, lead_gap, np.inf)
    return dict(k=k, elem=e, u=u, lead=lead, lead_gap=lead_gap, gap_sig=gap_sig, stop_sig=stop_sig,
                gap_yield=gap_yield, gap_end=gap_end, nc=nc, dc=dc, win=win, win_s=win_s, valid_w=valid_w,
                lead_on_path=use_path & (lead >= 0), violating=violating, signal_state=state)


def _run(g: LaneGraph, st: SimState, lights: np.ndarray, dt: float, num_steps: int, burn_in: int, out_per_step: int,
         hooks: TrafficHooks | None) -> Vehicles:
    f = st.fleet
    n = f.routes.shape[0]
    ar = np.arange(n)
    total = burn_in + num_steps
    obs = _observe(g, st, lights[0])
    v0 = f.profile[:, 0]
    obstacle = np.minimum.reduce([obs["lead_gap"], obs["gap_sig"], obs["gap_yield"], obs["gap_end"]])
    st.v = np.where(st.active, np.minimum(0.7 * v0, np.sqrt(2.0 * 2.0 * np.maximum(obstacle - 4.0, 0.0))), 0.0)
    keys = ("s", "v", "a", "lead", "lead_gap", "stop_sig", "yield", "nc", "dc", "shown", "lat", "lat_v")
    rec: dict[str, list] = {key: [] for key in keys}
    clamps = ego_clamps = 0
    no_obstacle = np.full(n, np.inf)
    for t in range(total):
        obs = _observe(g, st, lights[t])
        st.violator_conn = np.where(obs["violating"], obs["nc"], -1)
        if hooks is not None:
            seen = st.active.copy()
            ctl = hooks.step(t, st, obs)
            woke = st.active & ~seen  # woken by a hazard at this step: their perception starts next step
            if woke.any():
                obs = dict(obs)
                for key in ("lead_gap", "gap_sig", "gap_yield", "gap_end"):
                    obs[key] = np.where(woke, np.inf, obs[key])
                obs["lead"] = np.where(woke, -1, obs["lead"])
        else:
            ctl = None
        s, v = st.s, st.v
        idx = np.clip(((s - f.route_start[:, 0]) / PROFILE_DS).astype(np.int64), 0, f.profile.shape[1] - 1)
        vdes = np.maximum(f.profile[ar, idx], 0.1)
        lead = obs["lead"]
        dv_lead = np.where(lead >= 0, v - v[np.maximum(lead, 0)], 0.0)
        gap_obst = ctl.obstacle_gap if ctl is not None else no_obstacle
        dv_obst = v - ctl.obstacle_speed if ctl is not None else v
        gaps = np.stack([obs["lead_gap"], obs["gap_sig"], obs["gap_yield"], obs["gap_end"], gap_obst], axis=1)
        dvs = np.stack([dv_lead, v, v, v, dv_obst], axis=1)
        sstar = f.s0[:, None] + np.maximum(
            0.0, v[:, None] * f.headway[:, None] + v[:, None] * dvs / (2.0 * np.sqrt(f.a_max * 2.0))[:, None])
        inter = np.where(np.isfinite(gaps), sstar / np.maximum(gaps, 0.1), 0.0).max(axis=1)
        free = np.where(v <= vdes, f.a_max * (1.0 - (v / vdes) ** 4), np.maximum(-3.0, -2.0 * (v - vdes)))
        acc = np.clip(free - f.a_max * inter**2, -f.b_max, f.a_max)
        if ctl is not None:
            acc = np.where(np.isnan(ctl.accel), np.minimum(acc, ctl.accel_cap), ctl.accel)
        acc = np.where(st.active, acc, 0.0)
        v_new = v + acc * dt
        ds = np.where(v_new >= 0.0, 0.5 * (v + v_new) * dt, v * v / (2.0 * np.maximum(-acc, 1e-6)))
        v_new = np.maximum(v_new, 0.0)
        # kinematic clamp: never pass a stop line / yield line / obstacle, never close a gap below 0.2 m
        fixed = np.minimum.reduce([obs["gap_sig"], obs["gap_yield"], obs["gap_end"], gap_obst + 0.1])
        for _ in range(2):
            lead_ds = np.where(lead >= 0, ds[np.maximum(lead, 0)], 0.0)
            allowed = np.minimum(obs["lead_gap"] + lead_ds - 0.2, fixed - 0.1)
            over = ds > np.maximum(allowed, 0.0) + 1e-9
            if t >= burn_in:
                hard = over & (ds - np.maximum(allowed, 0.0) > 0.05)
                clamps += int(np.count_nonzero(hard))
                ego_clamps += int(hard[0])
            ds = np.where(over, np.maximum(allowed, 0.0), ds)
            v_new = np.where(over, np.minimum(v_new, ds / dt), v_new)
        if t >= burn_in:
            for key, val in (("s", s), ("v", v), ("a", acc), ("lead", lead), ("lead_gap", obs["lead_gap"]),
                             ("stop_sig", obs["stop_sig"]), ("yield", np.isfinite(obs["gap_yield"])),
                             ("nc", obs["nc"]), ("dc", obs["dc"]), ("shown", st.shown.copy()),
                             ("lat", st.lat.copy()), ("lat_v", st.lat_v.copy())):
                rec[key].append(val)
        st.s = s + np.where(st.active, ds, 0.0)
        st.v = np.where(st.active, v_new, 0.0)
        st.accel = acc
    for key in ("s", "v", "shown", "lat", "lat_v"):
        rec[key].append(getattr(st, key).copy())
    arr = {key: np.stack(val) for key, val in rec.items()}
    return _resample(g, st, arr, out_per_step, num_steps, clamps, ego_clamps)


def _resample(g: LaneGraph, st: SimState, rec: dict[str, np.ndarray], m: int, num_steps: int, clamps: int,
              ego_clamps: int) -> Vehicles:
    """Output frames: ``m`` per simulation step, positions interpolated along each route and shifted by the
    lateral offset (headings turned by the lateral motion)."""
    f = st.fleet
    t_out = np.arange(num_steps * m) / m
    i0 = np.floor(t_out).astype(np.int64)
    w = (t_out - i0)[:, None]
    s = (1 - w) * rec["s"][i0] + w * rec["s"][i0 + 1]  # [T, N]
    v = (1 - w) * rec["v"][i0] + w * rec["v"][i0 + 1]
    lat = (1 - w) * rec["lat"][i0] + w * rec["lat"][i0 + 1]
    lat_v = (1 - w) * rec["lat_v"][i0] + w * rec["lat_v"][i0 + 1]
    k = (f.route_start[None, :, :] <= s[:, :, None]).sum(-1) - 1
    k = np.clip(k, 0, f.route_len[None, :] - 1)
    elem = np.take_along_axis(np.broadcast_to(f.routes, (len(t_out),) + f.routes.shape), k[..., None], 2)[..., 0]
    start = np.take_along_axis(np.broadcast_to(f.route_start, (len(t_out),) + f.route_start.shape),
                               k[..., None], 2)[..., 0]
    xy, yaw, kappa = locate(g, elem, s - start)
    xy = xy + lat[..., None] * np.stack([-np.sin(yaw), np.cos(yaw)], axis=-1)
    yaw = np.where(lat_v != 0.0, (yaw + np.arctan2(lat_v, np.maximum(v, 1.0)) + np.pi) % (2 * np.pi) - np.pi, yaw)
    return Vehicles(
        xy=xy, yaw=yaw, speed=v, accel=rec["a"][i0], kappa=kappa, elem=elem, route_index=k,
        lead=rec["lead"][i0], lead_gap=rec["lead_gap"][i0], stop_signal=rec["stop_sig"][i0],
        yielding=rec["yield"][i0], next_conn=rec["nc"][i0], next_conn_dist=rec["dc"][i0] - (s - rec["s"][i0]),
        routes=f.routes, route_start=f.route_start, length=st.length, width=st.width, height=st.height,
        category=st.category, num_clamps=clamps, present=rec["shown"][i0],
        lateral=lat, num_ego_clamps=ego_clamps,
    )
