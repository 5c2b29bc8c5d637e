"""The hazard controller: plugs the planned rare events of one log into the traffic simulation.

It implements ``traffic_state.TrafficHooks``. Before the run it may force the ego's route (unprotected left
turn), plans the parked-car sites of the pedestrian dart-out and reserves dormant vehicles. At every step it
advances the running hazard (at most one at a time), tries the triggers of the armed event types
(``hazards.TRIGGERS``) and turns the hazards' lane obstacles into gaps for every vehicle
(``perception.lane_obstacle_gaps``). Afterwards it reports what happened (``events``), the parked cars and
the dart-out pedestrians, and which dormant vehicles continue another one's track (the cut-in car).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .dart_out import PED_SIZE_M, DartOutPedestrians, DartOutSite, plan_sites, site_objects
from .events import EventAttempt, draw_params
from .lane_graph import LaneGraph, locate
from .lane_relations import LaneRelations
from .perception import LaneObstacles, lane_obstacle_gaps
from .road_network import RoadNetwork
from .traffic_state import SimState, StepControl

__all__ = ["HazardController", "StepContext", "RecordedEvent", "SLOTS_PER_ATTEMPT"]

log = logging.getLogger(__name__)

SLOTS_PER_ATTEMPT = 2  # dormant vehicles reserved per planned event (a cut-in needs two)
_MIN_SEPARATION_S = 10.0  # a new hazard begins at least this long after the previous one


@dataclass(frozen=True)
class RecordedEvent:
    """A hazard that began: ``agent`` = ("vehicle", fleet index) or ("pedestrian", dart-out track index)."""

    tag: str
    step: int  # simulation step where it began
    agent: tuple[str, int]
    params: object


@dataclass
class StepContext:
    """Everything a hazard sees and may change at one simulation step."""

    t: int  # simulation step
    t_s: float  # log time, s (negative during the burn-in)
    st: SimState
    obs: dict[str, np.ndarray]
    ctl: "HazardController"
    acc: np.ndarray  # [N] acceleration overrides (nan: none)
    cap: np.ndarray  # [N] acceleration caps (inf: none)
    obstacles: list[tuple] = field(default_factory=list)  # (elem, u, y, half_len, half_wid, speed, lat_speed)

    @property
    def g(self) -> LaneGraph:
        return self.ctl.g

    @property
    def rel(self) -> LaneRelations:
        return self.ctl.rel

    def ego_front_u(self) -> float:
        """Ego front bumper along its current element, m."""
        return float(self.obs["u"][0] + self.st.fleet.front[0])

    def clear(self, e: int, u0: float, u1: float, look_s: float = 2.0) -> bool:
        """No active vehicle's box covers [u0, u1] (m along element ``e``), now or within ``look_s`` s for those
        driving towards it (vectorised over vehicles x route window)."""
        obs, st, f = self.obs, self.st, self.st.fleet
        on = (obs["win"] == e) & obs["valid_w"] & st.active[:, None]
        pos = st.s[:, None] - obs["win_s"]  # reference point along e, m (negative: before it)
        lo = pos - f.rear[:, None]
        hi = pos + f.front[:, None] + st.v[:, None] * look_s
        return not bool(np.any(on & (hi > u0) & (lo < u1)))

    def green_for(self, sig: int, seconds: float, state: int) -> bool:
        """Signal ``sig`` shows ``state`` from now for ``seconds``."""
        c = self.ctl
        t1 = min(self.t + int(np.ceil(seconds / c.dt)) + 1, len(c.lights))
        return bool(np.all(c.lights[self.t:t1, sig] == state))

    def visible(self, j: int, margin_m: float = 3.0) -> bool:
        """Vehicle ``j`` is within the box range of the ego (its box is written)."""
        obs = self.obs
        pts = locate(self.g, np.array([obs["elem"][0], obs["elem"][j]]), np.array([obs["u"][0], obs["u"][j]]))[0]
        return bool(np.linalg.norm(pts[0] - pts[1]) <= self.ctl.box_range_m - margin_m)

    def drive(self, j: int, a: float) -> None:
        """Override vehicle ``j``'s acceleration."""
        self.acc[j] = a

    def limit(self, j: int, a: float) -> None:
        """Cap vehicle ``j``'s acceleration (its driver model may still brake harder)."""
        self.cap[j] = min(self.cap[j], a)


