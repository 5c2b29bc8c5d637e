"""nuPlan reader: the embedded world read back through the same reader as real data, and every bad input.

Each bad-input case copies a generated log/map, damages it one way, and checks the specific error and
that its message names the file and the table/column/field.
"""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import shapely

from worldengine_lab.datatypes import AgentType, Scenario
from worldengine_lab.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidPoseError,
    MissingColumnError,
    MissingFileError,
    MissingLayerError,
    MissingTableError,
    NonMonotonicTimestampsError,
    WindowOutOfRangeError,
)
from worldengine_lab.logs.nuplan import EGO_REAR_AXLE_TO_CENTER_M, NuPlanDB, NuPlanLog, WindowConfig
from worldengine_lab.logs.nuplan.reader import SWEEP_PERIOD_S


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    from worldengine_lab.logs.synthetic import synthesize

    out = tmp_path_factory.mktemp("world")
    return synthesize(out, seed=3, num_logs=2)


@pytest.fixture()
def log_copy(world, tmp_path: Path) -> Path:
    src = Path(world.db_paths[0])
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    return dst


def _exec(db: Path, sql: str, params: tuple = ()) -> None:
    con = sqlite3.connect(db)
    con.execute(sql, params)
    con.commit()
    con.close()


# ------------------------------------------------------------------------------------------- reading
def test_window_shapes_units_and_frames(world) -> None:
    log = NuPlanLog(world.db_paths[0], maps_root=world.maps_root)
    sel = log.select(stride_s=5.0)
    assert len(sel) > 0
    s = log.read(sel.token.iloc[0])
    assert isinstance(s, Scenario)
    cfg = WindowConfig()
    assert s.num_steps == cfg.history_steps + cfg.future_steps + 1 == 101
    assert s.t0 == 20
    assert np.allclose(np.diff(s.timestamps_s), 0.1, atol=1e-6)  # 20 Hz sweeps, every second one
    n = s.agents.num_agents
    assert s.agents.xy.shape == (101, n, 2) and s.agents.xy.dtype == np.float32
    assert s.agents.agent_type[0] == AgentType.EGO
    # the local frame is the world frame shifted by origin_xy (UTM magnitudes)
    assert s.origin_xy.dtype == np.float64 and np.abs(s.origin_xy).max() > 1e5
    assert np.abs(s.agents.xy[s.t0, 0]).max() < 10.0
    # ego box centre = rear axle + 1.461 m along the heading, from the ego_pose row of the t0 sweep
    db = log.db
    i = db.index_of(s.scenario_id)
    rear = db.ego_xy[i] - s.origin_xy
    yaw = db.ego_yaw[i]
    expect = rear + EGO_REAR_AXLE_TO_CENTER_M * np.array([np.cos(yaw), np.sin(yaw)])
    np.testing.assert_allclose(s.agents.xy[s.t0, 0], expect, atol=1e-3)
    # the ego moves at the speed the log says: displacement over 1 s ~ logged speed
    speed = np.linalg.norm(s.agents.vel_xy[s.t0 : s.t0 + 10, 0], axis=1).mean()
    disp = np.linalg.norm(s.agents.xy[s.t0 + 10, 0] - s.agents.xy[s.t0, 0])
    assert abs(disp - speed * 1.0) < 0.5 + 0.1 * speed


def test_agents_match_lidar_boxes(world) -> None:
    log = NuPlanLog(world.db_paths[0], maps_root=world.maps_root)
    tok = log.select(stride_s=5.0).token.iloc[1]
    s = log.read(tok)
    con = sqlite3.connect(world.db_paths[0])
    rows = con.execute(
        "SELECT lb.track_token, lb.x, lb.y, lb.yaw FROM lidar_box lb WHERE lb.lidar_pc_token = ?",
        (bytes.fromhex(tok),),
    ).fetchall()
    con.close()
    assert int(s.agents.valid[s.t0].sum()) == len(rows) + 1  # + the ego
    ids = list(s.agents.track_ids)
    for track, x, y, yaw in rows[:20]:
        k = ids.index(bytes(track).hex())
        np.testing.assert_allclose(s.agents.xy[s.t0, k] + s.origin_xy, (x, y), atol=1e-2)
        assert abs(np.angle(np.exp(1j * (s.agents.yaw[s.t0, k] - yaw)))) < 1e-4


