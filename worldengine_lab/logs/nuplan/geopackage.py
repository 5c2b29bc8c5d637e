"""GeoPackage container: geometry blobs (GP header + WKB) and the OGC core tables (spec §1.9.1).

Reading and writing use only sqlite3, struct and shapely's WKB codec, so maps open without GDAL.
"""
from __future__ import annotations

import sqlite3
import struct
from typing import Iterable, Sequence

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from ...errors import CorruptFileError

__all__ = ["encode_geometry", "decode_geometry", "create_geopackage", "add_layer", "insert_features"]

_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def encode_geometry(geom: BaseGeometry, srs_id: int) -> bytes:
    """Encode a shapely geometry as a GeoPackage geometry blob with an xy envelope (little-endian)."""
    wkb = shapely.to_wkb(geom, byte_order=1, output_dimension=2)
    if geom.is_empty:
        return b"GP" + bytes([0, 0b00010001]) + struct.pack("<i", srs_id) + wkb
    minx, miny, maxx, maxy = geom.bounds
    header = b"GP" + bytes([0, 0b00000011]) + struct.pack("<i4d", srs_id, minx, maxx, miny, maxy)
    return header + wkb


def decode_geometry(blob: bytes, where: str = "geometry") -> bytes:
    """Strip the GeoPackage header of ``blob`` and return its WKB payload.

    Raises CorruptFileError naming ``where`` if the blob is not a GeoPackage geometry.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) < 8:
        raise CorruptFileError(f"{where}: expected a GeoPackage geometry blob, received {type(blob).__name__}")
    b = bytes(blob)
    if b[:2] != b"GP":
        raise CorruptFileError(f"{where}: expected the GeoPackage magic 'GP', received {b[:2]!r}")
    flags = b[3]
    env = (flags >> 1) & 0b111
    if env not in _ENVELOPE_BYTES:
        raise CorruptFileError(f"{where}: envelope indicator {env} is not defined by the GeoPackage standard")
    start = 8 + _ENVELOPE_BYTES[env]
    if len(b) <= start:
        raise CorruptFileError(f"{where}: geometry blob truncated ({len(b)} bytes, header needs {start + 1})")
    return b[start:]


def decode_many(blobs: Sequence[bytes], where: str) -> np.ndarray:
    """Decode a column of GeoPackage blobs into an object array of shapely geometries (vectorised WKB parse)."""
    wkbs = [decode_geometry(b, f"{where}[{i}]") if b is not None else None for i, b in enumerate(blobs)]
    try:
        return shapely.from_wkb(np.array(wkbs, dtype=object), on_invalid="raise")
    except Exception as exc:  # shapely raises GEOSException / ValueError on bad WKB
        raise CorruptFileError(f"{where}: invalid WKB geometry ({exc})") from exc


def create_geopackage(con: sqlite3.Connection, srs_id: int, srs_name: str, definition: str) -> None:
    """Create the OGC core tables and register ``srs_id`` (a projected CRS given as WKT or 'undefined')."""
    con.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
    con.execute("PRAGMA user_version = 10300")
    for ddl in (
        "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY, "
        "organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, "
        "description TEXT)",
        "CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, "
        "identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL, "
        "min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER)",
        "CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, "
        "geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, "
        "CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name))",
    ):  # plain execute (not executescript, which commits) so the caller's transaction covers the whole map
        con.execute(ddl)
    con.executemany(
        "INSERT INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)",
        [
            ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", ""),
            ("Undefined geographic SRS", 0, "NONE", 0, "undefined", ""),
            ("WGS 84 geodetic", 4326, "EPSG", 4326, 'GEOGCS["WGS 84"]', ""),
            (srs_name, srs_id, "EPSG", srs_id, definition, ""),
        ],
    )


def add_layer(
    con: sqlite3.Connection,
    name: str,
    geometry_type: str,
    columns: Sequence[tuple[str, str]],
    srs_id: int,
    last_change: str,
) -> None:
    """Create a feature table ``name`` (fid + geom + columns) and register it in the core tables.

    ``last_change`` is written verbatim (ISO-8601) so output stays deterministic.
    """
    cols = "".join(f', "{c}" {t}' for c, t in columns)
    con.execute(f'CREATE TABLE "{name}" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom {geometry_type}{cols})')
    con.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, last_change, srs_id) VALUES (?,?,?,?,?)",
        (name, "features", name, last_change, srs_id),
    )
    con.execute("INSERT INTO gpkg_geometry_columns VALUES (?,?,?,?,0,0)", (name, "geom", geometry_type, srs_id))


def insert_features(
    con: sqlite3.Connection,
    name: str,
    columns: Sequence[str],
    rows: Iterable[tuple[int, BaseGeometry, Sequence[object]]],
    srs_id: int,
) -> None:
    """Insert ``(fid, geometry, values)`` rows into layer ``name`` and update its extent in gpkg_contents."""
    col_sql = "".join(f', "{c}"' for c in columns)
    qs = ",?" * len(columns)
    bounds = [np.inf, np.inf, -np.inf, -np.inf]
    payload = []
    for fid, geom, values in rows:
        payload.append((fid, encode_geometry(geom, srs_id), *values))
        if not geom.is_empty:
            b = geom.bounds
            bounds = [min(bounds[0], b[0]), min(bounds[1], b[1]), max(bounds[2], b[2]), max(bounds[3], b[3])]
    con.executemany(f'INSERT INTO "{name}" (fid, geom{col_sql}) VALUES (?,?{qs})', payload)
    if payload:
        con.execute(
            "UPDATE gpkg_contents SET min_x=?, min_y=?, max_x=?, max_y=? WHERE table_name=?", (*bounds, name)
        )
