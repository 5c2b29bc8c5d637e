"""Parked cars along a kerb and the pedestrian who steps out between them (``PedestrianDartOut``).

A *site* is a point ``u_c`` along a kerb-side lane of the ego's route that has a walkway along its kerb. Two
or three cars stand there half on the walkway (each overlaps the lane by ``PARK_OVERLAP_M``, which every
vehicle in the lane clears), with a gap of 1.3-2 m at ``u_c``; a pedestrian waits on the far side of the
walkway behind the gap. Positions are in the lane's frame: arc length ``u`` along the lane, lateral ``y``
(left positive); ``side`` = +1 when the kerb is on the left of the lane, -1 on the right.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lane_graph import LaneGraph, locate
from .lane_relations import LaneRelations

__all__ = ["DartOutSite", "plan_sites", "site_objects", "DartOutPedestrians", "PARK_OVERLAP_M", "PED_SIZE_M"]

PARK_OVERLAP_M = 0.4  # parked cars reach this far into the kerb lane, m
PED_SIZE_M = 0.55  # the pedestrian's box (length = width), m
_PED_BACK_M = 2.6  # pedestrian waits this far beyond the road edge (far half of the 3 m walkway), m
_RETURN_SPEED = 1.4  # walking speed back to the walkway, m/s


@dataclass(frozen=True)
class DartOutSite:
    """One site: a gap between parked cars on ``elem`` at ``u_c`` m, kerb on ``side``."""

    elem: int  # kerb-side lane element
    u_c: float  # arc length of the gap (and of the pedestrian's walking line), m
    side: float  # +1 kerb on the left of the lane, -1 on the right
    lane_width: float  # m
    walkway: int  # index into RoadNetwork.walkways (no other walkers there)
    car_u: tuple[float, ...]  # arc length of each parked car's centre, m
    car_size: tuple[tuple[float, float, float], ...]  # length, width, height of each parked car, m

    @property
    def y_start(self) -> float:
        """Pedestrian's waiting position, lateral, m."""
        return self.side * (0.5 * self.lane_width + _PED_BACK_M)

    def y_stop(self, depth_m: float) -> float:
        """Lateral position ``depth_m`` beyond the lane edge (into the lane), m."""
        return self.side * (0.5 * self.lane_width - depth_m)


def plan_sites(g: LaneGraph, rel: LaneRelations, ego_route: np.ndarray, ego_start_u: float, spots_xy: np.ndarray,
               rng: np.random.Generator, max_sites: int = 3) -> list[DartOutSite]:
    """Up to ``max_sites`` sites on distinct kerb-side lanes (>= 60 m long, with a walkway) of the ego's route
    ``ego_route [R]`` lying 40-900 m ahead of its start, away from the static-object spots ``spots_xy [K, 2]``."""
    starts = np.concatenate([[0.0], np.cumsum(g.length[ego_route[:-1]])]) - ego_start_u
    sites: list[DartOutSite] = []
    used: set[int] = set()
    for e, s0 in zip(ego_route.tolist(), starts.tolist()):
        if len(sites) >= max_sites:
            break
        if (g.is_connector[e] or e in used or rel.kerb_side[e] == 0 or rel.walkway[e] < 0
                or g.length[e] < 60.0 or not 40.0 <= s0 <= 900.0):
            continue
        used.add(e)
        for _ in range(8):
            gap = float(rng.uniform(1.3, 2.0))
            lens = rng.uniform(4.2, 4.9, 3)
            u_c = float(rng.uniform(28.0, g.length[e] - 22.0))
            cars = [u_c - gap / 2 - lens[0] / 2, u_c + gap / 2 + lens[1] / 2]
            if rng.random() < 0.5:
                cars.append(cars[0] - lens[0] / 2 - float(rng.uniform(1.0, 2.5)) - lens[2] / 2)
            if min(cars) - 3.0 < 15.0:
                continue
            pts = locate(g, np.full(len(cars), e), np.array(cars))[0]
            if len(spots_xy) and np.linalg.norm(pts[:, None, :] - spots_xy[None], axis=-1).min() < 6.0:
                continue
            sizes = tuple((float(lens[k]), float(rng.uniform(1.75, 1.95)), float(rng.uniform(1.45, 1.75)))
                          for k in range(len(cars)))
            sites.append(DartOutSite(e, u_c, float(rel.kerb_side[e]), float(rel.lane_width[e]),
                                     int(rel.walkway[e]), tuple(float(c) for c in cars), sizes))
            break
    return sites


