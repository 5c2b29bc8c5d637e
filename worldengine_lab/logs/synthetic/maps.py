"""Write synthetic maps as nuPlan GeoPackages (spec §1.9) and the map index ``nuplan-maps-v1.0.json`` (§1.8).

Every layer of ``schema.GPKG_LAYERS`` is created (empty layers included) in the map's projected UTM CRS
(``srs_id`` = its EPSG code), plus the ``meta`` attribute table naming the projected and geographic CRS.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from ..nuplan.geopackage import add_layer, create_geopackage, insert_features
from ..nuplan.schema import GPKG_LAYERS, MAP_VERSIONS
from .road_network import RoadNetwork

__all__ = ["write_map", "write_maps_index", "map_gpkg_path", "MAPS_INDEX_NAME"]

MAPS_INDEX_NAME = "nuplan-maps-v1.0.json"


def map_gpkg_path(maps_root: Path, map_name: str) -> Path:
    """``<maps_root>/<map_name>/<version>/map.gpkg``."""
    return Path(maps_root) / map_name / MAP_VERSIONS[map_name] / "map.gpkg"


def _crs(epsg: int) -> tuple[str, str]:
    """(name, WKT) of an EPSG code, from pyproj."""
    from pyproj import CRS  # imported here: only map writing needs it

    crs = CRS.from_epsg(epsg)
    return crs.name, crs.to_wkt("WKT1_GDAL")


def _rows(net: RoadNetwork) -> dict[str, list[tuple[int, BaseGeometry, list]]]:
    """Features of every layer in the local frame: layer -> [(fid, geometry, column values)]."""
    lanes_group = {ln.fid: ln.group_fid for ln in net.lanes}
    rows: dict[str, list] = {name: [] for name in GPKG_LAYERS}
    for ln in net.lanes:
        rows["lanes_polygons"].append((ln.fid, ln.polygon, [ln.fid, ln.group_fid, ln.index, ln.left_boundary_fid,
                                                          ln.right_boundary_fid, ln.speed_limit_mps, ln.width_m, 0]))
        rows["baseline_paths"].append((ln.baseline_fid, LineString(ln.centre), [ln.fid, None, 0]))
    for c in net.connectors:
        stops = "" if c.stop_polygon_fid is None else str(c.stop_polygon_fid)
        rows["lane_connectors"].append((c.fid, LineString(c.centre), [
            c.exit_lane_fid, c.entry_lane_fid, c.group_connector_fid, stops, c.speed_limit_mps,
            lanes_group[c.exit_lane_fid], lanes_group[c.entry_lane_fid], c.intersection_fid, c.turn_type]))
        rows["gen_lane_connectors_scaled_width_polygons"].append(
            (c.fid, c.polygon, [c.fid, c.left_boundary_fid, c.right_boundary_fid]))
        rows["baseline_paths"].append((c.baseline_fid, LineString(c.centre), [None, c.fid, 1]))
    rows["baseline_paths"].sort(key=lambda r: r[0])
    rows["boundaries"] = [(b.fid, LineString(b.line), [b.boundary_type]) for b in net.boundaries]
    rows["lane_groups_polygons"] = [(g.fid, g.polygon, [g.left_boundary_fid, g.right_boundary_fid])
                                    for g in net.lane_groups]
    rows["lane_group_connectors"] = [(g.fid, g.polygon, [g.from_group_fid, g.to_group_fid, g.intersection_fid])
                                     for g in net.group_connectors]
    rows["intersections"] = [(i.fid, i.polygon, [i.intersection_type, 0]) for i in net.intersections]
    rows["stop_polygons"] = [(s.fid, s.polygon, [s.stop_type, str(s.lane_fid), ",".join(map(str, s.connector_fids)),
                                                 ""]) for s in net.stop_polygons]
    rows["crosswalks"] = [(c.fid, c.polygon, [str(c.intersection_fid), 1]) for c in net.crosswalks]
    rows["walkways"] = [(w.fid, w.polygon, []) for w in net.walkways]
    rows["carpark_areas"] = [(c.fid, c.polygon, [c.heading]) for c in net.carparks]
    rows["road_segments"] = [(s.fid, s.polygon, [",".join(map(str, s.group_fids))]) for s in net.road_segments]
    rows["traffic_lights"] = [(t.fid, t.point, [t.connector_fid, t.heading]) for t in net.traffic_lights]
    for name in rows:
        rows[name].sort(key=lambda r: r[0])
    return rows


def _repair(geoms: np.ndarray) -> np.ndarray:
    """Polygons that rounding made invalid after the shift to UTM (slivers where unioned parts meet) are
    rebuilt with ``buffer(0)``, keeping the largest part."""
    out = np.array(geoms, dtype=object)
    for i in np.flatnonzero(~shapely.is_valid(out)):
        fixed = out[i].buffer(0)
        if fixed.geom_type == "MultiPolygon":
            fixed = max(fixed.geoms, key=lambda p: p.area)
        out[i] = fixed
    return out


def write_map(net: RoadNetwork, path: Path, last_change: str) -> None:
    """Write ``net`` as the GeoPackage ``path`` (must not exist), shifted to UTM by ``net.origin_xy``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    origin = np.array(net.origin_xy, dtype=np.float64)
    srs_name, wkt = _crs(net.epsg)
    con = sqlite3.connect(str(path), isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=DELETE")
        create_geopackage(con, net.epsg, srs_name, wkt)  # commits its own DDL (executescript)
        con.execute("BEGIN")
        con.execute("CREATE TABLE meta (fid INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, value TEXT)")
        con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, last_change) VALUES (?,?,?,?)",
                    ("meta", "attributes", "meta", last_change))
        con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
            ("projectedCoordSystem", f"epsg:{net.epsg}"), ("geographicCoordSystem", "epsg:4326"),
            ("map_name", net.map_name), ("version", MAP_VERSIONS[net.map_name]), ("layout", net.layout),
            ("drive_on_left", str(int(net.drive_on_left))),
        ])
        for name, rows in _rows(net).items():
            geom_type, columns = GPKG_LAYERS[name]
            add_layer(con, name, geom_type, columns, net.epsg, last_change)
            shifted = _repair(shapely.transform([g for _, g, _ in rows], lambda xy: xy + origin)) if rows else []
            insert_features(con, name, [c for c, _ in columns],
                            [(fid, geom, vals) for (fid, _, vals), geom in zip(rows, shifted)], net.epsg)
        con.execute("COMMIT")
    finally:
        con.close()


def write_maps_index(maps_root: Path, map_names: list[str]) -> Path:
    """Write ``nuplan-maps-v1.0.json``: map name -> {"version", "layers"} (no raster layers)."""
    index = {name: {"version": MAP_VERSIONS[name], "layers": {}} for name in map_names}
    path = Path(maps_root) / MAPS_INDEX_NAME
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path
