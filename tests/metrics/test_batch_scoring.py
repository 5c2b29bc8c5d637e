"""Batched scoring: 1000 random candidates, raster vs exact path, batch-composition independence,
float32 fast path vs float64."""
from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
import torch

from worldengine_lab.metrics import NAVSIM_V11, ObjectTracks, PDMScores, ScorerConfig, ScoringMap, score_proposals
from worldengine_lab.metrics._bench import kinematic_fan
from worldengine_lab.metrics.scoring_map import ScoringMapConfig
from worldengine_lab.sim.geometry import ego_footprint

ANGLE = 0.35  # the whole scene is rotated so that no boundary is axis-aligned
TOL_M = 0.1
FIELDS = ("nc", "dac", "ep", "ttc", "comfort", "ddc", "score", "first_collision_idx", "first_offroad_idx",
          "first_ttc_idx")


def _rot(p: np.ndarray) -> np.ndarray:
    c, s = math.cos(ANGLE), math.sin(ANGLE)
    return p @ np.array([[c, s], [-s, c]])


def _rect(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return _rot(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64))


LANES = [_rect(-50, 250, 1.75, 5.25), _rect(-50, 250, -1.75, 1.75), _rect(-50, 250, -5.25, -1.75)]
DRIVABLE = [_rect(-50, 250, -5.25, 5.25), _rect(30, 45, -25, 25)]
INTERSECTIONS = [_rect(30, 45, -5.25, 5.25)]


@pytest.fixture(scope="module")
def scene() -> tuple[ScoringMap, ObjectTracks, torch.Tensor]:
    return build_scene()


def build_scene() -> tuple[ScoringMap, ObjectTracks, torch.Tensor]:
    """Rotated three-lane road (two lanes on route, one oncoming), an intersection, 16 objects, 1000 candidates."""
    smap = ScoringMap.from_polygons(drivable=DRIVABLE, lanes=LANES, lane_on_route=[True, True, False],
                                    intersections=INTERSECTIONS, centerline=_rot(np.array([[-50.0, 0.0], [250.0, 0.0]])),
                                    center_xy=tuple(_rot(np.array([[20.0, 0.0]]))[0]),
                                    config=ScoringMapConfig(radius_m=80.0))
    rng = np.random.default_rng(7)
    n = 16
    t = np.arange(51) * 0.1
    lane_y = rng.choice([3.5, 0.0, -3.5], size=n)
    x0 = rng.uniform(0.0, 70.0, size=n)
    speed = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(3.0, 9.0, size=n)) * np.where(lane_y < -1, -1, 1)
    xy = np.stack((x0[None] + speed[None] * t[:, None], np.broadcast_to(lane_y, (51, n))), -1)
    xy = _rot(xy.reshape(-1, 2)).reshape(51, n, 2)
    vel = _rot(np.stack((np.broadcast_to(speed, (51, n)), np.zeros((51, n))), -1).reshape(-1, 2)).reshape(51, n, 2)
    yaw = np.full((51, n), ANGLE) + np.where(speed < 0, math.pi, 0.0)[None]
    static = rng.random(n) < 0.15
    size = np.where(static[:, None], [0.6, 0.6], [4.6, 1.9])
    valid = np.ones((51, n), bool)
    valid[:10, 0] = False  # appears late
    objs = ObjectTracks.from_arrays(xy=xy, yaw=yaw, size_lw=size, vel=vel, valid=valid, is_static=static)
    x, y = _rot(np.array([[0.0, 0.0]]))[0]
    states = kinematic_fan(x, y, ANGLE, 8.0, 1000, seed=3, dtype=torch.float64, yaw_rate_max=0.3)
    return smap, objs, states


def _clean_states(states: torch.Tensor) -> np.ndarray:
    """``[P, S]`` True where every footprint point and the rear axle are > TOL_M from every map boundary."""
    pts = torch.cat((ego_footprint(states), states[..., None, :2]), -2).reshape(-1, 2).numpy()
    edges = shapely.union_all([shapely.LinearRing(r) for r in DRIVABLE + LANES + INTERSECTIONS])
    d = shapely.distance(edges, shapely.points(pts)).reshape(*states.shape[:2], 6)
    return (d > TOL_M).all(-1)


def _assert_rows_equal(a: PDMScores, b: PDMScores, rows_a: torch.Tensor, rows_b: torch.Tensor) -> None:
    for name in FIELDS:
        torch.testing.assert_close(getattr(a, name)[rows_a], getattr(b, name)[rows_b], msg=name)


