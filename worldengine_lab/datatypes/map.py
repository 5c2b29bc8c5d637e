"""MapData: the vector map of a scenario (lanes, lane graph, drivable area, crosswalks, stop lines)."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ScenarioValidationError
from ._checks import check_array, freeze

__all__ = ["Polylines", "MapData", "StopLineType"]


class StopLineType(enum.IntEnum):
    """nuPlan ``StopLineType`` codes (``stop_polygons.stop_polygon_type_fid``)."""

    PED_CROSSING = 0
    STOP_SIGN = 1
    TRAFFIC_LIGHT = 2
    TURN_STOP = 3
    YIELD = 4
    UNKNOWN = 5


@dataclass(frozen=True, eq=False)
class Polylines:
    """P ragged polylines (or polygon rings) padded to K points.

    Attributes:
        xy: ``[P, K, 2]`` float32, m, scenario local frame; padding entries are 0.
        valid: ``[P, K]`` bool; the valid points of each row form a prefix.
    Rings (polygons) are stored closed: first valid point == last valid point.
    """

    xy: np.ndarray  # [P, K, 2] float32, m, local frame
    valid: np.ndarray  # [P, K] bool

    def __post_init__(self) -> None:
        self.validate()
        freeze(self.xy, self.valid)

    def validate(self) -> None:
        d: dict[str, int] = {}
        check_array("Polylines", "xy", self.xy, ("P", "K", 2), "f", d)
        check_array("Polylines", "valid", self.valid, ("P", "K"), "b", d)
        if self.valid.size:
            # valid points must be a prefix of each row
            if (np.diff(self.valid.astype(np.int8), axis=1) > 0).any():
                raise ScenarioValidationError("Polylines.valid: expected the valid points of each row to be a prefix")
            if not np.isfinite(self.xy[self.valid]).all():
                raise ScenarioValidationError("Polylines.xy: expected finite valid points, received NaN/inf")

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """``[P]`` int32, number of valid points of each polyline."""
        return self.valid.sum(axis=1).astype(np.int32)

    def get(self, i: int) -> np.ndarray:
        """Return polyline ``i`` as a ``[k, 2]`` float32 array of its valid points."""
        return self.xy[i, : int(self.valid[i].sum())]

    @staticmethod
    def from_list(lines: Sequence[np.ndarray], dtype: type = np.float32) -> "Polylines":
        """Pad a list of ``[k_i, 2]`` arrays into Polylines (K = max k_i)."""
        k = max((len(line) for line in lines), default=0)
        xy = np.zeros((len(lines), k, 2), dtype=dtype)
        valid = np.zeros((len(lines), k), dtype=bool)
        for i, line in enumerate(lines):
            n = len(line)
            xy[i, :n] = np.asarray(line, dtype=np.float64)[:, :2]
            valid[i, :n] = True
        return Polylines(xy=xy, valid=valid)

    @staticmethod
    def empty() -> "Polylines":
        return Polylines(xy=np.zeros((0, 0, 2), np.float32), valid=np.zeros((0, 0), bool))

    def take(self, index: np.ndarray) -> "Polylines":
        """Return the rows ``index`` (trimming K to the longest kept row)."""
        valid = self.valid[index]
        k = int(valid.sum(axis=1).max()) if len(valid) else 0
        return Polylines(xy=self.xy[index, :k].copy(), valid=valid[:, :k].copy())


@dataclass(frozen=True, eq=False)
class MapData:
    """Vector map cropped around a scenario, in the scenario's local frame (metres).

    Lanes: L lanes; nuPlan lane connectors (lanes inside intersections) are lanes with
    ``lane_is_connector``. Lane ``i`` has centreline ``lanes.get(i)`` in driving direction and left/right
    boundaries ``lane_left.get(i)`` / ``lane_right.get(i)`` (also in driving direction).

    Attributes:
        map_id: dataset map name (nuPlan ``log.map_version``, AV2 ``<city>:<log map>``).
        lane_ids: ``[L]`` str, dataset lane ids (nuPlan ``fid`` as text, AV2 lane segment id).
        lanes: centrelines, Polylines ``[L, K, 2]``.
        lane_left, lane_right: boundaries, Polylines ``[L, Kl, 2]`` and ``[L, Kr, 2]`` (padded separately).
        lane_is_connector: ``[L]`` bool.
        lane_roadblock_ids: ``[L]`` str, roadblock (lane group) or roadblock-connector id ('' if none).
        lane_speed_limit_mps: ``[L]`` float32, m/s; NaN = unknown.
        lane_successors: ``[E, 2]`` int32 directed edges ``(from_lane, to_lane)`` (indices into lanes).
        lane_left_neighbor, lane_right_neighbor: ``[L]`` int32 lane index, -1 = none.
        drivable_areas: polygon rings, Polylines ``[D, Kd, 2]``; the drivable region is the union of the
            rings with ``drivable_is_hole == False`` minus those with it True.
        drivable_is_hole: ``[D]`` bool.
        crosswalks: polygon rings, Polylines ``[C, Kc, 2]``.
        stop_lines: polygon rings, Polylines ``[S, Ks, 2]``.
        stop_line_type: ``[S]`` int8, :class:`StopLineType`.
        walkways: polygon rings, Polylines ``[W, Kw, 2]`` (empty where the source has none).
        signalized_lanes: ``[M]`` int32 lane indices of traffic-light-controlled lane connectors; the
            per-step status of each lives in ``Scenario.traffic_lights`` (same order).
    """

    map_id: str
    lane_ids: np.ndarray  # [L] str
    lanes: Polylines  # [L, K, 2]
    lane_left: Polylines  # [L, Kb, 2]
    lane_right: Polylines  # [L, Kb, 2]
    lane_is_connector: np.ndarray  # [L] bool
    lane_roadblock_ids: np.ndarray  # [L] str
    lane_speed_limit_mps: np.ndarray  # [L] float32
    lane_successors: np.ndarray  # [E, 2] int32
    lane_left_neighbor: np.ndarray  # [L] int32
    lane_right_neighbor: np.ndarray  # [L] int32
    drivable_areas: Polylines  # [D, Kd, 2]
    drivable_is_hole: np.ndarray  # [D] bool
    crosswalks: Polylines  # [C, Kc, 2]
    stop_lines: Polylines  # [S, Ks, 2]
    stop_line_type: np.ndarray  # [S] int8
    walkways: Polylines  # [W, Kw, 2]
    signalized_lanes: np.ndarray  # [M] int32

    def __post_init__(self) -> None:
        self.validate()
        freeze(
            self.lane_ids, self.lane_is_connector, self.lane_roadblock_ids, self.lane_speed_limit_mps,
            self.lane_successors, self.lane_left_neighbor, self.lane_right_neighbor, self.drivable_is_hole,
            self.stop_line_type, self.signalized_lanes,
        )

    @property
    def num_lanes(self) -> int:
        return int(len(self.lane_ids))

    def validate(self) -> None:
        o = "MapData"
        d: dict[str, int] = {}
        check_array(o, "lane_ids", self.lane_ids, ("L",), "UO", d)
        for name in ("lanes", "lane_left", "lane_right"):
            pl = getattr(self, name)
            if not isinstance(pl, Polylines):
                raise ScenarioValidationError(f"{o}.{name}: expected Polylines, received {type(pl).__name__}")
            if len(pl) != d["L"]:
                raise ScenarioValidationError(f"{o}.{name}: expected {d['L']} rows (one per lane), received {len(pl)}")
        check_array(o, "lane_is_connector", self.lane_is_connector, ("L",), "b", d)
        check_array(o, "lane_roadblock_ids", self.lane_roadblock_ids, ("L",), "UO", d)
        check_array(o, "lane_speed_limit_mps", self.lane_speed_limit_mps, ("L",), "f", d)
        check_array(o, "lane_successors", self.lane_successors, (None, 2), "iu", d)
        check_array(o, "lane_left_neighbor", self.lane_left_neighbor, ("L",), "iu", d)
        check_array(o, "lane_right_neighbor", self.lane_right_neighbor, ("L",), "iu", d)
        n = d["L"]
        for name in ("lane_successors", "lane_left_neighbor", "lane_right_neighbor", "signalized_lanes"):
            arr = getattr(self, name)
            lo = 0 if name in ("lane_successors", "signalized_lanes") else -1
            if arr.size and (arr.min() < lo or arr.max() >= n):
                raise ScenarioValidationError(
                    f"{o}.{name}: expected lane indices in [{lo}, {n}), received values in [{arr.min()}, {arr.max()}]"
                )
        for name in ("drivable_areas", "crosswalks", "stop_lines", "walkways"):
            if not isinstance(getattr(self, name), Polylines):
                raise ScenarioValidationError(f"{o}.{name}: expected Polylines")
        check_array(o, "drivable_is_hole", self.drivable_is_hole, (len(self.drivable_areas),), "b", d)
        check_array(o, "stop_line_type", self.stop_line_type, (len(self.stop_lines),), "iu", d)
        check_array(o, "signalized_lanes", self.signalized_lanes, (None,), "iu", d)

    def predecessors(self) -> np.ndarray:
        """``[E, 2]`` int32 edges ``(to_lane, from_lane)``: the lane graph reversed."""
        return self.lane_successors[:, ::-1].copy()

    def successors_of(self, lane: int) -> np.ndarray:
        """Indices of the lanes that follow ``lane``."""
        return self.lane_successors[self.lane_successors[:, 0] == lane, 1]

    def predecessors_of(self, lane: int) -> np.ndarray:
        """Indices of the lanes that lead into ``lane``."""
        return self.lane_successors[self.lane_successors[:, 1] == lane, 0]

    def lane_index(self, lane_id: str) -> int:
        """Index of the lane with dataset id ``lane_id``; raises KeyError if absent."""
        hits = np.flatnonzero(self.lane_ids == lane_id)
        if not len(hits):
            raise KeyError(f"lane id {lane_id!r} is not in map {self.map_id!r}")
        return int(hits[0])

    @staticmethod
    def empty(map_id: str = "") -> "MapData":
        """A map with no elements (e.g. an AV2 log without a vector map)."""
        e = Polylines.empty()
        s = np.zeros(0, dtype="<U1")
        i = np.zeros(0, np.int32)
        return MapData(
            map_id=map_id, lane_ids=s, lanes=e, lane_left=e, lane_right=e, lane_is_connector=np.zeros(0, bool),
            lane_roadblock_ids=s.copy(), lane_speed_limit_mps=np.zeros(0, np.float32),
            lane_successors=np.zeros((0, 2), np.int32), lane_left_neighbor=i, lane_right_neighbor=i.copy(),
            drivable_areas=e, drivable_is_hole=np.zeros(0, bool), crosswalks=e, stop_lines=e,
            stop_line_type=np.zeros(0, np.int8), walkways=e, signalized_lanes=i.copy(),
        )
