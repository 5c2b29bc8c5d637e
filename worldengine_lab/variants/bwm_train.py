"""Training of the behaviour world model (denoising with independent per-agent noise levels).

One step: for every scene draw a clean share ``p ~ U(0, p_clean_max)``; each agent token is clean (time 0, read as
a condition) with probability ``p`` (the ego with at least ``ego_clean``), else gets its own time ``t ~ U{1..K}``
and is noised ``x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps``. The loss is the mean squared error of the predicted
``x0`` over the real waypoints of the noised tokens. Features of the whole training set are built once
(:func:`build_dataset`), so an epoch is pure tensor work.

The default :class:`BWMTrainConfig` is sized for the embedded world's ``pretrain`` split on 2 CPU cores within
10 minutes (``max_minutes`` stops after the step that passes the budget). Measured on the default embedded world
(48 logs, 800 ``pretrain`` windows read at 3 "now" offsets = 2,400 scenes, ~18k agent futures): the 40 epochs
(3,000 steps) took 313 s of training with 2 torch threads on 2 cores (5 min 40 s for the whole
``worldengine-lab variants train-bwm`` command, reading the windows and building features included); on the
same machine shared with another job and 1 torch thread, the 9-minute cap stopped it after 2,308 steps.

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> cfg = BWMTrainConfig(model=BWMConfig(d_model=32, num_layers=1, pair_dim=8), epochs=2, batch_size=2)
    >>> res = train_bwm([make_scenario(num_agents=3, seed=i) for i in range(4)], cfg)
    >>> len(res.losses) == res.num_steps > 0
    True
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from ..datatypes import Scenario
from ..errors import ShapeError
from .bwm_features import BWMBatch, BWMFeatureConfig, pack_scenes
from .bwm_model import BehaviourWorldModel, BWMConfig, model_hash, save_bwm

__all__ = ["BWMTrainConfig", "BWMTrainResult", "build_dataset", "train_bwm", "denoising_loss"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BWMTrainConfig:
    """How the behaviour world model is trained."""

    model: BWMConfig = field(default_factory=BWMConfig)
    """Network, diffusion and feature settings."""
    epochs: int = 40
    """Passes over the training scenes (``max_minutes`` may stop earlier)."""
    batch_size: int = 32
    """Scenes per step."""
    lr: float = 1e-3
    """AdamW learning rate (cosine decay to 5 % over the planned steps or the time budget, whichever is
    shorter)."""
    weight_decay: float = 1e-2
    """AdamW weight decay."""
    p_clean_max: float = 0.9
    """Per scene the clean share is drawn from U(0, p_clean_max)."""
    ego_clean: float = 0.5
    """The ego is clean with at least this probability (at sampling it is always a condition)."""
    t0_offsets: tuple[int, ...] = (0, 5, 10)
    """Each window is also read with "now" this many steps earlier (more futures from the same logs)."""
    max_minutes: float | None = 9.0
    """Stop after the step that passes this wall-clock budget (None: run every epoch)."""
    seed: int = 0
    """Seed of initialisation, shuffling, noise levels and noise."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


@dataclass
class BWMTrainResult:
    """What :func:`train_bwm` returns.

    Attributes:
        model: the trained model (eval mode). losses: loss per step. epoch_losses: mean loss per epoch.
        val_loss: mean loss on the validation scenes (None without them). seconds: training wall clock (features
        excluded). feature_seconds: building the features. num_scenes / num_tokens / num_steps: data and steps.
        checkpoint: the written file (None without ``out``). model_hash: :func:`~.bwm_model.model_hash`.
    """

    model: BehaviourWorldModel
    losses: list[float]
    epoch_losses: list[float]
    val_loss: float | None
    seconds: float
    feature_seconds: float
    num_scenes: int
    num_tokens: int
    num_steps: int
    checkpoint: Path | None
    model_hash: str

    def summary(self) -> dict[str, Any]:
        """Plain-data summary (what the checkpoint's ``extra`` keeps)."""
        return {"train_s": round(self.seconds, 1), "feature_s": round(self.feature_seconds, 1),
                "num_scenes": self.num_scenes, "num_tokens": self.num_tokens, "num_steps": self.num_steps,
                "first_loss": self.losses[0] if self.losses else None,
                "final_loss": self.epoch_losses[-1] if self.epoch_losses else None, "val_loss": self.val_loss,
                "model_hash": self.model_hash}


def build_dataset(scenarios: Sequence[Scenario], config: BWMFeatureConfig = BWMFeatureConfig(),
                  t0_offsets: Sequence[int] = (0,), chunk: int = 64, progress: bool = False) -> BWMBatch:
    """Features of every scenario read at each "now" offset (offsets that leave too little history are
    skipped), concatenated into one :class:`BWMBatch`."""
    items = []
    for s in scenarios:  # cheap re-windowing, no copies of the map
        for off in t0_offsets:
            if off == 0:
                items.append(s)
            elif s.t0 - off >= 1:
                items.append(s.window(0, s.num_steps, t0=s.t0 - int(off)))
    if not items:
        raise ShapeError("build_dataset(scenarios): expected at least one scenario, received none")
    parts = [pack_scenes(items[i:i + chunk], config)
             for i in tqdm(range(0, len(items), chunk), desc="bwm features", disable=not progress, leave=False)]
    return BWMBatch.cat(parts)


