"""Relations between lane elements that scripted hazards need and the lane graph does not hold.

For every lane element: its neighbours in the same lane group (same direction), the innermost lane of the
opposite direction on an undivided road, its predecessors, and - for kerb-side lanes - the walkway along its
kerb. Built once per map.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from shapely.geometry import Point

from .lane_graph import LaneGraph, locate
from .road_network import RoadNetwork

__all__ = ["LaneRelations", "build_lane_relations", "lateral_between"]

_UNDIVIDED_TOL_M = 0.3  # opposite innermost lanes one lane width apart (+- this) = no median


@dataclass(frozen=True)
class LaneRelations:
    """Arrays over the E elements of a ``LaneGraph`` (-1 / nan where a relation does not apply)."""

    left: np.ndarray  # [E] int64 lane to the left in the same group
    right: np.ndarray  # [E] int64 lane to the right in the same group
    opposite: np.ndarray  # [E] int64 for the innermost lane of a group: innermost lane of the opposite group
    lane_width: np.ndarray  # [E] float64, m (connectors: nan)
    kerb_side: np.ndarray  # [E] float64 +1 kerb on the left, -1 on the right, 0 not a kerb lane
    walkway: np.ndarray  # [E] int64 index into RoadNetwork.walkways of the walkway along the kerb, -1 none
    pred_ptr: np.ndarray  # [E+1] int64 CSR pointers into pred
    pred: np.ndarray  # [P] int64 predecessor elements

    def predecessors(self, e: int) -> np.ndarray:
        return self.pred[self.pred_ptr[e]:self.pred_ptr[e + 1]]


def build_lane_relations(net: RoadNetwork, g: LaneGraph) -> LaneRelations:
    """Neighbour, opposite, predecessor and kerb-walkway relations of ``g`` (built from ``net``)."""
    e_count = g.num_elements
    index = {int(f): i for i, f in enumerate(g.fid)}
    left = np.full(e_count, -1, np.int64)
    right = np.full(e_count, -1, np.int64)
    opposite = np.full(e_count, -1, np.int64)
    width = np.full(e_count, np.nan)
    kerb = np.zeros(e_count)
    walkway = np.full(e_count, -1, np.int64)
    lanes = {ln.fid: ln for ln in net.lanes}
    by_nodes = {}
    for grp in net.lane_groups:
        by_nodes.setdefault((grp.start_node, grp.end_node), []).append(grp)
    walk_polys = [w.polygon for w in net.walkways]
    for grp in net.lane_groups:
        ids = [index[f] for f in grp.lane_fids]
        for k, e in enumerate(ids):
            width[e] = lanes[grp.lane_fids[k]].width_m
            if k > 0:
                left[e] = ids[k - 1]
            if k + 1 < len(ids):
                right[e] = ids[k + 1]
        inner = ids[-1] if net.drive_on_left else ids[0]  # lane next to the centre line
        outer = ids[0] if net.drive_on_left else ids[-1]  # lane next to the kerb
        kerb[outer] = 1.0 if net.drive_on_left else -1.0
        rev = by_nodes.get((grp.end_node, grp.start_node), [])
        if len(rev) == 1:
            other = [index[f] for f in rev[0].lane_fids]
            o_inner = other[-1] if net.drive_on_left else other[0]
            mid = locate(g, np.array(inner), np.array(0.5 * g.length[inner]))[0]
            d = np.linalg.norm(g.pts[g.elem_p0[o_inner]:g.elem_p1[o_inner]] - mid, axis=1).min()
            if abs(d - width[inner]) < _UNDIVIDED_TOL_M:
                opposite[inner] = o_inner
        # walkway along the kerb: the one holding a point 2 m beyond the road edge, halfway along the lane
        xy, yaw, _ = locate(g, np.array(outer), np.array(0.5 * g.length[outer]))
        side = kerb[outer] * (0.5 * width[outer] + 2.0)
        p = Point(float(xy[0] - np.sin(yaw) * side), float(xy[1] + np.cos(yaw) * side))
        hits = [i for i, poly in enumerate(walk_polys) if poly.contains(p)]
        walkway[outer] = hits[0] if hits else -1
    counts = np.zeros(e_count, np.int64)
    pairs = []
    for e in range(e_count):
        for nxt in g.successors(e):
            pairs.append((int(nxt), e))
            counts[int(nxt)] += 1
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    pred = np.zeros(len(pairs), np.int64)
    fill = ptr[:-1].copy()
    for nxt, e in pairs:
        pred[fill[nxt]] = e
        fill[nxt] += 1
    return LaneRelations(left, right, opposite, width, kerb, walkway, ptr, pred)


def lateral_between(g: LaneGraph, e_from: int, u_from: float, e_to: int) -> tuple[float, float]:
    """Where the point at ``u_from`` m along element ``e_from`` lies relative to element ``e_to``: (arc length
    along ``e_to`` of the nearest centreline vertex, m; signed lateral offset from ``e_to``, m, left positive)."""
    p = locate(g, np.array(e_from), np.array(u_from))[0]
    pts = g.pts[g.elem_p0[e_to]:g.elem_p1[e_to]]
    i = int(np.linalg.norm(pts - p, axis=1).argmin())
    i = min(i, len(pts) - 2)
    d = pts[i + 1] - pts[i]
    d = d / max(float(np.linalg.norm(d)), 1e-9)
    rel = p - pts[i]
    along = float(g.pts_s[g.elem_p0[e_to] + i] - g.elem_gs[e_to] + rel @ d)
    return along, float(d[0] * rel[1] - d[1] * rel[0])
