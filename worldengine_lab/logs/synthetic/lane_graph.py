"""The road network as flat arrays for the traffic model: elements (lanes + connectors), their polylines,
successors, signals and the conflict zones between connectors of the same junction.

An *element* is a lane or a lane connector; vehicles drive along sequences of elements (routes). All
element centrelines are concatenated into one table addressed by a global arc length so that positions of
many vehicles are looked up in one vectorised ``searchsorted``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, Point

from . import geometry as geo
from .road_network import TURN_LEFT, TURN_RIGHT, TURN_STRAIGHT, RoadNetwork

__all__ = ["LaneGraph", "build_lane_graph", "locate", "CONFLICT_MERGE", "CONFLICT_DIVERGE", "CONFLICT_CROSS"]

CONFLICT_MERGE, CONFLICT_DIVERGE, CONFLICT_CROSS = 0, 1, 2
_CONFLICT_DIST_M = 3.0  # centrelines closer than this = vehicles on them may touch
_GAP_M = 10.0  # spacing of elements in the global arc-length table


@dataclass(frozen=True)
class LaneGraph:
    """Flat arrays over E elements (lanes first, then connectors, each sorted by fid)."""

    fid: np.ndarray  # [E] int64 lane fid or connector fid
    is_connector: np.ndarray  # [E] bool
    length: np.ndarray  # [E] float64, m
    speed_limit: np.ndarray  # [E] float64, m/s
    roadblock: np.ndarray  # [E] int64 lane group fid (lanes) or lane group connector fid (connectors)
    lane_group: np.ndarray  # [E] int64 lane group fid of the lane / of the connector's exit lane
    node: np.ndarray  # [E] int32 index into network.intersections, -1 for lanes
    turn: np.ndarray  # [E] int8 LaneConnectorType, -1 for lanes
    signal: np.ndarray  # [E] int32 index into signal_fids, -1 when unsignalised
    signal_fids: np.ndarray  # [M] int64 connector fids of the signalised connectors
    succ_ptr: np.ndarray  # [E+1] int64 CSR pointers into succ
    succ: np.ndarray  # [S] int32 successor elements
    pts: np.ndarray  # [P, 2] float64, m, local: all centreline vertices
    pts_s: np.ndarray  # [P] float64 global arc length of each vertex
    pts_yaw: np.ndarray  # [P] float64 tangent heading, rad
    pts_kappa: np.ndarray  # [P] float64 unsigned curvature, 1/m
    elem_gs: np.ndarray  # [E] float64 global arc length of each element's first vertex
    elem_p0: np.ndarray  # [E] int64 first vertex index
    elem_p1: np.ndarray  # [E] int64 one past the last vertex index
    conflict: np.ndarray  # [E, E] int32 index into the conflict arrays (zone on the row element), -1 none
    conflict_kind: np.ndarray  # [C] int8 CONFLICT_*
    zone_lo: np.ndarray  # [C] float64 start of the conflict zone along the row element, m
    zone_hi: np.ndarray  # [C] float64 end of the conflict zone along the row element, m
    other_has_priority: np.ndarray  # [C] bool the column element has right of way over the row element
    crosswalk_lo: np.ndarray  # [E] float64 arc length where the element enters a crosswalk (nan: never)
    crosswalk_hi: np.ndarray  # [E] float64 arc length where it leaves the last crosswalk (nan: never)

    @property
    def num_elements(self) -> int:
        return len(self.fid)

    def successors(self, e: int) -> np.ndarray:
        return self.succ[self.succ_ptr[e]:self.succ_ptr[e + 1]]


def _priority_key(turn: int, centre: np.ndarray, fid: int, drive_on_left: bool) -> tuple[int, float, int]:
    """Right of way between conflicting connectors: straight, then the near-side turn, then the turn across
    oncoming traffic; then the smaller lateral shift; then the smaller fid."""
    far_turn, near_turn = (TURN_RIGHT, TURN_LEFT) if drive_on_left else (TURN_LEFT, TURN_RIGHT)
    rank = {TURN_STRAIGHT: 0, near_turn: 1, far_turn: 2}.get(turn, 3)
    h = float(geo.vertex_headings(centre)[0])
    d = centre[-1] - centre[0]
    lateral = abs(float(np.cos(h) * d[1] - np.sin(h) * d[0]))
    return rank, round(lateral, 3), fid


def build_lane_graph(net: RoadNetwork) -> LaneGraph:
    """Flatten ``net`` for the traffic model."""
    lanes = sorted(net.lanes, key=lambda ln: ln.fid)
    conns = sorted(net.connectors, key=lambda c: c.fid)
    fids = [ln.fid for ln in lanes] + [c.fid for c in conns]
    index = {f: i for i, f in enumerate(fids)}
    nl, e_count = len(lanes), len(fids)
    centres = [geo.resample(ln.centre, 1.0) for ln in lanes] + [c.centre for c in conns]
    lengths = np.array([geo.polyline_length(c) for c in centres])
    inter_index = {it.fid: k for k, it in enumerate(net.intersections)}
    lane_group_of = {ln.fid: ln.group_fid for ln in lanes}

    succ_lists: list[list[int]] = [[] for _ in range(e_count)]
    for c in conns:
        succ_lists[index[c.exit_lane_fid]].append(index[c.fid])
        succ_lists[index[c.fid]] = [index[c.entry_lane_fid]]
    succ_ptr = np.concatenate([[0], np.cumsum([len(s) for s in succ_lists])]).astype(np.int64)
    succ = np.array([x for s in succ_lists for x in s], dtype=np.int32)

    signalised = [c for c in conns if c.signalised]
    signal = np.full(e_count, -1, np.int32)
    for k, c in enumerate(signalised):
        signal[index[c.fid]] = k

    p0, pts, pts_s, yaw, kappa, gs = [], [], [], [], [], []
    start, g = 0, 0.0
    for c, length in zip(centres, lengths):
        p0.append(start)
        gs.append(g)
        pts.append(c)
        pts_s.append(g + geo.cumulative_length(c))
        yaw.append(np.unwrap(geo.vertex_headings(c)))
        kappa.append(geo.curvature(c))
        start += len(c)
        g += length + _GAP_M
    p0_arr = np.array(p0, np.int64)

    conflict = np.full((e_count, e_count), -1, np.int32)
    kinds, lo, hi, prio = [], [], [], []
    keys = {c.fid: _priority_key(c.turn_type, c.centre, c.fid, net.drive_on_left) for c in conns}
    by_node: dict[int, list] = {}
    for c in conns:
        by_node.setdefault(c.intersection_fid, []).append(c)
    for node_conns in by_node.values():
        for a in node_conns:
            sa = geo.cumulative_length(a.centre)
            for b in node_conns:
                if a.fid == b.fid:
                    continue
                d = np.linalg.norm(a.centre[:, None, :] - b.centre[None, :, :], axis=-1).min(axis=1)
                close = np.flatnonzero(d < _CONFLICT_DIST_M)
                if close.size == 0:
                    continue
                if a.exit_lane_fid == b.exit_lane_fid:
                    kind = CONFLICT_DIVERGE
                elif a.entry_lane_fid == b.entry_lane_fid:
                    kind = CONFLICT_MERGE
                else:
                    kind = CONFLICT_CROSS
                conflict[index[a.fid], index[b.fid]] = len(kinds)
                kinds.append(kind)
                lo.append(0.0 if kind == CONFLICT_DIVERGE else float(sa[close[0]]))
                hi.append(float(sa[-1]) if kind == CONFLICT_MERGE else float(sa[close[-1]]))
                prio.append(keys[b.fid] < keys[a.fid])

    cw_lo = np.full(e_count, np.nan)
    cw_hi = np.full(e_count, np.nan)
    if net.crosswalks:
        walks = shapely.union_all([cw.polygon for cw in net.crosswalks])
        for c in conns:
            line = LineString(c.centre)
            part = line.intersection(walks)
            if part.is_empty:
                continue
            coords = shapely.get_coordinates(part)
            s = np.array([line.project(Point(p)) for p in coords])
            cw_lo[index[c.fid]], cw_hi[index[c.fid]] = s.min(), s.max()

    return LaneGraph(
        fid=np.array(fids, np.int64),
        is_connector=np.arange(e_count) >= nl,
        length=lengths,
        speed_limit=np.array([ln.speed_limit_mps for ln in lanes] + [c.speed_limit_mps for c in conns]),
        roadblock=np.array([ln.group_fid for ln in lanes] + [c.group_connector_fid for c in conns], np.int64),
        lane_group=np.array([ln.group_fid for ln in lanes] + [lane_group_of[c.exit_lane_fid] for c in conns],
                            np.int64),
        node=np.array([-1] * nl + [inter_index[c.intersection_fid] for c in conns], np.int32),
        turn=np.array([-1] * nl + [c.turn_type for c in conns], np.int8),
        signal=signal,
        signal_fids=np.array([c.fid for c in signalised], np.int64),
        succ_ptr=succ_ptr,
        succ=succ,
        pts=np.concatenate(pts),
        pts_s=np.concatenate(pts_s),
        pts_yaw=np.concatenate(yaw),
        pts_kappa=np.concatenate(kappa),
        elem_gs=np.array(gs),
        elem_p0=p0_arr,
        elem_p1=p0_arr + np.array([len(c) for c in centres], np.int64),
        conflict=conflict,
        conflict_kind=np.array(kinds, np.int8),
        zone_lo=np.array(lo),
        zone_hi=np.array(hi),
        other_has_priority=np.array(prio, bool),
        crosswalk_lo=cw_lo,
        crosswalk_hi=cw_hi,
    )


def locate(g: LaneGraph, elem: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point at arc length ``u`` (m) along element ``elem`` (any matching shapes ``[...]``).

    Returns ``xy [..., 2]`` (m, local), ``yaw [...]`` (rad, wrapped) and ``kappa [...]`` (1/m).
    """
    elem = np.asarray(elem)
    u = np.clip(u, 0.0, g.length[elem])
    gs = g.elem_gs[elem] + u
    i = np.searchsorted(g.pts_s, gs, side="right") - 1
    i = np.clip(i, g.elem_p0[elem], g.elem_p1[elem] - 2)
    s0, s1 = g.pts_s[i], g.pts_s[i + 1]
    t = np.clip((gs - s0) / np.maximum(s1 - s0, 1e-9), 0.0, 1.0)
    xy = g.pts[i] + t[..., None] * (g.pts[i + 1] - g.pts[i])
    yaw = g.pts_yaw[i] + t * (g.pts_yaw[i + 1] - g.pts_yaw[i])
    kappa = g.pts_kappa[i] + t * (g.pts_kappa[i + 1] - g.pts_kappa[i])
    return xy, geo.wrap_angle(yaw), kappa
