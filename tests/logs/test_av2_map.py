"""Argoverse 2 vector maps, motion-forecasting scenarios and discovery, on the real fixture files in
``shared/data/av2`` (beside the repository root). Bad-input cases damage copies in ``tmp_path``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from worldengine_lab.datatypes import AgentType
from worldengine_lab.errors import CorruptFileError, DataFormatError, MissingColumnError, MissingFileError
from worldengine_lab.logs import av2

from _av2_data import DATA, FORECAST, LOG_A, LOG_B, LOG_NO_POSES, POSES, requires_av2  # noqa: E402

pytestmark = requires_av2

# README inventory: lane segments, pedestrian crossings, drivable areas, lanes in intersections
INVENTORY = {LOG_A: (183, 11, 13, 73), LOG_B: (199, 11, 8, 61)}


def map_json(log: str) -> Path:
    return next((DATA / log / "map").glob("log_map_archive_*.json"))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# -- maps ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("log", [LOG_A, LOG_B])
def test_map_inventory(log: str) -> None:
    lanes, crossings, areas, in_intersection = INVENTORY[log]
    m = av2.read_map(map_json(log))
    assert (m.num_lanes, len(m.crosswalks), len(m.drivable_areas)) == (lanes, crossings, areas)
    assert int(m.lane_is_connector.sum()) == in_intersection
    assert m.map_id == f"av2:PIT:{map_json(log).stem}"
    assert len(m.stop_lines) == len(m.walkways) == len(m.signalized_lanes) == 0
    assert np.isnan(m.lane_speed_limit_mps).all() and (m.lane_roadblock_ids == "").all()
    assert not m.drivable_is_hole.any()


def test_map_local_frame_and_centrelines() -> None:
    doc = json.loads(map_json(LOG_A).read_text())
    origin = np.array([5200.0, 2400.0])
    m = av2.read_map(map_json(LOG_A), origin_xy=origin)
    seg = doc["lane_segments"][m.lane_ids[0]]
    left = np.array([[p["x"], p["y"]] for p in seg["left_lane_boundary"]])
    right = np.array([[p["x"], p["y"]] for p in seg["right_lane_boundary"]])
    assert m.lane_left.xy.dtype == np.float32
    np.testing.assert_allclose(m.lane_left.get(0), left - origin, atol=1e-3)
    np.testing.assert_allclose(m.lane_right.get(0), right - origin, atol=1e-3)
    # centreline = midpoint line: its ends are the midpoints of the boundary ends
    c = m.lanes.get(0)
    np.testing.assert_allclose(c[0], (left[0] + right[0]) / 2 - origin, atol=1e-3)
    np.testing.assert_allclose(c[-1], (left[-1] + right[-1]) / 2 - origin, atol=1e-3)
    assert len(c) == max(len(left), len(right))
    # forecasting maps: the given centreline is used as is
    fc = DATA / FORECAST
    fm = av2.read_map(next(fc.glob("log_map_archive_*.json")), city="austin")
    fdoc = json.loads(next(fc.glob("log_map_archive_*.json")).read_text())
    fseg = fdoc["lane_segments"][fm.lane_ids[5]]
    np.testing.assert_allclose(fm.lanes.get(5), [[p["x"], p["y"]] for p in fseg["centerline"]], atol=1e-3)
    assert fm.num_lanes == 71 and len(fm.crosswalks) == 6 and len(fm.drivable_areas) == 2


def test_predecessors_rebuilt_from_successors() -> None:
    doc = json.loads(map_json(LOG_B).read_text())  # the map whose predecessor lists are incomplete
    segs = doc["lane_segments"]
    missing = sum(1 for s in segs.values() for j in s["successors"]
                  if str(j) in segs and s["id"] not in segs[str(j)]["predecessors"])
    assert missing > 0
    m = av2.read_map(map_json(LOG_B))
    for lane_id, s in segs.items():
        i = m.lane_index(lane_id)
        for j in s["successors"]:
            if str(j) in segs:
                assert i in m.predecessors_of(m.lane_index(str(j)))
        for p in s["predecessors"]:
            if str(p) in segs:
                assert m.lane_index(str(p)) in m.predecessors_of(i)
    edges = {tuple(e) for e in m.lane_successors.tolist()}
    assert {tuple(e) for e in m.predecessors()[:, ::-1].tolist()} == edges
    assert len(edges) == len(m.lane_successors)  # no duplicates


@pytest.mark.parametrize("log", [LOG_A, LOG_B])
def test_dangling_ids_dropped(log: str) -> None:
    doc = json.loads(map_json(log).read_text())
    segs = doc["lane_segments"]
    refs = [(k, j) for k, s in segs.items() for j in s["successors"] + s["predecessors"]]
    refs += [(k, s[n]) for k, s in segs.items() for n in ("left_neighbor_id", "right_neighbor_id") if s[n] is not None]
    dangling = [(k, j) for k, j in refs if str(j) not in segs]
    assert dangling
    cm = av2.parse_map(map_json(log))
    assert cm.num_dangling == len(dangling)
    m = cm.to_local()
    assert m.lane_successors.min() >= 0 and m.lane_successors.max() < m.num_lanes
    in_map = sum(1 for k, s in segs.items() for j in s["successors"] if str(j) in segs)
    assert len(m.lane_successors) >= in_map
    for k, s in segs.items():
        for name, arr in (("left_neighbor_id", m.lane_left_neighbor), ("right_neighbor_id", m.lane_right_neighbor)):
            nb = s[name]
            want = m.lane_index(str(nb)) if nb is not None and str(nb) in segs else -1
            assert arr[m.lane_index(k)] == want


def test_rings_closed() -> None:
    doc = json.loads(map_json(LOG_A).read_text())
    m = av2.read_map(map_json(LOG_A))
    raw = [a["area_boundary"] for a in doc["drivable_areas"].values()]
    assert all((r[0]["x"], r[0]["y"]) != (r[-1]["x"], r[-1]["y"]) for r in raw)  # open in the file
    assert sorted(m.drivable_areas.lengths.tolist()) == sorted(len(r) + 1 for r in raw)
    for i in range(len(m.drivable_areas)):
        ring = m.drivable_areas.get(i)
        np.testing.assert_array_equal(ring[0], ring[-1])
    pc = next(iter(doc["pedestrian_crossings"].values()))
    e1 = [[p["x"], p["y"]] for p in pc["edge1"]]
    e2 = [[p["x"], p["y"]] for p in pc["edge2"]]
    want = np.array([e1[0], e1[1], e2[1], e2[0], e1[0]], np.float32)
    assert any(np.allclose(m.crosswalks.get(i), want, atol=1e-3) for i in range(len(m.crosswalks)))
    assert (m.crosswalks.lengths == 5).all()


# -- forecasting --------------------------------------------------------------------------------------------


def test_forecasting_scenario() -> None:
    s = av2.read_forecasting_scenario(DATA / FORECAST)
    df = pd.read_parquet(next((DATA / FORECAST).glob("*.parquet")))
    a = s.agents
    assert (s.num_steps, s.t0, a.num_agents) == (110, 49, 58)
    assert a.track_ids[0] == "AV" and a.agent_type[0] == AgentType.EGO and a.valid[:, 0].all()
    assert s.tags == frozenset({"av2_focal:138951"}) and s.meta["focal_track_id"] == "138951"
    assert s.dt == pytest.approx(0.1)
    np.testing.assert_allclose(np.diff(s.timestamps_s), 0.1, atol=1e-6)
    assert s.provenance.source == "av2_forecasting" and s.provenance.location == "austin"
    assert s.map.num_lanes == 71 and s.map.map_id.startswith("av2:austin:")
    rows = df.groupby("track_id").size()
    np.testing.assert_array_equal(a.valid.sum(axis=0), rows.loc[a.track_ids].to_numpy())
    r = df[(df["track_id"] == "138951") & (df["timestep"] == 49)].iloc[0]
    n = int(np.flatnonzero(a.track_ids == "138951")[0])
    np.testing.assert_allclose(a.xy[49, n] + s.origin_xy, [r.position_x, r.position_y], atol=1e-3)
    np.testing.assert_allclose(a.vel_xy[49, n], [r.velocity_x, r.velocity_y], rtol=1e-6)
    assert a.yaw[49, n] == pytest.approx(r.heading, abs=1e-6)
    assert a.agent_type[n] == AgentType.VEHICLE
    np.testing.assert_allclose(a.size_lwh[n], av2.FORECAST_SIZE_LWH["vehicle"])
    np.testing.assert_array_equal(s.origin_xy, np.round(a.xy[49, 0] + s.origin_xy))


# -- discovery ----------------------------------------------------------------------------------------------


def test_discover() -> None:
    found = av2.discover(DATA)
    assert [(k, p.name) for k, p in found] == [
        ("sensor", LOG_A), ("sensor", LOG_B), ("sensor", LOG_NO_POSES), ("forecasting", Path(FORECAST).name)]
    assert av2.discover(DATA / LOG_A) == [("sensor", DATA / LOG_A)]
    assert av2.discover(DATA / LOG_A / POSES) == [("sensor", DATA / LOG_A)]
    assert av2.discover(DATA / "forecasting") == [("forecasting", DATA / FORECAST)]
    assert av2.scan_sensor_logs(DATA) == [DATA / LOG_A, DATA / LOG_B, DATA / LOG_NO_POSES]
    assert av2.scan_forecasting_scenarios(DATA) == [DATA / FORECAST]
    with pytest.raises(MissingFileError):
        av2.discover(DATA / "no-such-folder")


def test_map_json_without_lane_segments(tmp_path: Path) -> None:
    path = tmp_path / "log_map_archive_x____PIT_city_1.json"
    path.write_text(json.dumps({"drivable_areas": {}, "pedestrian_crossings": {}}))
    with pytest.raises(MissingColumnError, match="lane_segments"):
        av2.read_map(path)


def test_truncated_forecasting_parquet(tmp_path: Path) -> None:
    dst = tmp_path / "scenario"
    shutil.copytree(DATA / FORECAST, dst)
    truncate(next(dst.glob("*.parquet")))
    with pytest.raises(CorruptFileError, match="Parquet"):
        av2.read_forecasting_scenario(dst)


def test_forecasting_missing_column(tmp_path: Path) -> None:
    dst = tmp_path / "scenario"
    shutil.copytree(DATA / FORECAST, dst)
    p = next(dst.glob("*.parquet"))
    pd.read_parquet(p).drop(columns="heading").to_parquet(p)
    with pytest.raises(MissingColumnError, match="heading"):
        av2.read_forecasting_scenario(dst)


def test_forecasting_without_av_track(tmp_path: Path) -> None:
    dst = tmp_path / "scenario"
    shutil.copytree(DATA / FORECAST, dst)
    p = next(dst.glob("*.parquet"))
    df = pd.read_parquet(p)
    df[df["track_id"] != "AV"].to_parquet(p)
    with pytest.raises(DataFormatError, match="'AV'"):
        av2.read_forecasting_scenario(dst)


def test_forecasting_missing_map(tmp_path: Path) -> None:
    dst = tmp_path / "scenario"
    shutil.copytree(DATA / FORECAST, dst)
    next(dst.glob("*.json")).unlink()
    with pytest.raises(MissingFileError, match="log_map_archive"):
        av2.read_forecasting_scenario(dst)
    assert av2.read_forecasting_scenario(dst, require_map=False).map.num_lanes == 0
