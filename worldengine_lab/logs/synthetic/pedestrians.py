"""Pedestrians and static objects, in closed form over time (no stepping).

* Walkers loop along walkways: out along one side of the walkway's centre line and back along the other,
  at a constant speed, never entering the road.
* Crossers wait at a kerb of a crosswalk and cross on their intersection's all-red walk interval, one way per
  signal cycle.
* Static objects (cones, barriers, construction signs, generic objects) stand on kerb-side spots off the lanes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from shapely.geometry import LineString

from . import geometry as geo
from .config import SynthConfig
from .road_network import RoadNetwork
from .signals import WALK_SPEED_MPS, SignalPlan, walk_clock

__all__ = ["Pedestrians", "StaticObjects", "simulate_pedestrians", "place_static_objects", "PEDESTRIAN"]

PEDESTRIAN = 1  # index into schema.CATEGORY_NAMES
# (category index into schema.CATEGORY_NAMES, length, width, height, probability)
_STATIC_KINDS = ((3, 0.4, 0.4, 0.7, 0.5), (4, 2.0, 0.5, 1.0, 0.25), (5, 0.6, 0.3, 1.5, 0.1), (6, 0.6, 0.6, 0.9, 0.15))


@dataclass(frozen=True)
class Pedestrians:
    """P pedestrians over T frames."""

    xy: np.ndarray  # [T, P, 2] float64, m, local
    yaw: np.ndarray  # [T, P] float64, rad
    speed: np.ndarray  # [T, P] float64, m/s
    on_crosswalk: np.ndarray  # [T, P] bool currently walking on a crosswalk
    size: np.ndarray  # [P, 3] float64 length, width, height, m


@dataclass(frozen=True)
class StaticObjects:
    """K objects that never move."""

    xy: np.ndarray  # [K, 2] float64, m, local
    yaw: np.ndarray  # [K] float64, rad
    size: np.ndarray  # [K, 3] float64 length, width, height, m
    category: np.ndarray  # [K] int64 index into schema.CATEGORY_NAMES


def _loops(net: RoadNetwork, exclude: frozenset[int] = frozenset()) -> list[np.ndarray]:
    """Closed walking loops ``[K, 2]``: out on the left of each walkway line and back on its right
    (walkways whose index is in ``exclude`` get none)."""
    out = []
    for k, w in enumerate(net.walkways):
        if len(w.path) < 2 or k in exclude:  # corner pads have no walking line
            continue
        there, back = geo.offset(w.path, 0.6), geo.offset(w.path, -0.6)[::-1]
        out.append(geo.resample(np.concatenate([there, back, there[:1]]), 0.5))
    return out


def simulate_pedestrians(net: RoadNetwork, plan: SignalPlan, cfg: SynthConfig, rng: np.random.Generator,
                         times_s: np.ndarray, exclude_walkways: frozenset[int] = frozenset()) -> Pedestrians:
    """Walkers on walkways and crossers on walk intervals at ``times_s [T]`` (s). Walkways listed in
    ``exclude_walkways`` (indices into ``net.walkways``, e.g. where cars are parked) have no walkers."""
    loops = _loops(net, exclude_walkways)
    n_walk = int(rng.poisson(cfg.walkers_per_walkway * len(loops))) if loops else 0
    which = rng.integers(0, len(loops), n_walk) if n_walk else np.zeros(0, np.int64)
    # walkers: one table of all loops, addressed by global arc length
    cum = [geo.cumulative_length(lp) for lp in loops]
    base = np.concatenate([[0.0], np.cumsum([c[-1] + 1.0 for c in cum])])[:-1] if loops else np.zeros(0)
    table = np.concatenate(loops) if loops else np.zeros((0, 2))
    table_s = np.concatenate([b + c for b, c in zip(base, cum)]) if loops else np.zeros(0)
    lengths = np.array([c[-1] for c in cum])[which] if loops else np.zeros(0)
    # walkers of one loop share a pace and are spread evenly along it, so they never walk into each other
    loop_speed = rng.uniform(1.0, 1.6, len(loops))
    speed = loop_speed[which]
    rank = np.array([np.count_nonzero(which[:k] == which[k]) for k in range(n_walk)])
    count = np.bincount(which, minlength=len(loops))[which] if n_walk else np.zeros(0)
    phase = np.mod(rng.uniform(0.0, 1.0, len(loops))[which] + rank / np.maximum(count, 1), 1.0) * lengths
    walk_xy = np.zeros((len(times_s), n_walk, 2))
    walk_yaw = np.zeros((len(times_s), n_walk))
    if n_walk:
        gs = base[which][None, :] + np.mod(phase[None, :] + speed[None, :] * times_s[:, None], lengths[None, :])
        i = np.clip(np.searchsorted(table_s, gs, side="right") - 1, 0, len(table_s) - 2)
        t = np.clip((gs - table_s[i]) / np.maximum(table_s[i + 1] - table_s[i], 1e-9), 0.0, 1.0)
        walk_xy = table[i] + t[..., None] * (table[i + 1] - table[i])
        d = table[i + 1] - table[i]
        walk_yaw = np.arctan2(d[..., 1], d[..., 0])

    # crossers at intersections with a walk interval
    inter_idx = {it.fid: k for k, it in enumerate(net.intersections)}
    choices = [cw for cw in net.crosswalks if not np.isnan(plan.walk_start[inter_idx[cw.intersection_fid]])]
    n_cross = 0
    paths, nodes = [], []
    if choices:
        per_node: dict[int, list] = {}
        for cw in choices:
            per_node.setdefault(inter_idx[cw.intersection_fid], []).append(cw)
        for ni in sorted(per_node):
            cws = per_node[ni]
            chosen: list[LineString] = []
            for j in rng.permutation(len(cws)):  # walking lines that do not meet (not at the same corner)
                line = LineString(cws[j].path)
                if len(chosen) < cfg.crossers_per_intersection and not any(line.intersects(c) for c in chosen):
                    chosen.append(line)
                    paths.append(cws[j].path)
                    nodes.append(ni)
        n_cross = len(paths)
    rel, cyc = walk_clock(plan, times_s)
    cross_xy = np.zeros((len(times_s), n_cross, 2))
    cross_yaw = np.zeros((len(times_s), n_cross))
    cross_speed = np.zeros((len(times_s), n_cross))
    on_cw = np.zeros((len(times_s), n_cross), bool)
    if n_cross:
        p = np.stack(paths)  # [C, 2, 2] kerb-to-kerb lines
        nodes_arr = np.array(nodes)
        width = np.linalg.norm(p[:, 1] - p[:, 0], axis=1)
        delay = rng.uniform(0.3, 1.5, n_cross)
        # progress of this cycle's crossing: 0 before the walk interval, 1 after it
        prog = np.clip((rel[:, nodes_arr] - delay[None, :]) * WALK_SPEED_MPS / width[None, :], 0.0, 1.0)
        forward = np.mod(cyc[:, nodes_arr] + rng.integers(0, 2, n_cross)[None, :], 2) == 0
        frac = np.where(forward, prog, 1.0 - prog)  # alternate directions, one crossing per cycle
        cross_xy = p[None, :, 0, :] + frac[..., None] * (p[None, :, 1, :] - p[None, :, 0, :])
        head = np.arctan2(p[:, 1, 1] - p[:, 0, 1], p[:, 1, 0] - p[:, 0, 0])
        cross_yaw = np.where(forward, head[None, :], geo.wrap_angle(head + np.pi)[None, :])
        on_cw = (prog > 0.0) & (prog < 1.0)
        cross_speed = np.where(on_cw, WALK_SPEED_MPS, 0.0)
    xy = np.concatenate([walk_xy, cross_xy], axis=1)
    yaw = np.concatenate([walk_yaw, cross_yaw], axis=1)
    spd = np.concatenate([np.broadcast_to(speed, (len(times_s), n_walk)), cross_speed], axis=1)
    on = np.concatenate([np.zeros((len(times_s), n_walk), bool), on_cw], axis=1)
    n = n_walk + n_cross
    size = np.stack([rng.uniform(0.5, 0.8, n), rng.uniform(0.5, 0.8, n), rng.uniform(1.5, 1.9, n)], axis=1)
    return Pedestrians(xy, yaw, np.array(spd), on, size)


def place_static_objects(net: RoadNetwork, cfg: SynthConfig, rng: np.random.Generator) -> StaticObjects:
    """A few static objects on the network's kerb-side spots."""
    spots = net.static_spots
    lo, hi = cfg.static_objects
    k = min(int(rng.integers(lo, hi + 1)), len(spots))
    pick = np.sort(rng.choice(len(spots), k, replace=False)) if k else np.zeros(0, np.int64)
    probs = np.array([p for *_, p in _STATIC_KINDS])
    kind = rng.choice(len(_STATIC_KINDS), k, p=probs / probs.sum())
    table = np.array([row[:4] for row in _STATIC_KINDS])
    return StaticObjects(
        xy=spots[pick, :2].reshape(-1, 2), yaw=spots[pick, 2].reshape(-1),
        size=table[kind, 1:4].reshape(-1, 3), category=table[kind, 0].astype(np.int64),
    )
