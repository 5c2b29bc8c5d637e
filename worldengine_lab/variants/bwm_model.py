"""The behaviour world model network: a small transformer denoiser over agent tokens with **per-token noise
levels** (decoupled diffusion, as in Nexus), its noise schedule and its checkpoint file.

Each token is one agent's whole future (W waypoints, own frame at now) as a residual to its constant-velocity
future, scaled per waypoint by the training set's spread (``x0 = (future - cv) / scale``). Every token carries its
own diffusion time ``t`` in ``0 .. K``; ``t = 0`` is a clean (known) token that the network reads as a condition.
Training draws an independent time per token and keeps a random share of tokens clean, so at sampling any subset
of agents can be held fixed while the others are generated.

A layer lets each agent attend to its M nearest map elements, then to the other agents with relative-pose
encodings (the pair features of :mod:`.bwm_features` add a bias per head to the attention logits and a term to
the values), then applies a feed-forward block. The head predicts ``x0`` for every token.

Checkpoints (:func:`save_bwm` / :func:`load_bwm`) hold ``{format, config, state_dict, extra}`` of plain data and
are read with ``torch.load(weights_only=True)``; :func:`model_hash` names a model by its config and weights.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CorruptFileError, DataFormatError
from ..tensor_files import load_tensors, save_tensors
from .bwm_features import HIST_DIM, MAP_DIM, PAIR_DIM, STATIC_DIM, BWMBatch, BWMFeatureConfig

__all__ = ["BWMConfig", "BehaviourWorldModel", "alpha_bars", "save_bwm", "load_bwm", "model_hash", "BWM_FORMAT"]

BWM_FORMAT = "worldengine_lab.bwm/1"
"""Format tag of behaviour world model checkpoints."""


@dataclass(frozen=True)
class BWMConfig:
    """Network and diffusion settings (saved with the checkpoint)."""

    features: BWMFeatureConfig = field(default_factory=BWMFeatureConfig)
    """Feature sizes (agents, history, horizon, waypoints, map elements)."""
    d_model: int = 128
    """Token width."""
    num_layers: int = 3
    """Map-attention + agent-attention + feed-forward blocks."""
    num_heads: int = 4
    """Attention heads."""
    pair_dim: int = 32
    """Width of the relative-pose pair encoding."""
    diffusion_steps: int = 100
    """K, discrete diffusion times of the cosine schedule (t = 0 is clean)."""
    sample_steps: int = 20
    """Reverse (DDIM) steps at sampling."""
    eta: float = 0.5
    """DDIM stochasticity: 0 is deterministic given the initial noise, 1 is DDPM-like."""
    x0_clip: float = 5.0
    """Predicted clean tokens are clipped to +-x0_clip (in units of the per-waypoint scale)."""
    dropout: float = 0.1
    """Dropout on the attention and feed-forward outputs while training."""

    def __post_init__(self) -> None:
        if self.d_model % self.num_heads:
            raise DataFormatError(f"BWMConfig.d_model: expected a multiple of num_heads = {self.num_heads}, "
                                  f"received {self.d_model}")
        if not (1 <= self.sample_steps <= self.diffusion_steps):
            raise DataFormatError(f"BWMConfig.sample_steps: expected 1 .. diffusion_steps = {self.diffusion_steps}, "
                                  f"received {self.sample_steps}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["features"] = self.features.to_dict()
        return d

    @staticmethod
    def from_dict(data: Any) -> "BWMConfig":
        if not isinstance(data, dict) or set(data) - {f.name for f in fields(BWMConfig)}:
            raise DataFormatError(f"BWMConfig.from_dict: expected a dict of its fields, received {data!r}")
        d = dict(data)
        d["features"] = BWMFeatureConfig.from_dict(d.get("features", {}))
        return BWMConfig(**d)


def alpha_bars(k: int) -> torch.Tensor:
    """``[K + 1]`` float64 cumulative signal shares of the cosine schedule; index 0 is exactly 1 (clean)."""
    s = 0.008
    t = torch.arange(k + 1, dtype=torch.float64) / k
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (f / f[0]).clamp(min=1e-4, max=1.0)


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.GELU(), nn.Linear(h, o))


def _time_embedding(t: torch.Tensor, k: int, dim: int = 64) -> torch.Tensor:
    """Sinusoidal embedding ``[..., dim]`` of integer times ``t [...]`` in ``0 .. k``."""
    half = dim // 2
    freq = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = (t.float() / k * 1000.0)[..., None] * freq
    return torch.cat([torch.sin(a), torch.cos(a)], -1)


class _Block(nn.Module):
    """Map cross-attention, relative agent self-attention, feed-forward (pre-norm residuals)."""

    def __init__(self, d: int, heads: int, pair_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.h, self.dh = heads, d // heads
        self.norm_map, self.q_map, self.out_map = nn.LayerNorm(d), nn.Linear(d, d), nn.Linear(d, d)
        self.norm_att, self.qkv, self.out_att = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.rel_bias, self.rel_val = nn.Linear(pair_dim, heads), nn.Linear(pair_dim, d)
        self.norm_ff, self.ff = nn.LayerNorm(d), _mlp(d, 4 * d, d)

    def forward(self, x: torch.Tensor, token_ok: torch.Tensor, pair: torch.Tensor, map_k: torch.Tensor,
                map_v: torch.Tensor, elem_ok: torch.Tensor) -> torch.Tensor:
        """``x [B, N, D]``, ``token_ok [B, N]``, ``pair [B, N, N, Dp]``, map keys and values ``[B, N, M, H, D/H]``
        (shared by the blocks), ``elem_ok [B, N, M]``."""
        b, n, d = x.shape
        h, dh = self.h, self.dh
        big = -1e9
        k, v = map_k, map_v
        # each agent attends to its own map elements
        q = self.q_map(self.norm_map(x)).view(b, n, h, dh)
        logits = torch.einsum("bnhd,bnmhd->bnhm", q, k) / math.sqrt(dh)
        logits = logits.masked_fill(~elem_ok[:, :, None, :], big)
        att = torch.softmax(logits, -1) * elem_ok.any(-1)[:, :, None, None]
        x = x + self.drop(self.out_map(torch.einsum("bnhm,bnmhd->bnhd", att, v).reshape(b, n, d)))
        # agents attend to each other with relative-pose encodings
        q, k, v = self.qkv(self.norm_att(x)).view(b, n, 3, h, dh).unbind(2)
        logits = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(dh) + self.rel_bias(pair).permute(0, 3, 1, 2)
        logits = logits.masked_fill(~token_ok[:, None, None, :], big)
        att = torch.softmax(logits, -1)
        vals = v[:, None] + self.rel_val(pair).view(b, n, n, h, dh)  # [B, i, j, H, dh]
        x = x + self.drop(self.out_att(torch.einsum("bhij,bijhd->bihd", att, vals).reshape(b, n, d)))
        return x + self.drop(self.ff(self.norm_ff(x)))


class BehaviourWorldModel(nn.Module):
    """Denoiser ``x0_hat = f(x_t, t, features)`` over agent tokens (see the module docstring).

    Buffers: ``scale [W, 2]`` m, the per-waypoint spread of the residual futures (set by training).
    """

    def __init__(self, config: BWMConfig = BWMConfig()) -> None:
        super().__init__()
        self.config = config
        fc = config.features
        d, w, p = config.d_model, fc.num_waypoints, fc.element_points
        self.hist_enc = _mlp(fc.history_steps * HIST_DIM, d, d)
        self.static_enc = nn.Linear(STATIC_DIM, d)
        self.fut_enc = _mlp(3 * w, d, d)
        self.time_enc = _mlp(64 + 1, d, d)
        self.elem_enc = _mlp(p * MAP_DIM, d // 2, d)
        self.map_kv = nn.Linear(d, 2 * d)
        self.pair_enc = _mlp(PAIR_DIM, config.pair_dim, config.pair_dim)
        self.blocks = nn.ModuleList([_Block(d, config.num_heads, config.pair_dim, config.dropout)
                                     for _ in range(config.num_layers)])
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * w))
        self.register_buffer("scale", torch.ones(w, 2))
        self.register_buffer("alpha_bar", alpha_bars(config.diffusion_steps).float())

    def context(self, batch: BWMBatch) -> dict[str, torch.Tensor]:
        """The parts of the input that do not change over the reverse steps (encoded once per sampling)."""
        b, n = batch.token_valid.shape
        m, h = batch.map.shape[2], self.config.num_heads
        elems = self.elem_enc(batch.map.reshape(b, n, m, -1))
        k, v = self.map_kv(elems).view(b, n, m, 2, h, -1).unbind(3)
        return {"cond": self.hist_enc(batch.hist.reshape(b, n, -1)) + self.static_enc(batch.static),
                "pair": self.pair_enc(batch.pair), "map_k": k.contiguous(), "map_v": v.contiguous(),
                "elem_ok": batch.map_valid, "token_ok": batch.token_valid}

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, known: torch.Tensor, ctx: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        """Predict clean tokens.

        Args:
            x_t: ``[B, N, W, 2]`` noisy (or, where ``t == 0``, clean) scaled residual futures.
            t: ``[B, N]`` int64 diffusion time per token (0 = clean).
            known: ``[B, N, W]`` bool, waypoints of clean tokens that are real (all True for noisy tokens).
            ctx: :meth:`context`.
        Returns:
            ``[B, N, W, 2]`` predicted ``x0``.
        """
        b, n, w, _ = x_t.shape
        k = self.config.diffusion_steps
        clean = (t == 0).float()[..., None]
        tok = torch.cat([x_t.reshape(b, n, 2 * w), known.float()], -1)
        x = ctx["cond"] + self.fut_enc(tok) + self.time_enc(torch.cat([_time_embedding(t, k), clean], -1))
        for blk in self.blocks:
            x = blk(x, ctx["token_ok"], ctx["pair"], ctx["map_k"], ctx["map_v"], ctx["elem_ok"])
        return self.head(x).view(b, n, w, 2)

    # scaled residual <-> own-frame metres
    def encode(self, future: torch.Tensor, cv: torch.Tensor) -> torch.Tensor:
        """Own-frame futures ``[..., W, 2]`` (m) -> scaled residuals."""
        return (future - cv) / self.scale

    def decode(self, x0: torch.Tensor, cv: torch.Tensor) -> torch.Tensor:
        """Scaled residuals ``[..., W, 2]`` -> own-frame futures (m)."""
        return x0 * self.scale + cv


def model_hash(model: BehaviourWorldModel) -> str:
    """First 16 hex digits of the sha256 of the config JSON and every tensor of the state dict (in order)."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


