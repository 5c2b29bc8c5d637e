"""The PDM-Closed expert: follows the route, keeps its distance, stops for a stopped vehicle and a red light."""
from __future__ import annotations

import numpy as np
import torch

from worldengine_lab.planners.baselines import ConstantVelocityPlanner
from worldengine_lab.planners.pdm_closed import PDMClosedPlanner
from worldengine_lab.sim import SimConfig, rollout
from worldengine_lab.testing import make_scenario


def _stopped_lead(gap_m: float = 35.0):
    s = make_scenario(num_agents=2, num_steps=101, t0=20, speed_mps=10.0, gap_m=gap_m)
    a = s.agents
    xy = a.xy.copy()
    vel = a.vel_xy.copy()
    xy[:, 1] = xy[s.t0, 1]  # the lead stands still where it is at t0
    vel[:, 1] = 0.0
    return s.with_agents(a.with_arrays(xy=xy, vel_xy=vel))


def test_expert_plan_shape_and_route_following() -> None:
    s = make_scenario(num_agents=3, speed_mps=10.0, gap_m=30.0)
    r = rollout(s, PDMClosedPlanner(), SimConfig(num_steps=40))
    assert r.plans.shape[1:] == (40, 3)
    assert not r.info["sim/collision"].any() and not r.info["sim/offroad"].any()
    ego = r.agents.xy[s.t0 : s.t0 + 41, 0]  # the 4-s episode
    assert np.abs(ego[:, 1]).max() < 0.6  # stays in its lane (y = 0)
    assert ego[-1, 0] - ego[0, 0] > 20.0  # keeps moving


def test_expert_stops_for_a_stopped_vehicle_where_constant_velocity_crashes() -> None:
    s = _stopped_lead(gap_m=35.0)
    cfg = SimConfig(num_steps=60)
    crash = rollout(s, ConstantVelocityPlanner(), cfg)
    assert crash.info["sim/collision"].any()
    safe = rollout(s, PDMClosedPlanner(), cfg)
    assert not safe.info["sim/collision"].any()
    end = s.t0 + 60
    gap = safe.agents.xy[end, 1, 0] - safe.agents.xy[end, 0, 0]
    assert gap > (safe.agents.size_lwh[0, 0] + safe.agents.size_lwh[1, 0]) / 2


def test_expert_is_deterministic() -> None:
    s = make_scenario(num_agents=3)
    a = rollout(s, PDMClosedPlanner(), SimConfig(num_steps=20), seed=3)
    b = rollout(s, PDMClosedPlanner(), SimConfig(num_steps=20), seed=3)
    torch.testing.assert_close(torch.from_numpy(a.plans.copy()), torch.from_numpy(b.plans.copy()))