def _scale(data: BWMBatch) -> torch.Tensor:
    """``[W, 2]`` root-mean-square residual to constant velocity per waypoint and axis (m), at least 0.1 m."""
    res = (data.future - data.cv) * data.future_valid[..., None]
    cnt = data.future_valid.sum((0, 1)).clamp(min=1)[:, None]
    return (res.square().sum((0, 1)) / cnt).sqrt().clamp(min=0.1)


def denoising_loss(model: BehaviourWorldModel, batch: BWMBatch, gen: torch.Generator, p_clean_max: float = 0.9,
                   ego_clean: float = 0.5) -> torch.Tensor:
    """Masked x0 mean squared error of one batch with independent per-token times (see the module docstring)."""
    b, n, w, _ = batch.future.shape
    k = model.config.diffusion_steps
    x0 = model.encode(batch.future, batch.cv) * batch.future_valid[..., None]
    p = torch.rand(b, 1, generator=gen) * p_clean_max
    u = torch.rand(b, n, generator=gen)
    clean = u < p
    clean[:, 0] |= u[:, 0] < max(ego_clean, 0.0)
    t = torch.where(clean, torch.zeros(b, n, dtype=torch.long), torch.randint(1, k + 1, (b, n), generator=gen))
    ab = model.alpha_bar[t][..., None, None]
    eps = torch.randn(x0.shape, generator=gen)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    known = torch.where(clean[..., None], batch.future_valid, torch.ones_like(batch.future_valid))
    pred = model(x_t, t, known, model.context(batch))
    mask = (batch.future_valid & (~clean & batch.token_valid)[..., None]).float()
    return ((pred - x0).square().sum(-1) * mask).sum() / mask.sum().clamp(min=1.0)


def train_bwm(scenarios: Sequence[Scenario], config: BWMTrainConfig = BWMTrainConfig(),
              out: str | os.PathLike[str] | None = None, val_scenarios: Sequence[Scenario] | None = None,
              progress: bool = False) -> BWMTrainResult:
    """Train a behaviour world model on ``scenarios``; write the checkpoint to ``out`` when given.

    Raises:
        ShapeError: no scenario, or no agent with a future to learn from.
    """
    t_feat = time.perf_counter()
    fc = config.model.features
    data = build_dataset(scenarios, fc, config.t0_offsets, progress=progress)
    val = build_dataset(val_scenarios, fc, (0,)) if val_scenarios else None
    feature_s = time.perf_counter() - t_feat
    num_tokens = int((data.future_valid.any(-1) & data.token_valid).sum())
    if num_tokens == 0:
        raise ShapeError("train_bwm(scenarios): expected agents observed after now, found none; pass scenarios "
                         "with a future (e.g. the embedded world's pretrain split)")
    torch.manual_seed(config.seed)
    model = BehaviourWorldModel(config.model)
    model.scale.copy_(_scale(data))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    m = data.batch_size
    per_epoch = max(1, math.ceil(m / config.batch_size))
    total = per_epoch * config.epochs
    budget = None if config.max_minutes is None else 60.0 * config.max_minutes
    losses: list[float] = []
    epoch_losses: list[float] = []
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc="bwm train", disable=not progress, leave=False)
    stop = False
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(m, generator=gen)
        ep: list[float] = []
        for i in range(per_epoch):
            batch = data.index(order[i * config.batch_size:(i + 1) * config.batch_size])
            # cosine decay over the planned steps or the time budget, whichever runs out first
            done = len(losses) + len(ep)
            frac = max(done / total, (time.perf_counter() - t0) / budget if budget else 0.0)
            for group in opt.param_groups:
                group["lr"] = config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
            loss = denoising_loss(model, batch, gen, config.p_clean_max, config.ego_clean)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ep.append(float(loss.detach()))
            bar.update(1)
            if budget is not None and time.perf_counter() - t0 > budget:
                stop = True
                break
        losses += ep
        epoch_losses.append(sum(ep) / len(ep))
        logger.info("bwm epoch %d: loss %.4f (%.0f s)", epoch, epoch_losses[-1], time.perf_counter() - t0)
        if stop:
            logger.info("bwm training stopped by max_minutes = %s after %d epochs", config.max_minutes, epoch + 1)
            break
    bar.close()
    seconds = time.perf_counter() - t0
    model.eval()
    val_loss = None
    if val is not None:
        with torch.no_grad():
            g = torch.Generator().manual_seed(12345)
            parts = [float(denoising_loss(model, val.index(slice(i, i + 64)), g, config.p_clean_max,
                                          config.ego_clean)) for i in range(0, val.batch_size, 64)]
        val_loss = sum(parts) / len(parts)
    h = model_hash(model)
    res = BWMTrainResult(model=model, losses=losses, epoch_losses=epoch_losses, val_loss=val_loss, seconds=seconds,
                         feature_seconds=feature_s, num_scenes=len(scenarios), num_tokens=num_tokens,
                         num_steps=len(losses), checkpoint=None, model_hash=h)
    if out is not None:
        res.checkpoint = save_bwm(out, model, extra={"train": res.summary(), "train_config": config.to_dict(),
                                                     "torch_threads": torch.get_num_threads()})
        logger.info("bwm checkpoint %s (hash %s)", res.checkpoint, h)
    return res
