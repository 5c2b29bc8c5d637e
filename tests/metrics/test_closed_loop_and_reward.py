"""Closed-loop PDMS* rows and summaries, first violation step, dense reward, DDC and lane keeping."""
from __future__ import annotations

import numpy as np
import torch

from worldengine_lab.metrics import (
    CLOSED_LOOP, DENSE_REWARD, ObjectTracks, ScoringMap, closed_loop_pdms, dense_reward, driving_direction_compliance,
    executed_states, first_violation_step, lane_keeping, score_proposals, summarize_closed_loop,
)
from worldengine_lab.metrics._bench import fan_proposals
from worldengine_lab.testing import make_scenario

from _scoring_cases import box, const, huge_map, objects


def test_first_violation_step_rules() -> None:
    assert first_violation_step(-1, 1.0, -1) == -1
    assert first_violation_step(4, 1.0, -1) == 7  # DAC violation at state 4 → step 7
    assert first_violation_step(-1, 0.0, 2) == 5  # agent collision at 1.0 s → step 2 + 3
    assert first_violation_step(6, 0.0, 2) == 5  # the earlier of the two
    assert first_violation_step(-1, 0.5, -1) == -1  # static-object contact does not set it
    assert first_violation_step(-1, 0.0, 13, dt=0.1) == 5  # 1.3 s at 0.1 s states → floor(2.6) + 3


def test_closed_loop_episode_with_collision_sets_violation_step() -> None:
    times = np.arange(9) * 0.5
    poses = np.stack((10.0 * times, np.zeros(9), np.zeros(9)), -1)
    states = executed_states(poses, np.stack((np.full(9, 10.0), np.zeros(9)), -1))
    parked = objects(box(x=const(25.0)), num_frames=9, dt=0.5)  # hit when the front passes 22.5 m (t = 2.0 s)
    row = closed_loop_pdms(states, parked, huge_map(), poses, token="crash")
    assert row["no_at_fault_collisions"] == 0.0 and row["score"] == 0.0
    assert row["first_violation_step"] == 4 + 3
    assert row["any_contact"] and row["lane_keeping"] == 1.0
    table, summary = summarize_closed_loop([row, {**row, "token": "ok", "no_at_fault_collisions": 1.0,
                                                   "score": 1.0}])
    assert table["success"].tolist() == [False, True]
    assert summary["success_rate_pct"] == 50.0 and summary["pdms_star"] == 50.0
    assert summary["num_episodes"] == 2.0


def test_closed_loop_ttc_uses_half_second_lookaheads_on_states_0_to_6() -> None:
    times = np.arange(9) * 0.5
    poses = np.stack((10.0 * times, np.zeros(9), np.zeros(9)), -1)
    # stored (finite-difference) speed 5 m/s: the projection from state 6 reaches 30 + 5 + 4.049 = 39.049 m
    states = executed_states(poses, np.stack((np.full(9, 5.0), np.zeros(9)), -1))
    # a parked car (rear at 44 m) that the ego reaches only at state 8: outside the TTC state range 0..6
    late = objects(box(x=const(46.5)), num_frames=9, dt=0.5)
    r = score_proposals(states[None], late, huge_map(), CLOSED_LOOP, reference_progress=40.0)
    assert r.nc.item() == 0.0 and r.first_collision_idx.item() == 8
    assert r.ttc.item() == 1.0
    # rear at 34 m: reached from state 5 with the 1.0 s look-ahead (25 + 5 + 4.049)
    mid = objects(box(x=const(36.5)), num_frames=9, dt=0.5)
    r = score_proposals(states[None], mid, huge_map(), CLOSED_LOOP, reference_progress=40.0)
    assert r.ttc.item() == 0.0 and r.first_ttc_idx.item() == 5


def test_dense_reward_arrays_and_pairwise_independence() -> None:
    s = make_scenario(num_agents=4, num_steps=101, t0=20)
    smap = ScoringMap.from_scenario(s)
    objs = ObjectTracks.from_scenario(s, num_frames=41)
    anchors = fan_proposals(s, 64, seed=2, dtype=torch.float64)
    out = dense_reward(anchors, objs, smap, reference_progress=35.0)
    assert set(out.as_dict()) == {"nc", "dac", "lane_keeping", "ep", "ttc", "comfort", "ddc", "score",
                                  "raw_progress"}
    assert all(v.shape == (64,) and v.dtype == np.float32 for v in out.as_dict().values())
    assert np.isfinite(out.score).all() and (out.score <= 1).all()
    expect = out.nc * out.dac * (5 * out.ep + 5 * out.ttc + 2 * out.comfort) / 12
    np.testing.assert_allclose(out.score, expect, atol=1e-6)
    alone = dense_reward(anchors[5:6], objs, smap, reference_progress=35.0)
    assert alone.score[0] == out.score[5] and alone.ep[0] == out.ep[5]
    assert DENSE_REWARD.ttc_lookahead_steps == tuple(range(11)) and DENSE_REWARD.ttc_max_state == 30


def test_driving_direction_compliance_window_and_segments() -> None:
    centers = torch.stack((torch.arange(41, dtype=torch.float64) * 0.4, torch.zeros(41, dtype=torch.float64)), -1)
    onc = torch.zeros(1, 41, dtype=torch.bool)
    onc[0, 5:11] = True  # 6 steps of 0.4 m = 2.4 m oncoming
    assert driving_direction_compliance(centers[None], onc, 0.1).item() == 0.5
    onc[0, 5:25] = True  # 8 m oncoming overall, but a 1 s window holds at most 11 samples = 4.4 m
    assert driving_direction_compliance(centers[None], onc, 0.1).item() == 0.5
    assert driving_direction_compliance(centers[None], onc, 0.1, mode="segments").item() == 0.0
    onc[0] = False
    assert driving_direction_compliance(centers[None], onc, 0.1).item() == 1.0


def test_lane_keeping_needs_two_seconds_of_deviation() -> None:
    from worldengine_lab.sim.state import make_ego_state
    cl = torch.tensor([[-10.0, 0.0], [100.0, 0.0]], dtype=torch.float64)
    t = torch.arange(41, dtype=torch.float64) * 0.1
    y = torch.where((t >= 1.0) & (t < 2.95), 0.8, 0.0)  # 20 states off by 0.8 m → fails
    s = make_ego_state(x=5 * t, y=y)[None]
    assert lane_keeping(s, cl, 0.1).item() == 0.0
    y = torch.where((t >= 1.0) & (t < 2.85), 0.8, 0.0)  # 19 states → passes
    assert lane_keeping(make_ego_state(x=5 * t, y=y)[None], cl, 0.1).item() == 1.0