def _to_xy(g: LaneGraph, elem: int, u: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lane frame -> local frame: ``u [...]``, ``y [...]`` -> (xy ``[..., 2]``, lane heading ``[...]``)."""
    xy, yaw, _ = locate(g, np.full(np.shape(u), elem), np.asarray(u, float))
    return xy + np.asarray(y)[..., None] * np.stack([-np.sin(yaw), np.cos(yaw)], axis=-1), yaw


def site_objects(g: LaneGraph, sites: list[DartOutSite]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parked cars of all sites: centres ``[C, 2]`` (m, local), headings ``[C]`` (rad), sizes ``[C, 3]`` (m)."""
    xy, yaw, size = [], [], []
    for st in sites:
        for u, (ln, wd, ht) in zip(st.car_u, st.car_size):
            y = st.side * (0.5 * st.lane_width + 0.5 * wd - PARK_OVERLAP_M)
            p, h = _to_xy(g, st.elem, np.array([u]), np.array([y]))
            xy.append(p[0])
            yaw.append(float(h[0]))
            size.append((ln, wd, ht))
    return (np.array(xy).reshape(-1, 2), np.array(yaw), np.array(size).reshape(-1, 3))


class DartOutPedestrians:
    """The P pedestrians of all sites, as arrays: each waits, walks into its lane, hesitates, walks back and
    waits again. Lateral positions are in the frame of the site's lane (``DartOutSite``)."""

    def __init__(self, sites: list[DartOutSite]) -> None:
        self.sites = sites
        self.elem = np.array([s.elem for s in sites], np.int64)  # [P]
        self.u_c = np.array([s.u_c for s in sites])  # [P] m
        self.side = np.array([s.side for s in sites])  # [P]
        self.y_start = np.array([s.y_start for s in sites])  # [P] m
        self.y_stop = self.y_start.copy()  # [P] m, set when a walk starts
        self.t0 = np.full(len(sites), np.nan)  # [P] log time the walk starts, s (nan: never)
        self.speed = np.ones(len(sites))  # [P] m/s
        self.hesitate = np.zeros(len(sites))  # [P] s

    def __len__(self) -> int:
        return len(self.sites)

    def start(self, k: int, t0: float, speed: float, depth: float, hesitate: float) -> None:
        """Pedestrian ``k`` starts walking at log time ``t0`` (s)."""
        self.t0[k], self.speed[k], self.hesitate[k] = t0, speed, hesitate
        self.y_stop[k] = self.sites[k].y_stop(depth)

    def _phases(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dist = np.abs(self.y_stop - self.y_start)
        t1 = dist / self.speed  # reaches its stop, s after t0
        t2 = t1 + self.hesitate  # turns back
        return t1, t2, t2 + dist / _RETURN_SPEED  # back at its waiting position

    def lateral(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lateral position and its rate at log times ``t [T]`` (s): ``[T, P]`` m, ``[T, P]`` m/s."""
        t1, t2, t3 = self._phases()
        started = ~np.isnan(self.t0)[None, :]
        tau = np.where(started, np.asarray(t, float).reshape(-1, 1) - np.nan_to_num(self.t0)[None, :], -1.0)
        toward = np.sign(self.y_stop - self.y_start)[None, :]
        y0, y1 = self.y_start[None, :], self.y_stop[None, :]
        y = np.where(tau < t1, y0 + toward * self.speed * np.maximum(tau, 0.0),
                     np.where(tau < t2, y1, np.where(tau < t3, y1 - toward * _RETURN_SPEED * (tau - t2), y0)))
        vy = np.where((tau >= 0) & (tau < t1), toward * self.speed,
                      np.where((tau >= t2) & (tau < t3), -toward * _RETURN_SPEED, 0.0))
        return y, vy

    def finished(self, k: int, t: float) -> bool:
        """Pedestrian ``k`` has walked and is back at its waiting position at log time ``t`` (s)."""
        return bool(t > self.t0[k] + self._phases()[2][k])

    def poses(self, g: LaneGraph, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """At log times ``times [T]``: centres ``[T, P, 2]`` (m, local), headings ``[T, P]`` (rad), speeds
        ``[T, P]`` (m/s). Walking, a pedestrian faces its direction of motion; waiting, it faces the road."""
        y, vy = self.lateral(times)
        xy, lane_yaw, _ = locate(g, np.broadcast_to(self.elem, y.shape), np.broadcast_to(self.u_c, y.shape))
        xy = xy + y[..., None] * np.stack([-np.sin(lane_yaw), np.cos(lane_yaw)], axis=-1)
        facing = np.where(vy != 0.0, np.sign(vy), -self.side[None, :])  # +1: towards the lane's left
        yaw = (lane_yaw + facing * np.pi / 2 + np.pi) % (2 * np.pi) - np.pi
        return xy, yaw, np.abs(vy)
