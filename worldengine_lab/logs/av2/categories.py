"""AV2 object classes -> :class:`AgentType`, and default box sizes for forecasting tracks (spec §2.8, §2.10).

Sensor-dataset categories (30, plus ``EGO_VEHICLE`` in ``annotations_with_ego.feather``):

======================================  ================  =========================================
AV2 category                            AgentType         note
======================================  ================  =========================================
REGULAR_VEHICLE, LARGE_VEHICLE, BUS,    VEHICLE           motor vehicles and their trailers; a
BOX_TRUCK, TRUCK, TRUCK_CAB,                              MOTORCYCLE is the (possibly parked) bike
VEHICULAR_TRAILER, SCHOOL_BUS,                            itself, so it sits with the vehicles
ARTICULATED_BUS, MOTORCYCLE,
RAILED_VEHICLE, MESSAGE_BOARD_TRAILER,
TRAFFIC_LIGHT_TRAILER
PEDESTRIAN, STROLLER, WHEELCHAIR,       PEDESTRIAN
OFFICIAL_SIGNALER
BICYCLE, BICYCLIST, MOTORCYCLIST,       BICYCLE           two-wheelers and small riders
WHEELED_RIDER, WHEELED_DEVICE
CONSTRUCTION_CONE                       TRAFFIC_CONE
CONSTRUCTION_BARREL, BOLLARD            BARRIER
SIGN, STOP_SIGN,                        CZONE_SIGN
MOBILE_PEDESTRIAN_CROSSING_SIGN
ANIMAL, DOG, anything unknown           GENERIC_OBJECT    unknown names are logged once
EGO_VEHICLE                             (dropped)         the ego comes from the pose table
======================================  ================  =========================================

Forecasting object types (no box size in the files; sizes below are typical extents, m, L x W x H):

===================  ==============  ================
object_type          AgentType       size_lwh (m)
===================  ==============  ================
vehicle              VEHICLE         4.5 x 2.0 x 1.6
bus                  VEHICLE         12.0 x 2.5 x 3.2
pedestrian           PEDESTRIAN      0.6 x 0.6 x 1.7
cyclist              BICYCLE         2.0 x 0.7 x 1.7
motorcyclist         BICYCLE         2.0 x 0.7 x 1.7
riderless_bicycle    BICYCLE         1.8 x 0.6 x 1.1
construction         TRAFFIC_CONE    0.5 x 0.5 x 1.0
static               GENERIC_OBJECT  1.0 x 1.0 x 1.0
background           GENERIC_OBJECT  1.0 x 1.0 x 1.0
unknown / other      GENERIC_OBJECT  1.0 x 1.0 x 1.0
===================  ==============  ================
"""
from __future__ import annotations

import logging

import numpy as np

from ...datatypes import AgentType

__all__ = [
    "SENSOR_CATEGORY_TO_TYPE",
    "FORECAST_TYPE_TO_AGENT",
    "FORECAST_SIZE_LWH",
    "EGO_CATEGORY",
    "EGO_SIZE_LWH",
    "EGO_REAR_AXLE_TO_CENTER_M",
    "sensor_agent_types",
    "forecast_agent_types",
    "forecast_sizes",
]

log = logging.getLogger(__name__)

EGO_CATEGORY = "EGO_VEHICLE"

EGO_SIZE_LWH = (4.877, 2.0, 1.473)
"""AV2 ego box (m), as written for the ego rows of ``annotations_with_ego.feather`` (spec §2.3)."""

EGO_REAR_AXLE_TO_CENTER_M = 1.35
"""Rear axle -> box centre along the heading (m). AV2 gives only the rear-axle pose; the fleet car (Ford
Fusion Hybrid) has a 2.85 m wheelbase and about 1.0-1.1 m of rear overhang, so the centre of the 4.877 m box
sits about 4.877 / 2 - 1.09 = 1.35 m ahead of the rear axle."""

_V, _P, _B = AgentType.VEHICLE, AgentType.PEDESTRIAN, AgentType.BICYCLE

