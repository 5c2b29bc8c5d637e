"""The worked cases T1–T14 and T16–T19 of spec/metrics.md §7, one test each, with the exact expected values
(T15 belongs to the simulator). Scoring cases run the raster and the exact path and require agreement."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from worldengine_lab.metrics import (
    CLOSED_LOOP, ScoringMap, closed_loop_pdms, comfort, comfort_signals, ep_navsim, ep_raw_max, executed_states,
    pairwise_reward, pdm_score, raw_progress, savgol_filter, success_rate,
)
from worldengine_lab.mining import mine_rare_cases

from _scoring_cases import SMALL_RASTER, box, const, ego, huge_map, objects, rect, score_both

ATOL = 1e-6


def approx(v: float) -> object:
    return pytest.approx(v, abs=ATOL)


# ---- NC / TTC ---------------------------------------------------------------------------------------------

def test_t1_stopped_ego_rear_ended() -> None:
    s = ego(x=const(0.0), v=const(0.0))
    veh = box(x=lambda t: -6 + 3 * t, vx=const(3.0))
    r = score_both(s, objects(veh), huge_map())
    assert r.any_contact.item()  # contact happens (first at i = 8) but the ego is stopped
    assert r.nc.item() == 1.0 and r.ttc.item() == 1.0
    assert r.first_collision_idx.item() == -1


def test_t2_moving_ego_rear_ended_slow() -> None:
    s = ego(x=lambda t: 2 * t, v=const(2.0))
    veh = box(x=lambda t: -8 + 6 * t, vx=const(6.0))
    r = score_both(s, objects(veh), huge_map())
    assert r.nc.item() == 1.0 and r.ttc.item() == 1.0
    assert r.any_contact.item()


def test_t3_moving_ego_rear_ended_fast_ttc_quirk() -> None:
    s = ego(x=lambda t: 5 * t, v=const(5.0))
    veh = box(x=lambda t: -8 + 10 * t, vx=const(10.0))
    r = score_both(s, objects(veh), huge_map())
    assert r.nc.item() == 1.0
    assert r.ttc.item() == 0.0 and r.first_ttc_idx.item() == 0
    assert r.ep.item() == 1.0 and r.comfort.item() == 1.0
    assert r.score.item() == approx(7 / 12)
    assert r.score.item() == approx(0.583333333)


def test_t4_hitting_a_stopped_vehicle() -> None:
    s = ego(x=lambda t: 10 * t, v=const(10.0))
    veh = box(x=const(20.0))
    r = score_both(s, objects(veh), huge_map())
    assert r.nc.item() == 0.0
    assert r.first_collision_idx.item() == 14
    assert r.to_frame()["first_collision_time_s"][0] == approx(1.4)
    assert r.ttc.item() == 0.0 and r.first_ttc_idx.item() == 5
    assert r.score.item() == 0.0 and r.ep.item() == 0.0


def test_t5_hitting_a_traffic_cone() -> None:
    s = ego(x=lambda t: 10 * t, v=const(10.0))
    cone = box(x=const(20.0), length=0.5, width=0.5, static=True)
    r = score_both(s, objects(cone), huge_map(), reference_progress=40.0, reference_multiplier=1.0)
    assert r.raw_progress.item() == approx(40.0)
    assert r.nc.item() == 0.5 and r.first_collision_idx.item() == 16
    assert r.first_agent_collision_idx.item() == -1
    assert r.ttc.item() == 0.0 and r.first_ttc_idx.item() == 7
    assert r.ep.item() == approx(0.5)
    assert r.score.item() == approx(0.1875)


def _two_lane_map() -> ScoringMap:
    return ScoringMap.from_polygons(
        drivable=[rect(-50, 200, -1.75, 5.25)],
        lanes=[rect(-50, 200, -1.75, 1.75), rect(-50, 200, 1.75, 5.25)], lane_on_route=[True, True],
        centerline=np.array([[-50.0, 0.0], [200.0, 0.0]]), center_xy=(10.0, 0.0), config=SMALL_RASTER)


def test_t6a_lateral_side_swipe_single_lane_not_at_fault() -> None:
    s = ego(x=lambda t: 5 * t, v=const(5.0))
    veh = box(x=lambda t: 1.461 + 5 * t, y=lambda t: 3.5 - t, vx=const(5.0), vy=const(-1.0))
    r = score_both(s, objects(veh), _two_lane_map())
    assert not r.areas.multiple_lanes.any()
    assert r.nc.item() == 1.0 and r.any_contact.item()
    assert r.ttc.item() == 0.0 and r.first_ttc_idx.item() == 5
    assert r.dac.item() == 1.0


def test_t6b_lateral_side_swipe_multiple_lanes_at_fault() -> None:
    s = ego(x=lambda t: 5 * t, v=const(5.0), y=const(1.0))
    veh = box(x=lambda t: 1.461 + 5 * t, y=lambda t: 4.5 - t, vx=const(5.0), vy=const(-1.0))
    r = score_both(s, objects(veh), _two_lane_map())
    assert r.areas.multiple_lanes.all()
    assert r.nc.item() == 0.0 and r.first_collision_idx.item() == 14
    assert r.ttc.item() == 0.0 and r.first_ttc_idx.item() == 5
    assert r.dac.item() == 1.0


def test_t7_braking_short_of_a_stopped_car() -> None:
    x = lambda t: np.where(t <= 2.5, 10 * t - 2 * t**2, 12.5)  # noqa: E731
    v = lambda t: np.where(t <= 2.5, 10 - 4 * t, 0.0)  # noqa: E731
    s = ego(x=x, v=v, ax=lambda t: np.where(t <= 2.5, -4.0, 0.0))
    r = score_both(s, objects(box(x=const(20.0))), huge_map())
    assert r.nc.item() == 1.0 and not r.any_contact.item()
    assert r.ttc.item() == 0.0 and r.first_ttc_idx.item() == 11


# ---- DAC ----------------------------------------------------------------------------------------------------

def _lane_map(drivable: list[np.ndarray]) -> ScoringMap:
    big = rect(-1000, 1000, -1000, 1000)
    return ScoringMap.from_polygons(drivable=drivable, lanes=[big], centerline=np.array([[-50.0, 0.0], [200.0, 0.0]]),
                                    center_xy=(10.0, 0.0), config=SMALL_RASTER)


def test_t8a_leaving_the_drivable_area() -> None:
    s = ego(x=lambda t: 5 * t, v=const(5.0), y=lambda t: 0.5 * t)
    r = score_both(s, objects(box(x=const(500.0))), _lane_map([rect(-50, 200, -2, 2)]))
    assert r.dac.item() == 0.0 and r.first_offroad_idx.item() == 18
    assert r.score.item() == 0.0


def test_t8b_corners_covered_by_different_polygons() -> None:
    s = ego(x=lambda t: 5 * t, v=const(5.0))
    r = score_both(s, objects(box(x=const(500.0))), _lane_map([rect(-50, 200, -2, 0.5), rect(-50, 200, 0.5, 4)]))
    assert r.dac.item() == 1.0 and r.first_offroad_idx.item() == -1


# ---- EP ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "p_ref, m_ref, p_cand, nc, dac, ttc, ep_exp, pdms_exp",
    [
        (20, 1, 10, 1, 1, 1, 0.5, 9.5 / 12),
        (4, 1, 2, 1, 1, 1, 1.0, 1.0),
        (3, 1, 8, 1, 0, 1, 0.0, 0.0),
        (16, 1, 20, 0.5, 1, 0, 0.625, 0.213541667),
        (30, 0, 12, 1, 1, 1, 1.0, 1.0),
        (20, 1, 20, 1, 1, 0, 1.0, 7 / 12),
    ],
    ids=list("abcdef"),
)
def test_t9_ep_normalisation_and_score(p_ref: float, m_ref: float, p_cand: float, nc: float, dac: float,
                                       ttc: float, ep_exp: float, pdms_exp: float) -> None:
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731
    ep = ep_navsim(t(p_cand), t(nc * dac), float(p_ref), float(m_ref))
    assert ep.item() == approx(ep_exp)
    assert pdm_score(t(nc), t(dac), ep, t(ttc), t(1.0)).item() == approx(pdms_exp)


def test_t9_geometry_check() -> None:
    cl = torch.tensor([[-50.0, 0.0], [200.0, 0.0]], dtype=torch.float64)
    s = ego(x=lambda t: t / 4.0 * 10.0, y=lambda t: t / 4.0 * 3.0, v=const(2.5))
    assert raw_progress(s, cl).item() == approx(10.0)
    back = ego(x=lambda t: -3.0 * t / 4.0, v=const(0.75))
    assert raw_progress(back, cl).item() == 0.0


# ---- Comfort -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ax, expected", [(3.0, 0.0), (2.39, 1.0), (-4.0, 1.0), (-4.1, 0.0), (0.0, 1.0)])
def test_t10_constant_longitudinal_acceleration(ax: float, expected: float) -> None:
    s = ego(x=const(0.0), v=const(0.0), ax=const(ax))
    c, checks = comfort(s, 0.1)
    assert c.item() == expected
    assert bool(checks[0, 0]) == (expected == 1.0)  # only the lon-acc check decides


def test_t11_longitudinal_jerk_only() -> None:
    s = ego(x=const(0.0), v=const(0.0), ax=lambda t: -3.825 + 1.5 * (t - 2) ** 2)
    sig = comfort_signals(s, 0.1)
    assert sig["lon_jerk"].abs().max().item() == pytest.approx(6.074, abs=1e-3)
    assert sig["jerk"].abs().max().item() < 8.37
    c, checks = comfort(s, 0.1)
    assert checks[0].tolist() == [True, True, True, False, True, True]
    assert c.item() == 0.0


@pytest.mark.parametrize("omega, expected", [(0.9, 1.0), (1.0, 0.0)])
def test_t12_yaw_rate(omega: float, expected: float) -> None:
    s = ego(x=const(0.0), v=const(0.0), yaw=lambda t: omega * t)
    sig = comfort_signals(s, 0.1)
    assert sig["yaw_rate"].abs().max().item() == approx(omega)
    assert sig["yaw_acc"].abs().max().item() == approx(0.0)
    assert comfort(s, 0.1)[0].item() == expected


def test_t13_heading_wrap_around() -> None:
    wrap = lambda a: (a + np.pi) % (2 * np.pi) - np.pi  # noqa: E731
    s = ego(x=const(0.0), v=const(0.0), yaw=lambda t: wrap(3.0 + 0.5 * t))
    assert (np.diff(s[0, :, 2].numpy()) < -6).any()  # the heading does jump from +pi to -pi
    sig = comfort_signals(s, 0.1)
    assert sig["yaw_rate"].abs().max().item() == approx(0.5)
    assert comfort(s, 0.1)[0].item() == 1.0
    naive = savgol_filter(s[..., 2], 5, 2, deriv=1, delta=0.1)  # without unwrapping
    assert naive.abs().max().item() > 18.0


def test_t14_yaw_acceleration_only() -> None:
    s = ego(x=const(0.0), v=const(0.0), yaw=lambda t: 0.1 * np.sin(5 * t))
    sig = comfort_signals(s, 0.1)
    assert sig["yaw_rate"].abs().max().item() == pytest.approx(0.617, abs=0.01)
    assert sig["yaw_acc"].abs().max().item() == pytest.approx(2.66, abs=0.01)
    c, checks = comfort(s, 0.1)
    assert checks[0].tolist() == [True, True, True, True, True, False]
    assert c.item() == 0.0


# ---- Mining, success rate, dense reward, closed loop ----------------------------------------------------------

def test_t16_rare_case_mining() -> None:
    rows = {"a": (1, 1, 0.95), "b": (1, 1, 0.10), "c": (0, 1, 0.0), "d": (1, 0, 0.0), "e": (0.5, 1, 0.4),
            "f": (1, 1, 0.0), "g": (1, 1, 0.60), "h": (1, 1, 0.30)}
    table = pd.DataFrame([(k, *v) for k, v in rows.items()],
                         columns=["token", "no_at_fault_collisions", "drivable_area_compliance", "ego_progress"])
    out = mine_rare_cases(table, "train", percentile=1)
    assert out == {"train_collision": ["c"], "train_off_road": ["d"], "train_ep_1pct": ["b"]}
    assert np.percentile([0.95, 0.10, 0.60, 0.30], 1) == pytest.approx(0.106)
    assert mine_rare_cases(table, "train", percentile=50)["train_ep_50pct"] == ["b", "h"]


def test_t17_success_rate() -> None:
    nc = [1, 1, 0, 1, 0.5, 1, 0, 1]
    dac = [1, 1, 1, 0, 1, 1, 0, 1]
    assert success_rate(nc, dac) == 50.0
    assert success_rate(nc, dac, rule="first_violation") == 62.5


def test_t18_dense_reward_pairwise_ep() -> None:
    f = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    progress, nc = f(6, 15, 0, 8), f(1, 1, 1, 0)
    one = f(1, 1, 1, 1)
    ep, score = pairwise_reward(progress, nc, one, one, one, 12.0)
    assert ep.tolist() == pytest.approx([0.5, 1.0, 0.0, 0.0], abs=ATOL)
    assert score.tolist() == pytest.approx([0.791667, 1.0, 7 / 12, 0.0], abs=1e-6)
    ep_deg, _ = pairwise_reward(f(0.02), f(1), f(1), f(1), f(1), 0.05)
    assert ep_deg.item() == 1.0


def test_t19_closed_loop_ep_rule_vs_navsim_rule() -> None:
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731
    # (a) expert 3.0 m, ego 2.0 m
    assert ep_raw_max(t(2.0), t(1.0), 3.0).item() == approx(2 / 3)
    assert ep_navsim(t(2.0), t(1.0), 3.0, 1.0).item() == 1.0
    # (b) expert 20 m (collided, multiplier 0), ego 10 m and safe
    assert ep_raw_max(t(10.0), t(1.0), 20.0).item() == approx(0.5)
    assert ep_navsim(t(10.0), t(1.0), 20.0, 0.0).item() == 1.0


def test_t19_closed_loop_episode_end_to_end() -> None:
    # 9 executed states at 0.5 s; the expert path runs through the expert's rear axles, ego centres are
    # projected (§2.10), so the expert's own progress is its path length minus 1.461 m: 4.461 → 3.0 m.
    times = np.arange(9) * 0.5
    expert = np.stack((times / 4.0 * 4.461, np.zeros(9), np.zeros(9)), -1)
    ego_poses = np.stack((times / 4.0 * 2.0, np.zeros(9), np.zeros(9)), -1)
    states = executed_states(ego_poses, np.stack((np.full(9, 0.5), np.zeros(9)), -1))
    smap = huge_map()
    far = objects(box(x=const(500.0)), num_frames=9, dt=0.5)
    row = closed_loop_pdms(states, far, smap, expert, token="ep-a", config=CLOSED_LOOP)
    assert row["expert_progress_m"] == approx(3.0) and row["raw_progress_m"] == approx(2.0)
    assert row["ego_progress"] == approx(2 / 3)
    assert row["score"] == approx((5 * 2 / 3 + 5 + 2) / 12)
    assert row["first_violation_step"] == -1 and not math.isnan(row["score"])
