"""Mutable state of the vehicle simulation and the interface through which scripted hazards steer it.

The traffic model (``traffic``) owns the step loop; a ``TrafficHooks`` object (the hazard controller of
``hazard_controller``) may, at every step, switch vehicles on or off, give a vehicle a new route, offset it
sideways from its lane centreline, make it ignore signals, override its acceleration and add obstacles that
are not vehicles (a pedestrian or a vehicle intruding into a lane) to the perception of every vehicle.

All arrays are over the N simulated vehicles (index 0 is the ego), in the traffic model's units: arc length
``s`` along each vehicle's route (m), speed (m/s), acceleration (m/s^2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .lane_graph import LaneGraph, locate

__all__ = ["Fleet", "SimState", "StepControl", "TrafficHooks", "route_profiles", "assign_route", "PROFILE_DS"]

PROFILE_DS = 2.0  # spacing of the free-speed profile, m


@dataclass(frozen=True)
class Fleet:
    """Routes, sizes and driver parameters of N vehicles (arrays may be edited in place by hazards)."""

    routes: np.ndarray  # [N, R] int64 route elements, padded with -1
    route_start: np.ndarray  # [N, R] float64 route arc length where each element starts, m (inf pad)
    route_len: np.ndarray  # [N] int64 elements in each route
    route_end: np.ndarray  # [N] float64 arc length of the route end, m
    front: np.ndarray  # [N] float64 reference point -> front bumper, m
    rear: np.ndarray  # [N] float64 reference point -> rear bumper, m
    half_width: np.ndarray  # [N] float64 half the box width, m
    a_max: np.ndarray  # [N] float64 IDM maximum acceleration, m/s^2
    headway: np.ndarray  # [N] float64 IDM time headway, s
    s0: np.ndarray  # [N] float64 IDM standstill gap, m
    b_max: np.ndarray  # [N] float64 strongest braking the driver model uses, m/s^2 (positive)
    profile: np.ndarray  # [N, S] float64 free-road speed cap every PROFILE_DS m from the route start, m/s


@dataclass
class SimState:
    """The per-step state that hazards may edit (N vehicles)."""

    fleet: Fleet
    s: np.ndarray  # [N] float64 arc length along the route, m
    v: np.ndarray  # [N] float64 speed, m/s
    active: np.ndarray  # [N] bool simulated and perceived by the others (False: dormant or retired)
    shown: np.ndarray  # [N] bool written to the log as a box (an active vehicle may be a hidden "ghost")
    lat: np.ndarray  # [N] float64 lateral offset from the route centreline, m, left positive
    lat_v: np.ndarray  # [N] float64 rate of the lateral offset, m/s
    ignore_signal: np.ndarray  # [N] bool drives through red lights (and does not yield to right of way)
    length: np.ndarray  # [N] float64 box length, m
    width: np.ndarray  # [N] float64 box width, m
    height: np.ndarray  # [N] float64 box height, m
    category: np.ndarray  # [N] int64 schema.CATEGORY_NAMES index
    accel: np.ndarray  # [N] float64 acceleration applied at the previous step, m/s^2
    violator_conn: np.ndarray  # [N] int64 connector whose red the vehicle was seen running, -1 none


@dataclass(frozen=True)
class StepControl:
    """What the hazards ask of one step (N vehicles)."""

    obstacle_gap: np.ndarray  # [N] float64 bumper gap to the nearest non-vehicle obstacle in the lane, m (inf none)
    obstacle_speed: np.ndarray  # [N] float64 that obstacle's speed along the vehicle's route, m/s (negative: oncoming)
    accel: np.ndarray  # [N] float64 acceleration override, m/s^2 (nan: the driver model decides)
    accel_cap: np.ndarray  # [N] float64 upper bound on the driver model's acceleration, m/s^2 (inf: none)


class TrafficHooks(Protocol):
    """Scripted hazards plugged into ``traffic.simulate_vehicles``."""

    def ego_route(self, rng: np.random.Generator) -> tuple[np.ndarray, float] | None:
        """A forced ego route (elements ``[R]``, start arc length on the first one in m), or None."""

    def slot_sizes(self) -> np.ndarray:
        """``[K, 3]`` length, width, height (m) of the dormant vehicles appended to the fleet."""

    def bind(self, state: SimState) -> None:
        """Called once the fleet exists (the ego route is ``state.fleet.routes[0]``)."""

    def step(self, t: int, state: SimState, obs: dict[str, np.ndarray]) -> StepControl:
        """Called at simulation step ``t`` after perception, before the driver model."""


def route_profiles(g: LaneGraph, route_start: np.ndarray, routes: np.ndarray, route_end: np.ndarray,
                   factor: np.ndarray, vmax: np.ndarray, lat_acc: np.ndarray, size: int | None = None) -> np.ndarray:
    """Free-road speed cap ``[N, S]`` along each route: speed limit x factor, curvature, route end; then
    lowered so that every drop can be reached braking at 1.2 m/s^2. ``size`` fixes S (default: longest route)."""
    n = len(routes)
    span = route_end - route_start[:, 0]
    size = int(np.ceil(span.max() / PROFILE_DS)) + 2 if size is None else size
    rel = PROFILE_DS * np.arange(size)
    s = route_start[:, :1] + rel[None, :]  # [N, S]
    k = np.clip((route_start[:, None, :] <= s[:, :, None]).sum(-1) - 1, 0, routes.shape[1] - 1)
    elem = np.take_along_axis(np.maximum(routes, 0), k, axis=1)
    u = s - np.take_along_axis(route_start, k, axis=1)
    _, _, kappa = locate(g, elem, u)
    cap = np.minimum(g.speed_limit[elem] * factor[:, None], vmax[:, None])
    cap = np.minimum(cap, np.sqrt(lat_acc[:, None] / np.maximum(kappa, 1e-4)))
    cap = np.where(s >= route_end[:, None] - 1.0, 0.0, cap)
    b = 1.2
    w = cap**2 + 2 * b * rel[None, :]
    w = np.minimum.accumulate(w[:, ::-1], axis=1)[:, ::-1]
    return np.sqrt(np.maximum(w - 2 * b * rel[None, :], 0.0)).reshape(n, size)


def assign_route(g: LaneGraph, f: Fleet, j: int, route: np.ndarray, start_u: float, factor: float = 1.0,
                 lat_acc: float = 2.5) -> None:
    """Give vehicle ``j`` the route ``route [R']`` (elements) with arc length 0 at ``start_u`` m along its first
    element, and a free-speed profile at ``factor`` x the speed limit. Routes longer than the fleet's route
    width are cut."""
    width = f.routes.shape[1]
    r = np.asarray(route, np.int64)[:width]
    start = np.concatenate([[0.0], np.cumsum(g.length[r[:-1]])]) - start_u
    f.routes[j] = -1
    f.routes[j, :len(r)] = r
    f.route_start[j] = np.inf
    f.route_start[j, :len(r)] = start
    f.route_len[j] = len(r)
    f.route_end[j] = start[-1] + g.length[r[-1]]
    f.profile[j] = route_profiles(g, f.route_start[j:j + 1], f.routes[j:j + 1], f.route_end[j:j + 1],
                                  np.array([factor]), np.array([np.inf]), np.array([lat_acc]),
                                  size=f.profile.shape[1])[0]
