"""The feasibility projection: spikes are clipped and every limit holds; curvature is limited (looser for
pedestrians); impossible requests raise naming the op and the parameter; the on-road check."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from worldengine_lab.datatypes import AgentType
from worldengine_lab.errors import InfeasibleEditError, WorldEngineLabError
from worldengine_lab.variants import (CutIn, FeasibilityConfig, HardBrake, InsertAgent, LateralOffset, RemoveAgent,
                                      check_kinematics, check_on_road, make_variant, project)
from worldengine_lab.variants._paths import rate_limit

from _variant_scenes import DT, T, T0, straight_road, with_agents

CFG = FeasibilityConfig()


def edited(s, i, xy_future, yaw_future=None):
    """``s`` with agent ``i``'s future positions replaced (no projection): the raw output of an edit."""
    xy = s.agents.xy.copy()
    xy[T0 + 1:, i] = xy_future
    return dataclasses.replace(s, agents=dataclasses.replace(s.agents, xy=xy))


def test_rate_limiter_keeps_both_limits_exactly():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(0, 3, size=(4, 200)), axis=1)
    y = rate_limit(x, up=np.array([0.5, 1.0, 2.0, 0.1]), down=np.array([1.0, 0.2, 2.0, 3.0]))
    d = np.diff(y, axis=1)
    assert (d <= np.array([0.5, 1.0, 2.0, 0.1])[:, None] + 1e-9).all()
    assert (-d <= np.array([1.0, 0.2, 2.0, 3.0])[:, None] + 1e-9).all()
    np.testing.assert_array_equal(y[:, 0], x[:, 0])


def test_acceleration_spike_is_clipped_and_every_limit_holds():
    s = straight_road(neighbour_dx_m=None)
    future = s.agents.xy[T0 + 1:, 1].astype(np.float64).copy()
    future[10:, 0] += 3.0  # a 3 m jump in one step: a 30 m/s speed spike, +-300 m/s^2
    raw = edited(s, 1, future)
    before = check_kinematics(raw, [1])
    assert not before["ok"].all() and before["max_speed_gap_mps"].iloc[0] > 25.0  # positions jump, vel_xy not
    out = project(raw, [1])
    table = check_kinematics(out, [1])
    assert table["ok"].all(), table.T
    sp = np.linalg.norm(out.agents.vel_xy[T0:, 1].astype(np.float64), axis=-1)
    acc = np.diff(sp) / DT
    assert acc.max() <= CFG.vehicle.max_accel_mps2 and -acc.min() <= CFG.vehicle.max_decel_mps2
    assert np.abs(np.diff(acc)).max() / DT <= CFG.vehicle.max_jerk_mps3
    assert sp.min() >= 0 and sp.max() > 10.5  # it did speed up to catch some of the jump, within limits
    # history and the other agents are untouched; yaw and vel_xy agree with the positions
    np.testing.assert_array_equal(out.agents.xy[: T0 + 1], s.agents.xy[: T0 + 1])
    np.testing.assert_array_equal(out.agents.xy[:, 0], s.agents.xy[:, 0])
    step = np.diff(out.agents.xy[T0:, 1].astype(np.float64), axis=0)
    np.testing.assert_allclose(np.linalg.norm(step, axis=-1) / DT, sp[1:], atol=1e-3)
    np.testing.assert_allclose(out.agents.yaw[T0:, 1], 0.0, atol=1e-6)


def test_sudden_stop_request_is_turned_into_feasible_braking():
    s = straight_road(neighbour_dx_m=None)
    future = np.repeat(s.agents.xy[T0:T0 + 1, 1].astype(np.float64), T - T0 - 1, axis=0)  # freeze at once
    out = project(edited(s, 1, future), [1])
    assert check_kinematics(out, [1])["ok"].all()
    sp = np.linalg.norm(out.agents.vel_xy[T0:, 1].astype(np.float64), axis=-1)
    assert sp[-1] < 1e-9 and 10.0 / CFG.vehicle.max_decel_mps2 < np.argmax(sp < 1e-6) * DT < 2.0


def corner_path(first_leg_m, speed_mps, num=T - T0 - 1):
    """Positions at ``speed_mps`` along +x for ``first_leg_m`` metres, then a sharp 90 deg turn to +y."""
    arc = 10.0 + speed_mps * np.arange(1, num + 1) * DT  # starts at x = 10 (the agent's position at now)
    x = np.minimum(arc, 10.0 + first_leg_m)
    y = np.maximum(arc - 10.0 - first_leg_m, 0.0)
    return np.stack([x, y], -1)


