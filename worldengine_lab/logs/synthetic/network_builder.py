"""Build a ``RoadNetwork`` (nuPlan map features) from a ``LayoutSpec`` (nodes + roads).

Steps: trim every road back from its junctions, split it into directed lane groups whose lanes share
boundaries, join incoming and outgoing lanes at every junction with smooth lane connectors (cubic Bezier,
grouped into lane group connectors), and derive intersections, stop lines, traffic lights, crosswalks,
walkways and road segments. Movement rules at a junction, per incoming lane group (approach):

* the outgoing group whose start heading is within 40 deg and laterally nearest is ``straight``; every
  approach lane continues into the laterally nearest outgoing lane (this also builds ramps and lane drops),
  except that approaches of 3+ lanes keep the lane on the far-turn side as a dedicated turn lane;
* with a straight movement, left turns leave from the leftmost lane and right turns from the rightmost;
* without one, all lanes turn (split between a left and a right movement at T-junction stems);
* U-turns only where nothing else is possible; outgoing lanes no movement reaches are fed by the straight
  approach's laterally nearest lane.

The intersection polygon is the union of its connectors, road ends and crosswalks, closed by 2 m (rounded
kerbs); crosswalks span it kerb to kerb, with small walkway pads at the corners where pedestrians wait.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPoint, Point, Polygon

from . import geometry as geo
from .road_network import (
    ID_BASE, TURN_LEFT, TURN_RIGHT, TURN_STRAIGHT, TURN_UTURN, Boundary, Carpark, Connector, Crosswalk,
    GroupConnector, Intersection, Lane, LaneGroup, RoadNetwork, RoadSegment, StopPolygon, TrafficLight, Walkway,
)
from .road_spec import INTERSECTION_TYPES, LayoutSpec, NodeSpec, RoadSpec

__all__ = ["build_network", "CROSSWALK_WIDTH_M", "SIDEWALK_WIDTH_M"]

CROSSWALK_WIDTH_M = 4.0
SIDEWALK_WIDTH_M = 3.0
_STRAIGHT_TOL = np.deg2rad(40.0)
_UTURN_TOL = np.deg2rad(150.0)
_CONNECTOR_LAT_ACC = 3.0  # m/s^2, sets the connector speed limit from its curvature
_STOP_LINE_DEPTH_M = 1.5
# roads end this far beyond the widest crossing road's edge: signalised junctions keep a crosswalk and a
# stop line gap; other junctions get wide corners (turn radius >= ~14 m) so long vehicles fit
_TRIM_EXTRA_M = {True: 8.0, False: 12.0}


@dataclass
class _Group:
    fid: int
    road: int
    forward: bool
    start_node: str
    end_node: str
    lane_fids: list[int]
    lines: list[np.ndarray]  # n+1 boundary polylines [K, 2], left to right


@dataclass
class _State:
    spec: LayoutSpec
    counters: dict[str, int] = field(default_factory=dict)
    boundaries: list[Boundary] = field(default_factory=list)
    lanes: dict[int, Lane] = field(default_factory=dict)
    groups: dict[int, _Group] = field(default_factory=dict)
    connectors: list[Connector] = field(default_factory=list)
    group_connectors: list[GroupConnector] = field(default_factory=list)
    intersections: list[Intersection] = field(default_factory=list)
    stops: list[StopPolygon] = field(default_factory=list)
    crosswalks: list[Crosswalk] = field(default_factory=list)
    walkways: list[Walkway] = field(default_factory=list)
    segments: list[RoadSegment] = field(default_factory=list)
    lights: list[TrafficLight] = field(default_factory=list)
    spots: list[tuple[float, float, float]] = field(default_factory=list)

    def new_id(self, family: str) -> int:
        n = self.counters.get(family, 0)
        self.counters[family] = n + 1
        return ID_BASE[family] + n


def _road_line(spec: RoadSpec, nodes: dict[str, NodeSpec]) -> np.ndarray:
    pts = np.array(spec.points if spec.points else (nodes[spec.start].xy, nodes[spec.end].xy), dtype=np.float64)
    return geo.resample(pts, 1.0)


def _half_width(r: RoadSpec) -> float:
    return r.median_m / 2.0 + max(r.lanes_forward, r.lanes_backward) * r.lane_width_m


def _offsets(r: RoadSpec, n: int, drive_on_left: bool) -> list[float]:
    """Boundary offsets (left positive, in the group's driving frame) of a group of ``n`` lanes, left to right."""
    m = r.median_m / 2.0
    if drive_on_left:
        return [m + (n - k) * r.lane_width_m for k in range(n + 1)]
    return [-(m + k * r.lane_width_m) for k in range(n + 1)]


def build_network(spec: LayoutSpec, map_name: str, epsg: int, origin_xy: tuple[float, float]) -> RoadNetwork:
    """Turn ``spec`` into every nuPlan map feature (local frame) for map ``map_name``."""
    st = _State(spec)
    nodes = {n.name: n for n in spec.nodes}
    incident: dict[str, list[int]] = {n.name: [] for n in spec.nodes}
    for i, r in enumerate(spec.roads):
        incident[r.start].append(i)
        incident[r.end].append(i)
    node_hw = {n: max(_half_width(spec.roads[i]) for i in ids) for n, ids in incident.items()}
    trim = {n.name: n.trim_m if n.trim_m is not None else node_hw[n.name] + _TRIM_EXTRA_M[n.signalised]
            for n in spec.nodes}
    full_lines = [_road_line(r, nodes) for r in spec.roads]
    road_extent: list[tuple[float, float]] = []

    for ri, (r, full) in enumerate(zip(spec.roads, full_lines)):
        length = geo.polyline_length(full)
        ref = geo.resample(geo.substring(full, trim[r.start], length - trim[r.end]), 1.0)
        offs_fwd: list[float] = []
        group_fids = []
        for forward, n in ((True, r.lanes_forward), (False, r.lanes_backward)):
            if n == 0:
                continue
            base = ref if forward else ref[::-1]
            offs = _offsets(r, n, spec.drive_on_left)
            offs_fwd += offs if forward else [-o for o in offs]
            group_fids.append(_add_group(st, ri, r, forward, base, offs))
        lo, hi = min(offs_fwd), max(offs_fwd)
        road_extent.append((lo, hi))
        st.segments.append(RoadSegment(st.new_id("road_segment"),
                                       geo.band_polygon(geo.offset(ref, hi), geo.offset(ref, lo)), tuple(group_fids)))

    hulls: dict[str, Polygon] = {}
    for node in spec.nodes:
        hulls[node.name] = _add_junction(st, node, node_hw[node.name], incident[node.name], full_lines, road_extent)
    for ri, r in enumerate(spec.roads):
        if r.sidewalks:
            _add_walkways(st, full_lines[ri], road_extent[ri], node_hw[r.start] + 1.0, node_hw[r.end] + 1.0,
                          hulls[r.start].union(hulls[r.end]).buffer(2.0))
    carparks = tuple(Carpark(st.new_id("carpark"), Polygon(ring), 0.0) for ring in spec.carparks)
    spots = np.array(list(spec.static_spots) + st.spots, dtype=np.float64).reshape(-1, 3)
    lanes = tuple(st.lanes[k] for k in sorted(st.lanes))
    groups = tuple(LaneGroup(g.fid, tuple(g.lane_fids), _bfid(st, g, 0), _bfid(st, g, -1),
                             geo.band_polygon(g.lines[0], g.lines[-1]), g.start_node, g.end_node)
                   for g in (st.groups[k] for k in sorted(st.groups)))
    return RoadNetwork(
        map_name=map_name, layout=spec.name, epsg=epsg, origin_xy=origin_xy, drive_on_left=spec.drive_on_left,
        boundaries=tuple(st.boundaries), lanes=lanes, lane_groups=groups, connectors=tuple(st.connectors),
        group_connectors=tuple(st.group_connectors), intersections=tuple(st.intersections),
        stop_polygons=tuple(st.stops), crosswalks=tuple(st.crosswalks), walkways=tuple(st.walkways),
        road_segments=tuple(st.segments), carparks=carparks, traffic_lights=tuple(st.lights), static_spots=spots,
    )


def _bfid(st: _State, g: _Group, k: int) -> int:
    lane = st.lanes[g.lane_fids[k]]
    return lane.left_boundary_fid if k == 0 else lane.right_boundary_fid


def _add_group(st: _State, ri: int, r: RoadSpec, forward: bool, base: np.ndarray, offs: list[float]) -> int:
    n = len(offs) - 1
    gfid = st.new_id("lane_group")
    lines = [geo.offset(base, o) for o in offs]
    bfids = []
    for k, line in enumerate(lines):
        b = Boundary(st.new_id("boundary"), line, 1 if k in (0, n) else 0)
        st.boundaries.append(b)
        bfids.append(b.fid)
    lane_fids = []
    for k in range(n):
        fid = st.new_id("lane")
        centre = geo.offset(base, 0.5 * (offs[k] + offs[k + 1]))
        st.lanes[fid] = Lane(fid, gfid, k, bfids[k], bfids[k + 1], centre, geo.band_polygon(lines[k], lines[k + 1]),
                             r.speed_limit_mps, r.lane_width_m, st.new_id("baseline_path"))
        lane_fids.append(fid)
    st.groups[gfid] = _Group(gfid, ri, forward, r.start if forward else r.end, r.end if forward else r.start,
                             lane_fids, lines)
    return gfid


def _frame(pt: np.ndarray, heading: float, q: np.ndarray) -> float:
    """Lateral coordinate (left positive) of point ``q`` in the frame at ``pt`` with ``heading``."""
    d = q - pt
    return float(np.cos(heading) * d[1] - np.sin(heading) * d[0])


def _classify(st: _State, a: _Group, exits: list[_Group]) -> list[tuple[_Group, int]]:
    """Movements ``(exit group, turn type)`` of approach ``a``; U-turns only when nothing else exists."""
    a_end = 0.5 * (a.lines[0][-1] + a.lines[-1][-1])
    a_head = float(geo.vertex_headings(st.lanes[a.lane_fids[0]].centre)[-1])
    moves, uturns, straight_cands = [], [], []
    for b in exits:
        b_start = 0.5 * (b.lines[0][0] + b.lines[-1][0])
        b_head = float(geo.vertex_headings(st.lanes[b.lane_fids[0]].centre)[0])
        dh = float(geo.wrap_angle(b_head - a_head))
        lat = _frame(a_end, a_head, b_start)
        if (b.road == a.road and b.forward != a.forward) or abs(dh) > _UTURN_TOL:
            uturns.append((b, TURN_UTURN))
        elif abs(dh) < _STRAIGHT_TOL:
            straight_cands.append((abs(lat), b, lat))
        else:
            moves.append((b, TURN_LEFT if dh > 0 else TURN_RIGHT))
    if straight_cands:
        straight_cands.sort(key=lambda c: (c[0], c[1].fid))
        moves.append((straight_cands[0][1], TURN_STRAIGHT))
        for _, b, lat in straight_cands[1:]:
            moves.append((b, TURN_LEFT if lat > 0 else TURN_RIGHT))
    return moves if moves else uturns


def _pairs(st: _State, a: _Group, moves: list[tuple[_Group, int]]) -> list[tuple[int, int, int]]:
    """Lane pairs ``(exit lane fid, entry lane fid, turn type)`` for approach ``a`` and its movements."""
    na = len(a.lane_fids)
    out = []
    has_straight = any(t == TURN_STRAIGHT for _, t in moves)
    turns = [m for m in moves if m[1] != TURN_STRAIGHT]
    half = (na + 1) // 2
    far_turn = TURN_RIGHT if st.spec.drive_on_left else TURN_LEFT
    # three or more lanes and a turn across oncoming traffic: the lane on that side is a dedicated turn lane
    dedicated = (na - 1 if st.spec.drive_on_left else 0) if na >= 3 and any(t == far_turn for _, t in moves) \
        else None
    for b, turn in moves:
        nb = len(b.lane_fids)
        if turn == TURN_STRAIGHT:
            for i, lf in enumerate(a.lane_fids):
                if i != dedicated:
                    out.append((lf, b.lane_fids[_nearest(st, a, i, b)], turn))
        elif has_straight:
            i, j = (0, 0) if turn in (TURN_LEFT, TURN_UTURN) else (na - 1, nb - 1)
            out.append((a.lane_fids[i], b.lane_fids[j], turn))
        else:
            if len(turns) == 1:
                lanes = range(na)
            elif turn == TURN_LEFT:
                lanes = range(half) if na > 1 else range(1)
            else:
                lanes = range(half, na) if na > 1 else range(1)
            for i in lanes:
                j = min(i, nb - 1) if turn != TURN_RIGHT else max(nb - na + i, 0)
                out.append((a.lane_fids[i], b.lane_fids[j], turn))
    return out


def _nearest(st: _State, a: _Group, i: int, b: _Group) -> int:
    """Index of the lane of ``b`` laterally nearest to lane ``i`` of ``a`` (in ``a``'s end frame)."""
    c = st.lanes[a.lane_fids[i]].centre
    head = float(geo.vertex_headings(c)[-1])
    lats = [_frame(c[-1], head, st.lanes[f].centre[0]) for f in b.lane_fids]
    return int(np.argmin(np.abs(lats)))


def _add_junction(st: _State, node: NodeSpec, hw: float, roads: list[int],
                  full_lines: list[np.ndarray], extent: list[tuple[float, float]]) -> Polygon:
    ifid = st.new_id("intersection")
    approaches = [g for g in st.groups.values() if g.end_node == node.name]
    exits = [g for g in st.groups.values() if g.start_node == node.name]
    pairs: list[tuple[int, int, int]] = []
    straight_of: dict[int, list[int]] = {}
    for a in approaches:
        moves = _classify(st, a, exits)
        pairs += _pairs(st, a, moves)
        for b, t in moves:
            if t == TURN_STRAIGHT:
                straight_of.setdefault(b.fid, []).append(a.fid)
    fed = {p[1] for p in pairs}
    for b in exits:  # outgoing lanes no movement reaches
        for lf in b.lane_fids:
            if lf not in fed and straight_of.get(b.fid):
                a = st.groups[straight_of[b.fid][0]]
                c0 = st.lanes[lf].centre[0]
                cands = sorted({p[0] for p in pairs if p[2] == TURN_STRAIGHT and p[0] in a.lane_fids})
                ends = [st.lanes[f].centre for f in cands]
                i = int(np.argmin([abs(_frame(e[-1], float(geo.vertex_headings(e)[-1]), c0)) for e in ends]))
                pairs.append((cands[i], lf, TURN_STRAIGHT))

    lane_group = {f: g.fid for g in st.groups.values() for f in g.lane_fids}
    stop_of_lane: dict[int, StopPolygon] = {}
    by_group_pair: dict[tuple[int, int], list[Connector]] = {}
    parts: list = []
    for exit_lf, entry_lf, turn in sorted(set(pairs), key=lambda p: (p[0], p[1])):
        key = (lane_group[exit_lf], lane_group[entry_lf])
        by_group_pair.setdefault(key, [])
        conn = _make_connector(st, node, ifid, exit_lf, entry_lf, turn, stop_of_lane)
        by_group_pair[key].append(conn)
        parts.append(conn.polygon)
    gc_fid = {}
    for key in sorted(by_group_pair):
        gc_fid[key] = st.new_id("lane_group_connector")
        polys = [c.polygon for c in by_group_pair[key]]
        poly = shapely.union_all(polys) if len(polys) > 1 else polys[0]
        if not isinstance(poly, Polygon):
            poly = poly.convex_hull
        st.group_connectors.append(GroupConnector(gc_fid[key], key[0], key[1], ifid, poly))
    for key in sorted(by_group_pair):
        for c in by_group_pair[key]:
            st.connectors.append(replace(c, group_connector_fid=gc_fid[key]))
    st.stops += [stop_of_lane[k] for k in sorted(stop_of_lane)]
    ends: dict[tuple[int, bool], list[np.ndarray]] = {}  # road end -> boundary end points of its lane groups
    for g in approaches:
        ends.setdefault((g.road, g.forward), []).extend([g.lines[0][-1], g.lines[-1][-1]])
    for g in exits:
        ends.setdefault((g.road, not g.forward), []).extend([g.lines[0][0], g.lines[-1][0]])
    for pts in ends.values():  # the whole width of each road end, median included
        pts_arr = np.array(pts)
        far = np.linalg.norm(pts_arr[:, None] - pts_arr[None], axis=-1)
        i, j = np.unravel_index(int(far.argmax()), far.shape)
        parts.append(LineString([pts_arr[i], pts_arr[j]]).buffer(0.05))
    first_cw = len(st.crosswalks)
    if node.crosswalks:
        for ri in sorted(set(roads)):
            for at_end in (True, False):
                r = st.spec.roads[ri]
                if (r.end if at_end else r.start) != node.name:
                    continue
                cw = _make_crosswalk(st, full_lines[ri], extent[ri], hw, at_end, ifid)
                parts.append(cw.polygon)
    hull = _junction_polygon(parts)
    # pedestrians wait on kerb pads beyond the corners that turning vehicles sweep: each walking line runs
    # pad to pad, and its crosswalk spans the whole intersection up to the pads
    clear = hull.buffer(1.0)
    for k in range(first_cw, len(st.crosswalks)):
        cw = st.crosswalks[k]
        d = (cw.path[1] - cw.path[0]) / np.linalg.norm(cw.path[1] - cw.path[0])
        inside = LineString([cw.path[0] - 40.0 * d, cw.path[1] + 40.0 * d]).intersection(clear)
        mid = shapely.Point(0.5 * (cw.path[0] + cw.path[1]))
        inside = min(getattr(inside, "geoms", [inside]), key=lambda piece: piece.distance(mid))
        ends = np.asarray(inside.coords)[[0, -1]]
        path = ends[np.argsort(ends @ d)] + np.stack([-d, d]) * 0.1
        band = LineString(path).buffer(CROSSWALK_WIDTH_M / 2, cap_style="flat").intersection(hull)
        st.crosswalks[k] = replace(cw, path=path, polygon=band)
    if node.crosswalks:
        roads_here = shapely.union_all([st.segments[ri].polygon for ri in sorted(set(roads))]).buffer(0.5)
        pads = hull.buffer(2.5).difference(hull.buffer(0.5)).difference(roads_here)
        for piece in getattr(pads, "geoms", [pads]):
            if piece.area > 2.0:
                st.walkways.append(Walkway(st.new_id("walkway"), piece, np.zeros((0, 2))))
    st.intersections.append(Intersection(ifid, node.name, tuple(map(float, node.xy)), hull,
                                         INTERSECTION_TYPES[node.kind], node.signalised, node.protected_left,
                                         node.ped_phase))
    return hull


def _junction_polygon(parts: list) -> Polygon:
    """The intersection: connectors, road ends and crosswalks closed by 2 m (gaps such as medians filled),
    without holes; the convex hull if the parts do not form one piece."""
    closed = shapely.union_all(parts).buffer(2.0, join_style="mitre").buffer(-2.0, join_style="mitre")
    if closed.geom_type != "Polygon":
        return MultiPoint(shapely.get_coordinates(shapely.union_all(parts))).convex_hull
    return Polygon(closed.exterior.coords)


def _make_connector(st: _State, node: NodeSpec, ifid: int, exit_lf: int, entry_lf: int, turn: int,
                    stop_of_lane: dict[int, StopPolygon]) -> Connector:
    la, lb = st.lanes[exit_lf], st.lanes[entry_lf]
    h0 = float(geo.vertex_headings(la.centre)[-1])
    h3 = float(geo.vertex_headings(lb.centre)[0])
    centre = geo.bezier(la.centre[-1], h0, lb.centre[0], h3, step=0.5)
    w = min(la.width_m, lb.width_m)
    left, right = geo.offset(centre, w / 2), geo.offset(centre, -w / 2)
    bl = Boundary(st.new_id("boundary"), left, 2)
    br = Boundary(st.new_id("boundary"), right, 2)
    st.boundaries += [bl, br]
    kmax = float(geo.curvature(centre).max())
    v = min(la.speed_limit_mps, lb.speed_limit_mps)
    if kmax > 1e-4:
        v = min(v, float(np.sqrt(_CONNECTOR_LAT_ACC / kmax)))
    if turn != TURN_STRAIGHT:
        v = min(v, 0.8 * min(la.speed_limit_mps, lb.speed_limit_mps))
    fid = st.new_id("lane_connector")
    stop_fid = None
    if node.signalised:
        if exit_lf not in stop_of_lane:
            tail = geo.substring(la.centre, geo.polyline_length(la.centre) - _STOP_LINE_DEPTH_M,
                                 geo.polyline_length(la.centre))
            poly = geo.band_polygon(geo.offset(tail, la.width_m / 2), geo.offset(tail, -la.width_m / 2))
            stop_of_lane[exit_lf] = StopPolygon(st.new_id("stop_polygon"), poly, 2, exit_lf, ())
        sp = stop_of_lane[exit_lf]
        stop_of_lane[exit_lf] = StopPolygon(sp.fid, sp.polygon, 2, exit_lf, sp.connector_fids + (fid,))
        stop_fid = sp.fid
        side = 1.0 if st.spec.drive_on_left else -1.0
        nrm = np.array([-np.sin(h0), np.cos(h0)]) * side
        p = la.centre[-1] + nrm * (w / 2 + 0.6)
        st.lights.append(TrafficLight(st.new_id("traffic_light"), Point(p), fid, float(geo.wrap_angle(h0 + np.pi))))
    return Connector(fid, exit_lf, entry_lf, -1, ifid, centre, geo.band_polygon(left, right), bl.fid, br.fid,
                     round(max(v, 3.0), 1), turn, stop_fid, st.new_id("baseline_path"))


def _make_crosswalk(st: _State, full: np.ndarray, extent: tuple[float, float], hw: float, at_end: bool,
                    ifid: int) -> Crosswalk:
    length = geo.polyline_length(full)
    d0, d1 = hw + 1.0, hw + 1.0 + CROSSWALK_WIDTH_M  # distance from the node
    s0, s1 = (length - d1, length - d0) if at_end else (d0, d1)
    sub = geo.resample(geo.substring(full, s0, s1), 0.5)
    lo, hi = extent
    poly = geo.band_polygon(geo.offset(sub, hi), geo.offset(sub, lo))
    mid = sub[len(sub) // 2]
    h = float(geo.vertex_headings(sub)[len(sub) // 2])
    nrm = np.array([-np.sin(h), np.cos(h)])
    path = np.stack([mid + nrm * (hi + 1.2), mid + nrm * (lo - 1.2)])
    cw = Crosswalk(st.new_id("crosswalk"), poly, ifid, path)
    st.crosswalks.append(cw)
    return cw


def _add_walkways(st: _State, full: np.ndarray, extent: tuple[float, float], t0: float, t1: float,
                  keep_out: Polygon) -> None:
    length = geo.polyline_length(full)
    if length - t1 - t0 < 10.0:
        return
    sub = geo.substring(full, t0, length - t1)
    lo, hi = extent
    for a, b, kerb in ((hi + 0.5, hi + 0.5 + SIDEWALK_WIDTH_M, hi + 0.3),
                       (lo - 0.5 - SIDEWALK_WIDTH_M, lo - 0.5, lo - 0.3)):
        band = geo.band_polygon(geo.offset(sub, b), geo.offset(sub, a)).difference(keep_out)
        if not isinstance(band, Polygon):
            band = max(getattr(band, "geoms", []), key=lambda g: g.area, default=Polygon())
        line = LineString(geo.offset(sub, 0.5 * (a + b))).difference(keep_out)
        if not isinstance(line, LineString):
            line = max(getattr(line, "geoms", []), key=lambda g: g.length, default=LineString())
        if band.is_empty or line.is_empty or line.length < 10.0:
            continue
        path = geo.resample(np.asarray(line.coords), 1.0)
        st.walkways.append(Walkway(st.new_id("walkway"), band, path))
        # a spot on the kerb strip between road and walkway, halfway along, for a static object (cone, sign)
        k = len(path) // 2
        h = float(geo.vertex_headings(path)[k])
        p = path[k] + np.array([-np.sin(h), np.cos(h)]) * (kerb - 0.5 * (a + b))
        st.spots.append((float(p[0]), float(p[1]), h))
