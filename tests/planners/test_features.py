"""Scene features: layout, agent and lane selection, lane attributes, and invariance to moving the whole world."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from worldengine_lab.datatypes import AgentType, Polylines, Route, Scenario, TrafficLights, TrafficLightStatus
from worldengine_lab.errors import DataFormatError, ShapeError
from worldengine_lab.planners import FeatureConfig, Observation, SceneFeatures, extract_features
from worldengine_lab.planners.features import AGENT_DIM, EGO_DIM, LANE_DIM
from worldengine_lab.sim import ClosedLoopEnv, SimConfig
from worldengine_lab.testing import make_scenario

MAP_POLYLINES = ("lanes", "lane_left", "lane_right", "drivable_areas", "crosswalks", "stop_lines", "walkways")


def _observe(scenarios: list[Scenario], **cfg) -> Observation:
    env = ClosedLoopEnv(scenarios, SimConfig(**cfg))
    return env.observe(env.reset())


def _busy_scenario() -> Scenario:
    """Ego in lane 1 of a 2-lane road with: a lead, a car in the left lane at an angle, a pedestrian crossing,
    a car that appears late (partial history), one lane with an unknown speed limit and a red light on lane 0."""
    s = make_scenario(num_agents=6, gap_m=12.0, speed_mps=8.0)
    a = s.agents
    xy, yaw, vel, valid = a.xy.copy(), a.yaw.copy(), a.vel_xy.copy(), a.valid.copy()
    xy[:, 2, 1] = 3.5  # left lane, slightly turned
    yaw[:, 2] = 0.1
    vel[:, 2] = 8.0 * np.array([math.cos(0.1), math.sin(0.1)], np.float32)
    t = np.arange(s.num_steps, dtype=np.float32) * 0.1
    xy[:, 3] = np.stack([np.full_like(t, 45.0), -6.0 + 1.2 * t], -1)  # pedestrian walking north across the road
    yaw[:, 3] = math.pi / 2
    vel[:, 3] = [0.0, 1.2]
    valid[: s.t0 - 2, 4] = False  # seen only for the last 3 steps before t0
    xy[~valid] = 0.0
    vel[~valid] = 0.0
    yaw[~valid] = 0.0
    atype = a.agent_type.copy()
    atype[3] = int(AgentType.PEDESTRIAN)
    agents = a.with_arrays(xy=xy, yaw=yaw, vel_xy=vel, valid=valid, agent_type=atype)
    m = s.map
    limits = m.lane_speed_limit_mps.copy()
    limits[0] = np.nan
    m = dataclasses.replace(m, lane_speed_limit_mps=limits, signalized_lanes=np.array([0], np.int32))
    lights = TrafficLights(np.full((s.num_steps, 1), int(TrafficLightStatus.RED), np.int8))
    return dataclasses.replace(s, agents=agents, map=m, traffic_lights=lights)


def _rigid(s: Scenario, theta: float, shift: tuple[float, float]) -> Scenario:
    """The same scenario after rotating the whole world by ``theta`` (rad, about the world origin) and shifting it
    by ``shift`` (m): local positions -> R p + shift, headings + theta, velocities -> R v, origin -> R origin."""
    c, si = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -si], [si, c]])
    t = np.asarray(shift, np.float64)

    def pts(xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
        out = xy.astype(np.float64) @ rot.T + t
        return np.where(valid[..., None], out, 0.0).astype(np.float32)

    def poly(p: Polylines) -> Polylines:
        return Polylines(xy=pts(p.xy, p.valid), valid=p.valid.copy())

    a = s.agents
    yaw = (a.yaw.astype(np.float64) + theta + math.pi) % (2 * math.pi) - math.pi
    agents = a.with_arrays(
        xy=pts(a.xy, a.valid), yaw=np.where(a.valid, yaw, 0.0).astype(np.float32),
        vel_xy=np.where(a.valid[..., None], a.vel_xy.astype(np.float64) @ rot.T, 0.0).astype(np.float32))
    m = dataclasses.replace(s.map, **{name: poly(getattr(s.map, name)) for name in MAP_POLYLINES})
    r = s.route
    route = Route(roadblock_ids=r.roadblock_ids, lane_indices=r.lane_indices.copy(),
                  goal_xy=(r.goal_xy.astype(np.float64) @ rot.T + t).astype(np.float32), goal_yaw=r.goal_yaw + theta)
    return dataclasses.replace(s, agents=agents, map=m, route=route, origin_xy=rot @ s.origin_xy)


def _assert_features_close(a: SceneFeatures, b: SceneFeatures, atol: float) -> None:
    for f in dataclasses.fields(SceneFeatures):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x.dtype == torch.bool:
            assert torch.equal(x, y), f.name
        else:
            torch.testing.assert_close(x, y, rtol=0, atol=atol, msg=f"SceneFeatures.{f.name} differs")


def test_layout_and_masks() -> None:
    cfg = FeatureConfig(max_agents=8, history_steps=5, max_lanes=4, lane_points=10)
    obs = _observe([_busy_scenario(), make_scenario(num_agents=2, seed=1)])
    f = extract_features(obs, cfg)
    assert f.ego.shape == (2, EGO_DIM) and f.agents.shape == (2, 8, 5, AGENT_DIM)
    assert f.lanes.shape == (2, 4, 10, LANE_DIM) and f.agents_mask.shape == (2, 8) and f.lanes_mask.shape == (2, 4)
    assert all(x.dtype == torch.float32 for x in (f.ego, f.agents, f.lanes))
    assert AGENT_DIM == 8 + len(AgentType) + 1 and LANE_DIM == 4 + 3 + len(TrafficLightStatus) + 1
    assert f.agents_mask.sum(1).tolist() == [4, 1]  # the 5th car is 61.5 m away, beyond radius_m
    assert f.lanes_mask.sum(1).tolist() == [2, 2]
    assert not f.agents[~f.agents_mask].any() and not f.lanes[~f.lanes_mask].any()  # padding is exactly 0
    torch.testing.assert_close(f.ego[0], torch.tensor([0.8, 0, 0, 0, 0, 0]), rtol=0, atol=1e-5)
    assert f.batch_size == 2 and f.index(torch.tensor([1])).ego.shape == (1, EGO_DIM)
    assert SceneFeatures.cat([f, f]).lanes.shape == (4, 4, 10, LANE_DIM)


def test_agents_are_the_nearest_now_in_the_body_frame() -> None:
    obs = _observe([_busy_scenario()])
    f = extract_features(obs, FeatureConfig(max_agents=3, radius_m=60.0))
    now = f.agents[0, :, -1]  # [A, F] the current step
    r = (now[:, :2] * 50.0).norm(dim=1)
    assert bool((r[1:] >= r[:-1]).all())  # nearest first, the ego itself excluded
    assert float(r[0]) > 5.0
    # the lead: 12 m ahead of the ego centre = 13.461 m ahead of the rear axle, aligned, at 8 m/s
    lead = now[0]
    torch.testing.assert_close(lead[:6], torch.tensor([13.461 / 50, 0, 1, 0, 0.8, 0]), rtol=0, atol=1e-5)
    torch.testing.assert_close(lead[6:8] * 5, torch.from_numpy(_busy_scenario().agents.size_lwh[1, :2].copy()))
    assert lead[8 + int(AgentType.VEHICLE)] == 1 and lead[-1] == 1
    # then the pedestrian (20.461 m ahead, 3.6 m to the right, walking left) and the left-lane car (turned 0.1 rad)
    ped, left = now[1], now[2]
    unscale = torch.tensor([50, 50, 1, 1, 10, 10])
    torch.testing.assert_close(ped[:6] * unscale, torch.tensor([20.461, -3.6, 0, 1, 0, 1.2]), rtol=0, atol=1e-4)
    assert ped[8 + int(AgentType.PEDESTRIAN)] == 1
    torch.testing.assert_close(left[1] * 50, torch.tensor(3.5), rtol=0, atol=1e-4)
    torch.testing.assert_close(left[2:4], torch.tensor([math.cos(0.1), math.sin(0.1)]), rtol=0, atol=1e-5)


def test_history_validity_and_padding() -> None:
    obs = _observe([_busy_scenario()], history_steps=11)
    f = extract_features(obs, FeatureConfig(history_steps=15, max_agents=8))
    valid = f.agents[0, :, :, -1]  # [A, 15]
    assert not valid[:, :4].any()  # the observation holds 11 steps: the 4 oldest are padding
    late = (valid.sum(1) == 3).nonzero().flatten()  # agent 4 is seen for 3 steps only
    assert len(late) == 1
    assert not f.agents[0, int(late), :-3].any() and f.agents[0, int(late), -3:, -1].all()
    ped = f.agents[0, :, -1, 8 + int(AgentType.PEDESTRIAN)].nonzero().flatten()
    assert len(ped) == 1
    torch.testing.assert_close(f.agents[0, int(ped), -1, 2:4], torch.tensor([0.0, 1.0]), rtol=0, atol=1e-5)


def test_lanes_are_resampled_with_their_attributes() -> None:
    obs = _observe([_busy_scenario()])
    f = extract_features(obs, FeatureConfig(max_lanes=3, lane_points=20, radius_m=60.0))
    assert f.lanes_mask[0].tolist() == [True, True, False]
    ego_lane, left_lane = f.lanes[0, 0], f.lanes[0, 1]  # nearest first
    torch.testing.assert_close(ego_lane[:, 1], torch.zeros(20), rtol=0, atol=1e-5)
    torch.testing.assert_close(left_lane[:, 1] * 50, torch.full((20,), 3.5), rtol=0, atol=1e-4)
    x = ego_lane[:, 0] * 50
    steps = x.diff()
    torch.testing.assert_close(steps, steps.mean().expand(19), rtol=0, atol=1e-4)  # equal arc-length spacing
    assert float(x[0]) >= -60.0 - 1e-3 and abs(float(x[-1]) - 60.0) < 1e-3  # cropped to +-60 m around the ego
    torch.testing.assert_close(ego_lane[:, 2:4], torch.tensor([1.0, 0.0]).expand(20, 2))
    # per-lane: on route, speed limit, known flag, light one-hot (none, green, yellow, red, unknown)
    torch.testing.assert_close(ego_lane[0, 4:], torch.tensor([1, 15 / 20, 1, 1, 0, 0, 0, 0.0]))
    torch.testing.assert_close(left_lane[0, 4:], torch.tensor([0, 0, 0, 0, 0, 0, 1, 0.0]))


def test_features_are_invariant_to_rotating_and_translating_the_world() -> None:
    base = _busy_scenario()
    moved = [_rigid(base, theta, shift) for theta, shift in ((0.7, (250.0, -130.0)), (-2.6, (-900.0, 420.0)))]
    cfg = FeatureConfig(max_agents=8, history_steps=5, max_lanes=4, lane_points=16, radius_m=60.0)
    base_obs = _observe([base])
    ref = extract_features(base_obs, cfg)
    for s in moved:
        obs = _observe([s])
        assert abs(float(obs.ego_state[0, 2] - base_obs.ego_state[0, 2])) > 0.5  # the local frame really turned
        _assert_features_close(extract_features(obs, cfg), ref, atol=1e-4)
    # batched together, each row matches its own scene
    both = extract_features(_observe([base, *moved]), cfg)
    for i in range(3):
        _assert_features_close(both.index(slice(i, i + 1)), ref, atol=1e-4)


def test_config_round_trip_and_errors() -> None:
    cfg = FeatureConfig(max_agents=4, radius_m=30.0)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(DataFormatError, match="unknown keys"):
        FeatureConfig.from_dict({"max_agent": 3})
    with pytest.raises(DataFormatError, match="lane_points"):
        FeatureConfig(lane_points=1)
    obs = _observe([make_scenario()])
    bad = dataclasses.replace(obs, agents_yaw=obs.agents_yaw[:, :-1])
    with pytest.raises(ShapeError, match="agents_yaw"):
        extract_features(bad)
