"""NuPlanMap: a nuPlan GeoPackage map read natively (spec §1.9), cropped into MapData per scenario.

The whole vector map is parsed once per file (cached), into global-frame float64 arrays; each scenario
then takes a cheap crop around its ego path and shifts it into its local frame.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from ...datatypes import MapData, Polylines
from ...errors import CorruptFileError, MissingColumnError, MissingDependencyError, MissingFileError, MissingLayerError
from .geopackage import decode_many
from .schema import MAP_VERSIONS, OPTIONAL_GPKG_LAYERS, REQUIRED_GPKG_COLUMNS

__all__ = ["NuPlanMap", "find_map_file", "load_map"]

log = logging.getLogger(__name__)

_CACHE: dict[tuple[str, int, int, int], "NuPlanMap"] = {}
_CACHE_LOCK = threading.Lock()


def find_map_file(maps_root: str | Path | None, map_name: str) -> Path:
    """Locate ``<maps_root>/<map_name>/<version>/map.gpkg`` (spec §1.1).

    The version comes from ``nuplan-maps-v1.0.json`` when present, else from the single version folder.
    ``maps_root`` defaults to ``$NUPLAN_MAPS_ROOT``.
    """
    root = maps_root or os.environ.get("NUPLAN_MAPS_ROOT")
    if not root:
        raise MissingFileError(
            f"no maps root given for map '{map_name}'; pass maps_root= or set NUPLAN_MAPS_ROOT to the folder "
            "that holds nuplan-maps-v1.0.json"
        )
    root = Path(root)
    name = map_name[:-5] if map_name.endswith(".gpkg") else map_name
    versions: list[str] = []
    meta = root / "nuplan-maps-v1.0.json"
    if meta.is_file():
        try:
            entry = json.loads(meta.read_bytes().decode("utf-8")).get(name)
        except (ValueError, AttributeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise CorruptFileError(
                f"{meta}: not a valid maps index (expected a JSON object of map name -> {{'version': ...}}; "
                f"{type(exc).__name__}: {str(exc)[:200]}); restore nuplan-maps-v1.0.json from the nuPlan maps "
                "download, or delete it to use the version folders"
            ) from exc
        if isinstance(entry, dict) and entry.get("version"):
            versions.append(str(entry["version"]))
    if name in MAP_VERSIONS:
        versions.append(MAP_VERSIONS[name])
    if (root / name).is_dir():
        versions += sorted(p.name for p in (root / name).iterdir() if (p / "map.gpkg").is_file())
    for v in versions:
        path = root / name / v / "map.gpkg"
        if path.is_file():
            return path
    raise MissingFileError(
        f"{root}: no map.gpkg for map '{name}' (looked in {[str(root / name / v) for v in dict.fromkeys(versions)] or [str(root / name)]}); "
        "check NUPLAN_MAPS_ROOT points at the nuPlan maps folder"
    )


def load_map(path: str | Path) -> "NuPlanMap":
    """Parse (or reuse the cached parse of) the GeoPackage map at ``path``."""
    p = Path(path).resolve()
    try:
        st = p.stat()
        key = (str(p), st.st_mtime_ns, st.st_size, st.st_ino)
    except FileNotFoundError:
        raise MissingFileError(f"{path}: map file not found") from None
    with _CACHE_LOCK:
        if key not in _CACHE:
            if len(_CACHE) >= 8:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = NuPlanMap(p)
        return _CACHE[key]


@dataclass(frozen=True)
class _Layer:
    frame: pd.DataFrame  # attribute columns, index = fid
    geoms: np.ndarray  # [n] object shapely geometries, projected frame


class NuPlanMap:
    """All vector layers of one nuPlan map, in its projected (UTM) frame, float64.

    Lanes and lane connectors share one index space: ``lane_ids`` lists lanes then connectors.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            head = fh.read(16)
        if head != b"SQLite format 3\x00":
            raise CorruptFileError(f"{self.path}: not a GeoPackage (SQLite header missing); the map file is damaged")
        con = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True)
        try:
            self.name = self.path.parent.parent.name
            self._tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            self.epsg = self._projected_epsg(con)
            layers = {name: self._read_layer(con, name) for name in set(REQUIRED_GPKG_COLUMNS) | set(OPTIONAL_GPKG_LAYERS)}
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            raise CorruptFileError(f"{self.path}: cannot read GeoPackage ({str(exc)[:300]}); the map file is "
                                   "damaged, restore it from the nuPlan maps download") from exc
        finally:
            con.close()
        try:
            self._build(layers)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError, shapely.errors.GEOSException) as exc:
            raise CorruptFileError(
                f"{self.path}: the map layers hold values the reader cannot use ({type(exc).__name__}: "
                f"{str(exc)[:200]}); expected the nuPlan GeoPackage schema (spec §1.9.3) — the map file is damaged "
                "or not a nuPlan map, restore it from the nuPlan maps download"
            ) from exc

    # ------------------------------------------------------------------------------------------------ reading
    def _projected_epsg(self, con: sqlite3.Connection) -> int | None:
        if "meta" not in self._tables:
            return None
        for key, value in con.execute("SELECT key, value FROM meta"):
            if key == "projectedCoordSystem" and value:
                text = str(value).lower().replace("epsg:", "").strip()
                if text.isdigit():
                    return int(text)
        return None

    def _read_layer(self, con: sqlite3.Connection, name: str) -> _Layer | None:
        if name not in self._tables:
            if name in OPTIONAL_GPKG_LAYERS:
                return None
            raise MissingLayerError(
                f"{self.path}: layer '{name}' is missing; nuPlan maps need {sorted(REQUIRED_GPKG_COLUMNS)} (spec §1.9.3)"
            )
        info = con.execute(f'PRAGMA table_info("{name}")').fetchall()
        have = [r[1] for r in info]
        for col in dict.fromkeys(("fid", *REQUIRED_GPKG_COLUMNS.get(name, ()))):
            if col not in have:
                raise MissingColumnError(f"{self.path}: column '{name}.{col}' is missing (layer has {have})")
        geom_col = "geom"
        srs = None
        if "gpkg_geometry_columns" in self._tables:
            row = con.execute(
                "SELECT column_name, srs_id FROM gpkg_geometry_columns WHERE table_name = ?", (name,)
            ).fetchone()
            if row:
                geom_col, srs = row[0], row[1]
        if geom_col not in have:
            raise MissingColumnError(f"{self.path}: layer '{name}' has no geometry column '{geom_col}'")
        df = pd.read_sql_query(f'SELECT * FROM "{name}"', con)
        geoms = decode_many(df[geom_col].tolist(), f"{self.path.name}: {name}.{geom_col}")
        if srs is not None and self.epsg is not None and srs not in (self.epsg, 0, -1):
            try:
                geoms = _reproject(geoms, int(srs), self.epsg)
            except Exception as exc:  # noqa: BLE001 - pyproj raises CRSError/ProjError; int() ValueError/TypeError
                if isinstance(exc, MissingDependencyError):
                    raise
                raise CorruptFileError(
                    f"{self.path}: layer '{name}' declares srs_id {srs!r} in gpkg_geometry_columns, which cannot be "
                    f"reprojected to the map's EPSG:{self.epsg} ({type(exc).__name__}: {str(exc)[:150]}); expected "
                    "an EPSG code (spec §1.9.2) — the map file is damaged"
                ) from exc
        bad = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
        if bad.any():  # self-intersecting rings etc.: repair so clipping (GEOS overlay ops) cannot fail later
            log.warning("%s: layer '%s' has %d invalid geometries; repairing them with make_valid",
                        self.path.name, name, int(bad.sum()))
            geoms = geoms.copy()
            geoms[bad] = shapely.make_valid(geoms[bad])
        df = df.drop(columns=[geom_col]).set_index("fid", drop=False)
        return _Layer(df, geoms)

    # ------------------------------------------------------------------------------------------------ assembly
    def _build(self, layers: dict[str, _Layer | None]) -> None:
        lanes = layers["lanes_polygons"]
        conns = layers["lane_connectors"]
        paths = layers["baseline_paths"]
        bounds = layers["boundaries"]
        cpoly = layers["gen_lane_connectors_scaled_width_polygons"]
        assert lanes and conns and paths and bounds and cpoly
        lane_fids = lanes.frame["fid"].to_numpy(np.int64)
        conn_fids = conns.frame["fid"].to_numpy(np.int64)
        nl, nc = len(lane_fids), len(conn_fids)

        # centrelines from baseline_paths (lane_fid or lane_connector_fid), else the connector geometry
        pf = paths.frame
        lane_path = _first_geom_by(pf["lane_fid"], paths.geoms)
        conn_path = _first_geom_by(pf["lane_connector_fid"], paths.geoms)
        centres: list[np.ndarray] = []
        for fid in lane_fids:
            g = lane_path.get(int(fid))
            if g is None:
                raise MissingColumnError(f"{self.path}: lane {fid} has no baseline_paths row (lane_fid = {fid})")
            centres.append(_coords(g))
        for k, fid in enumerate(conn_fids):
            g = conn_path.get(int(fid), conns.geoms[k])
            centres.append(_coords(g))

        # boundaries (oriented along the centreline)
        bgeom = dict(zip(bounds.frame["fid"].to_numpy(np.int64).tolist(), bounds.geoms))
        cp = cpoly.frame.set_index("lane_connector_fid", drop=False)
        left_fids = np.concatenate([
            _int_col(lanes.frame["left_boundary_fid"]),
            _int_col(cp["left_boundary_fid"].reindex(conn_fids)),
        ])
        right_fids = np.concatenate([
            _int_col(lanes.frame["right_boundary_fid"]),
            _int_col(cp["right_boundary_fid"].reindex(conn_fids)),
        ])
        lefts = [_oriented(bgeom.get(int(f)), c) for f, c in zip(left_fids, centres)]
        rights = [_oriented(bgeom.get(int(f)), c) for f, c in zip(right_fids, centres)]

        self.lane_fids = np.concatenate([lane_fids, conn_fids])  # [L] int64
        self.lane_is_connector = np.concatenate([np.zeros(nl, bool), np.ones(nc, bool)])
        self.lane_ids = self.lane_fids.astype(str)
        self.roadblock_ids = np.concatenate([
            _int_col(lanes.frame["lane_group_fid"]).astype(str),
            _int_col(conns.frame["lane_group_connector_fid"]).astype(str),
        ])
        self.speed_limit = np.concatenate([
            pd.to_numeric(lanes.frame["speed_limit_mps"], errors="coerce").to_numpy(np.float64),
            pd.to_numeric(conns.frame["speed_limit_mps"], errors="coerce").to_numpy(np.float64),
        ]).astype(np.float32)
        self.centres, self.lefts, self.rights = centres, lefts, rights
        self.lane_bbox = np.array([_bbox(c) for c in centres]).reshape(-1, 4)  # [L, 4] minx miny maxx maxy

        # lane graph: lane -> connector (exit_lane_fid), connector -> lane (entry_lane_fid)
        lane_pos = pd.Series(np.arange(nl), index=lane_fids)
        exit_lane = lane_pos.reindex(_int_col(conns.frame["exit_lane_fid"])).to_numpy()
        entry_lane = lane_pos.reindex(_int_col(conns.frame["entry_lane_fid"])).to_numpy()
        conn_idx = nl + np.arange(nc)
        e1 = np.stack([exit_lane, conn_idx], 1)
        e2 = np.stack([conn_idx, entry_lane], 1)
        edges = np.concatenate([e1, e2]).astype(np.float64)
        self.edges = edges[np.isfinite(edges).all(1)].astype(np.int64)  # [E, 2]
        # neighbours: same lane group, lane_index k-1 (left) / k+1 (right)
        lf = lanes.frame
        grp = _int_col(lf["lane_group_fid"])
        li = _int_col(lf["lane_index"])
        key = pd.Series(np.arange(nl), index=pd.MultiIndex.from_arrays([grp, li]))
        if key.index.has_duplicates:  # two lanes claim one (lane group, lane index) slot: keep the first
            log.warning("%s: lanes_polygons has %d repeated (lane_group_fid, lane_index) pairs; their neighbours "
                        "are ambiguous, the first lane of each pair is used", self.path.name,
                        int(key.index.duplicated().sum()))
            key = key[~key.index.duplicated()]
        left_n = key.reindex(pd.MultiIndex.from_arrays([grp, li - 1])).to_numpy()
        right_n = key.reindex(pd.MultiIndex.from_arrays([grp, li + 1])).to_numpy()
        self.left_neighbor = np.concatenate([np.nan_to_num(left_n, nan=-1), -np.ones(nc)]).astype(np.int64)
        self.right_neighbor = np.concatenate([np.nan_to_num(right_n, nan=-1), -np.ones(nc)]).astype(np.int64)
        # traffic control: connectors with stop lines listed are signalised
        tl = conns.frame["traffic_light_stop_line_fids"].fillna("").astype(str).str.strip()
        self.conn_signalized = np.concatenate([np.zeros(nl, bool), (tl != "").to_numpy()])

        # areas
        drivable = [layers[n] for n in ("road_segments", "intersections", "generic_drivable_areas", "carpark_areas")]
        self.drivable = np.concatenate([l.geoms for l in drivable if l is not None]) if drivable else np.zeros(0, object)
        self.crosswalks = layers["crosswalks"].geoms if layers["crosswalks"] else np.zeros(0, object)
        self.walkways = layers["walkways"].geoms if layers["walkways"] else np.zeros(0, object)
        sp = layers["stop_polygons"]
        assert sp is not None
        self.stop_lines = sp.geoms
        self.stop_type = pd.to_numeric(sp.frame["stop_polygon_type_fid"], errors="coerce").fillna(5).to_numpy(np.int8)
        # route ids: roadblocks and roadblock connectors
        rb = layers["lane_groups_polygons"]
        rbc = layers["lane_group_connectors"]
        assert rb is not None and rbc is not None
        self.roadblock_fids = set(rb.frame["fid"].astype(int).astype(str))
        self.roadblock_connector_fids = set(rbc.frame["fid"].astype(int).astype(str))

    # ------------------------------------------------------------------------------------------------ crop
    def crop(self, center_xy: np.ndarray, radius_m: float, origin_xy: np.ndarray,
             extra_lanes: np.ndarray | None = None) -> tuple[MapData, np.ndarray]:
        """MapData of everything within ``radius_m`` of the points ``center_xy`` ([P, 2] float64, global),
        shifted into the local frame (``local = global - origin_xy``). ``extra_lanes`` (global lane indices)
        are always kept. Returns (map, kept global lane indices [L'] int64)."""
        c = np.atleast_2d(np.asarray(center_xy, np.float64))
        lo = c.min(0) - radius_m
        hi = c.max(0) + radius_m
        b = self.lane_bbox
        keep = (b[:, 0] <= hi[0]) & (b[:, 2] >= lo[0]) & (b[:, 1] <= hi[1]) & (b[:, 3] >= lo[1])
        if extra_lanes is not None and len(extra_lanes):
            keep[np.asarray(extra_lanes, np.int64)] = True
        kept = np.flatnonzero(keep)
        remap = -np.ones(len(keep), np.int64)
        remap[kept] = np.arange(len(kept))
        e = self.edges
        e = e[keep[e[:, 0]] & keep[e[:, 1]]]
        shift = lambda arrs: [a - origin_xy for a in arrs]  # noqa: E731
        ln = np.where(self.left_neighbor[kept] >= 0, remap[np.maximum(self.left_neighbor[kept], 0)], -1)
        rn = np.where(self.right_neighbor[kept] >= 0, remap[np.maximum(self.right_neighbor[kept], 0)], -1)
        box = shapely.box(lo[0], lo[1], hi[0], hi[1])
        rings, holes = _rings(_clip(self.drivable, box), origin_xy)
        cw, _ = _rings(_clip(self.crosswalks, box), origin_xy, exteriors_only=True)
        ww, _ = _rings(_clip(self.walkways, box), origin_xy, exteriors_only=True)
        sl_hit = shapely.intersects(self.stop_lines, box) if len(self.stop_lines) else np.zeros(0, bool)
        sl, _ = _rings(self.stop_lines[sl_hit], origin_xy, exteriors_only=True)
        sl_type = self.stop_type[sl_hit]
        if len(sl) != len(sl_type):  # multipolygon stop lines: repeat the type per part
            sl_type = np.concatenate([np.full(len(_rings(np.array([g]), origin_xy, True)[0]), t, np.int8)
                                      for g, t in zip(self.stop_lines[sl_hit], sl_type)]) if len(sl_type) else sl_type
        md = MapData(
            map_id=self.name,
            lane_ids=self.lane_ids[kept],
            lanes=Polylines.from_list(shift([self.centres[i] for i in kept])),
            lane_left=Polylines.from_list(shift([self.lefts[i] for i in kept])),
            lane_right=Polylines.from_list(shift([self.rights[i] for i in kept])),
            lane_is_connector=self.lane_is_connector[kept],
            lane_roadblock_ids=self.roadblock_ids[kept],
            lane_speed_limit_mps=self.speed_limit[kept],
            lane_successors=remap[e].astype(np.int32).reshape(-1, 2),
            lane_left_neighbor=ln.astype(np.int32),
            lane_right_neighbor=rn.astype(np.int32),
            drivable_areas=Polylines.from_list(rings),
            drivable_is_hole=np.asarray(holes, bool),
            crosswalks=Polylines.from_list(cw),
            stop_lines=Polylines.from_list(sl),
            stop_line_type=np.asarray(sl_type, np.int8),
            walkways=Polylines.from_list(ww),
            signalized_lanes=np.flatnonzero(self.conn_signalized[kept]).astype(np.int32),
        )
        return md, kept

    def lanes_of_roadblocks(self, ids: tuple[str, ...]) -> np.ndarray:
        """Global lane indices whose roadblock (or roadblock connector) id is in ``ids``."""
        return np.flatnonzero(np.isin(self.roadblock_ids, np.asarray(ids, dtype=str)))

    def __repr__(self) -> str:
        return f"NuPlanMap({self.name!r}, lanes+connectors={len(self.lane_ids)}, epsg={self.epsg})"


