"""The four synthetic map layouts, one per nuPlan map name, and where each sits in its UTM zone.

* ``us-ma-boston`` - grid town: 3 x 3 blocks, one lane per direction (two on the main street), signalised
  4-way and T intersections with crosswalks on every arm, walkways along every street, a car park.
* ``us-nv-las-vegas-strip`` - arterial: a 3-lanes-per-direction boulevard (north-south, like the Strip)
  crossed by 2-lane streets at signalised intersections with protected left-turn phases.
* ``us-pa-pittsburgh-hazelwood`` - unprotected left: a 2 x 2-block grid, rotated 20 deg, whose central
  4-way intersection gives left turns no protected phase, so they yield to oncoming through traffic.
* ``sg-one-north`` - highway (traffic keeps left): two 3-lane carriageway rings; an off-ramp leaves the outer
  ring and comes back as an on-ramp that joins through a lane connector into an acceleration lane, which
  ends 200 m later in a lane-drop connector.
"""
from __future__ import annotations

import numpy as np

from . import geometry as geo
from .road_spec import LayoutSpec, NodeSpec, RoadSpec

__all__ = ["LAYOUTS", "MAP_ORIGINS", "layout_for"]

# local origin of each map: UTM easting / northing (m) near the real city area of the nuPlan map
MAP_ORIGINS: dict[str, tuple[float, float]] = {
    "us-ma-boston": (331_950.0, 4_689_540.0),  # Seaport, 42.340 N 71.040 W, zone 19N
    "us-nv-las-vegas-strip": (664_480.0, 3_997_970.0),  # the Strip, 36.112 N 115.172 W, zone 11N
    "us-pa-pittsburgh-hazelwood": (589_470.0, 4_474_300.0),  # Hazelwood, 40.414 N 79.945 W, zone 17N
    "sg-one-north": (365_100.0, 143_670.0),  # one-north, 1.300 N 103.787 E, zone 48N
}

_MPH25, _MPH30, _MPH35, _MPH40 = 11.2, 13.4, 15.6, 17.9