SENSOR_CATEGORY_TO_TYPE: dict[str, AgentType] = {
    **{c: _V for c in (
        "REGULAR_VEHICLE", "LARGE_VEHICLE", "BUS", "BOX_TRUCK", "TRUCK", "TRUCK_CAB", "VEHICULAR_TRAILER",
        "SCHOOL_BUS", "ARTICULATED_BUS", "MOTORCYCLE", "RAILED_VEHICLE", "MESSAGE_BOARD_TRAILER",
        "TRAFFIC_LIGHT_TRAILER",
    )},
    **{c: _P for c in ("PEDESTRIAN", "STROLLER", "WHEELCHAIR", "OFFICIAL_SIGNALER")},
    **{c: _B for c in ("BICYCLE", "BICYCLIST", "MOTORCYCLIST", "WHEELED_RIDER", "WHEELED_DEVICE")},
    "CONSTRUCTION_CONE": AgentType.TRAFFIC_CONE,
    "CONSTRUCTION_BARREL": AgentType.BARRIER,
    "BOLLARD": AgentType.BARRIER,
    "SIGN": AgentType.CZONE_SIGN,
    "STOP_SIGN": AgentType.CZONE_SIGN,
    "MOBILE_PEDESTRIAN_CROSSING_SIGN": AgentType.CZONE_SIGN,
    "ANIMAL": AgentType.GENERIC_OBJECT,
    "DOG": AgentType.GENERIC_OBJECT,
}

FORECAST_TYPE_TO_AGENT: dict[str, AgentType] = {
    "vehicle": _V,
    "bus": _V,
    "pedestrian": _P,
    "cyclist": _B,
    "motorcyclist": _B,
    "riderless_bicycle": _B,
    "construction": AgentType.TRAFFIC_CONE,
    "static": AgentType.GENERIC_OBJECT,
    "background": AgentType.GENERIC_OBJECT,
    "unknown": AgentType.GENERIC_OBJECT,
}

_GENERIC_SIZE = (1.0, 1.0, 1.0)

FORECAST_SIZE_LWH: dict[str, tuple[float, float, float]] = {
    "vehicle": (4.5, 2.0, 1.6),
    "bus": (12.0, 2.5, 3.2),
    "pedestrian": (0.6, 0.6, 1.7),
    "cyclist": (2.0, 0.7, 1.7),
    "motorcyclist": (2.0, 0.7, 1.7),
    "riderless_bicycle": (1.8, 0.6, 1.1),
    "construction": (0.5, 0.5, 1.0),
    "static": _GENERIC_SIZE,
    "background": _GENERIC_SIZE,
    "unknown": _GENERIC_SIZE,
}


def _lookup(names: np.ndarray, table: dict, default, what: str) -> np.ndarray:
    """Map an array of names through ``table`` (one dict lookup per distinct name)."""
    uniq, inv = np.unique(names.astype(str), return_inverse=True)
    unknown = [u for u in uniq if u not in table]
    if unknown:
        log.warning("unknown AV2 %s %s: treated as %s", what, unknown, default)
    return uniq, inv, [table.get(u, default) for u in uniq]


def sensor_agent_types(categories: np.ndarray) -> np.ndarray:
    """``[N]`` int8 AgentType codes of sensor-dataset categories ``[N]`` (str)."""
    _, inv, vals = _lookup(categories, SENSOR_CATEGORY_TO_TYPE, AgentType.GENERIC_OBJECT, "category")
    return np.asarray([int(v) for v in vals], np.int8)[inv].reshape(-1)


def forecast_agent_types(object_types: np.ndarray) -> np.ndarray:
    """``[N]`` int8 AgentType codes of forecasting ``object_type`` values ``[N]`` (str)."""
    _, inv, vals = _lookup(object_types, FORECAST_TYPE_TO_AGENT, AgentType.GENERIC_OBJECT, "object_type")
    return np.asarray([int(v) for v in vals], np.int8)[inv].reshape(-1)


def forecast_sizes(object_types: np.ndarray) -> np.ndarray:
    """``[N, 3]`` float32 default box sizes (m, length/width/height) of forecasting ``object_type`` values."""
    uniq, inv = np.unique(object_types.astype(str), return_inverse=True)
    vals = np.asarray([FORECAST_SIZE_LWH.get(u, _GENERIC_SIZE) for u in uniq], np.float32).reshape(-1, 3)
    return vals[inv.reshape(-1)]
