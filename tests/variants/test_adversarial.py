"""Guided adversarial sampling: the attacker, the distance fields, the cost, and guidance lowering the TTC."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _bwm_helpers import TINY_FEATURES, constant_velocity_model, one_thread  # noqa: F401
from _variant_scenes import DT, T, straight_road, with_agents

from worldengine_lab.variants import GuidanceConfig, adversarial_variants, choose_attacker, min_ttc, pack_scenes
from worldengine_lab.variants.adversarial import _sample_field, distance_fields, guidance_cost, make_guide
from worldengine_lab.variants.bwm import sample_tokens, write_futures

pytestmark = pytest.mark.usefixtures("one_thread")


def _scene():
    """Ego at 10 m/s in lane y = 0; a lead 25 m ahead at 10 m/s; a car in lane y = 3.5, 8 m ahead, at 10 m/s."""
    return straight_road(lead_gap_m=25.0, neighbour_dx_m=8.0)


def test_choose_attacker_picks_a_car_ahead_that_can_reach_the_ego():
    s = _scene()
    first, second = choose_attacker(s), choose_attacker(s, rank=1)
    assert {first, second} == {1, 2}
    t = np.arange(T) * DT
    behind = np.stack([np.stack([10.0 + 10.0 * t, np.zeros(T)], -1), np.stack([-5.0 + 10.0 * t, np.zeros(T)], -1)], 1)
    assert choose_attacker(with_agents(s, behind)) == -1  # only a follower: never the attacker


def test_distance_fields_on_the_straight_road():
    s = _scene()
    cfg = GuidanceConfig(grid_size_m=100.0, grid_resolution_m=0.5)
    field, origin = distance_fields([s], cfg)
    pts = torch.tensor([[[[30.0, 0.0], [30.0, 1.75], [30.0, 10.0]]]], dtype=torch.float64)  # [B=1, 1, 3, 2]
    lane, signed = _sample_field(field, origin, pts, cfg.grid_resolution_m)[0, :, 0]
    assert lane[0] < 0.3 and abs(lane[1] - 1.75) < 0.3  # on a centreline; between the two lanes
    assert signed[0] > 1.0 and signed[2] < -3.0  # inside the road; 10 m left of the road's centre: outside


def test_guidance_lowers_min_ttc_versus_unguided():
    s = _scene()
    model = constant_velocity_model()  # unguided, every generated agent keeps its speed: no TTC at all
    att = choose_attacker(s)
    batch = pack_scenes([s], TINY_FEATURES, [[att]])
    tok = torch.tensor([int(np.flatnonzero(batch.agent_index[0].numpy() == att)[0])])
    cfg = GuidanceConfig(grid_size_m=200.0)
    fields = distance_fields([s], cfg)
    plain = sample_tokens(model, batch, [0])
    guided = sample_tokens(model, batch, [0], make_guide(model, batch, tok, fields, cfg))
    cost_plain = guidance_cost(plain, model, batch, tok, fields, cfg)[1]
    cost_guided = guidance_cost(guided, model, batch, tok, fields, cfg)[1]
    assert float(cost_guided["attack"]) < float(cost_plain["attack"]) - 1.0
    assert float(cost_guided["collision"]) < 1e-2  # it does not run into the other car
    a = write_futures([s], model, batch, plain)[0]
    b = write_futures([s], model, batch, guided)[0]
    window = slice(s.t0, s.t0 + 41)
    assert min_ttc(a.agents, window) == np.inf and min_ttc(b.agents, window) < 3.0


def test_adversarial_variants_name_their_attacker():
    s = _scene()
    model = constant_velocity_model()
    vs = adversarial_variants(model, [s], per_scenario=2, seed=0, config=GuidanceConfig(grid_size_m=200.0,
                                                                                          iterations=2,
                                                                                          final_iterations=5))
    assert len(vs) == 2 and vs[0].variant_id != vs[1].variant_id
    recs = [v.op_records()[0] for v in vs]
    assert {r["attacker"] for r in recs} == {"veh1", "veh2"}  # variant 1 takes the second-ranked attacker
    assert all(r["guidance"] == "adversarial" and r["agents"] == [r["attacker"]] for r in recs)
    assert adversarial_variants(model, [with_agents(s, s.agents.xy[:, :1])], per_scenario=1) == []
