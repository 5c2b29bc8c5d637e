"""Realism and criticality on hand-made cases with known answers."""
from __future__ import annotations

import numpy as np
import pytest
from _bwm_helpers import one_thread  # noqa: F401
from _variant_scenes import DT, T, straight_road, with_agents

from worldengine_lab.variants import (closed_loop_check, distribution_distances, min_ttc, motion_stats,
                                      realism_report)
from worldengine_lab.variants.realism import non_ego_collisions

pytestmark = pytest.mark.usefixtures("one_thread")

t = np.arange(T) * DT


def _lane(x0: float, v: float, y: float = 0.0) -> np.ndarray:
    return np.stack([x0 + v * t, np.full(T, y)], -1)


def test_logged_road_is_valid():
    s = straight_road()
    rep = realism_report([s])
    assert rep["valid"].all() and rep["kinematics_ok"].all() and rep["num_collisions"].sum() == 0
    assert rep["offroad_rate"].max() == 0.0 and rep["min_ttc_log_s"].iloc[0] == np.inf


def test_teleporting_agent_is_implausible():
    s = straight_road()
    xy = s.agents.xy.astype(np.float64).copy()
    xy[s.t0 + 10:, 1, 0] += 20.0  # jumps 20 m forward in one step
    jumpy = with_agents(s, xy)
    rep = realism_report([jumpy], parents=[s])
    assert rep["num_edited"].iloc[0] == 1
    assert not rep["kinematics_ok"].iloc[0] and not rep["valid"].iloc[0]


def test_two_overlapping_agents_count_as_a_collision():
    s = straight_road()
    xy = np.stack([_lane(10.0, 10.0), _lane(35.0, 10.0), _lane(60.0, 10.0)], 1)
    xy[s.t0 + 5:, 2] = xy[s.t0 + 5:, 1] + [2.0, 0.5]  # car 2 sits on car 1 from 0.5 s after now
    both = with_agents(s, xy)
    col = non_ego_collisions(both.agents, slice(s.t0 + 1, None))
    assert col[:4].sum() == 0 and col[4:, 1, 2].all() and col[4:, 2, 1].all() and not col[:, 0].any()
    rep = realism_report([both], agents=[[2]])
    assert rep["num_collisions"].iloc[0] == 1 and not rep["valid"].iloc[0]
    # a pair already overlapping at now in the parent (a group walking together, a tow) is not held against it
    glued = xy.copy()
    glued[:, 2] = glued[:, 1] + [2.0, 0.5]
    g = with_agents(s, glued)
    assert realism_report([g], parents=[g], agents=[[2]])["num_collisions"].iloc[0] == 0


def test_off_road_agent_is_counted():
    s = straight_road()
    xy = s.agents.xy.astype(np.float64).copy()
    xy[s.t0 + 1:, 1, 1] = np.linspace(0.0, 12.0, T - s.t0 - 1)  # drifts 12 m to the left, off the 2-lane road
    rep = realism_report([with_agents(s, xy)], parents=[s])
    assert rep["offroad_rate"].iloc[0] > 0.1 and rep["num_offroad_agents"].iloc[0] == 1


def test_min_ttc_of_a_stopped_car_ahead():
    s = straight_road(neighbour_dx_m=None)
    stopped = with_agents(s, np.stack([_lane(10.0, 10.0), np.tile([[60.0, 0.0]], (T, 1))], 1))
    # at now the ego (x = 30) and the car (x = 60) are 30 m apart centre to centre, 25.2 m bumper to bumper
    ttc = min_ttc(stopped.agents, slice(s.t0, s.t0 + 1))
    assert ttc == pytest.approx(2.5, abs=0.11)
    behind = with_agents(s, np.stack([_lane(10.0, 10.0), _lane(-20.0, 15.0)], 1))  # 20 m behind at now, closing
    assert min_ttc(behind.agents, slice(s.t0, s.t0 + 11)) == np.inf  # a collision from behind is not the ego's


def test_distribution_distances():
    s = straight_road()
    stats = motion_stats([s])
    assert set(stats) == {"speed_mps", "accel_mps2", "jerk_mps3", "headway_m"} and len(stats["speed_mps"])
    same = distribution_distances(stats, stats)
    assert same["speed_mps_w1"] == pytest.approx(0.0) and same["speed_mps_js"] == pytest.approx(0.0, abs=1e-6)
    faster = {**stats, "speed_mps": stats["speed_mps"] + 2.0}
    assert distribution_distances(faster, stats)["speed_mps_w1"] == pytest.approx(2.0)
    assert distribution_distances(faster, stats)["speed_mps_js"] > 0.5
    assert np.isnan(distribution_distances({}, stats)["speed_mps_w1"])


def test_closed_loop_check_flags_critical_scenes():
    from worldengine_lab.planners.registry import load_planner

    calm = straight_road(lead_gap_m=40.0, neighbour_dx_m=None)
    table = closed_loop_check([calm], load_planner("expert"))
    assert bool(table["success"].iloc[0]) and not bool(table["critical"].iloc[0])
    assert {"min_ttc_s", "critical", "score"} <= set(table.columns)
