"""Camera rigs from nuPlan's camera table, AV2 calibration, and the default roof rig."""
from __future__ import annotations

import pickle
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from worldengine_lab.errors import CorruptFileError, DataFormatError, EmptyLogError, MissingFileError
from worldengine_lab.logs.nuplan.db import NuPlanDB
from worldengine_lab.logs.nuplan.reader import NuPlanLog
from worldengine_lab.logs.synthetic import SynthConfig, synthesize
from worldengine_lab.scene.compose import quat_to_matrix
from worldengine_lab.scene.rigs import AV2_RING_CAMERAS, DEFAULT_YAW_DEG, NUPLAN_CHANNELS, av2_rig, default_rig, nuplan_rig

AV2 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "av2"
AV2_LOG = AV2 / "7fab2350-7eaf-3b7e-a39d-6937a4c1bede"
requires_av2 = pytest.mark.skipif(not AV2_LOG.is_dir(), reason=f"AV2 fixture log not found at {AV2_LOG.resolve()} "
                                  "(the 'shared' folder beside the repo root)")


def _forward(rig, name):
    """Viewing direction (camera +z) of camera ``name`` in the ego frame."""
    return rig.ego_from_cam[list(rig.names).index(name), :3, 2]


def test_default_rig_geometry():
    rig = default_rig(width=320, height=180, fov_deg=90.0)
    assert rig.names.tolist() == list(NUPLAN_CHANNELS) and (rig.width, rig.height) == (320, 180)
    front = rig.ego_from_cam[0, :3, :3]
    np.testing.assert_allclose(front, quat_to_matrix(np.array([0.5, -0.5, 0.5, -0.5])), atol=1e-12)  # spec §2
    for name, yaw in DEFAULT_YAW_DEG.items():
        a = np.deg2rad(yaw)
        np.testing.assert_allclose(_forward(rig, name), [np.cos(a), np.sin(a), 0.0], atol=1e-12)
    np.testing.assert_allclose(rig.ego_from_cam[:, 2, 3], 1.6)
    np.testing.assert_allclose(rig.Ks[:, 0, 0], 160.0, rtol=1e-6)  # 90° over 320 px
    np.testing.assert_allclose(rig.Ks[:, :2, 2], [[160.0, 90.0]] * 8)
    # a point 10 m ahead at camera height projects to the image centre of CAM_F0
    view = rig.viewmats(np.eye(4))[0].astype(np.float64)
    p = view @ np.array([rig.ego_from_cam[0, 0, 3] + 10.0, 0.0, 1.6, 1.0])
    uv = (rig.Ks[0].astype(np.float64) @ p[:3])[:2] / p[2]
    np.testing.assert_allclose(uv, [160.0, 90.0], atol=1e-4)


@pytest.fixture(scope="module")
def world_db(tmp_path_factory):
    res = synthesize(tmp_path_factory.mktemp("world"), seed=2, num_logs=1,
                     config=SynthConfig(log_duration_s=50.0, max_vehicles=6))
    return res.db_paths[0]


def test_nuplan_rig_from_embedded_world(world_db):
    rig = nuplan_rig(world_db)
    assert rig.names.tolist() == list(NUPLAN_CHANNELS) and (rig.width, rig.height) == (1920, 1080)
    for name in NUPLAN_CHANNELS:  # the embedded world mounts its cameras at these yaws
        a = np.deg2rad(DEFAULT_YAW_DEG[name])
        np.testing.assert_allclose(_forward(rig, name), [np.cos(a), np.sin(a), 0.0], atol=1e-9)
    np.testing.assert_allclose(rig.ego_from_cam[0, :3, 3], [2.7, 0.0, 1.9])
    np.testing.assert_allclose(rig.Ks[0], [[1545, 0, 960], [0, 1545, 560], [0, 0, 1]])
    np.testing.assert_allclose(rig.distortion[0], [-0.356, 0.172, -0.00031, 0.00066, -0.0518], rtol=1e-6)
    same = nuplan_rig(NuPlanDB(world_db))
    np.testing.assert_array_equal(same.ego_from_cam, rig.ego_from_cam)
    sub = nuplan_rig(NuPlanLog(world_db), channels=["CAM_B0", "CAM_F0"])
    assert sub.names.tolist() == ["CAM_B0", "CAM_F0"]
    with pytest.raises(DataFormatError, match="CAM_X9"):
        nuplan_rig(world_db, channels=["CAM_X9"])


def _edited(world_db, tmp_path, sql, params=()):
    path = tmp_path / "edited.db"
    shutil.copy(world_db, path)
    con = sqlite3.connect(path)
    con.execute(sql, params)
    con.commit()
    con.close()
    return path


def test_nuplan_rig_errors(world_db, tmp_path):
    with pytest.raises(EmptyLogError, match="default_rig"):
        nuplan_rig(_edited(world_db, tmp_path, "DELETE FROM camera"))
    with pytest.raises(DataFormatError, match="different image sizes"):
        nuplan_rig(_edited(world_db, tmp_path, "UPDATE camera SET width = 1600 WHERE channel = 'CAM_B0'"))
    with pytest.raises(CorruptFileError, match="camera.rotation"):
        nuplan_rig(_edited(world_db, tmp_path, "UPDATE camera SET rotation = ?", (pickle.dumps(Path("x")),)))
    with pytest.raises(DataFormatError, match="rotation \\[4\\]"):
        nuplan_rig(_edited(world_db, tmp_path, "UPDATE camera SET rotation = ?", (pickle.dumps([1.0, 0.0]),)))


@requires_av2
def test_av2_rig_from_calibration():
    rig = av2_rig(AV2_LOG)
    assert rig.names.tolist() == list(AV2_RING_CAMERAS) and (rig.width, rig.height) == (2048, 1550)
    fwd = _forward(rig, "ring_front_center")
    assert fwd[0] > 0.99  # looks along the ego's +x
    assert _forward(rig, "ring_side_left")[1] > 0.9 and _forward(rig, "ring_side_right")[1] < -0.9
    assert _forward(rig, "ring_rear_left")[0] < -0.3
    assert np.all((rig.ego_from_cam[:, 2, 3] > 1.3) & (rig.ego_from_cam[:, 2, 3] < 1.5))  # roof, above the rear axle
    i = 0  # portrait 1550 x 2048 front camera re-centred onto 2048 x 1550: same focal length
    np.testing.assert_allclose(rig.Ks[i, 0, 0], 1776.041484, rtol=1e-6)
    np.testing.assert_allclose(rig.Ks[i, :2, 2], [777.990573 + 249.0, 1013.524325 - 249.0], rtol=1e-6)
    np.testing.assert_allclose(rig.distortion[i], [-0.240732, -0.212243, 0, 0, 0.325902], atol=1e-6)
    stereo = av2_rig(AV2_LOG, cameras=["stereo_front_left", "stereo_front_right"])
    assert (stereo.width, stereo.height) == (2048, 1550)
    with pytest.raises(DataFormatError, match="up_camera"):
        av2_rig(AV2_LOG, cameras=["up_camera"])


@requires_av2
def test_av2_rig_without_calibration():
    with pytest.raises(MissingFileError, match="default_rig"):
        av2_rig(AV2 / "adcf7d18-0510-35b0-a2fa-b4cea13a6d76")
