"""Planner protocol, observations and the baseline planners."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from worldengine_lab.datatypes import TrafficLights, TrafficLightStatus
from worldengine_lab.errors import WorldEngineLabError
from worldengine_lab.planners import (ConstantVelocityPlanner, LogReplayPlanner, Observation, Planner,
                                      ResettablePlanner)
from worldengine_lab.sim import ClosedLoopEnv, SimConfig
from worldengine_lab.sim.poses import body_to_global
from worldengine_lab.sim.scene_batch import ego_states_from_log
from worldengine_lab.sim.state import VX, X, Y, YAW
from worldengine_lab.testing import make_scenario


def _obs(scenarios, **cfg) -> tuple[ClosedLoopEnv, Observation]:
    env = ClosedLoopEnv(scenarios, SimConfig(**cfg))
    return env, env.observe(env.reset())


def test_protocols():
    assert isinstance(ConstantVelocityPlanner(), Planner)
    assert isinstance(LogReplayPlanner(), ResettablePlanner)
    assert not isinstance(ConstantVelocityPlanner(), ResettablePlanner)


def test_constant_velocity_plan():
    _, obs = _obs([make_scenario(speed_mps=7.0), make_scenario(speed_mps=3.0, seed=1)])
    plan = ConstantVelocityPlanner().plan(obs)
    assert plan.shape == (2, 40, 3) and plan.dtype == obs.dtype
    torch.testing.assert_close(plan[0, :, 0], torch.arange(1, 41, dtype=torch.float64) * 0.7)
    torch.testing.assert_close(plan[1, -1], torch.tensor([12.0, 0.0, 0.0], dtype=torch.float64))


def test_log_replay_plan_is_the_logged_future_in_the_body_frame():
    scn = make_scenario()
    env, obs = _obs([scn])
    planner = LogReplayPlanner()
    with pytest.raises(WorldEngineLabError, match="reset"):
        planner.plan(obs)
    planner.reset([scn], seed=0)
    plan = planner.plan(obs)
    logged = torch.from_numpy(ego_states_from_log(scn)[scn.t0 + 1 : scn.t0 + 41][:, [X, Y, YAW]])
    torch.testing.assert_close(body_to_global(plan, obs.ego_state[:, :3])[0], logged, rtol=0, atol=1e-9)


def test_observation_frames_and_contents():
    scn = make_scenario(num_agents=3, gap_m=20.0)
    m = scn.map
    # make lane 1 (the ego's) signalised and red at every step
    m = dataclasses.replace(m, signalized_lanes=np.array([1], np.int32))
    status = np.full((scn.num_steps, 1), int(TrafficLightStatus.RED), np.int8)
    scn = dataclasses.replace(scn, map=m, traffic_lights=TrafficLights(status))
    _, obs = _obs([scn], history_steps=5)
    assert obs.scenario_ids == (scn.scenario_id,) and obs.step == 0 and int(obs.log_step[0]) == scn.t0
    assert obs.agents_xy.shape == (1, 5, 3, 2) and obs.agents_valid.all()
    # the lead's centre is 20 m ahead of the ego centre, i.e. 20 + 1.461 m ahead of the rear axle
    lead = obs.agents_xy[0, -1, 1]
    assert abs(float(lead[0]) - (20.0 + 1.461)) < 1e-4 and abs(float(lead[1])) < 1e-4
    # one step earlier the lead was 1 m behind (10 m/s) in the current ego frame
    assert abs(float(obs.agents_xy[0, -2, 1, 0]) - (20.0 + 1.461 - 1.0)) < 1e-4
    torch.testing.assert_close(obs.agents_vel[0, -1, 1], torch.tensor([10.0, 0.0], dtype=torch.float64),
                               rtol=0, atol=1e-4)
    assert abs(float(obs.ego_state[0, VX]) - 10.0) < 1e-6
    lanes = obs.lanes_index[0].tolist()
    assert sorted(i for i in lanes if i >= 0) == [0, 1]
    k = lanes.index(1)
    assert bool(obs.lanes_on_route[0, k]) and int(obs.lanes_traffic_light[0, k]) == int(TrafficLightStatus.RED)
    assert int(obs.lanes_traffic_light[0, lanes.index(0)]) == -1
    y = obs.lanes_xy[0, k][obs.lanes_valid[0, k]][:, 1]
    assert float(y.abs().max()) < 1e-5  # the ego drives on lane 1's centreline, which is the body x axis
    assert math.isclose(obs.time_s, 0.0)
