"""A Scenario as one ``.npz`` file: numpy arrays only (``allow_pickle=False`` both ways) plus one JSON string.

The archive is written deterministically (sorted members, fixed zip timestamps), so the same scenario always
gives the same bytes and the same content hash. Every field of :class:`~worldengine_lab.datatypes.Scenario`
round-trips, including the map, route, traffic lights, tags, provenance and meta (meta values must be JSON-able;
others are stored as their ``str``).

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> s = make_scenario(num_agents=2)
    >>> back = scenario_from_bytes(scenario_to_bytes(s))
    >>> back.scenario_id, bool((back.agents.xy == s.agents.xy).all())
    ('test-0', True)
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..datatypes import AgentTracks, MapData, Polylines, Provenance, Route, Scenario, TrafficLights
from ..errors import CorruptFileError, MissingFileError

__all__ = ["scenario_to_bytes", "scenario_from_bytes", "load_scenario_file", "SCENARIO_FORMAT"]

SCENARIO_FORMAT = "worldengine_lab.scenario.npz/1"
"""Format tag stored in the archive's JSON header."""

_POLYLINES = ("lanes", "lane_left", "lane_right", "drivable_areas", "crosswalks", "stop_lines", "walkways")
_MAP_ARRAYS = ("lane_ids", "lane_is_connector", "lane_roadblock_ids", "lane_speed_limit_mps", "lane_successors",
               "lane_left_neighbor", "lane_right_neighbor", "drivable_is_hole", "stop_line_type", "signalized_lanes")
_AGENT_ARRAYS = ("xy", "yaw", "vel_xy", "size_lwh", "agent_type", "valid", "track_ids")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


def _str_array(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(str)


def scenario_to_bytes(s: Scenario) -> bytes:
    """The scenario as ``.npz`` bytes (deterministic)."""
    arrays: dict[str, np.ndarray] = {"timestamps_s": s.timestamps_s, "origin_xy": s.origin_xy}
    for name in _AGENT_ARRAYS:
        v = getattr(s.agents, name)
        arrays[f"agents.{name}"] = _str_array(v) if name == "track_ids" else v
    m = s.map
    for name in _POLYLINES:
        pl = getattr(m, name)
        arrays[f"map.{name}.xy"], arrays[f"map.{name}.valid"] = pl.xy, pl.valid
    for name in _MAP_ARRAYS:
        v = getattr(m, name)
        arrays[f"map.{name}"] = _str_array(v) if v.dtype.kind in "UO" else v
    arrays["route.lane_indices"], arrays["route.goal_xy"] = s.route.lane_indices, s.route.goal_xy
    assert s.traffic_lights is not None
    arrays["traffic_lights.status"] = s.traffic_lights.status
    header = {
        "format": SCENARIO_FORMAT, "scenario_id": s.scenario_id, "log_id": s.log_id, "dt": float(s.dt),
        "t0": int(s.t0), "tags": sorted(s.tags), "map_id": m.map_id,
        "route": {"roadblock_ids": list(s.route.roadblock_ids), "goal_yaw": float(s.route.goal_yaw)},
        "provenance": {**{k: getattr(s.provenance, k) for k in ("source", "path", "log_id", "map_name", "location",
                                                                 "first_token", "t0_token")},
                       "extra": [list(kv) for kv in s.provenance.extra]},
        "ego_rear_axle_to_center_m": float(s.ego_rear_axle_to_center_m), "meta": _jsonable(dict(s.meta)),
    }
    arrays["header"] = np.array(json.dumps(header, sort_keys=True, allow_nan=True))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(arrays[name], order="C"), allow_pickle=False)
    return buf.getvalue()


def scenario_from_bytes(data: bytes | bytearray | memoryview, where: str = "scenario bytes") -> Scenario:
    """Rebuild a Scenario from :func:`scenario_to_bytes` output (never unpickles)."""
    try:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as z:
            arr = {k: z[k] for k in z.files}
        header = json.loads(str(arr.pop("header").item()))
    except Exception as exc:  # bad zip, pickled members, truncated files: one clear message
        raise CorruptFileError(f"{where}: expected a scenario .npz written by worldengine_lab, could not read it "
                               f"({type(exc).__name__}: {exc}); re-create the variant") from exc
    if header.get("format") != SCENARIO_FORMAT:
        raise CorruptFileError(f"{where}: expected format {SCENARIO_FORMAT!r}, received {header.get('format')!r}; "
                               "re-create the variant with this worldengine_lab")
    agents = AgentTracks(**{n: arr[f"agents.{n}"] for n in _AGENT_ARRAYS})
    polys = {n: Polylines(xy=arr[f"map.{n}.xy"], valid=arr[f"map.{n}.valid"]) for n in _POLYLINES}
    m = MapData(map_id=header["map_id"], **polys, **{n: arr[f"map.{n}"] for n in _MAP_ARRAYS})
    r = header["route"]
    route = Route(roadblock_ids=tuple(r["roadblock_ids"]), lane_indices=arr["route.lane_indices"],
                  goal_xy=arr["route.goal_xy"], goal_yaw=float(r["goal_yaw"]))
    p = dict(header["provenance"])
    prov = Provenance(**{k: v for k, v in p.items() if k != "extra"},
                      extra=tuple(tuple(kv) for kv in p.get("extra", [])))
    return Scenario(
        scenario_id=header["scenario_id"], log_id=header["log_id"], dt=float(header["dt"]), t0=int(header["t0"]),
        timestamps_s=arr["timestamps_s"], origin_xy=arr["origin_xy"], agents=agents, map=m, route=route,
        traffic_lights=TrafficLights(arr["traffic_lights.status"]), tags=frozenset(header["tags"]),
        provenance=prov, ego_rear_axle_to_center_m=float(header["ego_rear_axle_to_center_m"]),
        meta=header["meta"])


def load_scenario_file(path: str | os.PathLike[str]) -> Scenario:
    """Read a scenario ``.npz`` file."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"expected a scenario file at {str(p)!r}, found none; re-create the variant")
    return scenario_from_bytes(p.read_bytes(), where=str(p))
