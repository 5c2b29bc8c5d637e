"""RL post-training: the loss on a hand-made example, LoRA, and a short end-to-end run that resumes."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from worldengine_lab.errors import DataFormatError, ShapeError, WorkspaceError
from worldengine_lab.planners.features import FeatureConfig
from worldengine_lab.planners.learned import LearnedPlanner, load_checkpoint
from worldengine_lab.sim import SimConfig
from worldengine_lab.testing import make_scenario
from worldengine_lab.training.imitation import ImitationConfig, pretrain
from worldengine_lab.training.lora import add_lora, merge_lora
from worldengine_lab.training.rl import PostTrainConfig, PostTrainData, collect_rollout_states, posttrain, rl_loss

LN2 = math.log(2.0)


def _example(use_ratio: bool = True):
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    logp_base = torch.log(torch.tensor([[0.25, 0.5, 0.25]]))  # ratio pi / pi_base = (2, 0.5, 1)
    rewards = torch.tensor([[1.0, 0.0, 0.5]])
    teacher = torch.tensor([[[1.0, 1.0, 0.0, 1.0, 0.0]] * 3])
    sub_logits = torch.zeros(1, 3, 5)  # sigmoid 0.5: BCE = ln 2 for any 0/1 target
    return logits, sub_logits, rewards, teacher, logp_base, torch.tensor([use_ratio]), torch.tensor([0]), \
        torch.tensor([True])


def test_rl_loss_equals_the_hand_computation():
    loss, parts = rl_loss(*_example())
    pg = -(2.0 * 1.0 * math.log(0.5) + 0.0 + 1.0 * 0.5 * math.log(0.25)) / 3  # -mean_i w_i R_i log pi_i
    entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    bce = LN2 * (3 + 3 + 2 + 1 + 1)
    ce = -(0.8 + 0.2 / 3) * math.log(0.5) - (0.2 / 3) * 2 * math.log(0.25)  # label smoothing 0.2
    assert parts["pg"] == pytest.approx(pg, abs=1e-6) and pg == pytest.approx(0.693147, abs=1e-6)
    assert parts["entropy"] == pytest.approx(entropy, abs=1e-6)
    assert parts["bce"] == pytest.approx(bce, abs=1e-5)
    assert parts["ce"] == pytest.approx(ce, abs=1e-6)
    assert float(loss) == pytest.approx(pg - 0.01 * entropy + bce + ce, abs=1e-5)
    assert float(loss) == pytest.approx(8.399788, abs=1e-5)


def test_failure_states_use_unit_weights_and_ratios_are_clipped():
    _, parts = rl_loss(*_example(use_ratio=False))
    assert parts["pg"] == pytest.approx(-(math.log(0.5) + 0.5 * math.log(0.25)) / 3, abs=1e-6)
    args = list(_example())
    args[4] = torch.log(torch.tensor([[1e-6, 0.5, 0.5]]))  # pi / pi_base = 5e5 for the first candidate -> 10
    _, parts = rl_loss(*args)
    assert parts["ratio_mean"] == pytest.approx((10.0 + 0.5 + 0.5) / 3, abs=1e-5)
    args = list(_example())
    args[7] = torch.tensor([False])  # masked imitation: no CE term at all
    loss, parts = rl_loss(*args)
    assert parts["ce"] == 0.0


def test_policy_gradient_moves_probability_towards_rewarded_candidates():
    logits = torch.zeros(1, 3, requires_grad=True)
    cfg = PostTrainConfig(entropy_weight=0.0, bce_weight=0.0, imitation_weight=0.0)
    loss, _ = rl_loss(logits, torch.zeros(1, 3, 5), torch.tensor([[1.0, 0.0, 0.2]]), torch.zeros(1, 3, 5),
                      torch.log(torch.full((1, 3), 1 / 3)), torch.tensor([True]), torch.tensor([0]),
                      torch.tensor([False]), cfg)
    loss.backward()
    g = -logits.grad[0]  # descent direction
    assert g[0] > g[2] > g[1]


def test_lora_starts_at_the_base_and_merges_exactly():
    torch.manual_seed(0)
    net = torch.nn.Sequential()
    net.add_module("ffn", torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)))
    x = torch.randn(5, 4)
    before = net(x).detach()
    params = add_lora(net, modules=("ffn",), rank=2, alpha=4.0)
    assert len(params) == 4 and all(p.requires_grad for p in params)
    assert not any(p.requires_grad for n, p in net.named_parameters() if "lora_" not in n)
    torch.testing.assert_close(net(x), before)
    with torch.no_grad():
        for p in params:
            p.add_(0.1)
    adapted = net(x).detach()
    assert not torch.allclose(adapted, before)
    merge_lora(net)
    assert not any("lora_" in n for n, _ in net.named_parameters())
    torch.testing.assert_close(net(x), adapted, atol=1e-6, rtol=1e-5)
    with pytest.raises(ShapeError, match="not a sub-module"):
        add_lora(net, modules=("nope",))


TINY = ImitationConfig(vocab_size=8, offsets_s=(0.0, 1.0), epochs=2, batch_size=8, val_fraction=0.2, d_model=32,
                       layers=1, heads=2, features=FeatureConfig(max_agents=4, max_lanes=4, lane_points=8))
SIM = SimConfig(num_steps=40, replan_period_s=0.5, tracking="perfect", agents="log_replay")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    scenarios = [make_scenario(num_agents=3, speed_mps=4.0 + i, gap_m=15.0 + 2 * i, seed=i) for i in range(6)]
    path = pretrain(scenarios, tmp_path_factory.mktemp("base"), TINY, progress=False)
    return scenarios, path


def test_rollout_states_are_the_states_the_policy_visited(base):
    scenarios, path = base
    planner = LearnedPlanner.from_checkpoint(path)
    items, ego, feats, expert, episodes = collect_rollout_states(scenarios[:2], planner, SIM, planner.feature_config)
    assert len(items) == ego.shape[0] == feats.batch_size == expert.shape[0] == 2 * 8  # 4 s at 2 Hz
    assert [round(off, 6) for _, off in items[::2]] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert list(episodes["scenario_id"]) == [s.scenario_id for s in scenarios[:2]]
    # at "now" the simulated ego is the logged one, so the expert's future starts at the origin of its frame
    assert float(expert[0, 0, 0]) == pytest.approx(float(scenarios[0].agents.vel_xy[21, 0, 0]) * 0.1, abs=0.15)


def test_posttrain_runs_resumes_and_writes_a_plain_checkpoint(tmp_path, base):
    scenarios, path = base
    data = PostTrainData(rare=scenarios[:3], common=scenarios[3:])
    cfg = PostTrainConfig(iterations=2, epochs_per_iteration=2, batch_size=4, sim=SIM, max_minutes=0.0)
    run = tmp_path / "rl"
    out = posttrain(data, path, run, cfg, progress=False)  # the budget stops it after one iteration
    assert torch.load(run / "last.pt", weights_only=True)["iteration"] == 1
    model, vocab, feats, extra = load_checkpoint(out)
    assert extra["kind"] == "posttrain" and extra["recipe"] == "rl_rare_rollouts"
    assert not any("lora_" in k for k in model.state_dict())  # adapters merged
    base_model, *_ = load_checkpoint(path)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, base_model.state_dict()[k])]
    assert changed and all(k.startswith(("ffn.", "head.")) for k in changed)  # LoRA touches only the head

    # resuming continues the same step counter and metric curve
    steps_before = torch.load(run / "last.pt", weights_only=True)["step"]
    out.unlink()
    with pytest.raises(WorkspaceError, match="another config"):
        posttrain(data, path, run, dataclasses.replace(cfg, lr=1.0), progress=False)
    cfg_json = json.loads((run / "config.json").read_text())
    cfg_json["config"]["max_minutes"] = None
    (run / "config.json").write_text(json.dumps(cfg_json))
    posttrain(data, path, run, dataclasses.replace(cfg, max_minutes=None), progress=False)
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["iteration"] == 2 and state["step"] == 2 * steps_before
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)


def test_bad_recipe_and_missing_data_are_named(base):
    scenarios, path = base
    with pytest.raises(DataFormatError, match="recipe"):
        PostTrainConfig(recipe="ppo").validate()
    with pytest.raises(ShapeError, match="variants"):
        posttrain(PostTrainData(rare=scenarios), path, "/nonexistent-never-created",
                  PostTrainConfig(recipe="rl_rare_rollouts_bwm"), progress=False)
