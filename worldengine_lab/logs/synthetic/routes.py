"""Seeded routes on the lane graph and collision-free spawn positions on lanes."""
from __future__ import annotations

import numpy as np

from .lane_graph import LaneGraph
from .road_network import TURN_STRAIGHT

__all__ = ["random_route", "spawn_on_lanes", "lane_points"]


def random_route(g: LaneGraph, rng: np.random.Generator, start: int, start_u: float, min_length_m: float,
                 explore: bool = False, turn_weight: float = 0.5) -> np.ndarray:
    """Random walk from element ``start`` (at arc length ``start_u``) until ``min_length_m`` lies ahead.

    A turn weighs ``turn_weight`` against a straight movement's 1 (long vehicles use ~0 and turn only where
    they must). With ``explore`` (the ego) a movement into a roadblock the route has not visited yet is six
    times as likely, so routes rarely loop. Returns element ids ``[R]``.
    """
    route = [start]
    ahead = g.length[start] - start_u
    visited = {int(g.lane_group[start])}
    while ahead < min_length_m:
        nxt = g.successors(route[-1])
        if nxt.size == 0:
            break
        if nxt.size == 1:
            e = int(nxt[0])
        else:
            w = np.where(g.turn[nxt] == TURN_STRAIGHT, 1.0, turn_weight)
            if explore:
                entry = np.array([g.successors(int(c))[0] for c in nxt])
                fresh = np.array([int(g.lane_group[x]) not in visited for x in entry])
                w = w * np.where(fresh, 6.0, 1.0)
            e = int(rng.choice(nxt, p=w / w.sum()))
        route.append(e)
        visited.add(int(g.lane_group[e]))
        ahead += g.length[e]
    return np.array(route, np.int64)


def spawn_on_lanes(g: LaneGraph, rng: np.random.Generator, cand_elem: np.ndarray, cand_u: np.ndarray,
                   lengths_m: np.ndarray, taken: dict[int, list[tuple[float, float]]], margin_m: float = 8.0,
                   tries: int = 30) -> list[tuple[int, float] | None]:
    """Place vehicles of ``lengths_m [N]`` at random candidate points ``(cand_elem [K], cand_u [K])`` (lane
    centreline vertices about 1 m apart, so sampling them is uniform over lane length).

    ``taken`` maps lane element -> occupied (centre u, half length) and is updated. A vehicle keeps
    ``margin_m`` from its neighbours and 3 m from the lane ends; None where no place was found.
    """
    out: list[tuple[int, float] | None] = []
    for length in lengths_m:
        half = 0.5 * float(length)
        placed = None
        for _ in range(tries if len(cand_elem) else 0):
            k = int(rng.integers(len(cand_elem)))
            e, u = int(cand_elem[k]), float(cand_u[k] + rng.uniform(-0.5, 0.5))
            if not 3.0 + half < u < g.length[e] - 3.0 - half:
                continue
            if all(abs(u - v) > half + h + margin_m for v, h in taken.get(e, [])):
                placed = (e, u)
                taken.setdefault(e, []).append((u, half))
                break
        out.append(placed)
    return out


def lane_points(g: LaneGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every lane centreline vertex: element ``[P]``, arc length along it ``[P]`` (m), position ``[P, 2]``."""
    elem = np.repeat(np.arange(g.num_elements), g.elem_p1 - g.elem_p0)
    keep = ~g.is_connector[elem]
    u = g.pts_s - g.elem_gs[elem]
    return elem[keep], u[keep], g.pts[keep]
