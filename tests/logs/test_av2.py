"""Argoverse 2 sensor-log reader tests on the real fixture files in ``shared/data/av2`` (beside the repository
root). Maps, forecasting scenarios and discovery are in ``test_av2_map.py``.

Independent checks recompute what they compare against with pandas / plain numpy from the raw files.
Bad-input cases copy the needed fixture files into ``tmp_path`` and damage the copies.
"""
from __future__ import annotations

import json
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pytest
import shapely

from worldengine_lab.datatypes import AgentType, MapData, Scenario
from worldengine_lab.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidPoseError,
    MissingColumnError,
    MissingFileError,
    NonMonotonicTimestampsError,
    WindowOutOfRangeError,
)
from worldengine_lab.logs import av2

from _av2_data import ANNOTATIONS, DATA, LOG_A, LOG_B, LOG_NO_POSES, POSES, requires_av2  # noqa: E402

pytestmark = requires_av2

# README inventory: tracks per log
NUM_TRACKS = {LOG_A: 114, LOG_B: 146}


def map_json(log: str) -> Path:
    return next((DATA / log / "map").glob("log_map_archive_*.json"))


@lru_cache(maxsize=None)
def full_log(log: str) -> Scenario:
    """The whole log from its first sweep (t0 = step 0, so step 0 is exactly the first sweep)."""
    return av2.read_sensor_log(DATA / log, history_s=0.0)


def copy_log(log: str, dst: Path, with_map: bool = True) -> Path:
    """Copy the files a reader needs (annotations, poses, vector map) into ``dst/<log>``."""
    out = dst / log
    out.mkdir(parents=True)
    for name in (ANNOTATIONS, POSES):
        shutil.copy(DATA / log / name, out / name)
    if with_map:
        (out / "map").mkdir()
        shutil.copy(map_json(log), out / "map" / map_json(log).name)
    return out


def rewrite(path: Path, df: pd.DataFrame) -> None:
    feather.write_feather(pa.Table.from_pandas(df, preserve_index=False), path)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# -- sensor logs: agents ------------------------------------------------------------------------------------


@pytest.mark.parametrize("log", [LOG_A, LOG_B])
def test_agents_per_frame_match_annotation_rows(log: str) -> None:
    s = full_log(log)
    ann = pd.read_feather(DATA / log / ANNOTATIONS)
    sweeps = np.sort(ann["timestamp_ns"].unique())
    per_sweep = ann.groupby("timestamp_ns")["track_uuid"].apply(set)
    grid_ns = sweeps[0] + np.arange(s.num_steps, dtype=np.int64) * 100_000_000
    np.testing.assert_allclose(s.timestamps_s, grid_ns / 1e9, rtol=0, atol=1e-6)
    assert ann["track_uuid"].nunique() == NUM_TRACKS[log]

    num_valid = s.agents.valid[:, 1:].sum(axis=1)
    nearest = sweeps[np.abs(grid_ns[:, None] - sweeps[None, :]).argmin(axis=1)]
    nearest_count = ann.groupby("timestamp_ns").size().loc[nearest].to_numpy()
    # valid = observed on both bracketing sweeps, so never more than the rows of the nearest sweep
    assert (num_valid <= nearest_count).all()
    assert num_valid[0] == nearest_count[0]  # step 0 is the first sweep itself
    assert (num_valid == nearest_count).mean() > 0.7
    seen: set[str] = set()
    for k in range(s.num_steps):
        i0 = np.searchsorted(sweeps, grid_ns[k], side="right") - 1
        both = per_sweep[sweeps[i0]] if sweeps[i0] == grid_ns[k] else per_sweep[sweeps[i0]] & per_sweep[sweeps[i0 + 1]]
        assert set(s.agents.track_ids[1:][s.agents.valid[k, 1:]]) == both
        seen |= both
    # agents = tracks valid at some grid step; tracks seen on one or two sweeps that bracket no grid step
    # (or only after the last grid step) are left out
    assert set(s.agents.track_ids[1:]) == seen
    dropped = set(ann["track_uuid"]) - seen
    assert len(dropped) <= 5 and (ann[ann["track_uuid"].isin(dropped)].groupby("track_uuid").size() <= 2).all()


