"""Declarative description of a road layout: junction nodes and the roads between them.

A layout is a graph. Each ``RoadSpec`` is a road between two ``NodeSpec`` junctions with a number of lanes
per direction; the network builder (``network_builder.build_network``) turns it into nuPlan map features:
lanes, lane groups (roadblocks), lane connectors inside junctions, intersections, crosswalks, walkways...

Coordinates are metres in the map's local frame (x east, y north); the map origin (UTM easting/northing)
is added only when files are written.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NodeSpec", "RoadSpec", "LayoutSpec", "INTERSECTION_TYPES"]

# IntersectionType of the devkit (spec §1.9.5)
INTERSECTION_TYPES = {"default": 0, "traffic_light": 1, "stop_sign": 2, "lane_branch": 3, "lane_merge": 4,
                      "pass_through": 5}


@dataclass(frozen=True)
class NodeSpec:
    """A junction where roads meet; it becomes one ``intersections`` polygon with its lane connectors."""

    name: str
    """Unique node name within the layout."""
    xy: tuple[float, float]
    """Junction centre, local frame, m."""
    kind: str = "traffic_light"
    """Key of ``INTERSECTION_TYPES``; ``traffic_light`` makes every connector of the node signalised."""
    protected_left: bool = False
    """Signal plan gives turns across oncoming traffic their own phase (else they yield on the green)."""
    crosswalks: bool = False
    """Draw a crosswalk across every arm of the junction."""
    ped_phase: bool = False
    """Signal plan ends each cycle with an all-red pedestrian phase (pedestrians cross the crosswalks)."""
    trim_m: float | None = None
    """Distance (m) from the node at which incident roads end; None derives it from the road widths."""

    @property
    def signalised(self) -> bool:
        return self.kind == "traffic_light"


@dataclass(frozen=True)
class RoadSpec:
    """A road between two nodes. Forward lanes run start -> end, backward lanes end -> start.

    ``points`` is the reference line (incl. both ends): for two-way roads the line between the two
    directions, for one-way roads the edge on the median side (left edge where traffic drives on the right).
    """

    start: str
    """Name of the start node."""
    end: str
    """Name of the end node."""
    lanes_forward: int
    """Number of lanes driving start -> end."""
    lanes_backward: int = 0
    """Number of lanes driving end -> start (0 = one-way road)."""
    speed_limit_mps: float = 13.4
    """Speed limit of the road's lanes, m/s."""
    points: tuple[tuple[float, float], ...] = ()
    """Reference polyline, local frame, m; empty = straight line between the two node centres."""
    lane_width_m: float = 3.5
    """Lane width, m."""
    median_m: float = 0.0
    """Gap between the two directions (painted median), m."""
    sidewalks: bool = False
    """Draw walkways along both sides of the road."""


@dataclass(frozen=True)
class LayoutSpec:
    """A whole map layout: nodes, roads and a few extra areas."""

    name: str
    """Layout name (e.g. ``grid_town``), written to the manifest."""
    nodes: tuple[NodeSpec, ...]
    """Junctions."""
    roads: tuple[RoadSpec, ...]
    """Roads between junctions."""
    drive_on_left: bool = False
    """Traffic keeps left (lanes on the left of the reference line)."""
    carparks: tuple[tuple[tuple[float, float], ...], ...] = ()
    """Car park outlines (rings of local points, m)."""
    static_spots: tuple[tuple[float, float, float], ...] = ()
    """Extra places (x, y, yaw) off the lanes where static objects (cones, barriers) may stand."""
