"""``bench train``: the throughput of RL post-training's three stages, on a small self-contained setup.

Setup (``setup_s``, not in the figures; it includes one warm-up rollout and scoring): ``num_scenarios`` hand-made straight-road scenarios
(:func:`~worldengine_lab.testing.make_scenario`, 3 agents, speeds 3-13 m/s, 10 s of log at 10 Hz), a trajectory
vocabulary of ``vocab_size`` constant-speed, constant-curvature 4-s plans, and a freshly initialised
vocabulary scorer of the imitation defaults' size (d_model 96, 2 layers) saved as a checkpoint in a temporary
folder and loaded back as post-training loads its base. The weights are untrained: the figures measure cost,
which does not depend on them.

Then, as one post-training iteration does (:func:`~worldengine_lab.training.rl.posttrain`, World Engine's
closed loop: 4-s episodes, replanning at 2 Hz, perfect tracking, log-replay agents):

1. **collect**: closed-loop rollouts of the planner on every scenario, recording the states it visits
   (:func:`~worldengine_lab.training.rl.collect_rollout_states`: 8 states per scenario);
2. **label**: the dense reward: every vocabulary candidate rolled out from every visited state and PDM-scored
   (:func:`~worldengine_lab.training.samples.score_candidates`), plus the nearest entry to the logged expert;
3. **optimise**: LoRA adapters on the planning head, AdamW steps of ``batch_size`` states on the RL loss
   (:func:`~worldengine_lab.training.rl.rl_loss`: forward, loss, backward, clip, step).

Figures:
    rl_states_per_s: visited states collected and labelled per second (stages 1 + 2).
    candidates_scored_per_s: candidates rolled out and scored per second (stage 2 alone).
    rl_steps_per_s: optimiser steps per second (stage 3; per-state candidate geometry excluded, see geometry_s).
    collect_s / label_s / geometry_s / optimise_s: the timed seconds behind them.
    num_scenarios, num_states, vocab_size, batch_size, num_steps; reward_mean as a sanity check.
"""
from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["bench_train"]

logger = logging.getLogger(__name__)

_SEED = 0