def test_map_route_and_traffic_lights(world) -> None:
    log = NuPlanLog(world.db_paths[0], maps_root=world.maps_root)
    sel = log.select(stride_s=2.0)
    scenarios = [log.read(t) for t in sel.token[:6]]
    for s in scenarios:
        m = s.map
        assert m.num_lanes > 0 and len(m.drivable_areas) > 0
        # lane graph indices stay inside the crop
        assert m.lane_successors.size == 0 or m.lane_successors.max() < m.num_lanes
        # the ego starts on the drivable area
        area = shapely.union_all([shapely.Polygon(m.drivable_areas.get(i))
                                  for i in range(len(m.drivable_areas)) if not m.drivable_is_hole[i]])
        assert area.buffer(0.5).contains(shapely.Point(s.agents.xy[s.t0, 0]))
        # route: roadblock ids parsed, route lanes exist in the crop
        assert len(s.route.roadblock_ids) > 0
        assert len(s.route.lane_indices) > 0
        assert s.traffic_lights.status.shape == (s.num_steps, len(m.signalized_lanes))
    assert any(len(s.map.signalized_lanes) for s in scenarios)
    lit = [s for s in scenarios if len(s.map.signalized_lanes)]
    assert any((s.traffic_lights.status < 3).any() for s in lit)


def test_selection_by_tag_token_and_stride(world) -> None:
    log = NuPlanLog(world.db_paths[0], maps_root=world.maps_root)
    tagged = log.select()
    assert len(tagged) > 0
    kind = tagged.scenario_type.iloc[0]
    by_tag = log.select(tags=[kind])
    assert len(by_tag) > 0 and all(kind in t for t in by_tag.tags)
    s = log.read(by_tag.token.iloc[0])
    assert kind in s.tags
    one = log.select(tokens=[tagged.token.iloc[0]])
    assert list(one.token) == [tagged.token.iloc[0]]
    strided = log.select(stride_s=1.0)
    assert (np.diff(strided.timestamp_us) >= 1e6 - 2 * SWEEP_PERIOD_S * 1e6).all()


def test_roadblock_ids_accept_commas_and_spaces(log_copy: Path, world) -> None:
    con = sqlite3.connect(log_copy)
    ids = con.execute("SELECT roadblock_ids FROM scene").fetchall()
    con.execute("UPDATE scene SET roadblock_ids = replace(roadblock_ids, ' ', ',')")
    con.commit()
    con.close()
    db = NuPlanDB(log_copy)
    assert [" ".join(r) for r in db.scenes.roadblock_ids] == [i[0] for i in ids]


def test_reads_without_box_index(log_copy: Path, world) -> None:
    con = sqlite3.connect(log_copy)
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name IN "
                               "('lidar_box','traffic_light_status') AND sql IS NOT NULL").fetchall():
        con.execute(f'DROP INDEX "{name}"')
    con.commit()
    con.close()
    ref = NuPlanLog(world.db_paths[0], maps_root=world.maps_root)
    tok = ref.select(stride_s=5.0).token.iloc[0]
    a = ref.read(tok)
    b = NuPlanLog(log_copy, maps_root=world.maps_root).read(tok)
    np.testing.assert_array_equal(a.agents.xy, b.agents.xy)
    np.testing.assert_array_equal(a.traffic_lights.status, b.traffic_lights.status)


def test_cameras_unpickle_restricted(world) -> None:
    cams = NuPlanDB(world.db_paths[0]).cameras()
    assert len(cams) == 8
    assert cams.intrinsic.iloc[0].shape == (3, 3)


