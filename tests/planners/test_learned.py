"""The learned vocabulary-scoring planner: model outputs, selection, checkpoints, planning and a tiny overfit."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from worldengine_lab.errors import CorruptFileError, DataFormatError, MissingFileError, ShapeError
from worldengine_lab.planners import (FeatureConfig, LearnedPlanner, ModelConfig, Observation, Planner,
                                      ScorerOutput, SelectionWeights, TrajectoryVocabulary,
                                      VocabularyScorer, extract_features, load_checkpoint, save_checkpoint, select,
                                      selection_scores)
from worldengine_lab.sim import ClosedLoopEnv, SimConfig, rollout
from worldengine_lab.testing import make_scenario, make_straight_map

FEATURES = FeatureConfig(max_agents=8, history_steps=4, max_lanes=6, lane_points=10)


def _vocabulary() -> TrajectoryVocabulary:
    """32 constant-speed, constant-yaw-rate plans: 8 speeds (0 .. 14 m/s) x 4 yaw rates."""
    v, w = torch.meshgrid(torch.linspace(0.0, 14.0, 8, dtype=torch.float64),
                          torch.tensor([-0.2, -0.07, 0.07, 0.2], dtype=torch.float64), indexing="ij")
    v, w = v.reshape(-1, 1), w.reshape(-1, 1)
    t = torch.arange(1, 41, dtype=torch.float64) * 0.1
    yaw = w * t
    mid = yaw - 0.05 * w
    x, y = torch.cumsum(0.1 * v * torch.cos(mid), 1), torch.cumsum(0.1 * v * torch.sin(mid), 1)
    return TrajectoryVocabulary(torch.stack([x, y, yaw], -1))


def _model(vocab: TrajectoryVocabulary, seed: int = 0, **sizes) -> VocabularyScorer:
    torch.manual_seed(seed)
    sizes = {"d_model": 32, "heads": 2, "layers": 1, **sizes}
    return VocabularyScorer(ModelConfig.for_features(FEATURES, len(vocab), **sizes), vocab.trajectories)


def _observe(scenarios) -> Observation:
    env = ClosedLoopEnv(scenarios, SimConfig())
    return env.observe(env.reset())


def _scenes(n: int) -> list:
    """``n`` distinct scenes: different ego speeds, gaps, agent counts, lane counts and lane widths."""
    out = []
    for i in range(n):
        s = make_scenario(num_agents=1 + i % 4, speed_mps=2.0 + 1.5 * i, gap_m=10.0 + 3.0 * i, seed=i)
        m = make_straight_map(num_lanes=2 + i % 2, lane_width_m=3.0 + 0.2 * i)
        out.append(dataclasses.replace(s, scenario_id=f"scene-{i}", map=m))
    return out


def test_output_shapes_and_gradients() -> None:
    vocab = _vocabulary()
    model = _model(vocab)
    feats = extract_features(_observe(_scenes(3)), FEATURES)
    out = model(feats)
    assert isinstance(out, ScorerOutput)
    assert out.logits.shape == (3, 32) and out.subscore_logits.shape == (3, 32, 5)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.subscore_logits).all()
    (out.logits.logsumexp(-1).sum() + out.subscore_logits.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    # a scene without any agent or lane still has its ego token: finite outputs
    empty = dataclasses.replace(feats, agents_mask=torch.zeros_like(feats.agents_mask),
                                lanes_mask=torch.zeros_like(feats.lanes_mask))
    assert torch.isfinite(model.eval()(empty).logits).all()
    with pytest.raises(ShapeError, match="features.agents"):
        model(extract_features(_observe(_scenes(1)), dataclasses.replace(FEATURES, history_steps=3)))


def test_select_follows_the_weighted_score() -> None:
    logits = torch.tensor([[5.0, 0.0, 0.0, 0.0]])
    good = torch.full((1, 4, 5), 6.0)  # every sub-score ~1
    out = ScorerOutput(logits, good)
    assert select(out).tolist() == [0]  # the imitation term decides among equally safe candidates
    crash = good.clone()
    crash[0, 0, 0] = -30.0  # candidate 0 collides (NC ~ 0)
    assert select(ScorerOutput(logits, crash)).tolist() != [0]
    offroad = good.clone()
    offroad[0, 0, 1] = -30.0
    assert select(ScorerOutput(logits, offroad)).tolist() != [0]
    slow = good.clone()
    slow[0, :, 4] = torch.tensor([-10.0, -10.0, 10.0, -10.0])  # only candidate 2 makes progress
    assert select(ScorerOutput(logits, slow)).tolist() == [2]
    imitation_only = SelectionWeights(imitation=1.0, nc=0.0, dac=0.0, score=0.0)
    assert select(ScorerOutput(logits, crash), imitation_only).tolist() == [0]
    # the score is finite even for extreme logits, and batched over scenes
    extreme = ScorerOutput(torch.zeros(2, 4), torch.full((2, 4, 5), -1e4))
    assert torch.isfinite(selection_scores(extreme)).all() and select(extreme).shape == (2,)
    with pytest.raises(ShapeError, match="subscore_logits"):
        select(ScorerOutput(logits, good[..., :4]))


def test_checkpoint_round_trip_is_exact_and_weights_only(tmp_path, monkeypatch) -> None:
    vocab = _vocabulary()
    model = _model(vocab)
    feats = extract_features(_observe(_scenes(2)), FEATURES)
    extra = {"epoch": 3, "metrics": {"top1": 0.5}, "tags": ["a", "b"], "note": None}
    path = save_checkpoint(tmp_path / "ckpts" / "run1.pt", model, vocab, FEATURES, extra)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    back, vocab2, fcfg, extra2 = load_checkpoint(path)
    assert calls and all(c.get("weights_only") is True for c in calls)
    assert fcfg == FEATURES and extra2 == extra and back.config == model.config and not back.training
    assert torch.equal(vocab2.trajectories, vocab.trajectories)
    model.eval()
    with torch.no_grad():
        a, b = model(feats), back(feats)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.subscore_logits, b.subscore_logits)
    planner = LearnedPlanner.from_checkpoint(path)
    assert planner.planner_id == "learned:run1"
    assert LearnedPlanner.from_checkpoint(path, planner_id="mine").planner_id == "mine"


def test_checkpoint_errors(tmp_path) -> None:
    vocab = _vocabulary()
    model = _model(vocab)
    with pytest.raises(DataFormatError, match=r"extra\)\['t'\].*Tensor"):
        save_checkpoint(tmp_path / "x.pt", model, vocab, FEATURES, {"t": torch.zeros(1)})
    with pytest.raises(ShapeError, match="4 candidates"):
        save_checkpoint(tmp_path / "x.pt", model, TrajectoryVocabulary(vocab.trajectories[:4]), FEATURES)
    with pytest.raises(ShapeError, match="candidates differ"):
        save_checkpoint(tmp_path / "x.pt", model, TrajectoryVocabulary(vocab.trajectories + 1.0), FEATURES)
    with pytest.raises(MissingFileError, match="nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CorruptFileError, match="garbage.pt"):
        load_checkpoint(garbage)
    good = save_checkpoint(tmp_path / "good.pt", model, vocab, FEATURES)
    data = torch.load(good, weights_only=True)
    cases = {
        "version.pt": (dict(data, format_version=7), "format_version 1, received 7"),
        "keys.pt": ({k: v for k, v in data.items() if k != "state_dict"}, "expected a dict with keys"),
        "weights.pt": (dict(data, state_dict={k: v[..., :1] for k, v in data["state_dict"].items()}), "size mismatch"),
        "vocab.pt": (dict(data, vocabulary=dict(data["vocabulary"], trajectories=torch.zeros(32, 40, 2))),
                     r"\[32, 40, 2\]"),
        "config.pt": (dict(data, model_config=dict(data["model_config"], colour="red")), "unknown keys"),
    }
    for name, (payload, message) in cases.items():
        torch.save(payload, tmp_path / name)
        with pytest.raises(CorruptFileError, match=f"{name}.*{message}"):
            load_checkpoint(tmp_path / name)


def test_planner_plans_the_selected_vocabulary_entry() -> None:
    vocab = _vocabulary()
    model = _model(vocab, seed=1).train()
    planner = LearnedPlanner(model, vocab, FEATURES)
    assert isinstance(planner, Planner) and planner.planner_id == "learned"
    obs = _observe(_scenes(3))
    plan = planner.plan(obs)
    assert plan.shape == (3, 40, 3) and plan.dtype == obs.dtype and torch.isfinite(plan).all()
    assert model.training  # the caller's mode is restored
    with torch.no_grad():
        chosen = select(model.eval()(extract_features(obs, FEATURES)))
    torch.testing.assert_close(plan, vocab.trajectories[chosen].double(), rtol=0, atol=0)
    top = planner.top_k(obs, k=5)
    assert top.indices.shape == (3, 5) and top.subscores.shape == (3, 5, 5)
    assert torch.equal(top.indices[:, 0], chosen)
    assert bool((top.scores[:, 1:] <= top.scores[:, :-1]).all())
    assert bool(((top.policy > 0) & (top.policy <= 1)).all() and ((top.subscores >= 0) & (top.subscores <= 1)).all())
    with pytest.raises(DataFormatError, match="top_k"):
        planner.top_k(obs, k=33)
    with pytest.raises(ShapeError, match="history_steps"):
        LearnedPlanner(model, vocab, FeatureConfig(history_steps=9))
    r = rollout(_scenes(1)[0], planner, SimConfig(num_steps=10))  # drives in the closed loop
    assert r.plans.shape[1:] == (40, 3)


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread (and do not fight other processes for the cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_tiny_overfit_reaches_full_top1_accuracy(one_thread) -> None:
    vocab = _vocabulary()
    model = _model(vocab, seed=0, d_model=64, heads=4)
    feats = extract_features(_observe(_scenes(10)), FEATURES)
    labels = torch.tensor([3, 30, 7, 12, 25, 0, 19, 14, 9, 22])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(model(feats).logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if float(loss.detach()) < 0.02:
            break
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(feats).logits.argmax(-1), labels)
    # imitation-only selection then drives exactly the labelled entries
    planner = LearnedPlanner(model, vocab, FEATURES, SelectionWeights(imitation=1.0, nc=0.0, dac=0.0, score=0.0))
    torch.testing.assert_close(planner.plan(_observe(_scenes(10))).float(), vocab.trajectories[labels])


def test_model_config_round_trip_and_errors() -> None:
    cfg = ModelConfig.for_features(FEATURES, 32, d_model=48, heads=3)
    assert cfg.history_steps == 4 and cfg.lane_points == 10
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(DataFormatError, match="divisor"):
        ModelConfig(d_model=30, heads=4)
    with pytest.raises(ShapeError, match="vocab_size=32"):
        VocabularyScorer(ModelConfig(vocab_size=32), torch.zeros(16, 40, 3))
    assert math.isclose(SelectionWeights().score, 8.0)
