"""AV2 vector map (``log_map_archive_*.json``, spec §2.7.1) -> :class:`MapData`.

The JSON is parsed once into a :class:`CityMap` (float64 city-frame arrays), which is then translated into
any scenario's local frame with :meth:`CityMap.to_local` (cheap, so sliding windows share one parse).

What is built:

* lanes: one per lane segment, ordered by integer id. Centreline = the file's ``centerline`` where present
  (motion-forecasting maps), else the midpoint line: both boundaries resampled to
  ``max(len(left), len(right))`` points equally spaced along arc length, then averaged pairwise.
* lane graph: edges ``(i, j)`` for every ``successors`` link plus the reverse of every ``predecessors``
  link (the files' predecessor lists are incomplete, so the graph is rebuilt from both directions);
  ids outside the local map are dropped; duplicate edges removed.
* neighbours: lane indices, -1 for none or an id outside the map.
* drivable areas: the ``area_boundary`` rings, closed (first point repeated); none are holes.
* crosswalks: pedestrian crossings as the closed ring edge1[0], edge1[1], edge2[1], edge2[0], edge1[0].
* AV2 has no stop lines, traffic lights, speed limits, roadblocks or walkways: those fields are empty,
  speed limits NaN, roadblock ids '', and ``lane_is_connector`` is the ``is_intersection`` flag.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...datatypes import MapData, Polylines
from ...errors import CorruptFileError, DataFormatError, MissingColumnError
from ._geometry import resample_arc_length
from ._io import read_json, require_file

__all__ = ["CityMap", "parse_map", "read_map", "city_from_map_name"]

log = logging.getLogger(__name__)

_TOP_LEVEL = ("lane_segments", "drivable_areas", "pedestrian_crossings")
_LANE_FIELDS = ("id", "is_intersection", "left_lane_boundary", "right_lane_boundary", "successors")


def city_from_map_name(path: Path) -> str:
    """City code of a sensor-map file name: the text between ``____`` and the next ``_`` ('' if absent).

    >>> city_from_map_name(Path("log_map_archive_7fab____PIT_city_47896.json"))
    'PIT'
    """
    stem = Path(path).stem
    if "____" not in stem:
        return ""
    return stem.split("____", 1)[1].split("_", 1)[0]


@dataclass(frozen=True, eq=False)
class _Padded:
    """Ragged float64 polylines padded to K points (city frame, before the origin shift)."""

    xy: np.ndarray  # [P, K, 2] float64, m, city frame; 0 in padding
    valid: np.ndarray  # [P, K] bool, prefix per row

    @staticmethod
    def from_list(lines: Sequence[np.ndarray]) -> "_Padded":
        k = max((len(a) for a in lines), default=0)
        xy = np.zeros((len(lines), k, 2), np.float64)
        valid = np.zeros((len(lines), k), bool)
        for i, a in enumerate(lines):
            xy[i, : len(a)] = a
            valid[i, : len(a)] = True
        return _Padded(xy, valid)

    def to_local(self, origin_xy: np.ndarray) -> Polylines:
        xy = np.where(self.valid[..., None], self.xy - origin_xy, 0.0).astype(np.float32)
        return Polylines(xy=xy, valid=self.valid.copy())


@dataclass(frozen=True, eq=False)
class CityMap:
    """A parsed AV2 vector map in the city frame (float64), ready to be shifted into a local frame.

    Attributes:
        map_id: ``av2:<city>:<file stem>``.
        city: city code (``PIT``, ``austin``, ...) or '' if unknown.
        path: the JSON file.
        lane_ids: ``[L]`` str, lane segment ids (sorted numerically).
        lane_type: ``[L]`` str, ``VEHICLE`` / ``BIKE`` / ``BUS``.
        is_intersection: ``[L]`` bool.
        successors: ``[E, 2]`` int32 lane-index edges (from, to), rebuilt as described in the module doc.
        left_neighbor, right_neighbor: ``[L]`` int32 lane index, -1 = none.
        num_dangling: number of lane references (successor, predecessor, neighbour) dropped because their
            id is not in this map.
    """

    map_id: str
    city: str
    path: Path
    lane_ids: np.ndarray  # [L] str
    lane_type: np.ndarray  # [L] str
    is_intersection: np.ndarray  # [L] bool
    centerlines: _Padded  # [L, K, 2] float64, m, city
    lefts: _Padded  # [L, Kl, 2] float64, m, city
    rights: _Padded  # [L, Kr, 2] float64, m, city
    successors: np.ndarray  # [E, 2] int32
    left_neighbor: np.ndarray  # [L] int32
    right_neighbor: np.ndarray  # [L] int32
    drivable: _Padded  # [D, Kd, 2] float64, m, city, closed rings
    crosswalks: _Padded  # [C, 5, 2] float64, m, city, closed rings
    num_dangling: int = 0

    def to_local(self, origin_xy: np.ndarray | Sequence[float] | None = None) -> MapData:
        """The map as :class:`MapData` in the local frame ``city - origin_xy`` (float32 after the float64
        subtraction). ``origin_xy`` None means the city origin (0, 0)."""
        origin = np.zeros(2, np.float64) if origin_xy is None else np.asarray(origin_xy, np.float64).reshape(2)
        num = len(self.lane_ids)
        empty = Polylines.empty()
        return MapData(
            map_id=self.map_id,
            lane_ids=self.lane_ids.copy(),
            lanes=self.centerlines.to_local(origin),
            lane_left=self.lefts.to_local(origin),
            lane_right=self.rights.to_local(origin),
            lane_is_connector=self.is_intersection.copy(),
            lane_roadblock_ids=np.full(num, "", dtype="<U1"),
            lane_speed_limit_mps=np.full(num, np.nan, np.float32),
            lane_successors=self.successors.copy(),
            lane_left_neighbor=self.left_neighbor.copy(),
            lane_right_neighbor=self.right_neighbor.copy(),
            drivable_areas=self.drivable.to_local(origin),
            drivable_is_hole=np.zeros(len(self.drivable.xy), bool),
            crosswalks=self.crosswalks.to_local(origin),
            stop_lines=empty,
            stop_line_type=np.zeros(0, np.int8),
            walkways=empty,
            signalized_lanes=np.zeros(0, np.int32),
        )


def _points(path: Path, where: str, pts: Any, min_points: int) -> np.ndarray:
    """``[k, 2]`` float64 city xy of a JSON list of ``{"x", "y", "z"}`` points."""
    if not isinstance(pts, list):
        raise CorruptFileError(f"{path}: {where}: expected a list of points, received {type(pts).__name__}")
    try:
        xy = np.array([(p["x"], p["y"]) for p in pts], dtype=np.float64).reshape(-1, 2)
    except KeyError as exc:
        raise MissingColumnError(
            f"{path}: {where}: a point lacks field {exc}; points need 'x', 'y' (and 'z') in metres"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(f"{path}: {where}: points are not numeric {{'x','y','z'}} objects ({exc})") from exc
    if len(xy) < min_points:
        raise DataFormatError(
            f"{path}: {where}: expected at least {min_points} points, received {len(xy)}; the map file is damaged"
        )
    if not np.isfinite(xy).all():
        raise DataFormatError(f"{path}: {where}: expected finite coordinates, received NaN/inf")
    return xy


def _midpoint_line(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Centreline of a lane from its boundaries ``[kl, 2]``, ``[kr, 2]`` (both in driving direction)."""
    num = max(len(left), len(right), 2)
    return 0.5 * (resample_arc_length(left, num) + resample_arc_length(right, num))