def save_bwm(path: str | os.PathLike[str], model: BehaviourWorldModel, extra: dict[str, Any] | None = None) -> Path:
    """Atomically write a checkpoint ``{format, config, state_dict, extra}`` (plain data); return the path."""
    obj = {"format": BWM_FORMAT, "config": model.config.to_dict(),
           "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
           "extra": dict(extra or {})}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_tensors(path, obj)


def load_bwm(path: str | os.PathLike[str]) -> tuple[BehaviourWorldModel, dict[str, Any]]:
    """Read a :func:`save_bwm` checkpoint with ``torch.load(weights_only=True)``; returns ``(model in eval mode,
    extra)``.

    Raises:
        MissingFileError: no file. CorruptFileError: not a behaviour world model checkpoint.
    """
    remedy = "train one with `worldengine-lab variants train-bwm`"
    obj = load_tensors(path, "behaviour world model checkpoint", remedy)
    if not isinstance(obj, dict) or obj.get("format") != BWM_FORMAT:
        got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CorruptFileError(f"behaviour world model checkpoint {str(path)!r}: expected format {BWM_FORMAT!r}, "
                               f"received {got!r}; {remedy}")
    model = BehaviourWorldModel(BWMConfig.from_dict(obj["config"]))
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise CorruptFileError(f"behaviour world model checkpoint {str(path)!r}: the weights do not fit its config "
                               f"({str(exc)[:200]}); {remedy}") from exc
    model.eval()
    return model, dict(obj.get("extra", {}))
