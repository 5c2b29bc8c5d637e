"""Imitation pre-training of the learned vocabulary planner (spec/post-training.md, "Pre-training").

One readable file, top to bottom:

1. **States.** The scenarios of a split (a seeded ``data_fraction`` of them), each seen at "now" and at a few
   later offsets; features, the logged 4-s future (the expert) — :mod:`.samples`.
2. **Vocabulary.** k-means over the expert futures in the ego frame (``vocab_size`` entries).
3. **Teacher.** Every vocabulary candidate of every state rolled out (LQR tracker + kinematic bicycle) and
   PDM-scored: NC, DAC, TTC, C, EP targets for the sub-score heads (Hydra-MDP's "PDM teacher").
4. **Loss.** Cross-entropy to the vocabulary entry nearest the expert (label smoothing 0.2) plus binary
   cross-entropy of the five sub-score heads against the teacher (weights NC 3, DAC 3, TTC 2, C 1, EP 1).
5. **Loop.** AdamW with a cosine schedule, seeded; a tqdm bar; metrics appended to ``metrics.jsonl`` (and
   TensorBoard event files when tensorboard is installed); ``last.pt`` (model, optimiser, schedule, epoch,
   RNG) after every epoch with a sha256 sidecar, the one before kept as ``last.pt.prev``, so a killed run resumes
   where it stopped and a damaged ``last.pt`` falls back one epoch; ``model.pt`` (a
   :func:`~worldengine_lab.planners.learned.save_checkpoint` file) at the end.

The run folder holds ``config.json``, ``samples.pt`` (states, vocabulary and teacher targets: built once,
reused on resume), ``metrics.jsonl``, ``last.pt`` and ``model.pt``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..artifacts import atomic_write_bytes, utc_now_iso
from ..datatypes import Scenario
from ..errors import CorruptFileError, ShapeError, WorkspaceError, WorldEngineLabError
from ..tensor_files import load_tensors, load_training_state, save_tensors, save_training_state
from ..planners.features import FeatureConfig
from ..planners.candidate_geometry import candidate_geometry
from ..planners.learned import ModelConfig, VocabularyScorer, save_checkpoint
from ..planners.vocabulary import TrajectoryVocabulary
from .samples import PlanningSamples, build_samples, score_candidates, shifted_scenarios

__all__ = ["ImitationConfig", "pretrain", "imitation_loss", "SUBSCORE_LOSS_WEIGHTS"]

logger = logging.getLogger(__name__)

SUBSCORE_LOSS_WEIGHTS = (3.0, 3.0, 2.0, 1.0, 1.0)
"""BCE weights of the NC, DAC, TTC, C, EP heads (World Engine's)."""


@dataclass(frozen=True)
class ImitationConfig:
    """Settings of an imitation run (saved as ``config.json`` in the run folder).

    Attributes:
        vocab_size: vocabulary entries (k-means clusters).
        offsets_s: states per window, s after "now" (each needs 4 s of log after it).
        data_fraction: share of the split's scenarios used (seeded), for data-scaling studies.
        epochs / batch_size / lr / weight_decay: optimisation (AdamW, cosine schedule to 0 over all steps).
        label_smoothing: of the imitation cross-entropy.
        subscore_weight: factor on the sum of the weighted sub-score BCE terms.
        teacher_tracking: how candidates are rolled out for the teacher (``"lqr"`` as NAVSIM, or ``"perfect"``).
        val_fraction: held-out share of states (by scenario) for validation metrics.
        seed: seeds the subset, the vocabulary, the initialisation and the batch order.
        d_model / layers / heads: model size.
        features: what the planner sees (:class:`FeatureConfig`).
        max_minutes: stop training after this wall time (the checkpoint of the last full epoch is kept); None
            for no limit.
    """

    vocab_size: int = 256
    offsets_s: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)
    data_fraction: float = 1.0
    epochs: int = 14
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.2
    subscore_weight: float = 1.0
    teacher_tracking: Literal["lqr", "perfect"] = "lqr"
    val_fraction: float = 0.05
    seed: int = 0
    d_model: int = 96
    layers: int = 2
    heads: int = 4
    features: FeatureConfig = FeatureConfig()
    max_minutes: float | None = None

    def validate(self) -> None:
        if not 0.0 < self.data_fraction <= 1.0:
            raise ShapeError(f"ImitationConfig.data_fraction: expected a share in (0, 1], received {self.data_fraction}")
        if self.epochs < 1 or self.batch_size < 1 or self.vocab_size < 2:
            raise ShapeError(f"ImitationConfig: expected epochs >= 1, batch_size >= 1, vocab_size >= 2, received "
                             f"{self.epochs}, {self.batch_size}, {self.vocab_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ShapeError(f"ImitationConfig.val_fraction: expected [0, 1), received {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["offsets_s"] = list(self.offsets_s)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "ImitationConfig":
        d = dict(d)
        d["offsets_s"] = tuple(d["offsets_s"])
        d["features"] = FeatureConfig.from_dict(d["features"])
        return ImitationConfig(**d)


# ------------------------------------------------------------------------------------------------ the loss
def imitation_loss(logits: torch.Tensor, subscore_logits: torch.Tensor, target: torch.Tensor,
                   teacher: torch.Tensor, label_smoothing: float = 0.2,
                   subscore_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy to the nearest vocabulary entry + weighted BCE of the sub-score heads.

    Args:
        logits: ``[B, K]``; subscore_logits: ``[B, K, 5]``; target: ``[B]`` int64 entry nearest the expert;
        teacher: ``[B, K, 5]`` sub-scores in [0, 1] (NC, DAC, TTC, C, EP).
    Returns:
        the scalar loss and its parts (floats) for logging.
    """
    ce = F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    w = subscore_logits.new_tensor(SUBSCORE_LOSS_WEIGHTS)
    bce = F.binary_cross_entropy_with_logits(subscore_logits, teacher, reduction="none").mean((0, 1))  # [5]
    sub = (w * bce).sum()
    loss = ce + subscore_weight * sub
    parts = {"loss": float(loss.detach()), "ce": float(ce.detach()), "bce": float(sub.detach())}
    parts.update({f"bce_{n}": float(v) for n, v in zip(("nc", "dac", "ttc", "c", "ep"), bce.detach())})
    return loss, parts


# ------------------------------------------------------------------------------------------------ the run
def _subset(scenarios: Sequence[Scenario], fraction: float, seed: int) -> list[Scenario]:
    n = max(1, int(round(len(scenarios) * fraction)))
    keep = np.sort(np.random.default_rng(seed).permutation(len(scenarios))[:n])
    return [scenarios[i] for i in keep]


def _prepare(run_dir: Path, scenarios: Sequence[Scenario], cfg: ImitationConfig,
             progress: bool) -> tuple[PlanningSamples, TrajectoryVocabulary, torch.Tensor]:
    """Samples, vocabulary and nearest-entry labels; cached in ``samples.pt``."""
    path = run_dir / "samples.pt"
    if path.exists():
        data = load_tensors(path, "samples cache", "delete it to rebuild")
        try:
            samples = PlanningSamples.from_dict(data["samples"])
            return samples, TrajectoryVocabulary.from_dict(data["vocabulary"]), data["labels"]
        except (KeyError, TypeError, WorldEngineLabError) as exc:
            raise CorruptFileError(f"{path}: not a samples cache ({type(exc).__name__}: {exc}); delete it to "
                                   "rebuild") from exc
    items = shifted_scenarios(_subset(scenarios, cfg.data_fraction, cfg.seed), cfg.offsets_s)
    if not items:
        raise ShapeError("pretrain: no state has 4 s of log after it; import windows with >= 4 s of future")
    t = time.perf_counter()
    samples = build_samples(items, cfg.features, progress=progress)
    vocab = TrajectoryVocabulary.fit(samples.expert, size=min(cfg.vocab_size, len(samples)), seed=cfg.seed)
    subs, scores = score_candidates(items, vocab.trajectories, tracking=cfg.teacher_tracking, progress=progress)
    samples = dataclasses.replace(samples, subscores=subs, scores=scores)
    labels = vocab.nearest(samples.expert)
    logger.info("pretrain: %d states, vocabulary %d, teacher built in %.1f s", len(samples), len(vocab),
                time.perf_counter() - t)
    save_tensors(path, {"samples": samples.to_dict(), "vocabulary": vocab.to_dict(), "labels": labels})
    return samples, vocab, labels


def _split(samples: PlanningSamples, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train / validation row indices, split by scenario so overlapping states never straddle the two."""
    ids = np.asarray(samples.scenario_ids)
    uniq = np.unique(ids)
    n_val = int(round(len(uniq) * fraction))
    val_ids = np.random.default_rng(seed + 1).permutation(uniq)[:n_val]
    is_val = np.isin(ids, val_ids)
    return torch.from_numpy(np.flatnonzero(~is_val)), torch.from_numpy(np.flatnonzero(is_val))


class _Logger:
    """metrics.jsonl (always) and TensorBoard (when installed)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"))
        except Exception:  # tensorboard is optional
            self.tb = None

    def log(self, step: int, values: dict[str, float], **extra: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "time": utc_now_iso(), **extra, **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


@torch.no_grad()
def _evaluate(model: VocabularyScorer, samples: PlanningSamples, labels: torch.Tensor, geometry: torch.Tensor,
              rows: torch.Tensor, cfg: ImitationConfig) -> dict[str, float]:
    if len(rows) == 0:
        return {}
    model.eval()
    out = model(samples.features.index(rows), geometry[rows])
    _, parts = imitation_loss(out.logits, out.subscore_logits, labels[rows], samples.subscores[rows],
                              cfg.label_smoothing, cfg.subscore_weight)
    top1 = (out.logits.argmax(-1) == labels[rows]).float().mean()
    chosen = out.logits.argmax(-1)
    teacher_score = samples.scores[rows].gather(1, chosen[:, None]).mean()
    model.train()
    return {**{f"val/{k}": v for k, v in parts.items()}, "val/top1": float(top1),
            "val/teacher_score_of_argmax": float(teacher_score)}


def pretrain(scenarios: Iterable[Scenario], run_dir: str | os.PathLike[str], config: ImitationConfig = ImitationConfig(),
             progress: bool = True) -> Path:
    """Imitation pre-training; returns the path of ``model.pt`` (load with
    :meth:`~worldengine_lab.planners.learned.LearnedPlanner.from_checkpoint`).

    Re-running with the same ``run_dir`` resumes from ``last.pt`` (same config required) and returns at once
    when the run had finished.

    Raises:
        WorkspaceError: ``run_dir`` holds a run with a different config.
    """
    cfg = config
    cfg.validate()
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    cfg_path = run / "config.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != json.loads(json.dumps(cfg.to_dict())):
            raise WorkspaceError(f"{run}: holds a run with another config ({cfg_path}); pick a new run folder or "
                                 "delete it to start over")
    else:
        atomic_write_bytes(cfg_path, json.dumps(cfg.to_dict(), indent=2).encode())
    final = run / "model.pt"
    if final.exists():
        return final

    torch.manual_seed(cfg.seed)
    samples, vocab, labels = _prepare(run, list(scenarios), cfg, progress)
    train_rows, val_rows = _split(samples, cfg.val_fraction, cfg.seed)
    # each candidate's geometry against its scene has no parameters: computed once per state, not per step
    geometry = candidate_geometry(samples.features, vocab.trajectories, chunk=64)
    model_cfg = ModelConfig.for_features(cfg.features, len(vocab), d_model=cfg.d_model, layers=cfg.layers,
                                         heads=cfg.heads)
    torch.manual_seed(cfg.seed)
    model = VocabularyScorer(model_cfg, vocab.trajectories)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_rows) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1.0 + math.cos(math.pi * min(i, steps_per_epoch * cfg.epochs) /
                                             (steps_per_epoch * cfg.epochs))))
    start_epoch = 0
    last = run / "last.pt"
    found = load_training_state(last, "training state", "delete it to restart the run")
    if found is not None:
        state, _ = found  # last.pt if intact (sha256 sidecar), else the one before it
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"])
        torch.set_rng_state(state["rng"])
        logger.info("pretrain: resuming %s at epoch %d", run, start_epoch)

    log = _Logger(run)
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    bar = tqdm(total=steps_per_epoch * cfg.epochs, initial=steps_per_epoch * start_epoch, desc="pretrain",
               unit="step", disable=not progress)
    model.train()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
            order = train_rows[torch.randperm(len(train_rows), generator=gen)]
            for i in range(steps_per_epoch):
                rows = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                out = model(samples.features.index(rows), geometry[rows])
                loss, parts = imitation_loss(out.logits, out.subscore_logits, labels[rows], samples.subscores[rows],
                                             cfg.label_smoothing, cfg.subscore_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                sched.step()
                step = epoch * steps_per_epoch + i + 1
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.3f}")
                if step % 10 == 0:
                    log.log(step, {**{f"train/{k}": v for k, v in parts.items()}, "lr": sched.get_last_lr()[0]},
                            epoch=epoch)
            val = _evaluate(model, samples, labels, geometry, val_rows, cfg)
            log.log((epoch + 1) * steps_per_epoch, val, epoch=epoch + 1)
            save_training_state(last, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "epoch": epoch + 1, "rng": torch.get_rng_state()})
            if cfg.max_minutes is not None and time.perf_counter() - t_start > 60.0 * cfg.max_minutes:
                logger.warning("pretrain: stopping after epoch %d: the %.1f-minute budget is spent", epoch + 1,
                               cfg.max_minutes)
                break
    finally:
        bar.close()
        log.close()
    model.eval()
    extra = {"kind": "imitation", "config": cfg.to_dict(), "num_states": len(samples),
             "num_train": int(len(train_rows)), "num_val": int(len(val_rows)),
             "train_minutes": (time.perf_counter() - t_start) / 60.0, "finished_at": utc_now_iso()}
    save_checkpoint(final, model, vocab, cfg.features, extra=json.loads(json.dumps(extra)))
    return final
