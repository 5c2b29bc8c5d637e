"""RL post-training of the vocabulary-scoring planner — World Engine's recipe, in one file.

A contextual bandit at every visited state (spec/post-training.md): no value function, no returns, no PPO.

1. **States.** Closed-loop rollouts of the *current* policy on the training scenarios (mined failures, their
   variants) give the states the planner itself visits; ``"logs"`` recipes use logged states instead. A replay
   share of common logged states keeps what the planner could already do.
2. **Reward.** At each state every vocabulary candidate is rolled out from the state (perfect tracking, as the
   closed loop executes plans) and PDM-scored against the logged agents: ``R [N, K]`` in [0, 1], with the
   sub-scores ``[N, K, 5]`` as distillation targets.
3. **Loss** per state, over candidates i (:func:`rl_loss`):
   ``pg · (−mean_i w_i R_i log π_i) + entropy · (−H(π)) + bce · Σ_j w_j BCE(sub_j) + imitation · CE``
   with ``w_i = stopgrad(π_i / π_base,i)`` clipped at ``ratio_clip`` (π_base: the frozen policy at the start of
   post-training; w = 1 on failure and synthetic states, as World Engine does) and the imitation cross-entropy
   masked off where the expert's nearest entry scores ≤ ``imitation_mask_threshold``, on synthetic states and on
   real failures.
4. **Parameters.** LoRA adapters on the planning head (``finetune="lora"``, the R2SE specialist idea; merged
   into the checkpoint at the end) or full fine-tuning.

Recipes (:data:`RECIPES`) reproduce the rows of World Engine's results table. Runs are resumable: ``last.pt`` is
written after every iteration (with a sha256 sidecar; the one before is kept as ``last.pt.prev`` and used when the
newest is damaged) and a re-run continues the same step counter and metric curve.

Deviation, stated: World Engine ships PG weight 0.01 and entropy weight 1.0 for 8,192 candidates and camera
features; with 256 candidates and vectorised features those weights flatten π to uniform, so our defaults are
PG 1.0, entropy 0.01 and sub-score distillation 1.0 (all configurable).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..artifacts import atomic_write_bytes, utc_now_iso
from ..datatypes import Scenario
from ..errors import DataFormatError, ShapeError, WorkspaceError
from ..planners.base import PLAN_NUM_POSES, Observation
from ..planners.candidate_geometry import candidate_geometry
from ..planners.features import FeatureConfig, SceneFeatures, extract_features
from ..planners.learned import LearnedPlanner, VocabularyScorer, load_checkpoint, save_checkpoint, select
from ..sim.config import SimConfig
from ..sim.poses import global_to_body
from ..sim.rollout import rollout
from ..sim.scene_batch import ego_states_from_log
from ..sim.state import X, Y, YAW
from ..tensor_files import load_training_state, save_training_state
from .imitation import SUBSCORE_LOSS_WEIGHTS, _Logger, imitation_loss
from .lora import add_lora, merge_lora
from .samples import build_samples, score_candidates, shifted_scenarios

__all__ = ["Recipe", "RECIPES", "PostTrainConfig", "PostTrainData", "VisitedStates", "rl_loss", "collect_rollout_states",
           "posttrain"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """One row of World Engine's table.

    Attributes:
        objective: ``"rl"`` (the loss above) or ``"sft"`` (imitation CE + sub-score BCE, unmasked).
        states: ``"rollouts"`` (closed-loop states of the current policy) or ``"logs"`` (logged states).
        data: which scenarios: ``"rare"`` (mined failures), ``"common"``, or ``"variants"`` (synthetic only).
        variants: add the failures' generated variants to ``rare`` data.
        replay: mix in common logged states (share set by ``PostTrainConfig.replay_fraction``).
    """

    objective: Literal["rl", "sft"]
    states: Literal["rollouts", "logs"]
    data: Literal["rare", "common", "variants"]
    variants: bool = False
    replay: bool = True


RECIPES: dict[str, Recipe] = {
    "sft_rare_logs": Recipe("sft", "logs", "rare", replay=False),
    "rl_common_logs": Recipe("rl", "logs", "common", replay=False),
    "rl_rare_logs": Recipe("rl", "logs", "rare"),
    "rl_rare_synthetic_replays": Recipe("rl", "logs", "variants"),
    "rl_rare_rollouts": Recipe("rl", "rollouts", "rare"),
    "rl_rare_rollouts_bwm": Recipe("rl", "rollouts", "rare", variants=True),
}
"""World Engine's post-training recipes by name (the last is its full recipe)."""