class HazardController:
    """Runs the planned ``attempts`` of one log (see module docstring)."""

    def __init__(self, net: RoadNetwork, g: LaneGraph, rel: LaneRelations, lights: np.ndarray, dt: float,
                 burn_in_steps: int, attempts: list[EventAttempt], rng: np.random.Generator, box_range_m: float,
                 horizon_m: float) -> None:
        self.net, self.g, self.rel = net, g, rel
        self.lights = lights  # [steps, M] signal status at every simulation step
        self.dt, self.burn = dt, burn_in_steps
        self.attempts = attempts
        self.box_range_m = box_range_m
        self.horizon_m = horizon_m
        self.rng = rng
        # parameters of every type an attempt may fire, drawn up front (independent of the traffic)
        self.params = [{tag: draw_params(tag, rng) for tag in a.types + ((a.last_resort,) if a.last_resort else ())}
                       for a in attempts]
        self.done = [False] * len(attempts)
        self.events: list[RecordedEvent] = []
        self.merges: list[tuple[int, int]] = []  # (first vehicle, vehicle continuing its track)
        self.sites: list[DartOutSite] = []
        self.peds = DartOutPedestrians([])
        self.forced_lefts: tuple[int, ...] = ()  # connectors of the ego's planned unprotected left turns
        self.companion: int = -1  # dormant vehicle woken as a car ahead sharing the ego's route
        self._running = None
        self._running_k = -1
        self._failed: list[set[str]] = [set() for _ in attempts]
        self._last_begin_s = -np.inf
        self._slots: list[int] = []
        self._slot_sizes = np.stack([rng.uniform(4.3, 5.0, len(attempts) * SLOTS_PER_ATTEMPT),
                                     rng.uniform(1.8, 2.0, len(attempts) * SLOTS_PER_ATTEMPT),
                                     rng.uniform(1.45, 1.8, len(attempts) * SLOTS_PER_ATTEMPT)], axis=1)
        self.first_slot = 0

    # ------------------------------------------------------------------ TrafficHooks
    def ego_route(self, rng: np.random.Generator) -> tuple[np.ndarray, float] | None:
        """Junction events need the ego at a junction in time: the first attempt planned as an unprotected
        left turn or a red-light runner routes the ego through a fitting junction, placed where a typical
        urban ego (~7 m/s with stops) arrives at the start of the attempt's window."""
        from .hazards import forced_junction_route

        kinds = {"rare_unprotected_left_fast_oncoming": "left", "rare_red_light_runner": "cross"}
        for a in self.attempts:
            if a.types[0] in kinds:
                dist = float(self.rng.uniform(6.0, 8.0)) * (a.start_s + self.burn * self.dt + 4.0)
                out = forced_junction_route(self.g, self.rel, rng, self.horizon_m, self.net.drive_on_left,
                                            kinds[a.types[0]], dist)
                if out is not None:
                    route, u0, conns = out
                    if a.types[0] == "rare_unprotected_left_fast_oncoming":
                        self.forced_lefts = conns
                    return route, u0
        return None

    def slot_sizes(self) -> np.ndarray:
        return self._slot_sizes

    def bind(self, state: SimState) -> None:
        n = len(state.s)
        self.first_slot = n - len(self._slot_sizes)
        self._slots = list(range(self.first_slot, n))
        if any(a.types[0] == "rare_hard_brake" for a in self.attempts) and self._slots:
            self._add_companion(state)
        if any("rare_pedestrian_dart_out" in a.types for a in self.attempts) and self.net.walkways:
            f = state.fleet
            route = f.routes[0, :f.route_len[0]]
            spots = self.net.static_spots[:, :2] if len(self.net.static_spots) else np.zeros((0, 2))
            self.sites = plan_sites(self.g, self.rel, route, float(-f.route_start[0, 0]), spots, self.rng)
            self.peds = DartOutPedestrians(self.sites)

    def _add_companion(self, st: SimState) -> None:
        """A car ahead of the ego that happens to share its route (so that the ego follows someone when a
        hard-brake event is due): 22-32 m ahead of the ego's front, a little slower than the limit."""
        from .traffic_state import assign_route

        f = st.fleet
        j = self.take_slot()
        route = f.routes[0, :f.route_len[0]]
        ahead = float(-f.route_start[0, 0] + f.front[0] + self.rng.uniform(22.0, 32.0) + st.length[j] / 2.0)
        assign_route(self.g, f, j, route, ahead, float(self.rng.uniform(0.85, 0.95)))
        st.active[j] = st.shown[j] = True
        self.companion = j

    def step(self, t: int, st: SimState, obs: dict[str, np.ndarray]) -> StepControl:
        from .hazards import TRIGGERS

        n = len(st.s)
        ctx = StepContext(t, (t - self.burn) * self.dt, st, obs, self, np.full(n, np.nan), np.full(n, np.inf))
        if self._running is not None and not self._running.update(ctx):
            if not self._running.began:  # set up but never became a hazard: the attempt may try again
                self.done[self._running_k] = False
                self._failed[self._running_k].add(self._running.tag)
            self._running = None
        if self._running is None and ctx.t_s >= 0.0 and ctx.t_s - self._last_begin_s >= _MIN_SEPARATION_S:
            self._try_triggers(ctx, TRIGGERS)
        obst = [np.array(ctx.obstacles, dtype=np.float64).reshape(-1, 7)]
        if len(self.peds):  # the waiting / walking dart-out pedestrians are obstacles in their lane
            y, vy = self.peds.lateral(np.array([ctx.t_s]))
            half = np.full(len(self.peds), PED_SIZE_M / 2)
            obst.append(np.stack([self.peds.elem, self.peds.u_c, y[0], half, half, 0.0 * half, vy[0]], axis=1))
        arr = np.concatenate(obst)
        if len(arr):
            obst = LaneObstacles(arr[:, 0].astype(np.int64), *arr[:, 1:].T)
            gap, speed = lane_obstacle_gaps(obst, obs["win"], obs["win_s"], obs["valid_w"], st.s, st.fleet.front,
                                            st.fleet.half_width, st.active)
        else:
            gap, speed = np.full(n, np.inf), np.zeros(n)
        return StepControl(gap, speed, ctx.acc, ctx.cap)

    def _try_triggers(self, ctx: StepContext, triggers: dict) -> None:
        for k, a in enumerate(self.attempts):
            if self.done[k] or not a.start_s - 8.0 <= ctx.t_s < a.end_s:
                continue
            armed = [t for i, t in enumerate(a.types) if i == 0 or ctx.t_s >= a.fallback_s]
            if a.last_resort and ctx.t_s >= a.last_resort_s and not self.events and a.last_resort not in armed:
                armed.append(a.last_resort)
            for tag in armed:
                if tag in self._failed[k]:
                    continue
                hazard = triggers[tag](ctx, self.params[k][tag], a)
                if hazard is not None:
                    log.debug("step %d: %s set up (attempt %d)", ctx.t, tag, k)
                    self.done[k] = True
                    self._running, self._running_k = hazard, k
                    return

    # ------------------------------------------------------------------ services for hazards
    def take_slot(self) -> int | None:
        """A dormant vehicle for a new hazard agent (None when all are used)."""
        return self._slots.pop(0) if self._slots else None

    def peek_slot(self) -> int | None:
        """The dormant vehicle ``take_slot`` would return next (None when all are used)."""
        return self._slots[0] if self._slots else None

    def free_slot(self, j: int) -> None:
        """Return an unused dormant vehicle to the pool."""
        self._slots.insert(0, j)

    def slots_left(self) -> int:
        return len(self._slots)

    def record(self, ctx: StepContext, tag: str, agent: tuple[str, int], params: object) -> None:
        """The hazard ``tag`` begins now."""
        self.events.append(RecordedEvent(tag, ctx.t, agent, params))
        self._last_begin_s = ctx.t_s
        log.debug("step %d (%.2f s): %s begins, agent %s", ctx.t, ctx.t_s, tag, agent)

    # ------------------------------------------------------------------ outputs
    def parked_cars(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Parked cars of the dart-out sites: centres ``[C, 2]``, headings ``[C]``, sizes ``[C, 3]``."""
        return site_objects(self.g, self.sites)

    def pedestrian_tracks(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dart-out pedestrians at log times ``times_s [T]``: centres ``[T, P, 2]``, headings ``[T, P]``,
        speeds ``[T, P]``."""
        if not len(self.peds):
            return np.zeros((len(times_s), 0, 2)), np.zeros((len(times_s), 0)), np.zeros((len(times_s), 0))
        return self.peds.poses(self.g, times_s)

    def excluded_walkways(self) -> set[int]:
        """Walkways occupied by parked cars (no walkers there)."""
        return {s.walkway for s in self.sites}
