"""Shared pieces of the rare-event behaviours: waking dormant vehicles, routes, smooth lateral profiles and
the behaviour base class (``hazards_lane``, ``hazards_crossing``)."""
from __future__ import annotations

import numpy as np

from .events import EventAttempt
from .hazard_controller import StepContext
from .routes import random_route
from .traffic_state import SimState, assign_route

__all__ = ["Behaviour", "smooth", "dsmooth", "wake", "copy_route", "route_from", "next_slot_length"]


def smooth(x: float) -> float:
    """Smoothstep 0 -> 1 for ``x`` in [0, 1] (clipped)."""
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def dsmooth(x: float) -> float:
    """Derivative of ``smooth``."""
    return 6.0 * x * (1.0 - x) if 0.0 <= x <= 1.0 else 0.0


def wake(ctx: StepContext, route: np.ndarray, u0: float, speed: float, factor: float = 1.0) -> int | None:
    """Wake a dormant vehicle on ``route`` at ``u0`` m along its first element, driving at ``speed`` m/s."""
    j = ctx.ctl.take_slot()
    if j is None:
        return None
    st = ctx.st
    assign_route(ctx.g, st.fleet, j, route, u0, factor)
    st.s[j], st.v[j] = 0.0, speed
    st.active[j] = st.shown[j] = True
    return j


def copy_route(st: SimState, src: int, dst: int) -> None:
    """Vehicle ``dst`` takes vehicle ``src``'s route (and its arc-length frame and speed profile)."""
    f = st.fleet
    for arr in (f.routes, f.route_start, f.route_len, f.route_end, f.profile):
        arr[dst] = arr[src]


def route_from(ctx: StepContext, head: list[int], u0: float) -> np.ndarray:
    """``head`` elements (the first one entered at ``u0`` m) followed by a random continuation."""
    g, c = ctx.g, ctx.ctl
    last = head[-1]
    if g.is_connector[last]:
        tail = random_route(g, c.rng, int(g.successors(last)[0]), 0.0, c.horizon_m)
        return np.concatenate([np.array(head, np.int64), tail])
    tail = random_route(g, c.rng, last, u0 if len(head) == 1 else 0.0, c.horizon_m)
    return np.concatenate([np.array(head[:-1], np.int64), tail])


def next_slot_length(ctx: StepContext) -> float:
    """Length (m) of the dormant vehicle the next hazard would wake."""
    j = ctx.ctl.peek_slot()
    return float(ctx.st.length[j]) if j is not None else 4.8


class Behaviour:
    """A running hazard: ``update(ctx)`` at every step returns False once it is over; ``begin`` records the
    moment the hazard begins."""

    tag = ""

    def __init__(self, params, attempt: EventAttempt) -> None:
        self.params, self.attempt = params, attempt
        self.began = False
        self.t_start = 0.0

    def begin(self, ctx: StepContext, agent: tuple[str, int], params=None) -> None:
        self.began = True
        self.t_start = ctx.t_s
        ctx.ctl.record(ctx, self.tag, agent, params if params is not None else self.params)