@dataclass(frozen=True)
class PostTrainConfig:
    """Settings of a post-training run (saved as ``config.json`` in the run folder).

    Attributes:
        recipe: a key of :data:`RECIPES`.
        iterations: collect states with the current policy, then train on them; repeated this many times.
        epochs_per_iteration: passes over each iteration's states.
        batch_size / lr / weight_decay: AdamW; cosine decay over the whole run.
        finetune: ``"lora"`` (adapters on the planning head, merged at the end) or ``"full"``.
        lora_rank / lora_alpha: adapter size and scale.
        pg_weight / entropy_weight / bce_weight / imitation_weight: loss weights (module docstring).
        ratio_clip: upper clip of the importance weight π/π_base.
        imitation_mask_threshold: CE only where the expert's nearest entry scores above this.
        label_smoothing: of the imitation CE.
        replay_fraction: common logged states mixed in, as a share of the recipe's own states.
        log_offsets_s: logged states per window for ``"logs"`` recipes and replay (s after "now").
        reward_tracking: how candidates are executed for the reward (``"perfect"`` = the closed loop's rule).
        sim: closed-loop settings of the state-collecting rollouts (World Engine: 4 s, 2 Hz, perfect tracking).
        seed: seeds sampling, adapters and batch order.
        max_minutes: stop after the iteration that crosses this wall time; None for no limit.
    """

    recipe: str = "rl_rare_rollouts"
    iterations: int = 4
    epochs_per_iteration: int = 2
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.0
    finetune: Literal["lora", "full"] = "lora"
    lora_rank: int = 16
    lora_alpha: float = 16.0
    pg_weight: float = 1.0
    entropy_weight: float = 0.01
    bce_weight: float = 1.0
    imitation_weight: float = 1.0
    ratio_clip: float = 10.0
    imitation_mask_threshold: float = 0.8
    label_smoothing: float = 0.2
    replay_fraction: float = 0.25
    log_offsets_s: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)
    reward_tracking: Literal["lqr", "perfect"] = "perfect"
    sim: SimConfig = SimConfig(num_steps=40, replan_period_s=0.5, tracking="perfect", agents="log_replay")
    seed: int = 0
    max_minutes: float | None = None

    def validate(self) -> None:
        """Raise DataFormatError naming the first bad field."""
        if self.recipe not in RECIPES:
            raise DataFormatError(f"PostTrainConfig.recipe: expected one of {sorted(RECIPES)}, received {self.recipe!r}")
        for name in ("iterations", "epochs_per_iteration", "batch_size", "lora_rank"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise DataFormatError(f"PostTrainConfig.{name}: expected an int >= 1, received {v!r}")
        if self.finetune not in ("lora", "full"):
            raise DataFormatError(f"PostTrainConfig.finetune: expected 'lora' or 'full', received {self.finetune!r}")
        if not (self.lr > 0 and self.ratio_clip >= 1 and 0 <= self.replay_fraction <= 4):
            raise DataFormatError("PostTrainConfig: expected lr > 0, ratio_clip >= 1 and replay_fraction in [0, 4], "
                                  f"received {self.lr}, {self.ratio_clip}, {self.replay_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the simulator config as its repr'd fields)."""
        d = asdict(self)
        d["sim"] = {k: repr(v) if isinstance(v, torch.dtype) else v for k, v in asdict(self.sim).items()}
        return json.loads(json.dumps(d, default=str))


@dataclass(frozen=True, eq=False)
class PostTrainData:
    """The scenarios of a run.

    Attributes:
        rare: mined failure scenarios (real logs).
        common: ordinary scenarios for replay (and the ``rl_common_logs`` recipe).
        variants: synthetic variants of the failures (parametric edits or behaviour-model samples).
    """

    rare: Sequence[Scenario] = ()
    common: Sequence[Scenario] = ()
    variants: Sequence[Scenario] = ()


class VisitedStates(NamedTuple):
    """N states with everything the loss needs (CPU tensors).

    Attributes:
        scenario_ids: N source scenario ids.
        features: the planner's input at each state.
        rewards: ``[N, K]`` PDM score of every candidate from the state.
        teacher: ``[N, K, 5]`` NC, DAC, TTC, C, EP of every candidate.
        label: ``[N]`` int64 vocabulary entry nearest the logged expert's future (body frame at the state).
        ce_mask: ``[N]`` bool, imitation CE applies.
        use_ratio: ``[N]`` bool, importance weight π/π_base applies (False: w = 1).
    """

    scenario_ids: tuple[str, ...]
    features: SceneFeatures
    rewards: torch.Tensor
    teacher: torch.Tensor
    label: torch.Tensor
    ce_mask: torch.Tensor
    use_ratio: torch.Tensor


# ------------------------------------------------------------------------------------------------------- loss
def rl_loss(logits: torch.Tensor, subscore_logits: torch.Tensor, rewards: torch.Tensor, teacher: torch.Tensor,
            logp_base: torch.Tensor, use_ratio: torch.Tensor, label: torch.Tensor, ce_mask: torch.Tensor,
            config: PostTrainConfig = PostTrainConfig()) -> tuple[torch.Tensor, dict[str, float]]:
    """World Engine's post-training loss for B states and K candidates.

    Args:
        logits: ``[B, K]`` imitation logits; subscore_logits: ``[B, K, 5]``.
        rewards: ``[B, K]`` in [0, 1]; teacher: ``[B, K, 5]`` sub-scores in [0, 1].
        logp_base: ``[B, K]`` log π of the frozen base policy.
        use_ratio: ``[B]`` bool; label: ``[B]`` int64; ce_mask: ``[B]`` bool.
    Returns:
        the scalar loss and its parts (floats) for logging.
    """
    c = config
    logp = F.log_softmax(logits, dim=-1)
    ratio = torch.exp(logp.detach() - logp_base).clamp(max=c.ratio_clip)
    w = torch.where(use_ratio[:, None], ratio, torch.ones_like(ratio))
    pg = -(w * rewards * logp).mean(-1).mean()
    entropy = -(logp.exp() * logp).sum(-1).mean()
    weights = subscore_logits.new_tensor(SUBSCORE_LOSS_WEIGHTS)
    bce_parts = F.binary_cross_entropy_with_logits(subscore_logits, teacher, reduction="none").mean((0, 1))
    bce = (weights * bce_parts).sum()
    ce_all = F.cross_entropy(logits, label, label_smoothing=c.label_smoothing, reduction="none")
    m = ce_mask.to(ce_all.dtype)
    ce = (ce_all * m).sum() / m.sum().clamp(min=1.0)
    loss = c.pg_weight * pg - c.entropy_weight * entropy + c.bce_weight * bce + c.imitation_weight * ce
    parts = {"loss": float(loss.detach()), "pg": float(pg.detach()), "entropy": float(entropy.detach()),
             "bce": float(bce.detach()), "ce": float(ce.detach()), "ce_share": float(m.mean()),
             "ratio_mean": float(w.mean())}
    return loss, parts


def sft_loss(logits: torch.Tensor, subscore_logits: torch.Tensor, teacher: torch.Tensor, label: torch.Tensor,
             config: PostTrainConfig = PostTrainConfig()) -> tuple[torch.Tensor, dict[str, float]]:
    """Supervised fine-tuning: the pre-training loss (imitation CE, unmasked, + weighted sub-score BCE)."""
    return imitation_loss(logits, subscore_logits, label, teacher, config.label_smoothing, config.bce_weight)


# ------------------------------------------------------------------------------------------------ states
class _Recorder:
    """Wraps a planner and keeps the features it was shown at each replanning step."""

    def __init__(self, planner: LearnedPlanner, feature_config: FeatureConfig) -> None:
        self.planner, self.feature_config = planner, feature_config
        self.features: list[SceneFeatures] = []
        self.planner_id = getattr(planner, "planner_id", "learned")

    def plan(self, obs: Observation) -> torch.Tensor:
        self.features.append(extract_features(obs, self.feature_config))
        return self.planner.plan(obs)


def collect_rollout_states(scenarios: Sequence[Scenario], planner: LearnedPlanner, sim: SimConfig,
                           feature_config: FeatureConfig, seed: int = 0, batch_size: int = 32
                           ) -> tuple[list[tuple[Scenario, float]], torch.Tensor, SceneFeatures, torch.Tensor,
                                      pd.DataFrame]:
    """Roll ``planner`` out in closed loop and return the states it visited at its replanning steps.

    Returns:
        items: ``(scenario re-anchored at the state, seconds after "now")`` per state;
        ego: ``[N, D]`` float64 simulated ego states (local frame);
        features: what the planner saw;
        expert: ``[N, 40, 3]`` the logged expert's next 4 s in the body frame of the simulated ego;
        episodes: one closed-loop row per scenario (success, failure type; :func:`~worldengine_lab.mining.evaluate.score_rollout`).
    """
    from ..mining.evaluate import score_rollout  # mining depends on training's peers, not the reverse at import

    items: list[tuple[Scenario, float]] = []
    egos, feats, experts, rows = [], [], [], []
    every = sim.replan_every
    for i in range(0, len(scenarios), batch_size):
        chunk = list(scenarios[i : i + batch_size])
        rec = _Recorder(planner, feature_config)
        outs = rollout(chunk, rec, sim, seed=seed)
        rows.extend(score_rollout(r, s) for r, s in zip(outs, chunk))
        for j, f in enumerate(rec.features):  # replanning steps (8 per 4-s episode)
            k = j * every
            keep = []
            for b, (s, r) in enumerate(zip(chunk, outs)):  # per scenario bookkeeping of the chunk
                t = s.t0 + k
                if t + PLAN_NUM_POSES >= s.num_steps:
                    continue
                keep.append(b)
                items.append((dataclasses.replace(s, t0=t), k * s.dt))
                ego = torch.from_numpy(np.array(r.ego_states[t], np.float64))
                egos.append(ego)
                future = torch.as_tensor(ego_states_from_log(s)[t + 1 : t + 1 + PLAN_NUM_POSES, :3])
                experts.append(global_to_body(future[None], ego[None, [X, Y, YAW]])[0].float())
            if keep:
                feats.append(f.index(torch.tensor(keep)))
    if not items:
        raise ShapeError("collect_rollout_states: no visited state has 4 s of log after it; use windows with >= 8 s "
                         "of future")
    return items, torch.stack(egos), SceneFeatures.cat(feats), torch.stack(experts), pd.DataFrame(rows)


def _label(items: list[tuple[Scenario, float]], ego: torch.Tensor | None, features: SceneFeatures,
           expert: torch.Tensor, planner: LearnedPlanner, cfg: PostTrainConfig, real_failure: bool,
           synthetic: bool) -> VisitedStates:
    rewards_sub, rewards = score_candidates(items, planner.vocabulary.trajectories, tracking=cfg.reward_tracking,
                                            ego_states=ego)
    label = planner.vocabulary.nearest(expert)
    expert_score = rewards.gather(1, label[:, None])[:, 0]
    n = len(items)
    ce_mask = (expert_score > cfg.imitation_mask_threshold) & torch.tensor(not (real_failure or synthetic)).expand(n)
    use_ratio = torch.tensor(not (real_failure or synthetic)).expand(n).clone()
    return VisitedStates(tuple(s.scenario_id for s, _ in items), features, rewards, rewards_sub, label, ce_mask,
                         use_ratio)


def _logged(scenarios: Sequence[Scenario], planner: LearnedPlanner, cfg: PostTrainConfig, real_failure: bool,
            synthetic: bool) -> VisitedStates | None:
    items = shifted_scenarios(scenarios, cfg.log_offsets_s)
    if not items:
        return None
    samples = build_samples(items, planner.feature_config)
    return _label(items, None, samples.features, samples.expert, planner, cfg, real_failure, synthetic)


def _cat(parts: list[VisitedStates]) -> VisitedStates:
    return VisitedStates(sum((p.scenario_ids for p in parts), ()), SceneFeatures.cat([p.features for p in parts]),
                         *(torch.cat([getattr(p, f) for p in parts]) for f in VisitedStates._fields[2:]))


def _take(states: VisitedStates, rows: torch.Tensor) -> VisitedStates:
    return VisitedStates(tuple(states.scenario_ids[int(i)] for i in rows), states.features.index(rows),
                         *(getattr(states, f)[rows] for f in VisitedStates._fields[2:]))


@torch.no_grad()
def _selected_reward(model: VocabularyScorer, states: VisitedStates, geometry: torch.Tensor,
                     planner: LearnedPlanner) -> float:
    """Mean reward of the candidate the selection rule picks at each state (in eval mode)."""
    was = model.training
    model.eval()
    out = model(states.features, geometry)
    model.train(was)
    return float(states.rewards.gather(1, select(out, planner.weights)[:, None]).mean())


# -------------------------------------------------------------------------------------------------- the run
def _check_data(data: PostTrainData, recipe: Recipe) -> None:
    need = {"rare": data.rare, "common": data.common, "variants": data.variants}[recipe.data]
    if not need:
        raise ShapeError(f"posttrain: the recipe needs {recipe.data!r} scenarios and PostTrainData.{recipe.data} is "
                         "empty; mine failures first (worldengine-lab mine) or pick another recipe")
    if recipe.variants and not data.variants:
        raise ShapeError("posttrain: the recipe adds behaviour-model variants and PostTrainData.variants is empty; "
                         "generate variants first (worldengine-lab variants generate)")


def _model(base: Path, cfg: PostTrainConfig) -> tuple[VocabularyScorer, VocabularyScorer, LearnedPlanner, list]:
    model, vocab, feature_config, _ = load_checkpoint(base)
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    if cfg.finetune == "lora":
        torch.manual_seed(cfg.seed)
        params = add_lora(model, rank=cfg.lora_rank, alpha=cfg.lora_alpha)
    else:
        params = list(model.parameters())
    return model, frozen, LearnedPlanner(model, vocab, feature_config), params


class _IterationLogger(_Logger):
    """``metrics.jsonl`` writer that also keeps the latest value of every key logged in the current iteration."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.latest: dict[str, float] = {}

    def log(self, step: int, values: dict[str, float], **extra: Any) -> None:
        self.latest.update(values)
        super().log(step, values, **extra)


def posttrain(data: PostTrainData, base_checkpoint: str | os.PathLike[str], run_dir: str | os.PathLike[str],
              config: PostTrainConfig = PostTrainConfig(), progress: bool = True,
              on_iteration: Callable[[int, dict[str, float]], None] | None = None) -> Path:
    """Post-train the planner of ``base_checkpoint`` with ``config.recipe``; returns ``model.pt`` in ``run_dir``.

    Re-running with the same ``run_dir`` resumes after the last finished iteration (same config required) and
    returns at once when the run had finished. Metrics go to ``metrics.jsonl`` (``train/*`` per step,
    ``rollout/*`` and ``states/*`` per iteration).

    ``on_iteration(done, values)``, when given, runs after each finished iteration (its ``last.pt`` written) with
    the number of finished iterations and the latest value of every key logged in that iteration (plus
    ``step``, the optimiser steps so far); an exception it raises stops the run there (resumable).

    Raises:
        WorkspaceError: ``run_dir`` holds a run with another config or base checkpoint.
        ShapeError: the recipe's scenarios are missing.
    """
    cfg = config
    cfg.validate()
    recipe = RECIPES[cfg.recipe]
    _check_data(data, recipe)
    base = Path(base_checkpoint)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    meta = {"config": cfg.to_dict(), "base_checkpoint": str(base.resolve())}
    cfg_path = run / "config.json"
    if cfg_path.exists():
        if json.loads(cfg_path.read_text()) != json.loads(json.dumps(meta)):
            raise WorkspaceError(f"{run}: holds a run with another config or base ({cfg_path}); pick a new run folder "
                                 "or delete it to start over")
    else:
        atomic_write_bytes(cfg_path, json.dumps(meta, indent=2).encode())
    final = run / "model.pt"
    if final.exists():
        return final

    model, frozen, planner, params = _model(base, cfg)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_iter, step = 0, 0
    last = run / "last.pt"
    found = load_training_state(last, "post-training state", "delete it to restart the run")
    if found is not None:
        state, _ = found  # last.pt if intact (sha256 sidecar), else the one before it
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_iter, step = int(state["iteration"]), int(state["step"])
        logger.info("posttrain: resuming %s at iteration %d (step %d)", run, start_iter, step)

    primary = {"rare": list(data.rare) + (list(data.variants) if recipe.variants else []),
               "common": list(data.common), "variants": list(data.variants)}[recipe.data]
    synthetic_ids = {s.scenario_id for s in data.variants}
    log = _IterationLogger(run)
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    bar = tqdm(total=cfg.iterations, initial=start_iter, desc=f"posttrain {cfg.recipe}", unit="iter",
               disable=not progress)
    replay_cache: VisitedStates | None = None
    logged_cache: VisitedStates | None = None
    try:
        for it in range(start_iter, cfg.iterations):
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + it)
            model.eval()
            parts: list[VisitedStates] = []
            if recipe.states == "rollouts":
                real = [s for s in primary if s.scenario_id not in synthetic_ids]
                synth = [s for s in primary if s.scenario_id in synthetic_ids]
                for group, is_synth in ((real, False), (synth, True)):
                    if not group:
                        continue
                    with torch.no_grad():
                        items, ego, feats, expert, episodes = collect_rollout_states(
                            group, planner, cfg.sim, planner.feature_config, seed=cfg.seed + it)
                    parts.append(_label(items, ego, feats, expert, planner, cfg, real_failure=not is_synth,
                                        synthetic=is_synth))
                    tag = "synthetic" if is_synth else "real"
                    log.log(step, {f"rollout/{tag}_success": float(episodes["failure_type"].eq("none").mean()),
                                   f"rollout/{tag}_scenarios": float(len(group))}, iteration=it)
            else:
                if logged_cache is None:
                    logged_cache = _logged(primary, planner, cfg, real_failure=recipe.data == "rare",
                                           synthetic=recipe.data == "variants")
                parts.append(logged_cache)
            own = sum(len(p.scenario_ids) for p in parts)
            if recipe.replay and cfg.replay_fraction > 0 and data.common:
                if replay_cache is None:
                    replay_cache = _logged(data.common, planner, cfg, real_failure=False, synthetic=False)
                if replay_cache is not None:
                    n = min(len(replay_cache.scenario_ids), max(1, int(round(cfg.replay_fraction * own))))
                    parts.append(_take(replay_cache, torch.randperm(len(replay_cache.scenario_ids), generator=gen)[:n]))
            states = _cat(parts)
            geometry = candidate_geometry(states.features, planner.vocabulary.trajectories, chunk=64)
            with torch.no_grad():
                base_out = frozen(states.features, geometry)
                logp_base = F.log_softmax(base_out.logits, -1)
            n = len(states.scenario_ids)
            log.log(step, {"states/num": float(n), "states/reward_of_selected": _selected_reward(model, states, geometry, planner), "states/reward_mean": float(states.rewards.mean()),
                           "states/reward_oracle": float(states.rewards.max(-1).values.mean()),
                           "states/expert_reward": float(states.rewards.gather(1, states.label[:, None]).mean()),
                           "states/ce_share": float(states.ce_mask.float().mean())}, iteration=it)
            model.train()
            steps_per_epoch = math.ceil(n / cfg.batch_size)
            for epoch in range(cfg.epochs_per_iteration):
                order = torch.randperm(n, generator=gen)
                for i in range(steps_per_epoch):
                    rows = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                    progress_frac = (it + (epoch + i / steps_per_epoch) / cfg.epochs_per_iteration) / cfg.iterations
                    for g in opt.param_groups:
                        g["lr"] = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress_frac, 1.0)))
                    out = model(states.features.index(rows), geometry[rows])
                    if recipe.objective == "rl":
                        loss, lparts = rl_loss(out.logits, out.subscore_logits, states.rewards[rows],
                                               states.teacher[rows], logp_base[rows], states.use_ratio[rows],
                                               states.label[rows], states.ce_mask[rows], cfg)
                    else:
                        loss, lparts = sft_loss(out.logits, out.subscore_logits, states.teacher[rows],
                                                states.label[rows], cfg)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 5.0)
                    opt.step()
                    step += 1
                    if step % 10 == 0:
                        log.log(step, {**{f"train/{k}": v for k, v in lparts.items()},
                                       "lr": opt.param_groups[0]["lr"]}, iteration=it)
            model.eval()
            log.log(step, {"states/reward_of_selected": _selected_reward(model, states, geometry, planner)},
                    iteration=it + 1)
            save_training_state(last, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                       "iteration": it + 1, "step": step})
            bar.update(1)
            if on_iteration is not None:
                on_iteration(it + 1, {**log.latest, "step": float(step)})
            log.latest = {}
            if cfg.max_minutes is not None and time.perf_counter() - t_start > 60.0 * cfg.max_minutes:
                logger.warning("posttrain: stopping after iteration %d: the %.1f-minute budget is spent", it + 1,
                               cfg.max_minutes)
                break
    finally:
        bar.close()
        log.close()
    if cfg.finetune == "lora":
        merge_lora(model)
    model.eval()
    extra = {"kind": "posttrain", "recipe": cfg.recipe, "config": cfg.to_dict(), "base_checkpoint": str(base),
             "steps": step, "train_minutes": (time.perf_counter() - t_start) / 60.0, "finished_at": utc_now_iso()}
    save_checkpoint(final, model, planner.vocabulary, planner.feature_config, extra=json.loads(json.dumps(extra)))
    return final