def test_hostile_pickle_is_refused(log_copy: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    _exec(log_copy, "UPDATE camera SET rotation = ?", (pickle.dumps(Evil()),))
    with pytest.raises(CorruptFileError, match="camera.rotation"):
        NuPlanDB(log_copy).cameras()


# ------------------------------------------------------------------------------------------- bad input
def test_truncated_db(log_copy: Path) -> None:
    data = log_copy.read_bytes()
    log_copy.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptFileError, match=log_copy.name):
        NuPlanLog(log_copy).select()


def test_not_sqlite(tmp_path: Path) -> None:
    p = tmp_path / "2021.01.01.00.00.00_veh-01_00001_00002.db"
    p.write_bytes(b"PK\x03\x04 this is a zip, not a log" * 10)
    with pytest.raises(CorruptFileError, match="not a SQLite database"):
        NuPlanDB(p)


def test_missing_table(log_copy: Path) -> None:
    _exec(log_copy, "DROP TABLE lidar_box")
    with pytest.raises(MissingTableError, match=r"table 'lidar_box' is missing"):
        NuPlanDB(log_copy)


def test_missing_column(log_copy: Path) -> None:
    _exec(log_copy, "ALTER TABLE ego_pose DROP COLUMN qz")
    with pytest.raises(MissingColumnError, match=r"ego_pose\.qz"):
        NuPlanDB(log_copy)


def test_empty_log(log_copy: Path) -> None:
    _exec(log_copy, "DELETE FROM lidar_pc")
    with pytest.raises(EmptyLogError, match=r"lidar_pc.*empty"):
        NuPlanDB(log_copy)


def test_nan_pose(log_copy: Path) -> None:
    con = sqlite3.connect(log_copy)
    con.execute("UPDATE ego_pose SET x = ? WHERE rowid = 50", (float("nan"),))
    con.commit()
    con.close()
    with pytest.raises(InvalidPoseError, match=r"ego_pose\.x"):
        NuPlanDB(log_copy)


def test_non_monotonic_timestamps(log_copy: Path) -> None:
    con = sqlite3.connect(log_copy)
    (a, ta), (b, tb) = con.execute("SELECT token, timestamp FROM lidar_pc ORDER BY timestamp LIMIT 2 OFFSET 100").fetchall()
    con.execute("UPDATE lidar_pc SET timestamp = ? WHERE token = ?", (tb, a))
    con.execute("UPDATE lidar_pc SET timestamp = ? WHERE token = ?", (ta, b))
    con.commit()
    con.close()
    with pytest.raises(NonMonotonicTimestampsError, match="lidar_pc"):
        NuPlanDB(log_copy)


def test_window_past_end_of_log(world) -> None:
    log = NuPlanLog(world.db_paths[0], maps_root=world.maps_root)
    last = bytes(log.db.lidar_pc_tokens[-5]).hex()
    with pytest.raises(WindowOutOfRangeError, match=r"8 s of future"):
        log.read(last)
    with pytest.raises(WindowOutOfRangeError):
        log.select(tokens=[last])


def test_gpkg_missing_layer(world, tmp_path: Path, log_copy: Path) -> None:
    maps = tmp_path / "maps"
    shutil.copytree(world.maps_root, maps)
    name = NuPlanDB(log_copy).info.map_name
    gpkg = next((maps / name).rglob("map.gpkg"))
    _exec(gpkg, "DROP TABLE baseline_paths")
    with pytest.raises(MissingLayerError, match=r"layer 'baseline_paths' is missing"):
        NuPlanLog(log_copy, maps_root=maps).read(NuPlanLog(log_copy, maps_root=maps).select(stride_s=5).token.iloc[0])


def test_missing_map(log_copy: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no_maps"
    empty.mkdir()
    log = NuPlanLog(log_copy, maps_root=empty)
    with pytest.raises(MissingFileError, match="NUPLAN_MAPS_ROOT"):
        log.read(log.select(stride_s=5).token.iloc[0])
