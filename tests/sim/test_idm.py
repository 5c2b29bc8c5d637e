"""IDM laws (spec §2.14, §3.2), reference paths and leader detection."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldengine_lab.sim import ClosedLoopEnv, SimConfig
from worldengine_lab.sim.idm import (PDMIDMParams, find_leaders, pdm_idm_accel, pdm_idm_profile,
                                     reactive_idm_accel)
from worldengine_lab.sim.paths import lookup

F64 = torch.float64


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=F64)


@pytest.mark.parametrize("v_kmh, vl_kmh, d, has, want", [
    (0.0, 0.0, 15.0, False, 2.5),  # free road from standstill
    (35.0, 0.0, 15.0, False, 0.0),  # at the target speed
    (50.0, 0.0, 15.0, False, -2.5 * 15.0 / 35.0),  # above the target speed
    (0.0, 0.0, 20.0, True, 2.5 - 2.5 * 0.25),  # d* = 10 m at standstill
    (36.0, 36.0, 20.0, True, -2.5),  # d* = 10 + 1.5 * 36 = 64 m [km/h quirk] -> clipped
    (0.0, 0.0, 5.0, True, 0.0),  # standing closer than 10.5 m: hold
    (0.0036, 0.0, 8.0, True, 0.0),  # 0.001 m/s < 0.008 km/h: hold
])
def test_reactive_idm_formula(v_kmh, vl_kmh, d, has, want):
    a = reactive_idm_accel(_t(v_kmh / 3.6), _t(vl_kmh / 3.6), _t(d), torch.tensor([has]))
    assert abs(float(a[0]) - want) < 1e-9


def test_pdm_idm_formula_and_profile():
    p = PDMIDMParams()
    assert abs(float(pdm_idm_accel(_t(10.0), _t(10.0), _t(math.inf), _t(0.0), p)[0])) < 1e-12
    assert abs(float(pdm_idm_accel(_t(0.0), _t(10.0), _t(math.inf), _t(0.0), p)[0]) - 1.5) < 1e-12
    assert float(pdm_idm_accel(_t(5.0), _t(10.0), _t(1.0), _t(0.0), p)[0]) == -3.0
    x, v = pdm_idm_profile(_t(0.0), _t(10.0), _t(15.0), torch.full((1, 80), 40.0, dtype=F64),
                           torch.zeros(1, 80, dtype=F64), _t(2.0), num_steps=80)
    assert x.shape == v.shape == (1, 81)
    assert float(v[0, -1]) < 0.5 and float(x[0, -1]) < 40.0 - 2.0  # stops behind the stopped leader
    assert bool((v >= 0).all())


def _leader_scene(builders, xs, ys, yaws):
    build_map, build_tracks, build_scenario = builders
    m = build_map([np.stack([np.linspace(-50, 300, 71), np.zeros(71)], -1),
                   np.stack([np.linspace(-50, 300, 71), np.full(71, 3.5)], -1)])
    t = np.arange(60) * 0.1
    n = len(xs)
    xy = np.zeros((60, n, 2))
    xy[..., 0] = np.asarray(xs)[None] + 8.0 * t[:, None] * np.cos(yaws)[None]
    xy[..., 1] = np.asarray(ys)[None]
    yaw = np.broadcast_to(np.asarray(yaws, float), (60, n)).copy()
    return build_scenario(build_tracks(xy, yaw=yaw), m)


def test_leader_is_nearest_same_lane_same_direction_agent_ahead(builders):
    # 0 ego (behind), 1 follower, 2 other lane, 3 opposite heading, 4 same lane ahead, 5 behind the follower
    scn = _leader_scene(builders, [0.0, 30.0, 40.0, 60.0, 80.0, 25.0], [0.0, 0.0, 3.5, 0.0, 0.0, 0.0],
                        [0.0, 0.0, 0.0, math.pi, 0.0, 0.0])
    env = ClosedLoopEnv([scn], SimConfig(agents="reactive"))
    st = env.reset()
    now = env.boxes(st.traj, 0, 1)
    assert env.reactive[0].tolist() == [False, True, True, True, True, True]
    lead = find_leaders(env.paths, st.agent_s, now.xy[0], now.yaw[0], now.vel[0], now.valid[0], env.reactive,
                        env.half[..., 0], torch.zeros(1, 1, dtype=torch.bool))
    assert int(lead.index[0, 1]) == 4
    assert abs(float(lead.distance[0, 1]) - 50.0) < 1e-3 and abs(float(lead.speed[0, 1]) - 8.0) < 1e-3
    assert int(lead.index[0, 5]) == 1  # the follower is the leader of the agent behind it
    assert int(lead.index[0, 4]) == -1 and not bool(lead.has_leader[0, 4])
    assert not bool(lead.has_leader[0, 0])  # the ego is not a follower


def test_ego_is_a_leader(builders):
    scn = _leader_scene(builders, [50.0, 30.0], [0.0, 0.0], [0.0, 0.0])
    env = ClosedLoopEnv([scn], SimConfig(agents="reactive"))
    st = env.reset()
    now = env.boxes(st.traj, 0, 1)
    lead = find_leaders(env.paths, st.agent_s, now.xy[0], now.yaw[0], now.vel[0], now.valid[0], env.reactive,
                        env.half[..., 0], torch.zeros(1, 1, dtype=torch.bool))
    assert int(lead.index[0, 1]) == 0 and abs(float(lead.distance[0, 1]) - 20.0) < 1e-3


def test_path_follows_log_then_lane_chain_around_a_bend(builders):
    build_map, build_tracks, build_scenario = builders
    straight = np.stack([np.linspace(0, 50, 11), np.zeros(11)], -1)
    th = np.linspace(0, math.pi / 2, 16)
    bend = np.stack([50 + 20 * np.sin(th), 20 - 20 * np.cos(th)], -1)
    up = np.stack([np.full(11, 70.0), np.linspace(20, 120, 11)], -1)
    m = build_map([straight, bend, up], successors=[(0, 1), (1, 2)])
    t = np.arange(40) * 0.1
    xy = np.zeros((40, 2, 2))
    xy[:, 0, 0] = -30.0 + 5 * t  # ego far behind
    xy[:, 1, 0] = 5.0 + 8.0 * t  # logged up to x = 36.2, then the lanes take over
    scn = build_scenario(build_tracks(xy), m, t0=0)
    env = ClosedLoopEnv([scn], SimConfig(agents="reactive"))
    paths = env.paths
    s = torch.tensor([[0.0, 0.0], [0.0, 45.0 + 20 * math.pi / 4]], dtype=F64).T.unsqueeze(0)  # [1, 2 agents, 2]
    xy_s, tan, heading = lookup(paths, s)
    np.testing.assert_allclose(xy_s[0, 1, 0].numpy(), [5.0, 0.0], atol=1e-4)
    mid = np.array([50 + 20 * math.sin(math.pi / 4), 20 - 20 * math.cos(math.pi / 4)])
    assert np.linalg.norm(xy_s[0, 1, 1].numpy() - mid) < 0.3
    assert abs(float(torch.atan2(tan[0, 1, 1, 1], tan[0, 1, 1, 0])) - math.pi / 4) < 0.06
    assert abs(float(heading[0, 1, 1]) - math.pi / 4) < 0.06
    far, _, _ = lookup(paths, torch.tensor([[[0.0], [45.0 + 10 * math.pi + 50.0]]], dtype=F64))
    np.testing.assert_allclose(far[0, 1, 0].numpy(), [70.0, 70.0], atol=0.3)  # 50 m up the last lane
    # a polyline turns at its vertices, so the per-sample curvature bound exceeds the arc's 1/20 (broad phase only)
    assert 1 / 20 - 0.005 <= float(paths.max_curvature[0, 1]) <= 3 / 20