def _transform(spec: LayoutSpec, angle_deg: float = 0.0, mirror_y: bool = False) -> LayoutSpec:
    """Rotate a layout by ``angle_deg`` about the origin, after mirroring y when ``mirror_y``."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    sy = -1.0 if mirror_y else 1.0

    def tp(p):
        q = rot @ np.array([p[0], sy * p[1]])
        return (round(float(q[0]), 6), round(float(q[1]), 6))

    def tyaw(y):
        return float(geo.wrap_angle(sy * y + a))

    xy = {n.name: n.xy for n in spec.nodes}
    nodes = tuple(NodeSpec(n.name, tp(n.xy), n.kind, n.protected_left, n.crosswalks, n.ped_phase, n.trim_m)
                  for n in spec.nodes)
    roads = tuple(
        RoadSpec(r.start, r.end, r.lanes_forward, r.lanes_backward, r.speed_limit_mps,
                 tuple(tp(p) for p in (r.points or (xy[r.start], xy[r.end]))), r.lane_width_m, r.median_m,
                 r.sidewalks)
        for r in spec.roads
    )
    carparks = tuple(tuple(tp(p) for p in ring) for ring in spec.carparks)
    spots = tuple((*tp((x, y)), tyaw(h)) for x, y, h in spec.static_spots)
    return LayoutSpec(spec.name, nodes, roads, spec.drive_on_left, carparks, spots)


def _grid(name: str, xs: list[float], ys: list[float], road, node) -> tuple[tuple[NodeSpec, ...], tuple[RoadSpec, ...]]:
    """Nodes on the grid ``xs x ys``; ``road(kind, i, j)`` and ``node(i, j, degree)`` give their specs."""
    nx, ny = len(xs), len(ys)
    nodes, roads = [], []
    for i in range(nx):
        for j in range(ny):
            deg = (i > 0) + (i < nx - 1) + (j > 0) + (j < ny - 1)
            nodes.append(node(f"{name}{i}{j}", (xs[i], ys[j]), i, j, deg))
    for j in range(ny):
        for i in range(nx - 1):
            roads.append(road(f"{name}{i}{j}", f"{name}{i + 1}{j}", "row", i, j))
    for i in range(nx):
        for j in range(ny - 1):
            roads.append(road(f"{name}{i}{j}", f"{name}{i}{j + 1}", "col", i, j))
    return tuple(nodes), tuple(roads)


def grid_town() -> LayoutSpec:
    def node(name, xy, i, j, deg):
        if deg == 2:
            return NodeSpec(name, xy, "pass_through")
        return NodeSpec(name, xy, "traffic_light", crosswalks=True, ped_phase=deg == 4)

    def road(a, b, kind, i, j):
        if kind == "row" and j == 1:  # the main street: two lanes per direction
            return RoadSpec(a, b, 2, 2, _MPH30, sidewalks=True)
        perimeter = (j in (0, 3)) if kind == "row" else (i in (0, 3))
        return RoadSpec(a, b, 1, 1, _MPH25 if perimeter else _MPH30, sidewalks=True)

    step = 130.0
    nodes, roads = _grid("g", [0.0, step, 2 * step, 3 * step], [0.0, step, 2 * step, 3 * step], road, node)
    carpark = ((30.0, 25.0), (85.0, 25.0), (85.0, 55.0), (30.0, 55.0))
    return LayoutSpec("grid_town", nodes, roads, carparks=(carpark,))


def arterial() -> LayoutSpec:
    def node(name, xy, i, j, deg):
        if deg == 2:
            return NodeSpec(name, xy, "pass_through")
        return NodeSpec(name, xy, "traffic_light", protected_left=(deg == 4), crosswalks=True)

    def road(a, b, kind, i, j):
        if kind == "row" and j == 1:  # the boulevard
            return RoadSpec(a, b, 3, 3, _MPH40, median_m=2.0, sidewalks=True)
        return RoadSpec(a, b, 2, 2, _MPH30, sidewalks=True)

    nodes, roads = _grid("a", [0.0, 280.0, 560.0, 840.0], [0.0, 240.0, 480.0], road, node)
    carpark = ((70.0, 50.0), (210.0, 50.0), (210.0, 180.0), (70.0, 180.0))
    spec = LayoutSpec("arterial", nodes, roads, carparks=(carpark,))
    return _transform(spec, angle_deg=90.0)  # the boulevard runs north-south


def unprotected_left() -> LayoutSpec:
    def node(name, xy, i, j, deg):
        if deg == 2:
            return NodeSpec(name, xy, "pass_through")
        return NodeSpec(name, xy, "traffic_light", protected_left=False, crosswalks=True, ped_phase=(deg == 4))

    def road(a, b, kind, i, j):
        if kind == "row" and j == 1:  # the through road with the unprotected left turns
            return RoadSpec(a, b, 2, 2, _MPH35, sidewalks=True)
        return RoadSpec(a, b, 1, 1, _MPH25, sidewalks=True)

    nodes, roads = _grid("u", [0.0, 220.0, 440.0], [0.0, 200.0, 400.0], road, node)
    carpark = ((260.0, 240.0), (320.0, 240.0), (320.0, 280.0), (260.0, 280.0))
    spec = LayoutSpec("unprotected_left", nodes, roads, carparks=(carpark,))
    return _transform(spec, angle_deg=20.0)


def highway_merge(drive_on_left: bool = True) -> LayoutSpec:
    """Two carriageway rings (3 lanes) with an off-ramp / on-ramp loop and a lane drop on the outer ring.

    Built for right-hand traffic and mirrored (y -> -y) when traffic keeps left.
    """
    length, radius, gap = 1100.0, 220.0, 1.5  # straight length, ring radius, half median, m
    w3 = 3 * 3.5
    xd, xm, xe = 250.0, 650.0, 850.0  # diverge, merge, lane-drop nodes on the outer ring
    yo, yi = -gap, gap  # outer / inner ring reference lines on the bottom straight
    east = geo.arc((length, radius), radius + gap, -np.pi / 2, np.pi / 2)
    west = geo.arc((0.0, radius), radius + gap, np.pi / 2, 3 * np.pi / 2)
    outer = np.concatenate([[[xe, yo]], east, west, [[xd, yo]]])
    east_i = geo.arc((length, radius), radius - gap, np.pi / 2, -np.pi / 2)
    west_i = geo.arc((0.0, radius), radius - gap, -np.pi / 2, -3 * np.pi / 2)
    inner = np.concatenate([[[550.0, yi]], west_i, east_i, [[550.0, yi]]])
    xs = np.arange(xd, xm + 1e-9, 2.0)
    depth = 58.0
    rise = np.clip((xs - (xd + 40.0)) / 150.0, 0.0, 1.0)
    fall = np.clip(((xm - 40.0) - xs) / 150.0, 0.0, 1.0)
    bump = np.minimum(0.5 - 0.5 * np.cos(np.pi * rise), 0.5 - 0.5 * np.cos(np.pi * fall))
    ramp = np.stack([xs, yo - w3 - depth * bump], axis=1)
    hw_speed, ramp_speed = 22.2, 15.0
    nodes = (
        NodeSpec("diverge", (xd, yo), "lane_branch", trim_m=15.0),
        NodeSpec("merge", (xm, yo), "lane_merge", trim_m=15.0),
        NodeSpec("lane_drop", (xe, yo), "lane_merge", trim_m=30.0),
        NodeSpec("inner", (550.0, yi), "pass_through", trim_m=10.0),
    )
    tup = lambda a: tuple(map(tuple, np.round(a, 6)))  # noqa: E731
    roads = (
        RoadSpec("lane_drop", "diverge", 3, 0, hw_speed, tup(outer)),
        RoadSpec("diverge", "merge", 3, 0, hw_speed, ((xd, yo), (xm, yo))),
        RoadSpec("merge", "lane_drop", 4, 0, hw_speed, ((xm, yo), (xe, yo))),
        RoadSpec("diverge", "merge", 1, 0, ramp_speed, tup(ramp)),
        RoadSpec("inner", "inner", 3, 0, hw_speed, tup(inner)),
    )
    service = ((400.0, -125.0), (500.0, -125.0), (500.0, -100.0), (400.0, -100.0))
    barriers = tuple((x, 0.0, 0.0) for x in (120.0, 420.0, 760.0, 980.0))
    spec = LayoutSpec("highway_merge", nodes, roads, drive_on_left, carparks=(service,), static_spots=barriers)
    return _transform(spec, mirror_y=drive_on_left) if drive_on_left else spec


LAYOUTS = {
    "us-ma-boston": grid_town,
    "us-nv-las-vegas-strip": arterial,
    "us-pa-pittsburgh-hazelwood": unprotected_left,
    "sg-one-north": highway_merge,
}


def layout_for(map_name: str) -> LayoutSpec:
    """The layout spec of ``map_name`` (one of ``schema.MAP_VERSIONS``)."""
    return LAYOUTS[map_name]()