@pytest.mark.parametrize("log", [LOG_A, LOG_B])
def test_agent_types_and_sizes(log: str) -> None:
    s = full_log(log)
    a = s.agents
    assert a.track_ids[0] == "ego" and a.agent_type[0] == AgentType.EGO and a.valid[:, 0].all()
    np.testing.assert_allclose(a.size_lwh[0], [4.877, 2.0, 1.473], rtol=1e-6)
    assert s.ego_rear_axle_to_center_m == pytest.approx(1.35)
    ann = pd.read_feather(DATA / log / ANNOTATIONS)
    per_track = ann.groupby("track_uuid").agg(category=("category", "first"), length=("length_m", "median"))
    per_track = per_track.loc[a.track_ids[1:]]
    want = per_track["category"].map({k: int(v) for k, v in av2.SENSOR_CATEGORY_TO_TYPE.items()}).to_numpy()
    np.testing.assert_array_equal(a.agent_type[1:], want)
    np.testing.assert_allclose(a.size_lwh[1:, 0], per_track["length"].to_numpy(), rtol=1e-6)


def test_velocity_is_difference_of_positions() -> None:
    a = full_log(LOG_A).agents
    dt = 0.1
    fd = (a.xy[2:] - a.xy[:-2]) / (2 * dt)  # central difference on the grid
    ok = a.valid[2:] & a.valid[1:-1] & a.valid[:-2]
    err = np.linalg.norm(fd - a.vel_xy[1:-1], axis=-1)[ok]
    assert np.median(err) < 0.1
    # a moving vehicle's heading agrees with its direction of travel
    speed = np.linalg.norm(a.vel_xy, axis=-1)
    moving = a.valid & (speed > 3.0)
    travel = np.arctan2(a.vel_xy[..., 1], a.vel_xy[..., 0])
    dyaw = np.abs((a.yaw - travel + np.pi) % (2 * np.pi) - np.pi)[moving]
    assert np.median(dyaw) < 0.1


