"""Procedural scenes from MapData and actor boxes (scene/procedural.py)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import shapely

from worldengine_lab.datatypes import AgentTracks, AgentType, MapData, Route
from worldengine_lab.errors import ScenarioValidationError
from worldengine_lab.logs.nuplan.reader import NuPlanLog
from worldengine_lab.logs.synthetic import SynthConfig, synthesize
from worldengine_lab.scene.ply import SH_C0
from worldengine_lab.scene.procedural import ProceduralConfig, build_actor_models, build_scene
from worldengine_lab.testing import make_scenario


def _rgb(scene):
    return 0.5 + SH_C0 * scene.sh[:, 0]


@pytest.fixture(scope="module")
def straight():
    return build_scene(make_scenario(num_agents=4, num_steps=31, t0=5))


def test_counts_finite_and_layers(straight):
    bg, act = straight.background, straight.actors
    assert 30_000 < bg.num_gaussians < 200_000 and act.num_actors == 3
    for g in (bg, act):
        assert all(np.isfinite(a).all() for a in (g.means, g.quats, g.scales, g.opacities, g.sh))
        assert g.sh_degree == 0 and (g.scales > 0).all()
    road = (np.abs(bg.means[:, 2]) < 1e-6)  # asphalt at z = 0 on the straight road (y in [-1.75, 5.25])
    assert road.sum() > 1000
    assert (bg.means[road, 1] > -2.5).all() and (bg.means[road, 1] < 6.0).all()
    flat = bg.scales[road]
    assert (flat[:, 2] < 0.2 * flat[:, 0]).all()  # thin along the normal
    paint = np.abs(bg.means[:, 2] - 0.01) < 1e-6
    white = paint & (_rgb(bg)[:, 2] > 0.75)
    yellow = paint & (_rgb(bg)[:, 2] < 0.4)
    # dashed white divider at y = 1.75, solid white right edge at y = -1.75, solid yellow left edge at y = 5.25
    ys = bg.means[white, 1]
    assert np.isclose(ys, 1.75, atol=0.05).sum() > 50 and np.isclose(ys, -1.75, atol=0.05).sum() > 300
    assert np.isclose(bg.means[yellow, 1], 5.25, atol=0.05).all() and yellow.sum() > 300
    div = bg.means[white & np.isclose(bg.means[:, 1], 1.75, atol=0.05), 0]
    assert ((div % 9.0) < 3.0 + 1e-3).all()  # dashes: 3 m painted every 9 m
    assert straight.meta["num_buildings"] > 0


def test_actor_models_in_box_frame(straight):
    s = straight.scenario
    act = straight.actors
    assert act.actor_track_ids.tolist() == s.agents.track_ids[1:].tolist()
    for i in range(act.num_actors):
        m = act.means[act.actor_ids == i]
        l, w, h = s.agents.size_lwh[i + 1]
        assert len(m) > 300
        assert (np.abs(m[:, 0]) <= l / 2 + 0.05).all() and (np.abs(m[:, 1]) <= w / 2 + 0.1).all()
        assert m[:, 2].min() >= -h / 2 - 1e-3 and m[:, 2].max() <= h / 2 + 1e-3


def test_actors_posed_where_tracks_say_and_edits_move_them(straight):
    s = straight.scenario
    t = 12
    scene, pose = straight.frame(t)
    for i, track in enumerate(straight.actors.actor_track_ids):
        m = scene.means[scene.actor_ids == i]
        xy = s.agents.xy[t, i + 1]
        lo, hi = m.min(0), m.max(0)
        np.testing.assert_allclose(0.5 * (lo[:2] + hi[:2]), xy, atol=0.15)
        assert 0.0 <= lo[2] < 0.1  # wheels on the ground (lowest samples half a cell up)
    xy = s.agents.xy.copy()
    xy[:, 2] += [0.0, 4.0]
    yaw = s.agents.yaw.copy()
    yaw[:, 2] = np.pi
    edited = straight.with_scenario(s.with_agents(s.agents.with_arrays(xy=xy, yaw=yaw)))
    moved, _ = edited.frame(t)
    a, b = scene.means[scene.actor_ids == 1], moved.means[moved.actor_ids == 1]
    np.testing.assert_allclose(0.5 * (b.min(0) + b.max(0))[:2] - 0.5 * (a.min(0) + a.max(0))[:2], [0, 4], atol=0.2)
    np.testing.assert_array_equal(moved.means[moved.actor_ids == 0], scene.means[scene.actor_ids == 0])
    np.testing.assert_array_equal(moved.means[moved.actor_ids < 0], scene.means[scene.actor_ids < 0])
    np.testing.assert_allclose(pose[:3, 3], [s.agents.xy[t, 0, 0] - s.ego_rear_axle_to_center_m, 0, 0], atol=1e-5)


def test_seeded_and_density_knob():
    s = make_scenario(num_agents=2, num_steps=11, t0=2)
    cfg = ProceduralConfig(buildings=False)
    a, b = build_scene(s, seed=3, config=cfg), build_scene(s, seed=3, config=cfg)
    c = build_scene(s, seed=4, config=cfg)
    np.testing.assert_array_equal(a.background.means, b.background.means)
    np.testing.assert_array_equal(a.actors.sh, b.actors.sh)
    assert not np.array_equal(a.background.means[:100], c.background.means[:100])
    dense = build_scene(s, seed=3, density=4.0, config=cfg)
    ratio = dense.num_gaussians / a.num_gaussians
    assert 2.5 < ratio < 5.0
    with pytest.raises(ScenarioValidationError, match="density"):
        build_scene(s, density=0.0)


def test_every_agent_type_and_empty_map():
    s = make_scenario(num_agents=8, num_steps=5, t0=1)
    types = np.array([AgentType.EGO, AgentType.VEHICLE, AgentType.PEDESTRIAN, AgentType.BICYCLE,
                      AgentType.TRAFFIC_CONE, AgentType.BARRIER, AgentType.CZONE_SIGN, AgentType.GENERIC_OBJECT],
                     np.int8)
    size = np.array([[5.2, 2.3, 1.8], [4.5, 2, 1.5], [0.6, 0.7, 1.8], [1.8, 0.7, 1.7], [0.4, 0.4, 0.7],
                     [2.0, 0.5, 1.0], [0.5, 1.0, 1.5], [1.0, 1.0, 1.0]], np.float32)
    ag = s.agents
    s = s.with_agents(AgentTracks(ag.xy, ag.yaw, ag.vel_xy, size, types, ag.valid, ag.track_ids), map=MapData.empty(),
                      route=Route())
    sc = build_scene(s, config=ProceduralConfig(include_ego=True))
    assert sc.actors.num_actors == 8
    counts = np.bincount(sc.actors.actor_ids, minlength=8)
    assert (counts > 20).all()
    rgb = _rgb(sc.actors)
    cone = rgb[sc.actors.actor_ids == 4]
    assert ((cone[:, 0] > 0.8) & (cone[:, 2] < 0.2)).mean() > 0.3  # mostly orange
    barrier = rgb[sc.actors.actor_ids == 5]
    assert (barrier.min(1) > 0.8).mean() > 0.2 and (barrier[:, 0] - barrier[:, 1] > 0.5).mean() > 0.2  # stripes
    assert sc.background.num_gaussians > 0 and sc.meta["num_buildings"] == 0  # grass only
    scene, _ = sc.frame(2)
    assert scene.num_gaussians == sc.num_gaussians


def test_only_observed_agents_get_models():
    s = make_scenario(num_agents=3, num_steps=5, t0=1)
    valid = s.agents.valid.copy()
    valid[:, 2] = False
    s = s.with_agents(s.agents.with_arrays(valid=valid))
    models = build_actor_models(s)
    assert models.actor_track_ids.tolist() == ["veh1"]


def test_embedded_world_scenario(tmp_path_factory):
    res = synthesize(tmp_path_factory.mktemp("world"), seed=1, num_logs=1,
                     config=SynthConfig(log_duration_s=50.0, max_vehicles=20))
    log = NuPlanLog(res.db_paths[0], maps_root=res.maps_root)
    s = log.read(int(log.select(stride_s=5.0).idx.iloc[0]))
    assert len(s.map.crosswalks) and len(s.map.walkways) and s.map.num_lanes
    start = time.perf_counter()
    sc = build_scene(s)
    build_s = time.perf_counter() - start
    assert 50_000 <= sc.num_gaussians <= 300_000, sc.num_gaussians
    assert build_s < 10.0
    bg = sc.background
    assert all(np.isfinite(a).all() for a in (bg.means, bg.quats, bg.scales, bg.opacities, bg.sh))
    crossing = shapely.union_all([shapely.Polygon(s.map.crosswalks.get(i).astype(float))
                                  for i in range(len(s.map.crosswalks))])
    stripes = bg.means[np.abs(bg.means[:, 2] - 0.012) < 1e-6]
    assert len(stripes) > 100 and shapely.contains_xy(crossing.buffer(0.3), stripes[:, 0], stripes[:, 1]).all()
    t = s.t0
    scene, pose = sc.frame(t)
    present = s.agents.valid[t, 1:]
    shown = np.unique(scene.actor_ids[scene.actor_ids >= 0])
    expect = [i for i, tr in enumerate(sc.actors.actor_track_ids) if present[list(s.agents.track_ids[1:]).index(tr)]]
    assert shown.tolist() == expect
    assert np.isclose(np.linalg.det(pose[:3, :3]), 1.0) and pose[2, 3] == 0.0