def turning(agent_type, speed_mps):
    """One agent of ``agent_type`` going along +x from x = 10 at ``speed_mps`` (the ego stands aside)."""
    t = np.arange(T) * DT
    xy = np.stack([np.stack([np.full(T, -50.0), np.zeros(T)], -1),
                   np.stack([10.0 + speed_mps * (t - T0 * DT), np.zeros(T)], -1)], 1)
    return with_agents(straight_road(neighbour_dx_m=None), xy, types=[0, agent_type])


def test_curvature_limit_holds_and_pedestrians_turn_tighter():
    veh = turning(int(AgentType.VEHICLE), 8.0)
    out = project(edited(veh, 1, corner_path(40.0, 8.0)), [1])
    table = check_kinematics(out, [1])
    assert table["ok"].all(), table.T
    k_max = np.tan(CFG.vehicle.max_steer_rad) / CFG.vehicle.wheelbase_m
    assert 0.5 * k_max < table["max_curvature_1pm"].iloc[0] <= k_max
    assert table["max_lat_accel_mps2"].iloc[0] <= CFG.vehicle.max_lat_accel_mps2  # it slowed for the corner
    end = out.agents.xy[-1, 1].astype(np.float64)
    assert end[1] > 5.0 and 50.0 < end[0] < 54.0  # it turned, on a wider arc than the sharp corner

    ped = turning(int(AgentType.PEDESTRIAN), 1.4)
    path = corner_path(4.0, 1.4)
    out_p = project(edited(ped, 1, path), [1])
    assert check_kinematics(out_p, [1])["ok"].all()
    dev = np.linalg.norm(out_p.agents.xy[T0 + 1:, 1] - path, axis=-1).max()
    assert dev < 0.3  # a pedestrian follows the same corner closely
    assert CFG.pedestrian.max_curvature_1pm > 10 * CFG.vehicle.max_curvature_1pm


def test_a_path_the_curvature_limit_would_move_too_far_is_refused():
    s = straight_road(neighbour_dx_m=None)
    corner = InsertAgent(agent_type="vehicle", path=((30.0, -1.0), (60.0, -1.0), (62.0, 1.5)), speed_mps=8.0)
    with pytest.raises(InfeasibleEditError, match=r"InsertAgent\(.*parameter 'path'.*curvature"):
        make_variant(s, [corner])


@pytest.mark.parametrize("op, param, reason", [
    (CutIn(agent="veh2", gap_m=4.0, duration_s=0.8), "duration_s", "lateral acceleration"),
    (HardBrake(lead="veh1", decel_mps2=15.0), "decel_mps2", "outside"),
    (HardBrake(lead="ghost"), "lead", "no agent with track id 'ghost'"),
    (HardBrake(lead="ego"), "lead", "the ego"),
    (HardBrake(lead="veh1", onset_s=9.5), "onset_s", "outside the scenario's future"),
    (RemoveAgent(agent="veh9"), "agent", "no agent"),
    (LateralOffset(agent="veh1", offset_m=8.0, ramp_s=4.0), "offset_m", "drivable area"),
])
def test_impossible_requests_raise_naming_op_parameter_and_reason(road, op, param, reason):
    with pytest.raises(InfeasibleEditError) as info:
        make_variant(road, [op])
    msg = str(info.value)
    assert msg.startswith(type(op).__name__ + "(") and f"parameter {param!r}" in msg and reason in msg
    assert ";" in msg  # ... followed by what to change
    assert isinstance(info.value, WorldEngineLabError) and isinstance(info.value, ValueError)


def test_check_on_road(road):
    assert check_on_road(road, 1).all()
    xy = road.agents.xy.astype(np.float64).copy()
    xy[T0 + 10:, 1, 1] = 10.0  # beside the road
    off = with_agents(road, xy, types=[0, 0, int(AgentType.VEHICLE)])
    off = dataclasses.replace(off, agents=dataclasses.replace(off.agents, yaw=np.zeros((T, 3), np.float32)))
    on = check_on_road(off, 1)
    assert on[: T0 + 10].all() and not on[T0 + 10:].any()
    ped = with_agents(road, xy, types=[0, int(AgentType.PEDESTRIAN), 0])
    ped = dataclasses.replace(ped, agents=dataclasses.replace(ped.agents, yaw=np.zeros((T, 3), np.float32)))
    assert check_on_road(ped, 1).all()  # only vehicles are held to the road
