"""Composition of a static background and rigid actors (spec gaussian-splatting.md §7.3, §7.4, §7.7)."""
from __future__ import annotations

import numpy as np
import pytest

from worldengine_lab.datatypes import AgentTracks, GaussianScene
from worldengine_lab.errors import ScenarioValidationError, ShapeError, WindowOutOfRangeError
from worldengine_lab.scene.compose import (
    MIRROR_SH_BASES, GroundHeight, PoseLog, ScenarioScene, actor_to_world, interpolate_log_poses, mirror_gaussians,
    quat_from_matrix, quat_from_yaw, quat_multiply, quat_slerp, quat_to_matrix, quat_yaw,
)
from worldengine_lab.testing import make_scenario

M = np.diag([1.0, -1.0, 1.0])


def _eval_sh(sh: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Colour ``[G, 3]`` = Σ_k sh_k Y_k(d) + 0.5 for unit directions ``d [G, 3]`` (table of spec §3.7, degree 3)."""
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    basis = np.stack([
        np.full_like(x, 0.28209479177387814), -0.4886025119029199 * y, 0.4886025119029199 * z,
        -0.4886025119029199 * x, 1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
        0.31539156525252005 * (3 * z * z - 1), -1.0925484305920792 * x * z, 0.5462742152960396 * (x * x - y * y),
        -0.5900435899266435 * y * (3 * x * x - y * y), 2.890611442640554 * x * y * z,
        -0.4570457994644658 * y * (5 * z * z - 1), 0.3731763325901154 * z * (5 * z * z - 3),
        -0.4570457994644658 * x * (5 * z * z - 1), 1.445305721320277 * z * (x * x - y * y),
        -0.5900435899266435 * x * (x * x - 3 * y * y)], axis=1)  # [G, 16]
    return np.einsum("gk,gkc->gc", basis[:, :sh.shape[1]], sh) + 0.5


def _scene(means, actor_ids, tracks, k=1) -> GaussianScene:
    g = len(means)
    return GaussianScene(np.asarray(means, np.float32), np.tile(np.array([1, 0, 0, 0], np.float32), (g, 1)),
                         np.full((g, 3), 0.1, np.float32), np.full(g, 0.9, np.float32), np.zeros((g, k, 3), np.float32),
                         np.asarray(actor_ids, np.int32), np.asarray(tracks, dtype=str))


def _empty_bg() -> GaussianScene:
    return _scene(np.zeros((0, 3)), np.zeros(0), [])


# ---------------------------------------------------------------- pure functions (spec §7.7)

def test_world_point_and_mirrored_copy():
    mu, q = np.array([[1.0, 0.5, 0.0]]), np.array([[1.0, 0, 0, 0]])
    pose_q, pose_t = quat_from_yaw(np.pi / 2), np.array([10.0, 20.0, 0.0])
    world, _ = actor_to_world(mu, q, pose_q, pose_t)
    np.testing.assert_allclose(world, [[9.5, 21.0, 0.0]], atol=1e-12)
    mm, mq, _ = mirror_gaussians(mu, q, np.zeros((1, 16, 3)))
    world_m, _ = actor_to_world(mm, mq, pose_q, pose_t)
    np.testing.assert_allclose(world_m, [[10.5, 21.0, 0.0]], atol=1e-12)


def test_actor_to_world_rotation_composes():
    rng = np.random.default_rng(0)
    q_local = rng.normal(size=(50, 4)) * 3.0  # unnormalised
    q_pose = rng.normal(size=4)
    q_pose /= np.linalg.norm(q_pose)
    mu = rng.normal(size=(50, 3))
    t = rng.normal(size=3)
    world, q_world = actor_to_world(mu, q_local, q_pose, t)
    np.testing.assert_allclose(world, mu @ quat_to_matrix(q_pose).T + t, atol=1e-12)
    np.testing.assert_allclose(quat_to_matrix(q_world), quat_to_matrix(q_pose)[None] @ quat_to_matrix(q_local),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(q_world, axis=1), 1.0, atol=1e-12)


def test_hamilton_product_units():
    i, j, k, one = np.eye(4)[1], np.eye(4)[2], np.eye(4)[3], np.eye(4)[0]
    np.testing.assert_allclose(quat_multiply(i, j), k)
    np.testing.assert_allclose(quat_multiply(j, i), -k)
    np.testing.assert_allclose(quat_multiply(i, i), -one)
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
    np.testing.assert_allclose(quat_to_matrix(quat_multiply(a, b)), quat_to_matrix(a) @ quat_to_matrix(b), atol=1e-12)
    np.testing.assert_allclose(quat_yaw(quat_from_yaw(np.array([0.3, -2.0]))), [0.3, -2.0])
    q = rng.normal(size=(200, 4))
    q[:4] = [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]]  # every branch of the conversion
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q *= np.where(q[:, :1] < 0, -1, 1)
    np.testing.assert_allclose(quat_from_matrix(quat_to_matrix(q)), q, atol=1e-12)


def test_mirror_quaternion_rule():
    rng = np.random.default_rng(2)
    q = rng.normal(size=(100, 4))
    _, qm, _ = mirror_gaussians(np.zeros((100, 3)), q, np.zeros((100, 1, 3)))
    np.testing.assert_allclose(qm, q * [1, -1, 1, -1])
    np.testing.assert_allclose(quat_to_matrix(qm), M @ quat_to_matrix(q) @ M, atol=1e-12)


def test_sh_flip_mirrored_colour_matches_reflected_direction():
    rng = np.random.default_rng(3)
    g = 64
    sh = rng.normal(scale=0.3, size=(g, 16, 3))
    _, _, sh_m = mirror_gaussians(np.zeros((g, 3)), np.tile([1.0, 0, 0, 0], (g, 1)), sh)
    flipped = np.zeros(16, bool)
    flipped[list(MIRROR_SH_BASES)] = True
    np.testing.assert_array_equal(sh_m[:, flipped], -sh[:, flipped])
    np.testing.assert_array_equal(sh_m[:, ~flipped], sh[:, ~flipped])
    d = rng.normal(size=(g, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    np.testing.assert_allclose(_eval_sh(sh_m, d * [1, -1, 1]), _eval_sh(sh, d), atol=1e-12)
    assert not np.allclose(_eval_sh(sh, d * [1, -1, 1]), _eval_sh(sh, d))  # the flip matters


def test_log_pose_interpolation_spec_case():
    ts = np.array([0, 100_000], np.int64)
    trans = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    quats = np.stack([quat_from_yaw(0.0), quat_from_yaw(np.pi / 2)])
    t, q, present = interpolate_log_poses(ts, trans, quats, 25_000)
    assert present
    np.testing.assert_allclose(t, [2.5, 0, 0], atol=1e-12)
    np.testing.assert_allclose(q, [0.980785, 0, 0, 0.195090], atol=1e-6)
    t, q, present = interpolate_log_poses(ts + 5_000_000, trans, quats, 5_100_000)  # t_rel from the first frame
    assert present and np.allclose(t, [10, 0, 0]) and np.allclose(q, quat_from_yaw(np.pi / 2))


def test_log_pose_sentinels_range_and_batching():
    ts = np.array([[0, 100, 200, 300], [0, 50, 0, 0]], np.int64)
    trans = np.zeros((2, 4, 3))
    trans[0, :, 0] = [0, 1, 2, 3]
    trans[0, 2, 2] = 100_000.0  # sentinel: absent at frame 2
    trans[1, :2, 1] = [5, 7]
    quats = np.tile([1.0, 0, 0, 0], (2, 4, 1))
    real = np.array([[True] * 4, [True, True, False, False]])
    cases = {25: ([0.25, 0, 0], [0, 6, 0], [True, True]), 150: (None, None, [False, False]),
             200: (None, None, [False, False]), 300: ([3, 0, 0], None, [True, False]),
             100: ([1, 0, 0], None, [True, False]), -1: (None, None, [False, False])}
    for t_us, (want0, want1, want_present) in cases.items():
        t, q, present = interpolate_log_poses(ts, trans, quats, t_us, real)
        assert present.tolist() == want_present, t_us
        if want0 is not None:
            np.testing.assert_allclose(t[0], want0)
        if want1 is not None:
            np.testing.assert_allclose(t[1], want1)
        assert np.allclose(np.linalg.norm(q, axis=1), 1.0)


def test_slerp_endpoints_short_arc_and_near_parallel():
    a, b = quat_from_yaw(0.2), quat_from_yaw(1.4)
    np.testing.assert_allclose(quat_slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(quat_slerp(a, b, 1.0), b, atol=1e-12)
    np.testing.assert_allclose(quat_yaw(quat_slerp(a, -b, 0.5)), 0.8, atol=1e-12)  # negated q1: same rotation
    c = quat_from_yaw(0.2 + 1e-4)
    np.testing.assert_allclose(quat_yaw(quat_slerp(a, c, 0.5)), 0.2 + 5e-5, atol=1e-9)


# ---------------------------------------------------------------- ScenarioScene

def _two_actor_scene(**kw) -> ScenarioScene:
    s = make_scenario(num_agents=3, num_steps=11, t0=2)
    actors = _scene([[1.0, 0.5, 0.0], [0.0, 0.0, 0.2], [2.0, 0.0, 0.0]], [0, 0, 1], ["veh1", "veh2"])
    bg = _scene([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0]], [-1, -1], [])
    return ScenarioScene(bg, actors, s, **kw)


def test_frame_poses_actors_from_tracks():
    sc = _two_actor_scene(ground=GroundHeight(default_z=0.5))
    s = sc.scenario
    scene, pose = sc.frame(4)
    assert scene.num_gaussians == 5 and scene.actor_track_ids.tolist() == ["veh1", "veh2"]
    np.testing.assert_array_equal(scene.actor_ids, [-1, -1, 0, 0, 1])
    xy1, xy2 = s.agents.xy[4, 1].astype(float), s.agents.xy[4, 2].astype(float)
    h1, h2 = s.agents.size_lwh[1, 2], s.agents.size_lwh[2, 2]
    np.testing.assert_allclose(scene.means[2], [xy1[0] + 1, xy1[1] + 0.5, 0.5 + h1 / 2], atol=1e-5)
    np.testing.assert_allclose(scene.means[4], [xy2[0] + 2, xy2[1], 0.5 + h2 / 2], atol=1e-5)
    ego = s.agents.xy[4, 0].astype(float)
    np.testing.assert_allclose(pose[:3, 3], [ego[0] - s.ego_rear_axle_to_center_m, ego[1], 0.5], atol=1e-6)
    np.testing.assert_allclose(pose[:3, :3], np.eye(3), atol=1e-12)
    assert pose.dtype == np.float64


def test_frame_drops_absent_actors_and_follows_yaw():
    sc = _two_actor_scene()
    s = sc.scenario
    valid = s.agents.valid.copy()
    valid[5, 2] = False
    yaw = s.agents.yaw.copy()
    yaw[5, 1] = np.pi / 2
    edited = s.with_agents(AgentTracks(s.agents.xy, yaw, s.agents.vel_xy, s.agents.size_lwh, s.agents.agent_type,
                                       valid, s.agents.track_ids))
    scene, _ = sc.with_scenario(edited).frame(5)
    assert scene.num_gaussians == 4 and 1 not in scene.actor_ids.tolist()
    xy = s.agents.xy[5, 1].astype(float)
    np.testing.assert_allclose(scene.means[2, :2], xy + [-0.5, 1.0], atol=1e-5)  # yaw 90°: (1, .5) -> (-.5, 1)
    np.testing.assert_allclose(scene.quats[2], quat_from_yaw(np.pi / 2), atol=1e-6)


def test_with_scenario_moves_actor_gaussians_only():
    sc = _two_actor_scene()
    s = sc.scenario
    xy = s.agents.xy.copy()
    xy[:, 1, 1] += 3.0
    moved = sc.with_scenario(s.with_agents(s.agents.with_arrays(xy=xy)))
    a, _ = sc.frame(3)
    b, _ = moved.frame(3)
    np.testing.assert_allclose(b.means[a.actor_ids == 0] - a.means[a.actor_ids == 0], [[0, 3, 0]] * 2, atol=1e-5)
    np.testing.assert_array_equal(b.means[a.actor_ids != 0], a.means[a.actor_ids != 0])
    assert moved.actors is sc.actors and moved.background is sc.background


def test_fractional_step_interpolates():
    sc = _two_actor_scene()
    a, pa = sc.frame(3)
    b, pb = sc.frame(4)
    m, pm = sc.frame(3.5)
    np.testing.assert_allclose(m.means, 0.5 * (a.means + b.means), atol=1e-4)
    np.testing.assert_allclose(pm, 0.5 * (pa + pb), atol=1e-9)


def test_ground_raster_and_pose_log_override():
    heights = np.full((10, 10), 2.0, np.float32)
    heights[0, 0] = np.nan
    ground = GroundHeight(default_z=-1.0, origin_xy=np.array([0.0, -5.0]), cell_m=10.0, heights=heights)
    np.testing.assert_allclose(ground.at(np.array([[15.0, 0.0], [5.0, 0.0], [-5.0, 0.0]])), [2.0, -1.0, -1.0])
    sc = _two_actor_scene()
    s = sc.scenario
    # logged ego poses along the track: z = 1.3, pitched by 0.1 rad about y
    rear = s.agents.xy[:, 0].astype(float) - [s.ego_rear_axle_to_center_m, 0]
    pitch = np.array([np.cos(0.05), 0, np.sin(0.05), 0])
    log = PoseLog(np.concatenate([rear, np.full((len(rear), 1), 1.3)], 1)[None], np.tile(pitch, (1, len(rear), 1)),
                  np.ones((1, len(rear)), bool))
    _, pose = ScenarioScene(sc.background, sc.actors, s, ego_log=log).frame(6)
    np.testing.assert_allclose(pose[:3, 3], [*rear[6], 1.3], atol=1e-6)
    np.testing.assert_allclose(pose[:3, :3], quat_to_matrix(pitch), atol=1e-12)


def test_validation_errors():
    sc = _two_actor_scene()
    with pytest.raises(WindowOutOfRangeError, match="step index"):
        sc.frame(11)
    with pytest.raises(ScenarioValidationError, match="actor_id == -1"):
        ScenarioScene(sc.actors, sc.actors, sc.scenario)
    with pytest.raises(ScenarioValidationError, match="actor_id >= 0"):
        ScenarioScene(sc.background, sc.background, sc.scenario)
    with pytest.raises(ShapeError, match="actor_log"):
        ScenarioScene(sc.background, sc.actors, sc.scenario,
                      actor_log=PoseLog(np.zeros((1, 2, 3)), np.zeros((1, 2, 4)), np.zeros((1, 2), bool)))


def test_unknown_tracks_never_shown_and_sh_padding():
    s = make_scenario(num_agents=2, num_steps=5, t0=1)
    actors = _scene([[0.0, 0, 0], [1.0, 0, 0]], [0, 1], ["veh1", "ghost"], k=4)
    sc = ScenarioScene(_empty_bg(), actors, s)
    scene, _ = sc.frame(0)
    assert scene.actor_ids.tolist() == [0] and scene.sh.shape == (1, 4, 3)


def test_frame_is_vectorised_over_many_actors():
    n = 400
    s = make_scenario(num_agents=n + 1, num_steps=3, t0=0, gap_m=2.0)
    g_per = 50
    ids = np.repeat(np.arange(n), g_per)
    actors = _scene(np.random.default_rng(0).normal(size=(n * g_per, 3)), ids, [f"veh{i}" for i in range(1, n + 1)])
    scene, _ = ScenarioScene(_empty_bg(), actors, s).frame(1)
    assert scene.num_gaussians == n * g_per
    centre = np.array([np.bincount(scene.actor_ids, scene.means[:, i]) / g_per for i in range(2)]).T
    local = np.array([np.bincount(ids, actors.means[:, i]) / g_per for i in range(2)]).T
    np.testing.assert_allclose(centre - local, s.agents.xy[1, 1:], atol=1e-3)
