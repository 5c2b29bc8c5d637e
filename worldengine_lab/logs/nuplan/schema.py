"""The nuPlan log (.db) and map (.gpkg) schema as data: spec/data-formats.md §1.3 and §1.9.3.

The synthetic writer creates exactly these tables; the reader checks the columns it relies on
(``REQUIRED_*``) before querying, so a missing table or column fails at open time with its name.
"""
from __future__ import annotations

__all__ = [
    "DB_TABLES",
    "REQUIRED_DB_COLUMNS",
    "GPKG_LAYERS",
    "REQUIRED_GPKG_COLUMNS",
    "CATEGORY_NAMES",
    "TRAFFIC_LIGHT_CODES",
    "SCENARIO_TYPES",
    "MAP_VERSIONS",
    "MAP_LOCATIONS",
    "MAP_EPSG",
    "LIDAR_CHANNEL",
]

LIDAR_CHANNEL = "MergedPointCloud"

# column name -> SQLite declared type, in the devkit's order (§1.3)
DB_TABLES: dict[str, list[tuple[str, str]]] = {
    "log": [
        ("token", "BLOB NOT NULL PRIMARY KEY"), ("vehicle_name", "VARCHAR(64)"), ("date", "VARCHAR(64)"),
        ("timestamp", "INTEGER"), ("logfile", "VARCHAR(64)"), ("location", "VARCHAR(64)"),
        ("map_version", "VARCHAR(64)"),
    ],
    "category": [("token", "BLOB NOT NULL PRIMARY KEY"), ("name", "VARCHAR(64)"), ("description", "TEXT")],
    "ego_pose": [
        ("token", "BLOB NOT NULL PRIMARY KEY"), ("timestamp", "INTEGER"), ("x", "FLOAT"), ("y", "FLOAT"),
        ("z", "FLOAT"), ("qw", "FLOAT"), ("qx", "FLOAT"), ("qy", "FLOAT"), ("qz", "FLOAT"), ("vx", "FLOAT"),
        ("vy", "FLOAT"), ("vz", "FLOAT"), ("acceleration_x", "FLOAT"), ("acceleration_y", "FLOAT"),
        ("acceleration_z", "FLOAT"), ("angular_rate_x", "FLOAT"), ("angular_rate_y", "FLOAT"),
        ("angular_rate_z", "FLOAT"), ("epsg", "INTEGER"), ("log_token", "BLOB NOT NULL"),
    ],
    "lidar": [
        ("token", "BLOB NOT NULL PRIMARY KEY"), ("log_token", "BLOB NOT NULL"), ("channel", "VARCHAR(64)"),
        ("model", "VARCHAR(64)"), ("translation", "BLOB"), ("rotation", "BLOB"),
    ],
    "camera": [
        ("token", "BLOB NOT NULL PRIMARY KEY"), ("log_token", "BLOB NOT NULL"), ("channel", "VARCHAR(64)"),
        ("model", "VARCHAR(64)"), ("translation", "BLOB"), ("rotation", "BLOB"), ("intrinsic", "BLOB"),
        ("distortion", "BLOB"), ("width", "INTEGER"), ("height", "INTEGER"),
    ],
    "scene": [
        ("token", "BLOB NOT NULL PRIMARY KEY"), ("log_token", "BLOB NOT NULL"), ("name", "TEXT"),
        ("goal_ego_pose_token", "BLOB"), ("roadblock_ids", "TEXT"),
    ],
    "lidar_pc": [
        ("token", "BLOB NOT NULL PRIMARY KEY"), ("next_token", "BLOB"), ("prev_token", "BLOB"),
        ("ego_pose_token", "BLOB NOT NULL"), ("lidar_token", "BLOB NOT NULL"), ("scene_token", "BLOB"),
        ("filename", "VARCHAR(128)"), ("timestamp", "INTEGER"),
    ],
    "image": [
        ("token", "BLOB NOT NULL PRIMARY KEY"), ("next_token", "BLOB"), ("prev_token", "BLOB"),
        ("ego_pose_token", "BLOB NOT NULL"), ("camera_token", "BLOB NOT NULL"), ("filename_jpg", "VARCHAR(128)"),
        ("timestamp", "INTEGER"),
    ],
    "track": [
        ("token", "BLOB NOT NULL PRIMARY KEY"), ("category_token", "BLOB NOT NULL"), ("width", "FLOAT"),
        ("length", "FLOAT"), ("height", "FLOAT"),
    ],
    "lidar_box": [
        ("token", "BLOB NOT NULL PRIMARY KEY"), ("lidar_pc_token", "BLOB NOT NULL"), ("track_token", "BLOB"),
        ("next_token", "BLOB"), ("prev_token", "BLOB"), ("x", "FLOAT"), ("y", "FLOAT"), ("z", "FLOAT"),
        ("width", "FLOAT"), ("length", "FLOAT"), ("height", "FLOAT"), ("vx", "FLOAT"), ("vy", "FLOAT"),
        ("vz", "FLOAT"), ("yaw", "FLOAT"), ("confidence", "FLOAT"),
    ],
    "scenario_tag": [
        ("token", "BLOB NOT NULL PRIMARY KEY"), ("lidar_pc_token", "BLOB NOT NULL"), ("type", "TEXT"),
        ("agent_track_token", "BLOB"),
    ],
    "traffic_light_status": [
        ("token", "BLOB NOT NULL PRIMARY KEY"), ("lidar_pc_token", "BLOB NOT NULL"), ("lane_connector_id", "INTEGER"),
        ("status", "VARCHAR(8)"),
    ],
}