def _vocabulary(size: int) -> Any:
    """``size`` constant-speed, constant-curvature plans (a speed x curvature grid), ego body frame."""
    import torch

    from ..planners.vocabulary import TrajectoryVocabulary

    n_k = max(1, int(round(math.sqrt(size))))
    n_v = -(-size // n_k)
    speeds = torch.linspace(0.0, 15.0, n_v, dtype=torch.float64)  # m/s
    curvatures = torch.linspace(-0.08, 0.08, n_k, dtype=torch.float64)  # 1/m
    v, k = (g.reshape(-1)[:size] for g in torch.meshgrid(speeds, curvatures, indexing="ij"))
    t = torch.arange(1, 41, dtype=torch.float64) * 0.1  # [40] s
    s = v[:, None] * t[None]  # [K, 40] arc length, m
    yaw = k[:, None] * s
    safe = torch.where(k.abs() < 1e-9, torch.ones_like(k), k)[:, None]
    x = torch.where(k[:, None].abs() < 1e-9, s, torch.sin(yaw) / safe)
    y = torch.where(k[:, None].abs() < 1e-9, torch.zeros_like(s), (1.0 - torch.cos(yaw)) / safe)
    return TrajectoryVocabulary(torch.stack([x, y, yaw], -1).float())


def _setup(folder: Path, num_scenarios: int, vocab_size: int) -> tuple[list[Any], Path]:
    """The scenarios and the checkpoint path (see the module docstring)."""
    import torch

    from ..planners.features import FeatureConfig
    from ..planners.learned import ModelConfig, VocabularyScorer, save_checkpoint
    from ..testing import make_scenario

    scenarios = [make_scenario(num_agents=3, speed_mps=3.0 + (10.0 * i) / max(1, num_scenarios - 1),
                               gap_m=12.0 + 3.0 * (i % 5), seed=i) for i in range(num_scenarios)]
    vocab = _vocabulary(vocab_size)
    features = FeatureConfig()
    torch.manual_seed(_SEED)
    model = VocabularyScorer(ModelConfig.for_features(features, len(vocab), d_model=96, layers=2, heads=4),
                             vocab.trajectories)
    path = save_checkpoint(folder / "base.pt", model, vocab, features, extra={"kind": "bench"})
    return scenarios, path


def bench_train(quick: bool = False, num_scenarios: int | None = None, vocab_size: int | None = None,
                batch_size: int = 32, num_steps: int | None = None) -> dict[str, Any]:
    """Time one post-training iteration's stages on a small setup; see the module docstring for the figures.

    Args:
        quick: 2 scenarios, 64 candidates and 5 steps instead of 8 scenarios, 256 candidates and 20 steps.
        num_scenarios: scenarios rolled out (8 visited states each).
        vocab_size: K, candidates per state (the default planner's is 256).
        batch_size: states per optimiser step.
        num_steps: optimiser steps timed.
    """
    import torch
    import torch.nn.functional as F

    from ..errors import WorldEngineLabError
    from ..planners.candidate_geometry import candidate_geometry
    from ..planners.learned import LearnedPlanner, load_checkpoint
    from ..training.lora import add_lora
    from ..training.rl import PostTrainConfig, collect_rollout_states, rl_loss
    from ..training.samples import score_candidates

    n = num_scenarios or (2 if quick else 8)
    k = vocab_size or (64 if quick else 256)
    steps = num_steps or (5 if quick else 20)
    if min(n, k, batch_size, steps) < 1:
        raise WorldEngineLabError(f"bench_train: expected num_scenarios, vocab_size, batch_size and num_steps >= 1, "
                                  f"received {n}, {k}, {batch_size}, {steps}")
    cfg = PostTrainConfig(seed=_SEED)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="wel-bench-train-") as tmp:
        t = time.perf_counter()
        scenarios, path = _setup(Path(tmp), n, k)
        model, vocab, features, _ = load_checkpoint(path)
        planner = LearnedPlanner(model, vocab, features)
        with torch.no_grad():  # warm-up: first calls pay one-off costs (allocator, lazy imports)
            warm, warm_ego, *_ = collect_rollout_states(scenarios[:1], planner, cfg.sim, features, seed=_SEED)
        score_candidates(warm[:2], vocab.trajectories, tracking=cfg.reward_tracking, ego_states=warm_ego[:2])
        out["setup_s"] = round(time.perf_counter() - t, 3)

        t = time.perf_counter()
        with torch.no_grad():
            items, ego, feats, expert, _ = collect_rollout_states(scenarios, planner, cfg.sim, features, seed=_SEED)
        collect_s = time.perf_counter() - t
        t = time.perf_counter()
        subscores, rewards = score_candidates(items, vocab.trajectories, tracking=cfg.reward_tracking,
                                              ego_states=ego)
        label = vocab.nearest(expert)
        label_s = time.perf_counter() - t
        num_states = len(items)
        logger.info("bench train: %d states collected in %.2f s, labelled in %.2f s", num_states, collect_s, label_s)

        t = time.perf_counter()
        geometry = candidate_geometry(feats, vocab.trajectories, chunk=64)
        with torch.no_grad():
            logp_base = F.log_softmax(model(feats, geometry).logits, -1)
        geometry_s = time.perf_counter() - t
        params = add_lora(model, rank=cfg.lora_rank, alpha=cfg.lora_alpha)
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        model.train()
        gen = torch.Generator().manual_seed(_SEED)
        use_ratio = torch.ones(num_states, dtype=torch.bool)
        ce_mask = torch.ones(num_states, dtype=torch.bool)
        t = time.perf_counter()
        for _ in range(steps):
            rows = torch.randint(0, num_states, (min(batch_size, num_states),), generator=gen)
            res = model(feats.index(rows), geometry[rows])
            loss, _ = rl_loss(res.logits, res.subscore_logits, rewards[rows], subscores[rows], logp_base[rows],
                              use_ratio[rows], label[rows], ce_mask[rows], cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
        optimise_s = time.perf_counter() - t

    out.update({
        "rl_states_per_s": round(num_states / (collect_s + label_s), 3),
        "candidates_scored_per_s": round(num_states * k / label_s, 1),
        "rl_steps_per_s": round(steps / optimise_s, 3),
        "collect_s": round(collect_s, 3), "label_s": round(label_s, 3), "geometry_s": round(geometry_s, 3),
        "optimise_s": round(optimise_s, 3),
        "num_scenarios": n, "num_states": num_states, "vocab_size": k, "batch_size": batch_size, "num_steps": steps,
        "reward_mean": round(float(rewards.mean()), 4),
    })
    return out
