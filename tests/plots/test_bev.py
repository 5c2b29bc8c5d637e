"""BEV packing and figures: array shapes, trajectories that match the scenario and its rollouts, named traces."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from _bev_scenes import PARKED_X_M, road_scene, tiny_learned_planner

from worldengine_lab.datatypes import AgentType, Scenario
from worldengine_lab.errors import ScenarioValidationError, ShapeError, WorldEngineLabError
from worldengine_lab.planners import ConstantVelocityPlanner, LogReplayPlanner
from worldengine_lab.plots.bev import (MAP_KINDS, BEVFrames, bev_figure, bev_frames, box_corners,
                                       top_k_candidates)
from worldengine_lab.sim import SimConfig, rollout


@pytest.fixture(scope="module")
def rollouts(scene: Scenario):
    """Constant velocity (hits the parked car) and log replay (brakes behind it), 4 s from t0."""
    return rollout(scene, ConstantVelocityPlanner()), rollout(scene, LogReplayPlanner())


def test_box_corners_known_answer() -> None:
    corners = box_corners(np.array([[1.0, 2.0, np.pi / 2, 4.0, 2.0]]))  # facing +y, 4 m long, 2 m wide
    np.testing.assert_allclose(corners[0], [[0.0, 4.0], [0.0, 0.0], [2.0, 0.0], [2.0, 4.0]], atol=1e-12)


def test_frames_pack_the_scenario(scene: Scenario) -> None:
    f = bev_frames(scene)
    a, m = scene.agents, scene.map
    t, n = a.num_steps, a.num_agents
    assert isinstance(f, BEVFrames) and f.num_steps == t and f.num_agents == n and f.panels == (f.log,)
    assert f.log.boxes.shape == (t, n, 5) and f.log.boxes.dtype == np.float32
    assert f.log.valid.shape == (t, n) and f.agent_type.shape == (n,) and f.log.plans_xy.shape == (0, 41, 2)
    np.testing.assert_array_equal(f.log.boxes[..., :2], a.xy)
    np.testing.assert_array_equal(f.log.boxes[..., 2], a.yaw)
    np.testing.assert_array_equal(f.log.boxes[..., 3:], np.broadcast_to(a.size_lwh[:, :2], (t, n, 2)))
    np.testing.assert_array_equal(f.logged_ego_xy, a.xy[:, 0])
    # the map: one flattened array; polyline i = map_xy[offsets[i]:offsets[i + 1]]
    num = 1 + 1 + 1 + 3 * m.num_lanes  # drivable ring, crosswalk, stop line, left + right boundaries, centrelines
    assert f.map_kind.shape == (num,) and f.map_offsets.shape == (num + 1,) and f.map_offsets[-1] == len(f.map_xy)
    assert f.map_xy.dtype == np.float32 and f.map_offsets.dtype == np.int32
    counts = np.bincount(f.map_kind, minlength=len(MAP_KINDS))
    assert counts[MAP_KINDS.index("lane")] == m.num_lanes
    assert counts[MAP_KINDS.index("lane_boundary")] == 2 * m.num_lanes
    for i in range(m.num_lanes):
        np.testing.assert_array_equal(f.polyline(f.lane_polyline0 + i), m.lanes.get(i))
    np.testing.assert_array_equal(f.polyline(int(np.flatnonzero(f.map_kind == 3)[0])), m.crosswalks.get(0))
    # lights: [T, L]; the signalised lane and the traffic-light stop line at its start take column 0
    np.testing.assert_array_equal(f.light_status, scene.traffic_lights.status)
    assert f.light_polyline.tolist() == [f.lane_polyline0 + 2, int(np.flatnonzero(f.map_kind == 4)[0])]
    assert f.light_column.tolist() == [0, 0]
    x0, y0, x1, y1 = f.bounds
    assert x0 < a.xy[:, 0, 0].min() and x1 > a.xy[:, 0, 0].max() and y0 < 7.0 < y1


def test_frames_of_rollouts_follow_the_simulation(scene: Scenario, rollouts) -> None:
    cv, replay = rollouts
    f = bev_frames(scene, rollouts)
    assert [p.label for p in f.panels] == ["constant_velocity", "log_replay"]
    for frames, ro in zip(f.rollouts, rollouts):
        np.testing.assert_array_equal(frames.boxes[..., :2], ro.agents.xy)
        np.testing.assert_array_equal(frames.valid, ro.agents.valid)
        np.testing.assert_array_equal(frames.simulated, ro.info["sim/simulated"])
        np.testing.assert_array_equal(frames.collision, ro.info["sim/collision"])
        np.testing.assert_array_equal(frames.plan_steps, ro.plan_steps)
        assert frames.plans_xy.shape == (len(ro.plan_steps), 41, 2)
    # constant velocity drives into the parked car (agent 1); its plans are straight lines at the lane's y
    hit = f.rollouts[0].collision
    who = f.rollouts[0].collision_agent
    assert hit.any() and set(who[hit]) == {1} and (who[~hit] == -1).all()
    assert abs(cv.agents.xy[np.argmax(hit), 0, 0] - PARKED_X_M) < 6.0
    np.testing.assert_allclose(f.rollouts[0].plans_xy[..., 1], 7.0, atol=1e-4)
    # log replay plans start at the simulated ego box and follow the logged ego path (box centres) for 4 s
    rp = f.rollouts[1]
    for p, step in enumerate(rp.plan_steps):
        np.testing.assert_allclose(rp.plans_xy[p, 0], rp.boxes[step, 0, :2], atol=1e-4)
        np.testing.assert_allclose(rp.plans_xy[p, 1:], scene.agents.xy[step + 1 : step + 41, 0], atol=2e-3)
    assert not rp.collision.any() and rp.active_plan(scene.t0 - 1) == -1 and rp.active_plan(scene.t0 + 7) == 1


def test_rollout_past_the_end_of_the_log_extends_the_timeline() -> None:
    short = road_scene(num_steps=41, t0=20)  # 2 s of future; the episode runs 4 s
    ro = rollout(short, ConstantVelocityPlanner(), SimConfig(num_steps=40))
    f = bev_frames(short, [ro], labels=["replay"])
    assert f.num_steps == ro.num_steps == 61 and f.rollouts[0].label == "replay"
    np.testing.assert_allclose(np.diff(f.timestamps_s), 0.1, atol=1e-9)
    assert f.log.valid[:41].all() and not f.log.valid[41:].any() and np.isnan(f.logged_ego_xy[41:]).all()
    assert (f.light_status[41:] == short.traffic_lights.status[-1]).all()  # held at the last logged state


def test_figure_has_the_expected_traces(scene: Scenario, rollouts) -> None:
    fig = bev_figure(scene, rollouts, t=60)
    names = [tr.name for tr in fig.data]
    for name in ("drivable area", "crosswalks", "stop lines", "lane boundaries", "lanes", "light: red", "vehicle",
                 "pedestrian", "traffic_cone", "ego (logged)", "logged ego path", "constant_velocity: ego",
                 "constant_velocity: simulated path", "constant_velocity: plan", "constant_velocity: collision",
                 "log_replay: ego", "log_replay: simulated path", "log_replay: plan"):
        assert name in names, name
    assert "light: green" not in names and "log_replay: collision" not in names
    trace = {tr.name: tr for tr in fig.data}
    n_vehicles = int(((scene.agents.agent_type == AgentType.VEHICLE) & rollouts[0].agents.valid[60]).sum())
    assert len(trace["vehicle"].x) == 6 * n_vehicles  # 4 corners, the closing corner and a gap per box
    assert fig.layout.yaxis.scaleanchor == "x"
    assert "light: green" in [tr.name for tr in bev_figure(scene, t=10).data]
    with pytest.raises(ShapeError, match=r"bev_figure\(t\)"):
        bev_figure(scene, t=scene.num_steps)


def test_top_k_candidates_are_what_the_planner_weighed(scene: Scenario, one_thread) -> None:
    planner = tiny_learned_planner()
    ro = rollout(scene, planner)
    (cands,) = top_k_candidates(scene, [ro], planner, k=4)
    p = len(ro.plan_steps)
    assert cands.xy.shape == (p, 4, 41, 2) and cands.subscores.shape == (p, 4, 5) and cands.k == 4
    assert ((cands.subscores >= 0) & (cands.subscores <= 1)).all() and (np.diff(cands.scores, axis=1) <= 0).all()
    np.testing.assert_array_equal(cands.steps, ro.plan_steps)
    # the observation is rebuilt exactly: the best candidate is the plan the rollout executed
    f = bev_frames(scene, [ro], candidates=[cands])
    np.testing.assert_allclose(cands.xy[:, 0], f.rollouts[0].plans_xy, atol=1e-4)
    fig = bev_figure(scene, [ro], t=scene.t0 + 3, frames=f)
    top = [tr for tr in fig.data if tr.name == "learned: top-4"][0]
    assert "NC=" in top.text[0] and "EP=" in top.text[0]
    (logged,) = top_k_candidates(scene, planner=planner, k=2, replan_every=10)
    assert logged.steps.tolist() == list(range(scene.t0, scene.num_steps, 10)) and logged.xy.shape[1:] == (2, 41, 2)


def test_errors_name_the_fix(scene: Scenario, rollouts) -> None:
    other = dataclasses.replace(scene, scenario_id="another")
    with pytest.raises(ScenarioValidationError, match="pass the scenario the rollout was simulated on"):
        bev_frames(other, rollouts)
    with pytest.raises(ShapeError, match="labels"):
        bev_frames(scene, rollouts, labels=["one"])
    with pytest.raises(ShapeError, match="candidates"):
        bev_frames(scene, rollouts, candidates=[None])
    with pytest.raises(WorldEngineLabError, match="LearnedPlanner"):
        top_k_candidates(scene, rollouts, ConstantVelocityPlanner())


def test_import_stays_light() -> None:
    code = ("import sys, worldengine_lab, worldengine_lab.plots.bev as b; from worldengine_lab.testing import "
            "make_scenario; b.bev_frames(make_scenario()); print('plotly' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
