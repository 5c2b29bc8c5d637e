"""Planning samples, the PDM teacher and imitation pre-training on small hand-made scenarios."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from worldengine_lab.errors import WorkspaceError
from worldengine_lab.planners.features import FeatureConfig
from worldengine_lab.planners.learned import LearnedPlanner, load_checkpoint
from worldengine_lab.sim import SimConfig, rollout
from worldengine_lab.testing import make_scenario
from worldengine_lab.training.imitation import ImitationConfig, imitation_loss, pretrain
from worldengine_lab.training.samples import build_samples, score_candidates, shifted_scenarios

TINY = ImitationConfig(vocab_size=8, offsets_s=(0.0, 1.0), epochs=2, batch_size=8, val_fraction=0.2, d_model=32,
                       layers=1, heads=2, features=FeatureConfig(max_agents=4, max_lanes=4, lane_points=8))


@pytest.fixture(scope="module")
def scenarios():
    return [make_scenario(num_agents=3, speed_mps=4.0 + i, gap_m=15.0 + 2 * i, seed=i) for i in range(6)]


def test_shifted_states_need_four_seconds_of_log(scenarios):
    s = scenarios[0]  # 101 steps, t0 = 20: offsets up to 4.0 s keep 4 s of log after the state
    items = shifted_scenarios([s], (0.0, 4.0, 6.0))
    assert [o for _, o in items] == [0.0, 4.0]
    assert items[1][0].t0 == s.t0 + 40


def test_expert_future_is_the_logged_motion_in_the_body_frame(scenarios):
    s = scenarios[0]  # constant speed along +x
    smp = build_samples(shifted_scenarios([s]), TINY.features)
    v = float(np.hypot(*s.agents.vel_xy[s.t0, 0]))
    t = torch.arange(1, 41) * 0.1
    torch.testing.assert_close(smp.expert[0, :, 0], (v * t).float(), atol=0.05, rtol=0)
    assert smp.expert[0, :, 1:].abs().max() < 0.05


def test_teacher_flags_the_candidate_that_drives_into_the_leader():
    s = make_scenario(num_agents=2, speed_mps=0.0, gap_m=12.0)  # a stopped car 12 m ahead, the ego stopped too
    s = dataclasses.replace(s, agents=dataclasses.replace(
        s.agents, vel_xy=np.zeros_like(s.agents.vel_xy)))
    t = torch.arange(1, 41, dtype=torch.float32) * 0.1
    stay = torch.zeros(40, 3)
    crash = torch.stack([8.0 * t, torch.zeros_like(t), torch.zeros_like(t)], -1)  # 32 m straight ahead in 4 s
    subs, scores = score_candidates(shifted_scenarios([s]), torch.stack([stay, crash]))
    assert subs.shape == (1, 2, 5) and scores.shape == (1, 2)
    assert subs[0, 0, 0] == 1.0 and subs[0, 1, 0] == 0.0  # NC
    assert scores[0, 1] == 0.0


def test_states_of_one_scenario_share_a_raster_without_changing_any_score(scenarios, monkeypatch):
    import worldengine_lab.training.samples as samples

    items = shifted_scenarios(scenarios[:3], (0.0, 1.0, 2.0, 3.0))  # four states per scenario, one map each
    t = torch.arange(1, 41, dtype=torch.float32) * 0.1
    cands = torch.stack([torch.stack([v * t, d * t, torch.zeros_like(t)], -1)
                         for v in (0.0, 4.0, 9.0) for d in (-0.5, 0.0, 0.5)])  # 9 straight-ish candidates
    built: list[float] = []
    real = samples.ScoringMap.recentered

    def counting(self, center_xy, config=None):
        built.append(config.radius_m)
        return real(self, center_xy, config)

    monkeypatch.setattr(samples.ScoringMap, "recentered", counting)
    shared = score_candidates(items, cands)
    num_shared = len(built)
    monkeypatch.setattr(samples, "RASTER_MARGIN_M", 0.0)  # no room: every state builds its own raster
    built.clear()
    own = score_candidates(items, cands)
    assert len(built) == len(items) and num_shared <= len(scenarios[:3]) < len(items)
    torch.testing.assert_close(shared[0], own[0], rtol=0, atol=0)
    torch.testing.assert_close(shared[1], own[1], rtol=0, atol=0)


def test_imitation_loss_prefers_the_right_entry():
    k = 4
    teacher = torch.ones(2, k, 5)
    good = torch.full((2, k), -5.0)
    good[:, 2] = 5.0
    loss_good, parts = imitation_loss(good, torch.full((2, k, 5), 6.0), torch.tensor([2, 2]), teacher)
    loss_bad, _ = imitation_loss(-good, torch.full((2, k, 5), -6.0), torch.tensor([2, 2]), teacher)
    assert loss_good < loss_bad
    assert set(parts) >= {"loss", "ce", "bce", "bce_nc", "bce_ep"}


def test_pretrain_writes_a_loadable_checkpoint_and_resumes(tmp_path, scenarios):
    run = tmp_path / "run"
    first = dataclasses.replace(TINY, max_minutes=0.0)  # stops after the first epoch, like a killed run
    path = pretrain(scenarios, run, first, progress=False)
    model, vocab, feats, extra = load_checkpoint(path)
    assert len(vocab) == TINY.vocab_size and feats == TINY.features and extra["kind"] == "imitation"
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    # the planner drives in the simulator
    planner = LearnedPlanner.from_checkpoint(path)
    ro = rollout(scenarios[0], planner, SimConfig(num_steps=10))
    assert np.isfinite(ro.ego_states).all()

    # the same folder with another config is refused; with the same config and no final model it resumes
    with pytest.raises(WorkspaceError, match="another config"):
        pretrain(scenarios, run, dataclasses.replace(TINY, epochs=3), progress=False)
    (run / "model.pt").unlink()
    (run / "config.json").write_text(json.dumps(TINY.to_dict()))
    pretrain(scenarios, run, TINY, progress=False)
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == TINY.epochs
    epochs = [json.loads(line).get("epoch") for line in (run / "metrics.jsonl").read_text().splitlines()
              if "val/loss" in line]
    assert epochs == [1, 2]
