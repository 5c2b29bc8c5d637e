"""The built road network: every map feature of one synthetic map, as records in the map's local frame.

Produced by ``network_builder.build_network`` and consumed by the GeoPackage writer (``maps.py``) and by the
traffic model (``lane_graph.py``). Feature ids are integers drawn from disjoint ranges (``ID_BASE``) so that
roadblock ids (lane groups) and roadblock-connector ids (lane group connectors) never collide, as route ids
are resolved in both tables.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from shapely.geometry import Point, Polygon

__all__ = [
    "ID_BASE",
    "Boundary",
    "Lane",
    "LaneGroup",
    "Connector",
    "GroupConnector",
    "Intersection",
    "StopPolygon",
    "Crosswalk",
    "Walkway",
    "RoadSegment",
    "Carpark",
    "TrafficLight",
    "RoadNetwork",
    "TURN_STRAIGHT",
    "TURN_LEFT",
    "TURN_RIGHT",
    "TURN_UTURN",
]

# first fid of each feature family (disjoint ranges of 10 000)
ID_BASE = {
    "lane_group": 10_000,
    "lane_group_connector": 20_000,
    "lane": 30_000,
    "lane_connector": 40_000,
    "boundary": 50_000,
    "baseline_path": 60_000,
    "intersection": 70_000,
    "stop_polygon": 71_000,
    "crosswalk": 72_000,
    "walkway": 73_000,
    "road_segment": 74_000,
    "carpark": 75_000,
    "traffic_light": 76_000,
    "generic_drivable_area": 77_000,
}

# LaneConnectorType (spec §1.9.5)
TURN_STRAIGHT, TURN_LEFT, TURN_RIGHT, TURN_UTURN = 0, 1, 2, 3


@dataclass(frozen=True)
class Boundary:
    fid: int
    line: np.ndarray  # [K, 2] float64, m, local; runs in the driving direction of its lane(s)
    boundary_type: int  # 0 lane divider, 1 road edge, 2 connector edge


@dataclass(frozen=True)
class Lane:
    fid: int
    group_fid: int
    index: int  # 0 = leftmost in driving direction
    left_boundary_fid: int
    right_boundary_fid: int
    centre: np.ndarray  # [K, 2] float64, m, local; baseline path in driving direction
    polygon: Polygon
    speed_limit_mps: float
    width_m: float
    baseline_fid: int


@dataclass(frozen=True)
class LaneGroup:
    fid: int
    lane_fids: tuple[int, ...]  # ordered by lane index
    left_boundary_fid: int
    right_boundary_fid: int
    polygon: Polygon
    start_node: str
    end_node: str


@dataclass(frozen=True)
class Connector:
    fid: int
    exit_lane_fid: int  # the connector starts at the end of this lane
    entry_lane_fid: int  # ... and ends at the start of this lane
    group_connector_fid: int
    intersection_fid: int
    centre: np.ndarray  # [K, 2] float64, m, local
    polygon: Polygon
    left_boundary_fid: int
    right_boundary_fid: int
    speed_limit_mps: float
    turn_type: int  # TURN_*
    stop_polygon_fid: int | None  # traffic-light stop line at its entry; None = unsignalised
    baseline_fid: int

    @property
    def signalised(self) -> bool:
        return self.stop_polygon_fid is not None


@dataclass(frozen=True)
class GroupConnector:
    fid: int
    from_group_fid: int
    to_group_fid: int
    intersection_fid: int
    polygon: Polygon


@dataclass(frozen=True)
class Intersection:
    fid: int
    node: str
    centre: tuple[float, float]
    polygon: Polygon
    intersection_type: int
    signalised: bool
    protected_left: bool
    ped_phase: bool


@dataclass(frozen=True)
class StopPolygon:
    fid: int
    polygon: Polygon
    stop_type: int  # StopLineType: 2 traffic light
    lane_fid: int
    connector_fids: tuple[int, ...]


@dataclass(frozen=True)
class Crosswalk:
    fid: int
    polygon: Polygon
    intersection_fid: int
    path: np.ndarray  # [2, 2] float64, m, local: kerb-to-kerb walking line


@dataclass(frozen=True)
class Walkway:
    fid: int
    polygon: Polygon
    path: np.ndarray  # [K, 2] float64, m, local: walking line along the walkway ([0, 2] for corner pads)


@dataclass(frozen=True)
class RoadSegment:
    fid: int
    polygon: Polygon
    group_fids: tuple[int, ...]


@dataclass(frozen=True)
class Carpark:
    fid: int
    polygon: Polygon
    heading: float


@dataclass(frozen=True)
class TrafficLight:
    fid: int
    point: Point
    connector_fid: int
    heading: float


@dataclass(frozen=True)
class RoadNetwork:
    """All features of one synthetic map (local frame; ``origin_xy`` + local = UTM metres)."""

    map_name: str
    layout: str
    epsg: int
    origin_xy: tuple[float, float]  # UTM easting, northing of the local origin, m
    drive_on_left: bool
    boundaries: tuple[Boundary, ...]
    lanes: tuple[Lane, ...]
    lane_groups: tuple[LaneGroup, ...]
    connectors: tuple[Connector, ...]
    group_connectors: tuple[GroupConnector, ...]
    intersections: tuple[Intersection, ...]
    stop_polygons: tuple[StopPolygon, ...]
    crosswalks: tuple[Crosswalk, ...]
    walkways: tuple[Walkway, ...]
    road_segments: tuple[RoadSegment, ...]
    carparks: tuple[Carpark, ...]
    traffic_lights: tuple[TrafficLight, ...]
    static_spots: np.ndarray  # [K, 3] float64: x, y (m, local), yaw (rad) of places for static objects