def test_1000_candidates_raster_matches_exact(scene: tuple[ScoringMap, ObjectTracks, torch.Tensor]) -> None:
    smap, objs, states = scene
    fast = score_proposals(states, objs, smap, reference_progress=30.0)
    exact = score_proposals(states, objs, smap, ScorerConfig(exact=True), reference_progress=30.0)
    clean = _clean_states(states)
    flags_equal = np.ones(clean.shape, bool)
    for flag in ("multiple_lanes", "non_drivable", "oncoming", "in_intersection"):
        f, e = getattr(fast.areas, flag).numpy(), getattr(exact.areas, flag).numpy()
        assert (f[clean] == e[clean]).all(), flag  # states > 0.1 m from every boundary: same answer
        flags_equal &= f == e
    # the raster only differs from the exact test inside the 0.1 m band around boundaries: proposals whose flags
    # agree at every state get identical scores, and the others differ in at most a handful of sub-scores
    rows = torch.from_numpy(np.flatnonzero(flags_equal.all(1)))
    assert len(rows) >= 600
    _assert_rows_equal(fast, exact, rows, rows)
    assert clean.mean() > 0.7  # most states are checked strictly
    for name in FIELDS[:7]:
        assert (getattr(fast, name) != getattr(exact, name)).float().mean() <= 0.01, name
    # the scene exercises every outcome
    assert (fast.nc == 0).any() and (fast.nc == 1).any() and (fast.dac == 0).any() and (fast.ttc == 0).any()
    assert (fast.comfort == 0).any() and fast.areas.multiple_lanes.any() and fast.areas.in_intersection.any()
    assert fast.areas.oncoming.any()
    assert torch.isfinite(fast.score).all() and ((fast.score >= 0) & (fast.score <= 1)).all()


def test_scoring_is_independent_of_batch_composition(scene: tuple[ScoringMap, ObjectTracks, torch.Tensor]) -> None:
    smap, objs, states = scene
    full = score_proposals(states, objs, smap)
    for i in np.random.default_rng(0).choice(np.arange(1, len(states)), size=12, replace=False):
        pair = score_proposals(states[[0, int(i)]], objs, smap)  # the reference and this candidate alone
        _assert_rows_equal(full, pair, torch.tensor([int(i)]), torch.tensor([1]))
    # external reference: a proposal alone == the same proposal inside the batch
    ext = score_proposals(states, objs, smap, reference_progress=25.0)
    for i in (3, 517, 999):
        alone = score_proposals(states[i:i + 1], objs, smap, reference_progress=25.0)
        _assert_rows_equal(ext, alone, torch.tensor([i]), torch.tensor([0]))
    shuffled = torch.randperm(len(states), generator=torch.Generator().manual_seed(1))
    shuffled = shuffled[shuffled != 0]
    perm = torch.cat((torch.tensor([0]), shuffled))
    again = score_proposals(states[perm], objs, smap)
    _assert_rows_equal(full, again, perm, torch.arange(len(perm)))


def test_float32_fast_path_agrees_with_float64(scene: tuple[ScoringMap, ObjectTracks, torch.Tensor]) -> None:
    smap, objs, states = scene
    ref = score_proposals(states, objs, smap, NAVSIM_V11)
    f32 = score_proposals(states.float(), objs.to(torch.float32), smap, NAVSIM_V11)
    same = torch.ones(len(states), dtype=torch.bool)
    for name in ("nc", "dac", "ttc", "comfort", "first_collision_idx", "first_ttc_idx"):
        same &= getattr(ref, name).to(torch.float64) == getattr(f32, name).to(torch.float64)
    assert same.float().mean() >= 0.99
    torch.testing.assert_close(ref.ep[same], f32.ep[same], atol=1e-4, rtol=0)


def test_chunked_time_walk_equals_a_single_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import worldengine_lab.metrics.collisions as collisions
    from worldengine_lab.metrics._bench import bench_scene, fan_proposals

    scene = bench_scene(30, seed=1)  # dense: most candidates collide, many settle early
    smap = ScoringMap.from_scenario(scene, ScoringMapConfig(radius_m=80.0))
    objs = ObjectTracks.from_scenario(scene)
    states = fan_proposals(scene, 600, seed=5, dtype=torch.float64)
    results = []
    for chunks in (1, 2, 5):
        monkeypatch.setattr(collisions, "_CHUNKS", chunks)
        results.append(score_proposals(states, objs, smap))
    assert (results[0].nc == 0).float().mean() > 0.3  # the early exit has work to skip
    rows = torch.arange(len(states))
    for other in results[1:]:
        _assert_rows_equal(results[0], other, rows, rows)
        assert torch.equal(results[0].any_contact, other.any_contact)
        assert torch.equal(results[0].first_agent_collision_idx, other.first_agent_collision_idx)