def _close(ring: np.ndarray) -> np.ndarray:
    """Repeat the first vertex at the end unless the ring is already closed."""
    return ring if np.array_equal(ring[0], ring[-1]) else np.concatenate([ring, ring[:1]], axis=0)


def _entries(path: Path, doc: dict, key: str) -> list[dict]:
    obj = doc[key]
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{path}: '{key}': expected an object keyed by id, received {type(obj).__name__}")
    items = list(obj.values())
    for k, v in zip(obj, items):
        if not isinstance(v, dict):
            raise CorruptFileError(f"{path}: '{key}'[{k}]: expected an object, received {type(v).__name__}")
    return items


def _int_id(path: Path, where: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(f"{path}: {where}: expected an integer id, received {value!r}") from exc


def parse_map(json_path: str | Path, city: str | None = None) -> CityMap:
    """Parse an AV2 vector map JSON into a :class:`CityMap` (city frame, float64).

    Args:
        json_path: a ``log_map_archive_*.json`` file (sensor or motion-forecasting layout).
        city: city code; default: parsed from the file name (``____<CITY>_city_``), '' if it has none.
    Raises:
        MissingFileError, CorruptFileError (not JSON / wrong structure), MissingColumnError (a required
        top-level key or lane field is absent), DataFormatError (a boundary with < 2 points, NaN points).
    """
    path = require_file(Path(json_path), "an AV2 vector map (log_map_archive_*.json)",
                        "pass the map JSON of the log (its map/ folder) or require_map=False")
    doc = read_json(path, "vector map")
    if not isinstance(doc, dict):
        raise CorruptFileError(f"{path}: expected a JSON object with keys {list(_TOP_LEVEL)}, received "
                               f"{type(doc).__name__}")
    missing = [k for k in _TOP_LEVEL if k not in doc]
    if missing:
        raise MissingColumnError(
            f"{path}: the vector map lacks top-level field(s) {missing} (has {sorted(doc)}); "
            "expected an AV2 log_map_archive JSON (spec §2.7.1)"
        )
    city = city_from_map_name(path) if city is None else city

    segments = _entries(path, doc, "lane_segments")
    for seg in segments:
        absent = [f for f in _LANE_FIELDS if f not in seg]
        if absent:
            raise MissingColumnError(
                f"{path}: lane segment {seg.get('id', '?')} lacks field(s) {absent}; every lane segment needs "
                f"{list(_LANE_FIELDS)}"
            )
    segments.sort(key=lambda s: _int_id(path, "lane_segments[].id", s["id"]))
    ids = [int(s["id"]) for s in segments]
    index = {lane_id: i for i, lane_id in enumerate(ids)}
    if len(index) != len(ids):
        raise CorruptFileError(f"{path}: 'lane_segments': lane ids are not unique")

    centres, lefts, rights, edges = [], [], [], []
    left_nb = np.full(len(ids), -1, np.int32)
    right_nb = np.full(len(ids), -1, np.int32)
    dangling = 0
    for i, seg in enumerate(segments):
        where = f"lane segment {ids[i]}"
        left = _points(path, f"{where}.left_lane_boundary", seg["left_lane_boundary"], 2)
        right = _points(path, f"{where}.right_lane_boundary", seg["right_lane_boundary"], 2)
        given = seg.get("centerline")
        centre = _points(path, f"{where}.centerline", given, 2) if given is not None else _midpoint_line(left, right)
        lefts.append(left)
        rights.append(right)
        centres.append(centre)
        links = [(i, index.get(_int_id(path, f"{where}.successors", s), -1)) for s in seg["successors"] or []]
        links += [(index.get(_int_id(path, f"{where}.predecessors", p), -1), i) for p in seg.get("predecessors") or []]
        dangling += sum(1 for a, b in links if a < 0 or b < 0)
        edges.extend((a, b) for a, b in links if a >= 0 and b >= 0)
        for key, out in (("left_neighbor_id", left_nb), ("right_neighbor_id", right_nb)):
            nb = seg.get(key)
            if nb is not None:
                j = index.get(_int_id(path, f"{where}.{key}", nb), -1)
                dangling += j < 0
                out[i] = j
    succ = np.unique(np.asarray(edges, np.int32).reshape(-1, 2), axis=0).astype(np.int32)

    areas = []
    for area in _entries(path, doc, "drivable_areas"):
        if "area_boundary" not in area:
            raise MissingColumnError(f"{path}: drivable area {area.get('id', '?')} lacks field 'area_boundary'")
        areas.append(_close(_points(path, f"drivable area {area.get('id', '?')}.area_boundary",
                                    area["area_boundary"], 3)))

    crossings = []
    for pc in _entries(path, doc, "pedestrian_crossings"):
        where = f"pedestrian crossing {pc.get('id', '?')}"
        absent = [f for f in ("edge1", "edge2") if f not in pc]
        if absent:
            raise MissingColumnError(f"{path}: {where} lacks field(s) {absent}")
        e1 = _points(path, f"{where}.edge1", pc["edge1"], 2)
        e2 = _points(path, f"{where}.edge2", pc["edge2"], 2)
        crossings.append(np.stack([e1[0], e1[-1], e2[-1], e2[0], e1[0]]))

    if dangling:
        log.debug("%s: dropped %d lane references to ids outside the local map", path.name, dangling)
    return CityMap(
        map_id=f"av2:{city}:{path.stem}",
        city=city,
        path=path,
        lane_ids=np.array([str(x) for x in ids], dtype=str) if ids else np.zeros(0, "<U1"),
        lane_type=np.array([str(s.get("lane_type", "")) for s in segments], dtype=str) if ids else np.zeros(0, "<U1"),
        is_intersection=np.array([bool(s["is_intersection"]) for s in segments], dtype=bool),
        centerlines=_Padded.from_list(centres),
        lefts=_Padded.from_list(lefts),
        rights=_Padded.from_list(rights),
        successors=succ,
        left_neighbor=left_nb,
        right_neighbor=right_nb,
        drivable=_Padded.from_list(areas),
        crosswalks=_Padded.from_list(crossings),
        num_dangling=int(dangling),
    )


def read_map(json_path: str | Path, origin_xy: np.ndarray | Sequence[float] | None = None,
             city: str | None = None) -> MapData:
    """Read an AV2 vector map JSON as :class:`MapData` in the local frame ``city - origin_xy``.

    Args:
        json_path: ``log_map_archive_*.json`` (sensor log ``map/`` folder or forecasting scenario folder).
        origin_xy: ``[2]`` float64, m, city frame; None = (0, 0), i.e. local = city coordinates.
        city: city code for the map id; default parsed from the file name.
    Returns:
        MapData with ``map_id = f"av2:{city}:{file stem}"`` (see the module doc for what each field holds).
    """
    return parse_map(json_path, city=city).to_local(origin_xy)