def test_box_moved_from_ego_to_city_frame_by_hand() -> None:
    ann = pd.read_feather(DATA / LOG_A / ANNOTATIONS)
    poses = pd.read_feather(DATA / LOG_A / POSES)
    first_sweep = ann["timestamp_ns"].min()
    row = ann[(ann["timestamp_ns"] == first_sweep) & (ann["category"] == "REGULAR_VEHICLE")].iloc[3]
    pose = poses[poses["timestamp_ns"] == row["timestamp_ns"]].iloc[0]

    def rotation(w: float, x: float, y: float, z: float) -> np.ndarray:
        return np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ])

    city_R_ego = rotation(pose.qw, pose.qx, pose.qy, pose.qz)
    ego_R_obj = rotation(row.qw, row.qx, row.qy, row.qz)
    centre = city_R_ego @ np.array([row.tx_m, row.ty_m, row.tz_m]) + np.array([pose.tx_m, pose.ty_m, pose.tz_m])
    city_R_obj = city_R_ego @ ego_R_obj
    yaw = np.arctan2(city_R_obj[1, 0], city_R_obj[0, 0])

    s = full_log(LOG_A)
    n = int(np.flatnonzero(s.agents.track_ids == row.track_uuid)[0])
    assert s.agents.valid[0, n]
    np.testing.assert_allclose(s.agents.xy[0, n] + s.origin_xy, centre[:2], atol=1e-3)
    assert abs((s.agents.yaw[0, n] - yaw + np.pi) % (2 * np.pi) - np.pi) < 1e-5

    # the same by hand for a row in the middle of the log, through the row-level helper
    boxes = av2.read_sensor_boxes(DATA / LOG_A)
    mid = ann.iloc[len(ann) // 2]
    pose = poses[poses["timestamp_ns"] == mid["timestamp_ns"]].iloc[0]
    city_R_ego = rotation(pose.qw, pose.qx, pose.qy, pose.qz)
    c = city_R_ego @ [mid.tx_m, mid.ty_m, mid.tz_m] + np.array([pose.tx_m, pose.ty_m, pose.tz_m])
    got = boxes.iloc[len(ann) // 2]
    assert got["track_uuid"] == mid["track_uuid"]
    np.testing.assert_allclose([got["x_m"], got["y_m"], got["z_m"]], c, atol=1e-9)


def test_ego_is_rear_axle_plus_offset() -> None:
    s = full_log(LOG_A)
    poses = pd.read_feather(DATA / LOG_A / POSES)
    first_sweep = pd.read_feather(DATA / LOG_A / ANNOTATIONS)["timestamp_ns"].min()
    p = poses[poses["timestamp_ns"] == first_sweep].iloc[0]
    yaw = np.arctan2(2 * (p.qw * p.qz + p.qx * p.qy), 1 - 2 * (p.qy**2 + p.qz**2))
    want = np.array([p.tx_m, p.ty_m]) + 1.35 * np.array([np.cos(yaw), np.sin(yaw)])
    np.testing.assert_allclose(s.agents.xy[0, 0] + s.origin_xy, want, atol=1e-3)
    np.testing.assert_array_equal(s.origin_xy, np.round([p.tx_m, p.ty_m]))  # t0 = step 0 here
    assert s.origin_xy.dtype == np.float64


@pytest.mark.parametrize("log", [LOG_A, LOG_B])
def test_ego_drives_inside_drivable_area(log: str) -> None:
    s = full_log(log)
    areas = s.map.drivable_areas
    region = shapely.union_all([shapely.Polygon(areas.get(i)) for i in range(len(areas))])
    inside = shapely.contains_xy(region, s.agents.xy[:, 0, 0], s.agents.xy[:, 0, 1])
    assert inside.mean() > 0.9


def test_default_window_and_ids() -> None:
    s = av2.read_sensor_log(DATA / LOG_A)
    full = full_log(LOG_A)
    assert s.t0 == 20 and s.dt == pytest.approx(0.1) and s.num_steps == full.num_steps
    t0_ns = int(pd.read_feather(DATA / LOG_A / ANNOTATIONS)["timestamp_ns"].min()) + 20 * 100_000_000
    assert s.scenario_id == f"{LOG_A}:{t0_ns}" and s.log_id == LOG_A
    assert s.tags == frozenset() and s.traffic_lights.status.shape == (s.num_steps, 0)
    p = s.provenance
    assert (p.source, p.log_id, p.map_name, p.location, p.path) == ("av2", LOG_A, "PIT", "PIT", str(DATA / LOG_A))
    assert s.route.has_goal
    np.testing.assert_allclose(s.route.goal_xy, s.agents.xy[-1, 0])
    # a window: 1 s of history, 3 s of future around t0 = 5 s
    w = av2.read_sensor_log(DATA / LOG_A, t0_s=5.0, history_s=1.0, future_s=3.0)
    assert (w.num_steps, w.t0) == (41, 10)
    np.testing.assert_allclose(w.timestamps_s, full.timestamps_s[40:81])
    k = full.agents.track_ids.tolist()
    cols = [k.index(t) for t in w.agents.track_ids]
    np.testing.assert_allclose(w.agents.xy + w.origin_xy, np.where(
        w.agents.valid[..., None], full.agents.xy[40:81, cols] + full.origin_xy, w.origin_xy), atol=2e-3)


def test_sliding_windows() -> None:
    windows = av2.read_sensor_windows(DATA / LOG_B, history_s=2.0, future_s=8.0, stride_s=1.0)
    assert len(windows) == 6
    assert all(w.num_steps == 101 and w.t0 == 20 for w in windows)
    t0s = [w.timestamps_s[w.t0] for w in windows]
    np.testing.assert_allclose(np.diff(t0s), 1.0, atol=1e-6)
    assert len({w.scenario_id for w in windows}) == 6
    assert av2.read_sensor_windows(DATA / LOG_B, history_s=10.0, future_s=10.0) == []


def test_catalog_row_reloads_the_same_window() -> None:
    w = av2.read_sensor_windows(DATA / LOG_A)[2]
    row = {"scenario_id": w.scenario_id, "source": "av2", "path": str(DATA / LOG_A),
           "locator": w.scenario_id.rsplit(":", 1)[-1],
           "window_json": json.dumps({"history_s": 2.0, "future_s": 8.0, "dt": 0.1})}
    again = av2.load_catalog_row(row)
    assert again.scenario_id == w.scenario_id and again.t0 == w.t0
    np.testing.assert_array_equal(again.agents.xy, w.agents.xy)
    np.testing.assert_array_equal(again.agents.track_ids, w.agents.track_ids)
    with pytest.raises(WindowOutOfRangeError, match="not a grid time"):
        av2.load_catalog_row({**row, "locator": str(int(row["locator"]) + 1)})
    f = av2.load_catalog_row({"scenario_id": "x", "source": "av2_forecasting", "path": str(DATA / "forecasting"
                              / "0a1e6f0a-1817-4a98-b02e-db8c9327d151")})
    assert f.num_steps == 110


# -- tolerated variants -------------------------------------------------------------------------------------


def test_variants_with_ego_rows_shuffled_rows_and_no_interior_points(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    ann = pd.read_feather(log / ANNOTATIONS)
    ego = pd.DataFrame({"timestamp_ns": ann["timestamp_ns"].unique(), "track_uuid": "ego-uuid",
                        "category": "EGO_VEHICLE", "length_m": 4.877, "width_m": 2.0, "height_m": 1.473,
                        "qw": 1.0, "qx": 0.0, "qy": 0.0, "qz": 0.0, "tx_m": 0.0, "ty_m": 0.0, "tz_m": 0.0})
    mixed = pd.concat([ann.drop(columns="num_interior_pts"), ego]).sample(frac=1.0, random_state=0)
    (log / ANNOTATIONS).unlink()
    rewrite(log / "annotations_with_ego.feather", mixed)
    s = av2.read_sensor_log(log, history_s=0.0)
    ref = full_log(LOG_A)
    np.testing.assert_array_equal(s.agents.track_ids, ref.agents.track_ids)
    np.testing.assert_array_equal(s.agents.valid, ref.agents.valid)
    np.testing.assert_allclose(s.agents.xy, ref.agents.xy)


def test_annotation_timestamps_without_exact_pose_are_interpolated(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    poses = pd.read_feather(log / POSES)
    sweeps = pd.read_feather(log / ANNOTATIONS)["timestamp_ns"].unique()
    inner = np.sort(sweeps)[1:-1]
    rewrite(log / POSES, poses[~poses["timestamp_ns"].isin(inner)])
    s = av2.read_sensor_log(log, history_s=0.0)
    ref = full_log(LOG_A)
    assert np.abs(s.agents.xy - ref.agents.xy)[ref.agents.valid].max() < 0.02
    assert np.abs(s.agents.yaw - ref.agents.yaw)[ref.agents.valid].max() < 1e-3


def test_missing_map_allowed_when_not_required(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path, with_map=False)
    s = av2.read_sensor_log(log, require_map=False)
    assert isinstance(s.map, MapData) and s.map.num_lanes == 0 and s.provenance.map_name == ""


# -- bad inputs: each its own test --------------------------------------------------------------------------


def test_log_without_poses_fixture_raises_missing_file() -> None:
    with pytest.raises(MissingFileError, match=POSES):
        av2.read_sensor_log(DATA / LOG_NO_POSES)


def test_missing_pose_file(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    (log / POSES).unlink()
    with pytest.raises(MissingFileError, match=POSES):
        av2.read_sensor_log(log)


def test_missing_annotation_file(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    (log / ANNOTATIONS).unlink()
    with pytest.raises(MissingFileError, match="annotations"):
        av2.read_sensor_log(log)


def test_missing_map_folder(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path, with_map=False)
    with pytest.raises(MissingFileError, match="require_map=False"):
        av2.read_sensor_log(log)


def test_missing_map_json(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    next((log / "map").glob("*.json")).unlink()
    with pytest.raises(MissingFileError, match="log_map_archive"):
        av2.read_sensor_log(log)


def test_missing_annotation_column(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    rewrite(log / ANNOTATIONS, pd.read_feather(log / ANNOTATIONS).drop(columns="tx_m"))
    with pytest.raises(MissingColumnError, match="tx_m"):
        av2.read_sensor_log(log)


def test_missing_pose_column(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    rewrite(log / POSES, pd.read_feather(log / POSES).drop(columns="qz"))
    with pytest.raises(MissingColumnError, match="qz"):
        av2.read_sensor_log(log)


def test_nan_pose(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    poses = pd.read_feather(log / POSES)
    poses.loc[100, "ty_m"] = np.nan
    rewrite(log / POSES, poses)
    with pytest.raises(InvalidPoseError, match="ty_m"):
        av2.read_sensor_log(log)


def test_nan_box_pose(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    ann = pd.read_feather(log / ANNOTATIONS)
    ann.loc[10, "qw"] = np.nan
    rewrite(log / ANNOTATIONS, ann)
    with pytest.raises(InvalidPoseError, match="qw"):
        av2.read_sensor_log(log)


def test_pose_rows_out_of_order(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    poses = pd.read_feather(log / POSES)
    order = np.arange(len(poses))
    order[[50, 51]] = order[[51, 50]]
    rewrite(log / POSES, poses.iloc[order])
    with pytest.raises(NonMonotonicTimestampsError, match="row 51"):
        av2.read_sensor_log(log)


def test_duplicate_annotation_timestamp_for_a_track(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    ann = pd.read_feather(log / ANNOTATIONS)
    rewrite(log / ANNOTATIONS, pd.concat([ann, ann.iloc[[7]]]))
    with pytest.raises(NonMonotonicTimestampsError, match=str(ann.iloc[7]["track_uuid"])):
        av2.read_sensor_log(log)


def test_poses_not_covering_annotations(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    poses = pd.read_feather(log / POSES)
    rewrite(log / POSES, poses.iloc[: len(poses) // 2])
    with pytest.raises(InvalidPoseError, match="outside"):
        av2.read_sensor_log(log)


@pytest.mark.parametrize("name", [ANNOTATIONS, POSES])
def test_truncated_feather(tmp_path: Path, name: str) -> None:
    log = copy_log(LOG_A, tmp_path)
    truncate(log / name)
    with pytest.raises(CorruptFileError, match=name):
        av2.read_sensor_log(log)


def test_truncated_map_json(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    truncate(next((log / "map").glob("*.json")))
    with pytest.raises(CorruptFileError, match="JSON"):
        av2.read_sensor_log(log)


def test_empty_annotations(tmp_path: Path) -> None:
    log = copy_log(LOG_A, tmp_path)
    rewrite(log / ANNOTATIONS, pd.read_feather(log / ANNOTATIONS).iloc[:0])
    with pytest.raises(EmptyLogError, match="no object rows"):
        av2.read_sensor_log(log)


def test_window_past_end_of_log() -> None:
    with pytest.raises(WindowOutOfRangeError, match="future_s"):
        av2.read_sensor_log(DATA / LOG_A, t0_s=10.0, future_s=8.0)


def test_t0_after_end_of_log() -> None:
    with pytest.raises(WindowOutOfRangeError, match="t0_s"):
        av2.read_sensor_log(DATA / LOG_A, t0_s=30.0)


def test_window_before_start_of_log() -> None:
    with pytest.raises(WindowOutOfRangeError, match="history_s"):
        av2.read_sensor_log(DATA / LOG_A, t0_s=1.0, history_s=2.0)