# what the scenario reader queries (a subset of DB_TABLES)
REQUIRED_DB_COLUMNS: dict[str, tuple[str, ...]] = {
    "log": ("token", "location", "map_version"),
    "ego_pose": ("token", "x", "y", "qw", "qx", "qy", "qz", "vx", "vy"),
    "lidar": ("token", "channel"),
    "lidar_pc": ("token", "ego_pose_token", "lidar_token", "scene_token", "timestamp"),
    "lidar_box": ("lidar_pc_token", "track_token", "x", "y", "yaw", "vx", "vy", "width", "length", "height"),
    "track": ("token", "category_token"),
    "category": ("token", "name"),
    "scene": ("token", "name", "goal_ego_pose_token", "roadblock_ids"),
    "scenario_tag": ("lidar_pc_token", "type"),
    "traffic_light_status": ("lidar_pc_token", "lane_connector_id", "status"),
}

# GeoPackage vector layers: layer -> (geometry type, [(column, type)]) (§1.9.3; devkit columns plus a few
# of the [unconfirmed] extras that make the synthetic maps look like real ones)
GPKG_LAYERS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "lanes_polygons": ("POLYGON", [
        ("lane_fid", "INTEGER"), ("lane_group_fid", "INTEGER"), ("lane_index", "INTEGER"),
        ("left_boundary_fid", "INTEGER"), ("right_boundary_fid", "INTEGER"), ("speed_limit_mps", "REAL"),
        ("width", "REAL"), ("lane_type_fid", "INTEGER"),
    ]),
    "lane_connectors": ("LINESTRING", [
        ("exit_lane_fid", "INTEGER"), ("entry_lane_fid", "INTEGER"), ("lane_group_connector_fid", "INTEGER"),
        ("traffic_light_stop_line_fids", "TEXT"), ("speed_limit_mps", "REAL"), ("exit_lane_group_fid", "INTEGER"),
        ("entry_lane_group_fid", "INTEGER"), ("intersection_fid", "INTEGER"), ("turn_type_fid", "INTEGER"),
    ]),
    "gen_lane_connectors_scaled_width_polygons": ("POLYGON", [
        ("lane_connector_fid", "INTEGER"), ("left_boundary_fid", "INTEGER"), ("right_boundary_fid", "INTEGER"),
    ]),
    "baseline_paths": ("LINESTRING", [("lane_fid", "INTEGER"), ("lane_connector_fid", "INTEGER"),
                                      ("path_type_fid", "INTEGER")]),
    "boundaries": ("LINESTRING", [("boundary_type_fid", "INTEGER")]),
    "lane_groups_polygons": ("POLYGON", [("left_boundary_fid", "INTEGER"), ("right_boundary_fid", "INTEGER")]),
    "lane_group_connectors": ("POLYGON", [
        ("from_lane_group_fid", "INTEGER"), ("to_lane_group_fid", "INTEGER"), ("intersection_fid", "INTEGER"),
    ]),
    "intersections": ("POLYGON", [("intersection_type_fid", "INTEGER"), ("is_mini", "INTEGER")]),
    "stop_polygons": ("POLYGON", [("stop_polygon_type_fid", "INTEGER"), ("lane_fids", "TEXT"),
                                  ("lane_connector_fids", "TEXT"), ("crosswalk_fids", "TEXT")]),
    "crosswalks": ("POLYGON", [("intersection_fids", "TEXT"), ("is_marked", "INTEGER")]),
    "walkways": ("POLYGON", []),
    "carpark_areas": ("POLYGON", [("heading", "REAL")]),
    "road_segments": ("POLYGON", [("lane_group_fids", "TEXT")]),
    "generic_drivable_areas": ("POLYGON", []),
    "traffic_lights": ("POINT", [("lane_connector_fid", "INTEGER"), ("heading", "REAL")]),
}