# ---------------------------------------------------------------------------------------------------- helpers
def _int_col(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").fillna(-1).to_numpy(np.int64)


def _first_geom_by(key: pd.Series, geoms: np.ndarray) -> dict[int, object]:
    k = pd.to_numeric(key, errors="coerce").to_numpy()
    out: dict[int, object] = {}
    for i in np.flatnonzero(np.isfinite(k)):
        out.setdefault(int(k[i]), geoms[i])
    return out


def _coords(g: object) -> np.ndarray:
    """[k, 2] float64 coordinates of a (multi)line geometry's first part."""
    if g is None or shapely.is_empty(g):
        return np.zeros((0, 2))
    if g.geom_type.startswith("Multi"):
        g = max(g.geoms, key=lambda p: p.length)
    if g.geom_type == "Polygon":
        g = g.exterior
    return np.asarray(shapely.get_coordinates(g), np.float64)[:, :2]


def _oriented(g: object, centre: np.ndarray) -> np.ndarray:
    """Boundary coordinates ordered in the centreline's driving direction."""
    xy = _coords(g)
    if len(xy) >= 2 and len(centre) >= 2:
        if np.linalg.norm(xy[0] - centre[0]) > np.linalg.norm(xy[-1] - centre[0]):
            xy = xy[::-1]
    return xy


def _bbox(xy: np.ndarray) -> np.ndarray:
    if not len(xy):
        return np.array([np.inf, np.inf, -np.inf, -np.inf])
    return np.concatenate([xy.min(0), xy.max(0)])


def _clip(geoms: np.ndarray, box: object) -> np.ndarray:
    if not len(geoms):
        return geoms
    hit = shapely.intersects(geoms, box)
    clipped = shapely.intersection(geoms[hit], box)
    return clipped[~shapely.is_empty(clipped)]


def _rings(geoms: np.ndarray, origin: np.ndarray, exteriors_only: bool = False) -> tuple[list[np.ndarray], list[bool]]:
    """Closed exterior (and hole) rings of polygonal geometries, shifted to the local frame."""
    rings: list[np.ndarray] = []
    holes: list[bool] = []
    for g in geoms:
        parts = getattr(g, "geoms", [g])
        for p in parts:
            if p.geom_type != "Polygon" or p.is_empty:
                continue
            rings.append(np.asarray(p.exterior.coords, np.float64)[:, :2] - origin)
            holes.append(False)
            if not exteriors_only:
                for inner in p.interiors:
                    rings.append(np.asarray(inner.coords, np.float64)[:, :2] - origin)
                    holes.append(True)
    return rings, holes


def _reproject(geoms: np.ndarray, src_epsg: int, dst_epsg: int) -> np.ndarray:
    try:
        from pyproj import Transformer
    except ImportError as exc:  # pragma: no cover - pyproj is a dependency
        from ...errors import MissingDependencyError

        raise MissingDependencyError("reprojecting a nuPlan map layer needs pyproj; pip install pyproj") from exc
    tr = Transformer.from_crs(f"EPSG:{src_epsg}", f"EPSG:{dst_epsg}", always_xy=True)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.stack([x, y], axis=1)

    return shapely.transform(geoms, fn)
