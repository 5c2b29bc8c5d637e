"""Each op on a hand-made scenario, with a checked outcome (after the feasibility projection of make_variant)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from worldengine_lab.datatypes import AgentType, TrafficLightStatus
from worldengine_lab.errors import InfeasibleEditError
from worldengine_lab.variants import (OPS, BWMSample, CutIn, FeasibilityConfig, HardBrake, InsertAgent,
                                      LateralOffset, PedestrianDartOut, RedLightRun, RemoveAgent, SpeedScale, Stall,
                                      TimeShift, check_kinematics, make_variant, op_from_dict)

from _variant_scenes import DT, T, T0, straight_road, with_agents

CFG = FeasibilityConfig()


def speed(s, i):
    """``[T]`` speed of agent ``i``, m/s."""
    return np.linalg.norm(s.agents.vel_xy[:, i].astype(np.float64), axis=-1)


def index(s, track_id):
    return int(np.flatnonzero(s.agents.track_ids == track_id)[0])


def assert_history_kept(parent, child):
    n = parent.agents.num_agents
    np.testing.assert_array_equal(child.agents.xy[: T0 + 1, :n], parent.agents.xy[: T0 + 1])
    np.testing.assert_array_equal(child.agents.valid[: T0 + 1, :n], parent.agents.valid[: T0 + 1])


def assert_feasible(s):
    table = check_kinematics(s)
    assert table["ok"].all(), table.T


def test_registry_has_every_op_and_records_round_trip():
    assert set(OPS) == {"cut_in", "hard_brake", "pedestrian_dart_out", "red_light_run", "stall", "time_shift",
                        "speed_scale", "lateral_offset", "insert_agent", "remove_agent", "bwm_sample"}
    examples = [CutIn(gap_m=5, duration_s=2), HardBrake(lead="veh1", decel_mps2=4), PedestrianDartOut(spawn=(20, -3)),
                RedLightRun(onset_s=3), Stall(agent="veh1", at_s=2), TimeShift(agent="veh1", shift_s=-1),
                SpeedScale(agent="veh1", factor=1.5), LateralOffset(agent="veh1", offset_m=0.5),
                InsertAgent(agent_type="pedestrian", path=[[1, 2], [3, 4]], speed_mps=1),
                RemoveAgent(agent="veh1"), BWMSample(checkpoint="0123456789abcdef", agents=("veh1",))]
    assert {type(o).name for o in examples} == set(OPS)
    for op in examples:
        rec = op.to_dict()
        assert rec["op"] == op.name
        assert op_from_dict(rec) == op
    assert HardBrake(decel_mps2=4).to_dict()["decel_mps2"] == 4.0  # ints in float fields are normalised
    assert InsertAgent(path=[[1, 2], [3, 4]]).path == ((1.0, 2.0), (3.0, 4.0))
    with pytest.raises(InfeasibleEditError, match="unknown op 'teleport'"):
        op_from_dict({"op": "teleport"})
    with pytest.raises(InfeasibleEditError, match="unknown parameters"):
        op_from_dict({"op": "hard_brake", "decel": 4.0})


def test_hard_brake_decelerates_at_the_requested_rate_until_stop_within_the_jerk_limit(road):
    v = make_variant(road, [HardBrake(lead="auto", decel_mps2=6.0, onset_s=1.0)])
    s = v.scenario
    lead = index(s, "veh1")  # 'auto' picked the lead, not the car in the next lane
    sp = speed(s, lead)[T0:]
    acc = np.diff(sp) / DT
    onset = 10  # steps after now
    np.testing.assert_allclose(sp[: onset - 3], 10.0, atol=1e-6)  # untouched until the ramp-in
    assert (np.diff(sp[onset:]) <= 1e-9).all()  # monotone braking
    plateau = acc[onset + 3: onset + 3 + 10]
    np.testing.assert_allclose(plateau, -6.0, atol=0.02)
    stop = int(np.flatnonzero(sp < 1e-6)[0])
    assert abs(stop * DT - (1.0 + 10.0 / 6.0)) < 0.35  # v0 / decel after the onset, +- half a ramp
    assert (sp[stop:] < 1e-6).all()
    np.testing.assert_allclose(s.agents.xy[T0 + stop:, lead], s.agents.xy[-1:, lead].repeat(T - T0 - stop, 0),
                               atol=1e-4)  # stays where it stopped
    assert np.abs(np.diff(acc)).max() / DT <= CFG.vehicle.max_jerk_mps3
    # the other agents are untouched
    np.testing.assert_array_equal(s.agents.xy[:, index(s, "veh2")], road.agents.xy[:, 2])
    assert_history_kept(road, s)
    assert_feasible(s)


def test_stall_rolls_to_a_stop_and_stays(road):
    s = make_variant(road, [Stall(agent="veh1", at_s=2.0, decel_mps2=2.5)]).scenario
    sp = speed(s, 1)[T0:]
    np.testing.assert_allclose(sp[:17], 10.0, atol=1e-6)
    np.testing.assert_allclose(np.diff(sp)[25:55] / DT, -2.5, atol=0.02)
    assert sp[-1] < 1e-6 and (np.diff(sp[20:]) <= 1e-9).all()
    assert_feasible(s)


def test_cut_in_ends_in_the_ego_lane_at_the_requested_gap(road):
    v = make_variant(road, [CutIn(agent="auto", gap_m=6.0, duration_s=2.0, onset_s=0.5)])
    s = v.scenario
    i = index(s, "veh2")
    a = s.agents
    end = T0 + 5 + 20
    np.testing.assert_allclose(a.xy[T0: T0 + 4, i, 1], 3.5, atol=1e-3)  # still in its lane before the onset
    assert abs(float(a.xy[end, i, 1])) < 0.1  # in the ego's lane (y = 0) when the move ends ...
    assert np.abs(a.xy[end:, i, 1]).max() < 0.1  # ... and stays there
    gap = (a.xy[end, i, 0] - a.size_lwh[i, 0] / 2) - (a.xy[end, 0, 0] + a.size_lwh[0, 0] / 2)
    assert gap == pytest.approx(6.0, abs=0.5)
    assert_history_kept(road, s)
    assert_feasible(s)


def test_cut_in_needing_too_much_lateral_acceleration_is_refused_with_the_parameter_named(road):
    with pytest.raises(InfeasibleEditError, match=r"CutIn\(.*parameter 'duration_s'.*lateral acceleration.*"
                                                  r"duration_s >= 1\.7"):
        make_variant(road, [CutIn(agent="veh2", gap_m=4.0, duration_s=0.8)])
    with pytest.raises(InfeasibleEditError, match=r"parameter 'gap_m'.*longitudinal acceleration.*pass gap_m in"):
        make_variant(road, [CutIn(agent="veh2", gap_m=40.0, duration_s=2.0)])
    with pytest.raises(InfeasibleEditError, match=r"parameter 'agent'.*neighbouring lane"):
        make_variant(road, [CutIn(agent="veh1")])


def test_remove_agent_is_invalid_for_the_future_only(road):
    s = make_variant(road, [RemoveAgent(agent="veh1")]).scenario
    assert not s.agents.valid[T0 + 1:, 1].any()
    assert s.agents.valid[: T0 + 1, 1].all()
    assert (s.agents.xy[T0 + 1:, 1] == 0).all()
    assert_history_kept(road, s)


def test_speed_scale_scales_the_future_arc_length(road):
    s = make_variant(road, [SpeedScale(agent="veh1", factor=1.3)]).scenario
    logged = road.agents.xy[-1, 1, 0] - road.agents.xy[T0, 1, 0]
    scaled = s.agents.xy[-1, 1, 0] - s.agents.xy[T0, 1, 0]
    assert scaled / logged == pytest.approx(1.3, rel=0.02)
    assert speed(s, 1)[-1] == pytest.approx(13.0, abs=1e-3)
    slower = make_variant(road, [SpeedScale(agent="veh1", factor=0.5, onset_s=2.0)]).scenario
    arc = slower.agents.xy[-1, 1, 0] - slower.agents.xy[T0, 1, 0]
    assert arc == pytest.approx(10.0 * 2.0 + 5.0 * 5.9, abs=2.5)  # + the braking transition
    assert_feasible(s)
    with pytest.raises(InfeasibleEditError, match="parameter 'factor'"):
        make_variant(road, [SpeedScale(agent="veh1", factor=5.0)])


def starting_car():
    """Ego at 10 m/s; a car standing at x = 60 until 3 s after now, then accelerating at 2 m/s^2 to 10 m/s."""
    s = straight_road(neighbour_dx_m=None)
    t = np.arange(T) * DT - (T0 * DT + 3.0)
    tau = np.clip(t, 0.0, 5.0)
    x = 60.0 + np.where(t <= 5.0, tau ** 2, 25.0 + 10.0 * (t - 5.0))
    xy = s.agents.xy.astype(np.float64).copy()
    xy[:, 1] = np.stack([x, np.full(T, 3.5)], -1)
    return with_agents(s, xy, scenario_id="starting")


@pytest.mark.parametrize("shift_s", [1.0, -1.5])
def test_time_shift_shifts_positions_of_an_agent_standing_at_now(shift_s):
    s = starting_car()
    out = make_variant(s, [TimeShift(agent="veh1", shift_s=shift_s)]).scenario
    k = int(round(shift_s / DT))
    t = np.arange(T0 + 1, T)
    src = np.clip(t - k, 0, T - 1)
    inside = (t - k >= 0) & (t - k <= T - 1)
    err = np.abs(out.agents.xy[t[inside], 1, 0] - s.agents.xy[src[inside], 1, 0])
    assert err.max() < 0.25  # the jerk-limited start rounds the corner by a few centimetres
    assert_feasible(out)


def test_lateral_offset_moves_the_agent_sideways_and_keeps_its_progress(road):
    s = make_variant(road, [LateralOffset(agent="veh1", offset_m=1.0, onset_s=0.5, ramp_s=2.5)]).scenario
    a = s.agents
    np.testing.assert_allclose(a.xy[T0 + 31:, 1, 1], 1.0, atol=0.02)  # left of its heading (+x) is +y
    np.testing.assert_allclose(a.xy[:, 1, 0], road.agents.xy[:, 1, 0], atol=0.2)
    assert_feasible(s)
    with pytest.raises(InfeasibleEditError, match=r"parameter 'offset_m'.*leaves the drivable area"):
        make_variant(road, [LateralOffset(agent="veh1", offset_m=-6.0, ramp_s=3.0)])
    with pytest.raises(InfeasibleEditError, match=r"parameter 'ramp_s'.*lateral acceleration"):
        make_variant(road, [LateralOffset(agent="veh1", offset_m=3.0, ramp_s=0.5)])


def test_insert_agent_in_the_ego_frame_moves_at_its_speed(road):
    op = InsertAgent(agent_type="vehicle", pose=(30.0, 3.5, 0.0), speed_mps=8.0, frame="ego")
    s = make_variant(road, [op]).scenario
    i = index(s, op.default_track_id())
    a = s.agents
    assert a.agent_type[i] == int(AgentType.VEHICLE) and a.valid[:, i].all()
    ego_now = road.agents.xy[T0, 0]
    np.testing.assert_allclose(a.xy[T0, i], ego_now + [30.0, 3.5], atol=1e-4)
    np.testing.assert_allclose(a.xy[:, i, 0] - a.xy[T0, i, 0], 8.0 * (np.arange(T) - T0) * DT, atol=1e-3)
    np.testing.assert_allclose(speed(s, i), 8.0, atol=1e-4)
    assert_feasible(s)
    with pytest.raises(InfeasibleEditError, match=r"parameter 'pose'.*drivable area"):
        make_variant(road, [InsertAgent(pose=(50.0, 20.0, 0.0), speed_mps=5.0)])
    with pytest.raises(InfeasibleEditError, match=r"parameter 'track_id'"):
        make_variant(road, [InsertAgent(pose=(50.0, 0.0, 0.0), track_id="veh1")])


def test_pedestrian_dart_out_stands_then_crosses_the_ego_path(road):
    op = PedestrianDartOut(spawn="auto", speed_mps=2.0, onset_s=1.0)
    s = make_variant(road, [op]).scenario
    i = s.agents.num_agents - 1
    a = s.agents
    assert a.agent_type[i] == int(AgentType.PEDESTRIAN)
    y = a.xy[:, i, 1].astype(np.float64)
    np.testing.assert_allclose(y[: T0 + 8], -3.25, atol=1e-3)  # waits at the kerb (history included)
    ramp = 2.0 / (0.8 * CFG.margin * CFG.pedestrian.max_accel_mps2)  # it speeds up, walks at 2 m/s, slows down
    meet = T0 + int(round((1.0 + ramp + (3.25 - ramp) / 2.0) / DT))  # half-way across 6.5 m
    assert abs(y[meet]) < 0.3  # on the ego's path ...
    ego_front = road.agents.xy[meet, 0, 0] + road.agents.size_lwh[0, 0] / 2
    assert abs(a.xy[meet, i, 0] - ego_front) < 0.2  # ... where the logged ego's front bumper is
    np.testing.assert_allclose(y[-1], 3.25, atol=1e-3)  # ends mirrored on the other side
    assert_feasible(s)
    placed = make_variant(road, [PedestrianDartOut(spawn=(30.0, 4.0), onset_s=0.5, walk_m=5.0)]).scenario
    np.testing.assert_allclose(placed.agents.xy[T0, -1], road.agents.xy[T0, 0] + [30.0, 4.0], atol=1e-3)
    np.testing.assert_allclose(placed.agents.xy[-1, -1, 1], -1.0, atol=1e-3)


def crossing_time(s, i):
    """Seconds after now when agent ``i``'s centre passes y = 0 (linear interpolation)."""
    y = s.agents.xy[:, i, 1].astype(np.float64)
    k = int(np.flatnonzero(y >= 0)[0])
    return ((k - 1) + (-y[k - 1]) / (y[k] - y[k - 1]) - T0) * DT


