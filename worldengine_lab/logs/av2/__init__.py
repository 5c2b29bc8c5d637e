"""Argoverse 2 readers: sensor-dataset logs, motion-forecasting scenarios and vector maps -> Scenario / MapData.

Examples:
    >>> from worldengine_lab.logs import av2
    >>> sorted(av2.SENSOR_CATEGORY_TO_TYPE)[:2]
    ['ANIMAL', 'ARTICULATED_BUS']
"""
from .annotations import POSE_FILE, boxes_to_city, read_annotations, read_poses, read_sensor_boxes
from .categories import (
    EGO_REAR_AXLE_TO_CENTER_M,
    EGO_SIZE_LWH,
    FORECAST_SIZE_LWH,
    FORECAST_TYPE_TO_AGENT,
    SENSOR_CATEGORY_TO_TYPE,
)
from .discover import discover, scan_forecasting_scenarios, scan_sensor_logs
from .forecasting import read_forecasting_scenario
from .loader import load_catalog_row, read_sensor_window_at
from .map import CityMap, parse_map, read_map
from .sensor import SensorLog, load_sensor_log, read_sensor_log, read_sensor_windows

__all__ = [
    "POSE_FILE",
    "read_map",
    "parse_map",
    "CityMap",
    "read_sensor_log",
    "read_sensor_windows",
    "read_sensor_window_at",
    "load_catalog_row",
    "load_sensor_log",
    "SensorLog",
    "read_sensor_boxes",
    "read_poses",
    "read_annotations",
    "boxes_to_city",
    "read_forecasting_scenario",
    "discover",
    "scan_sensor_logs",
    "scan_forecasting_scenarios",
    "SENSOR_CATEGORY_TO_TYPE",
    "FORECAST_TYPE_TO_AGENT",
    "FORECAST_SIZE_LWH",
    "EGO_SIZE_LWH",
    "EGO_REAR_AXLE_TO_CENTER_M",
]