REQUIRED_GPKG_COLUMNS: dict[str, tuple[str, ...]] = {
    "lanes_polygons": ("fid", "lane_group_fid", "lane_index", "left_boundary_fid", "right_boundary_fid",
                       "speed_limit_mps"),
    "lane_connectors": ("fid", "exit_lane_fid", "entry_lane_fid", "lane_group_connector_fid",
                        "traffic_light_stop_line_fids", "speed_limit_mps"),
    "gen_lane_connectors_scaled_width_polygons": ("lane_connector_fid", "left_boundary_fid", "right_boundary_fid"),
    "baseline_paths": ("lane_fid", "lane_connector_fid"),
    "boundaries": ("fid",),
    "lane_groups_polygons": ("fid",),
    "lane_group_connectors": ("fid", "from_lane_group_fid", "to_lane_group_fid"),
    "intersections": ("fid",),
    "stop_polygons": ("fid", "stop_polygon_type_fid"),
    "crosswalks": ("fid",),
    "road_segments": ("fid",),
}
# layers that may be absent (drivable-area parts and walkways); the reader treats them as empty
OPTIONAL_GPKG_LAYERS = ("walkways", "carpark_areas", "generic_drivable_areas", "traffic_lights")

CATEGORY_NAMES: tuple[str, ...] = (
    "vehicle", "pedestrian", "bicycle", "traffic_cone", "barrier", "czone_sign", "generic_object",
)
TRAFFIC_LIGHT_CODES: dict[str, int] = {"green": 0, "yellow": 1, "red": 2, "unknown": 3}

# the nuPlan v1.1 maps (§1.1): name -> version, location, projected EPSG
MAP_VERSIONS: dict[str, str] = {
    "us-nv-las-vegas-strip": "9.15.1915",
    "us-pa-pittsburgh-hazelwood": "9.17.1937",
    "sg-one-north": "9.17.1964",
    "us-ma-boston": "9.12.1817",
}
MAP_LOCATIONS: dict[str, str] = {
    "us-nv-las-vegas-strip": "las_vegas",
    "us-pa-pittsburgh-hazelwood": "pittsburgh",
    "sg-one-north": "singapore",
    "us-ma-boston": "boston",
}
MAP_EPSG: dict[str, int] = {
    "us-nv-las-vegas-strip": 32611,
    "us-pa-pittsburgh-hazelwood": 32617,
    "sg-one-north": 32648,
    "us-ma-boston": 32619,
}

SCENARIO_TYPES: tuple[str, ...] = tuple("""
accelerating_at_crosswalk accelerating_at_stop_sign accelerating_at_stop_sign_no_crosswalk
accelerating_at_traffic_light accelerating_at_traffic_light_with_lead accelerating_at_traffic_light_without_lead
behind_bike behind_long_vehicle behind_pedestrian_on_driveable behind_pedestrian_on_pickup_dropoff changing_lane
changing_lane_to_left changing_lane_to_right changing_lane_with_lead changing_lane_with_trail crossed_by_bike
crossed_by_vehicle following_lane_with_lead following_lane_with_slow_lead following_lane_without_lead
high_lateral_acceleration high_magnitude_jerk high_magnitude_speed low_magnitude_speed medium_magnitude_speed
near_barrier_on_driveable near_construction_zone_sign near_high_speed_vehicle near_long_vehicle near_multiple_bikes
near_multiple_pedestrians near_multiple_vehicles near_pedestrian_at_pickup_dropoff near_pedestrian_on_crosswalk
near_pedestrian_on_crosswalk_with_ego near_trafficcone_on_driveable on_all_way_stop_intersection on_carpark
on_intersection on_pickup_dropoff on_stopline_crosswalk on_stopline_stop_sign on_stopline_traffic_light
on_traffic_light_intersection starting_high_speed_turn starting_left_turn starting_low_speed_turn
starting_protected_cross_turn starting_protected_noncross_turn starting_right_turn
starting_straight_stop_sign_intersection_traversal starting_straight_traffic_light_intersection_traversal
starting_u_turn starting_unprotected_cross_turn starting_unprotected_noncross_turn stationary stationary_at_crosswalk
stationary_at_traffic_light_with_lead stationary_at_traffic_light_without_lead stationary_in_traffic
stopping_at_crosswalk stopping_at_stop_sign_no_crosswalk stopping_at_stop_sign_with_lead
stopping_at_stop_sign_without_lead stopping_at_traffic_light_with_lead stopping_at_traffic_light_without_lead
stopping_with_lead traversing_crosswalk traversing_intersection traversing_narrow_lane traversing_pickup_dropoff
traversing_traffic_light_intersection waiting_for_pedestrian_to_cross
""".split())
assert len(SCENARIO_TYPES) == 73