def test_red_light_run_inserted_runner_meets_the_ego_and_its_light_turns_red(crossing):
    v = make_variant(crossing, [RedLightRun(speed_mps=12.0)])
    s = v.scenario
    i = s.agents.num_agents - 1
    assert s.agents.track_ids[i].startswith("red_light_runner-")
    assert crossing_time(s, i) == pytest.approx(4.0, abs=0.05)  # when the logged ego's centre passes x = 100
    np.testing.assert_allclose(s.agents.xy[T0:, i, 0], 100.0, atol=1e-3)
    assert speed(s, i)[T0] == pytest.approx(12.0, abs=1e-4)
    lights = s.traffic_lights.status[:, 0]
    assert (lights[T0 + 1:] == int(TrafficLightStatus.RED)).all() and (lights[: T0 + 1] == 0).all()
    assert_feasible(s)


def test_red_light_run_retimes_a_waiting_car(crossing):
    s = make_variant(crossing, [RedLightRun(agent="veh1", onset_s=3.5)]).scenario
    assert crossing_time(s, 1) == pytest.approx(3.5, abs=0.15)
    assert (s.traffic_lights.status[T0 + 1:, 0] == int(TrafficLightStatus.RED)).all()
    assert_feasible(s)
    with pytest.raises(InfeasibleEditError, match=r"parameter 'onset_s'"):
        make_variant(crossing, [RedLightRun(agent="veh1", onset_s=1.0)])  # 20 m from standstill in 1 s


def test_red_light_run_without_a_crossing_lane_is_refused(road):
    with pytest.raises(InfeasibleEditError, match=r"RedLightRun.*parameter 'agent'.*no lane crosses"):
        make_variant(road, [RedLightRun()])


def test_hard_brake_on_a_lead_that_appears_after_now_keeps_its_unobserved_steps(road):
    # the lead enters the sensor range 0.5 s after "now": before that it is unobserved, and stays so
    agents = road.agents
    valid = agents.valid.copy()
    valid[: T0 + 5, 1] = False
    xy = np.where(valid[..., None], agents.xy, 0.0)
    late = road.with_agents(dataclasses.replace(agents, valid=valid, xy=xy.astype(np.float32)))
    s = make_variant(late, [HardBrake(lead="auto", decel_mps2=5.0, onset_s=1.5)]).scenario
    assert not s.agents.valid[: T0 + 5, 1].any() and s.agents.valid[T0 + 5:, 1].all()
    assert np.isfinite(s.agents.xy[s.agents.valid]).all()
    sp = speed(s, 1)[T0 + 6:]
    assert sp[-1] < 1e-6 and (np.diff(sp) <= 1e-6).all()  # it still brakes to a stop
