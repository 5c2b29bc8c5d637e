"""Candidate geometry: distances of vocabulary trajectories to lanes, route and agents."""
from __future__ import annotations

import torch

from worldengine_lab.planners.candidate_geometry import CHECK_POSES, GEOMETRY_DIM, candidate_geometry
from worldengine_lab.planners.features import FeatureConfig, extract_features
from worldengine_lab.sim import ClosedLoopEnv, SimConfig
from worldengine_lab.testing import make_scenario


def _features(**kw):
    env = ClosedLoopEnv([make_scenario(**kw)], SimConfig(num_steps=1))
    return extract_features(env.observe(env.reset()), FeatureConfig(lane_points=40))


def _line(vx: float, y_end: float = 0.0) -> torch.Tensor:
    t = torch.arange(1, 41, dtype=torch.float32) * 0.1
    return torch.stack([vx * t, y_end * (t / 4.0) ** 2, torch.zeros_like(t)], -1)


def test_on_lane_candidate_is_close_to_lanes_and_off_road_one_is_not():
    f = _features(num_agents=1, speed_mps=8.0)
    geo = candidate_geometry(f, torch.stack([_line(8.0), _line(8.0, y_end=-25.0)]))
    assert geo.shape == (1, 2, len(CHECK_POSES), GEOMETRY_DIM)
    assert geo[0, 0, :, 0].max() < 0.3  # within 1.5 m of a centreline point at every check
    assert geo[0, 0, :, 1].min() > 0.95  # heading along the lane
    assert geo[0, 1, -1, 0] > 1.5  # 25 m to the side: far from every lane
    torch.testing.assert_close(geo[0, 0, :, 4], torch.full((4,), 0.8))  # 8 m/s / 10


def test_clearance_drops_for_the_candidate_that_meets_the_leader():
    f = _features(num_agents=2, speed_mps=0.0, gap_m=15.0)  # a parked car 15 m ahead in the ego lane
    geo = candidate_geometry(f, torch.stack([_line(0.0), _line(10.0)]))
    stay, go = geo[0, 0, :, 3], geo[0, 1, :, 3]
    assert stay.min() > 0.5
    assert go.min() < 0.0  # overlaps the parked car by 2 s


def test_chunks_give_the_same_answer():
    f = _features(num_agents=3, speed_mps=6.0)
    from worldengine_lab.planners.features import SceneFeatures

    many = SceneFeatures.cat([f] * 5)
    cands = torch.stack([_line(v) for v in (2.0, 6.0, 12.0)])
    torch.testing.assert_close(candidate_geometry(many, cands, chunk=2), candidate_geometry(many, cands, chunk=16))


def test_precomputed_geometry_gives_the_same_scores():
    from worldengine_lab.planners.learned import ModelConfig, VocabularyScorer

    f = _features(num_agents=3, speed_mps=6.0)
    cands = torch.stack([_line(v) for v in (2.0, 6.0, 12.0)])
    torch.manual_seed(0)
    model = VocabularyScorer(ModelConfig(vocab_size=3, d_model=16, heads=2, layers=1, lane_points=40), cands).eval()
    with torch.no_grad():
        a = model(f)
        b = model(f, candidate_geometry(f, cands))
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.subscore_logits, b.subscore_logits)


def test_lane_and_route_distances_match_a_brute_force_reference():
    import dataclasses

    from worldengine_lab.planners.features import POSITION_SCALE_M, SceneFeatures

    base = _features(num_agents=2, speed_mps=6.0)
    scenes = []
    for k in range(3):  # the route flag on a different number of lane points per scene (packing)
        lanes = base.lanes.clone()
        lanes[..., 4] = 0.0
        lanes[0, : 2 * k + 1, :, 4] = 1.0 if k < 2 else 0.0  # 1 lane, 3 lanes, none (scene 2)
        scenes.append(dataclasses.replace(base, lanes=lanes))
    f = SceneFeatures.cat(scenes)
    cands = torch.stack([_line(v, y) for v in (0.0, 5.0, 11.0) for y in (-6.0, 0.0, 4.0)])
    geo = candidate_geometry(f, cands)
    xy = cands[:, list(CHECK_POSES), :2].double()  # [K, C, 2]
    b, n_l, n_p, _ = f.lanes.shape
    pts = (f.lanes[..., :2].double() * POSITION_SCALE_M).reshape(b, -1, 2)
    ok = f.lanes_mask[:, :, None].expand(b, n_l, n_p).reshape(b, -1)
    route = ok & (f.lanes[..., 4].reshape(b, -1) > 0.5)
    d = (xy[None, :, :, None] - pts[:, None, None]).norm(dim=-1)  # [B, K, C, P] exact
    lane = torch.where(ok[:, None, None], d, float("inf")).amin(-1)
    on_route = torch.where(route[:, None, None], d, float("inf")).amin(-1)
    torch.testing.assert_close(geo[..., 0].double(), (lane / 5.0).clamp(max=2.0), atol=1e-5, rtol=0)
    want = torch.where(route.any(-1)[:, None, None], (on_route / 5.0).clamp(max=2.0), torch.tensor(2.0).double())
    torch.testing.assert_close(geo[..., 2].double(), want, atol=1e-5, rtol=0)
    assert (geo[2, ..., 2] == 2.0).all() and (want[:2] < 2.0).any()  # some route lane is within 10 m
