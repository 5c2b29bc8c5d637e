"""nuPlan logs (.db) and maps (.gpkg), read natively with sqlite3, pandas and shapely (spec §1)."""
from .db import LogInfo, NuPlanDB, parse_roadblock_ids, yaw_from_quaternion
from .loader import discover_logs, iter_log_scenarios, load_catalog_row, open_log
from .map import NuPlanMap, find_map_file, load_map
from .reader import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_LWH, NuPlanLog, WindowConfig

__all__ = [
    "LogInfo",
    "NuPlanDB",
    "NuPlanLog",
    "NuPlanMap",
    "WindowConfig",
    "EGO_REAR_AXLE_TO_CENTER_M",
    "EGO_SIZE_LWH",
    "discover_logs",
    "find_map_file",
    "iter_log_scenarios",
    "load_catalog_row",
    "load_map",
    "open_log",
    "parse_roadblock_ids",
    "yaw_from_quaternion",
]
