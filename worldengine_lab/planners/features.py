"""Vectorised scene features for learned planners: ego status, nearest agents and nearest lanes as tensors.

:func:`extract_features` turns an :class:`~worldengine_lab.planners.Observation` into :class:`SceneFeatures`,
batched over the B scenarios without Python loops. Everything is expressed in the ego rear-axle **body frame**
at the planning time (+x forward, +y left), and the ego features use only body-frame quantities of
``obs.ego_state`` (never its local-frame x, y, yaw), so the features do not change when the whole world is
rotated and translated.

Feature layout (the last axis; all values O(1), masked entries are exactly 0):

``ego [B, 6]`` (:data:`EGO_DIM`): vx / 10 m/s, vy / 10 m/s, ax / 3 m/s^2, ay / 3 m/s^2, yaw rate rad/s,
steering angle rad.

``agents [B, A, H, 17]`` (:data:`AGENT_DIM`), per agent and history step (oldest first, the last is now):
x / 50 m, y / 50 m, cos yaw, sin yaw, vx / 10 m/s, vy / 10 m/s, length / 5 m, width / 5 m, one-hot
:class:`~worldengine_lab.datatypes.AgentType` (8 codes), valid flag. Agents are the A nearest to the ego now
(box centre distance, within ``radius_m``, observed now, the ego itself excluded), nearest first.

``lanes [B, L, P, 12]`` (:data:`LANE_DIM`), per lane and resampled point: x / 50 m, y / 50 m, cos and sin of
the lane direction at the point, then per-lane values repeated at every point: on-route flag, speed limit /
20 m/s (0 where unknown), speed-limit-known flag, traffic light one-hot (none, green, yellow, red, unknown).
Lanes are the L nearest to the ego (distance from the rear axle to the centreline, within ``radius_m``),
nearest first; each is cropped to the arc-length window ``[s* - radius_m, s* + radius_m]`` around the ego's
projection ``s*`` and resampled to P points equally spaced in arc length.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import torch

from ..datatypes import AgentType, TrafficLightStatus
from ..errors import DataFormatError, ShapeError
from ..sim.state import AX, AY, STEER, VX, VY, YAW_RATE
from .base import Observation

__all__ = ["FeatureConfig", "SceneFeatures", "extract_features", "EGO_DIM", "AGENT_DIM", "LANE_DIM",
           "NUM_AGENT_TYPES", "NUM_LIGHT_STATES"]

POSITION_SCALE_M = 50.0
SPEED_SCALE_MPS = 10.0
ACCEL_SCALE_MPS2 = 3.0
SIZE_SCALE_M = 5.0
SPEED_LIMIT_SCALE_MPS = 20.0

NUM_AGENT_TYPES = len(AgentType)
"""One-hot width of the agent type (codes 0 .. 7)."""
NUM_LIGHT_STATES = len(TrafficLightStatus) + 1
"""One-hot width of the lane traffic light: none, then the :class:`TrafficLightStatus` codes 0 .. 3."""
EGO_DIM = 6
AGENT_DIM = 8 + NUM_AGENT_TYPES + 1
LANE_DIM = 4 + 3 + NUM_LIGHT_STATES


@dataclass(frozen=True)
class FeatureConfig:
    """How many agents, steps, lanes and points :func:`extract_features` keeps.

    Attributes:
        max_agents: A, agents kept (the nearest).
        history_steps: H, the most recent steps of the observation's agent history kept (older padding is
            invalid when the observation has fewer).
        max_lanes: L, lanes kept (the nearest).
        lane_points: P, points per resampled lane centreline.
        radius_m: agents and lanes farther than this from the ego rear axle are dropped; lanes are cropped to
            this arc length on either side of the ego's projection, m.
    """

    max_agents: int = 32
    history_steps: int = 5
    max_lanes: int = 32
    lane_points: int = 20
    radius_m: float = 60.0

    def __post_init__(self) -> None:
        for name, low in (("max_agents", 1), ("history_steps", 1), ("max_lanes", 1), ("lane_points", 2)):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= low):
                raise DataFormatError(f"FeatureConfig.{name}: expected an int >= {low}, received {v!r}")
        if not (isinstance(self.radius_m, (int, float)) and math.isfinite(self.radius_m) and self.radius_m > 0):
            raise DataFormatError(f"FeatureConfig.radius_m: expected a positive number of metres, received "
                                  f"{self.radius_m!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-like dict of the fields."""
        return asdict(self)

    @staticmethod
    def from_dict(data: Any) -> "FeatureConfig":
        """Inverse of :meth:`to_dict`; raises DataFormatError on a non-dict or unknown keys."""
        return _config_from_dict(FeatureConfig, data)


@dataclass
class SceneFeatures:
    """Model inputs for B scenes (float32 features, bool masks; layout in the module docstring).

    Attributes:
        ego: ``[B, 6]``.
        agents: ``[B, A, H, 17]``; agents_mask ``[B, A]`` bool, True for a real agent.
        lanes: ``[B, L, P, 12]``; lanes_mask ``[B, L]`` bool, True for a real lane.
    """

    ego: torch.Tensor
    agents: torch.Tensor
    agents_mask: torch.Tensor
    lanes: torch.Tensor
    lanes_mask: torch.Tensor

    @property
    def batch_size(self) -> int:
        """B."""
        return int(self.ego.shape[0])

    def to(self, device: torch.device | str) -> "SceneFeatures":
        """Copy to ``device``."""
        return SceneFeatures(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def index(self, rows: torch.Tensor | slice) -> "SceneFeatures":
        """The scenes ``rows`` (an index tensor or a slice) as a new batch."""
        return SceneFeatures(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @staticmethod
    def cat(parts: Sequence["SceneFeatures"]) -> "SceneFeatures":
        """Concatenate batches along B (all built with the same :class:`FeatureConfig`)."""
        if not parts:
            raise DataFormatError("SceneFeatures.cat(parts): expected at least one SceneFeatures, received none")
        return SceneFeatures(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(SceneFeatures)})


def extract_features(obs: Observation, config: FeatureConfig = FeatureConfig()) -> SceneFeatures:
    """:class:`SceneFeatures` of the B scenes of ``obs`` (see the module docstring for the layout).

    Computed in ``obs.dtype`` and returned as float32.

    Raises:
        ShapeError: the observation's agent or lane tensors have inconsistent shapes.
    """
    _check_obs(obs)
    agents, agents_mask = _agent_features(obs, config, obs.dtype)
    lanes, lanes_mask = _lane_features(obs, config, obs.dtype)
    return SceneFeatures(ego=_ego_features(obs.ego_state).float(), agents=agents.float(), agents_mask=agents_mask,
                         lanes=lanes.float(), lanes_mask=lanes_mask)


# ------------------------------------------------------------------------------------------------------- ego
def _ego_features(ego: torch.Tensor) -> torch.Tensor:
    """``[B, D]`` ego states -> ``[B, 6]`` frame-invariant ego features."""
    return torch.stack([ego[:, VX] / SPEED_SCALE_MPS, ego[:, VY] / SPEED_SCALE_MPS, ego[:, AX] / ACCEL_SCALE_MPS2,
                        ego[:, AY] / ACCEL_SCALE_MPS2, ego[:, YAW_RATE], ego[:, STEER]], dim=-1)


# ---------------------------------------------------------------------------------------------------- agents
def _agent_features(obs: Observation, cfg: FeatureConfig, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``agents [B, A, H, AGENT_DIM]`` and ``agents_mask [B, A]`` (layout: module docstring)."""
    b, h_obs, n = obs.agents_valid.shape
    a, h = cfg.max_agents, cfg.history_steps
    # the A nearest agents observed now (not the ego), within the radius
    dist = obs.agents_xy[:, -1].to(dtype).norm(dim=-1)  # [B, N] m
    ok = obs.agents_valid[:, -1].clone()
    ok[:, 0] = False
    ok &= dist <= cfg.radius_m
    dist = torch.where(ok, dist, torch.full_like(dist, math.inf))
    k = min(a, n)
    near, idx = torch.topk(dist, k, dim=1, largest=False, sorted=True)  # [B, k]
    mask = torch.isfinite(near)

    # last H steps of history, padded in front with invalid steps if the observation holds fewer
    hs = min(h, h_obs)

    def take(x: torch.Tensor) -> torch.Tensor:  # [B, H_obs, N, ...] -> [B, k, hs, ...]
        x = x[:, h_obs - hs:]
        g = idx.view(b, 1, k, *([1] * (x.ndim - 3))).expand(b, hs, k, *x.shape[3:])
        return torch.gather(x, 2, g).transpose(1, 2)

    xy = take(obs.agents_xy.to(dtype))
    yaw = take(obs.agents_yaw.to(dtype))
    vel = take(obs.agents_vel.to(dtype))
    valid = take(obs.agents_valid) & mask[:, :, None]  # [B, k, hs]
    size = torch.gather(obs.agents_size.to(dtype), 1, idx.unsqueeze(-1).expand(b, k, 3))  # [B, k, 3]
    atype = torch.gather(obs.agents_type, 1, idx).clamp(0, NUM_AGENT_TYPES - 1)  # [B, k]
    onehot = torch.nn.functional.one_hot(atype, NUM_AGENT_TYPES).to(dtype)  # [B, k, T]

    static = torch.cat([size[..., :2] / SIZE_SCALE_M, onehot], dim=-1).unsqueeze(2).expand(b, k, hs, -1)
    feats = torch.cat([xy / POSITION_SCALE_M, torch.cos(yaw).unsqueeze(-1), torch.sin(yaw).unsqueeze(-1),
                       vel / SPEED_SCALE_MPS, static, torch.ones_like(yaw).unsqueeze(-1)], dim=-1)
    feats = feats * valid.unsqueeze(-1).to(dtype)  # [B, k, hs, F]; invalid steps are all zero
    out = torch.zeros(b, a, h, AGENT_DIM, dtype=dtype)
    out[:, :k, h - hs:] = feats
    out_mask = torch.zeros(b, a, dtype=torch.bool)
    out_mask[:, :k] = mask
    return out, out_mask


# ----------------------------------------------------------------------------------------------------- lanes
def _lane_features(obs: Observation, cfg: FeatureConfig, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``lanes [B, L, P, LANE_DIM]`` and ``lanes_mask [B, L]`` (layout: module docstring)."""
    b, l_obs, kp = obs.lanes_valid.shape
    lm, p = cfg.max_lanes, cfg.lane_points
    xy = obs.lanes_xy.to(dtype)  # [B, Lo, K, 2]
    valid = obs.lanes_valid
    n_pts = valid.sum(-1)  # [B, Lo] valid points form a prefix
    present = n_pts >= 2
    if kp < 2:  # no lane has a segment
        return torch.zeros(b, lm, p, LANE_DIM, dtype=dtype), torch.zeros(b, lm, dtype=torch.bool)

    # segments, arc length and the ego's (origin's) projection onto every centreline
    a0, a1 = xy[..., :-1, :], xy[..., 1:, :]  # [B, Lo, K-1, 2]
    seg_ok = valid[..., 1:] & valid[..., :-1]
    seg = torch.where(seg_ok.unsqueeze(-1), a1 - a0, torch.zeros_like(a0))
    seg_len = seg.norm(dim=-1)  # [B, Lo, K-1], 0 for padding
    s_cum = torch.cat([torch.zeros_like(seg_len[..., :1]), torch.cumsum(seg_len, -1)], dim=-1)  # [B, Lo, K]
    length = s_cum[..., -1]
    t = (-(a0 * seg).sum(-1) / seg_len.square().clamp(min=1e-12)).clamp(0.0, 1.0)
    d = (a0 + t.unsqueeze(-1) * seg).norm(dim=-1)
    d = torch.where(seg_ok, d, torch.full_like(d, math.inf))
    dist, j = d.min(dim=-1)  # [B, Lo]
    s_near = torch.gather(s_cum[..., :-1] + t * seg_len, -1, j.unsqueeze(-1)).squeeze(-1)

    # the L nearest lanes within the radius, nearest first
    dist = torch.where(present & (dist <= cfg.radius_m), dist, torch.full_like(dist, math.inf))
    k = min(lm, l_obs)
    near, idx = torch.topk(dist, k, dim=1, largest=False, sorted=True)  # [B, k]
    mask = torch.isfinite(near)

    def take(x: torch.Tensor) -> torch.Tensor:  # [B, Lo, ...] -> [B, k, ...]
        g = idx.view(b, k, *([1] * (x.ndim - 2))).expand(b, k, *x.shape[2:])
        return torch.gather(x, 1, g)

    xy_k, seg_k, len_k, cum_k = take(xy), take(seg), take(seg_len), take(s_cum)
    n_k = take(n_pts)
    s_mid = take(s_near)
    s_lo = (s_mid - cfg.radius_m).clamp(min=0.0)
    s_hi = torch.minimum(s_mid + cfg.radius_m, take(length))
    frac = torch.linspace(0.0, 1.0, p, dtype=dtype)
    s_t = s_lo.unsqueeze(-1) + (s_hi - s_lo).unsqueeze(-1) * frac  # [B, k, P] target arc lengths
    i = torch.searchsorted(cum_k.contiguous(), s_t.contiguous(), right=True) - 1
    i = torch.minimum(i.clamp(min=0), (n_k - 2).clamp(min=0).unsqueeze(-1))  # segment of each target
    seg_i = torch.gather(seg_k, 2, i.unsqueeze(-1).expand(-1, -1, -1, 2))  # [B, k, P, 2]
    len_i = torch.gather(len_k, 2, i).clamp(min=1e-9)
    start = torch.gather(xy_k, 2, i.unsqueeze(-1).expand(-1, -1, -1, 2))
    u = seg_i / len_i.unsqueeze(-1)  # unit direction
    pts = start + u * (s_t - torch.gather(cum_k, 2, i)).unsqueeze(-1)

    limit = take(obs.lanes_speed_limit.to(dtype))
    known = torch.isfinite(limit)
    light = (take(obs.lanes_traffic_light) + 1).clamp(0, NUM_LIGHT_STATES - 1)  # -1 (none) -> 0
    per_lane = torch.cat([
        take(obs.lanes_on_route).to(dtype).unsqueeze(-1),
        (torch.where(known, limit, torch.zeros_like(limit)) / SPEED_LIMIT_SCALE_MPS).unsqueeze(-1),
        known.to(dtype).unsqueeze(-1),
        torch.nn.functional.one_hot(light, NUM_LIGHT_STATES).to(dtype),
    ], dim=-1)  # [B, k, 7 + ...]
    feats = torch.cat([pts / POSITION_SCALE_M, u, per_lane.unsqueeze(2).expand(-1, -1, p, -1)], dim=-1)
    feats = feats * mask.to(dtype)[:, :, None, None]
    out = torch.zeros(b, lm, p, LANE_DIM, dtype=dtype)
    out[:, :k] = feats
    out_mask = torch.zeros(b, lm, dtype=torch.bool)
    out_mask[:, :k] = mask
    return out, out_mask


# --------------------------------------------------------------------------------------------------- helpers
def _check_obs(obs: Observation) -> None:
    """Raise ShapeError unless the observation's tensors agree with each other."""
    b = obs.batch_size
    ego = obs.ego_state
    if ego.ndim != 2 or ego.shape[0] != b or ego.shape[1] <= max(VX, VY, AX, AY, STEER, YAW_RATE):
        raise ShapeError(f"Observation.ego_state: expected [B={b}, D] with the sim.state layout (D >= "
                         f"{YAW_RATE + 1}), received {list(ego.shape)}")
    av = obs.agents_valid
    if av.ndim != 3 or av.shape[0] != b:
        raise ShapeError(f"Observation.agents_valid: expected [B={b}, H, N], received {list(av.shape)}")
    _, h, n = av.shape
    want = {"agents_xy": (b, h, n, 2), "agents_yaw": (b, h, n), "agents_vel": (b, h, n, 2), "agents_size": (b, n, 3),
            "agents_type": (b, n)}
    lv = obs.lanes_valid
    if lv.ndim != 3 or lv.shape[0] != b:
        raise ShapeError(f"Observation.lanes_valid: expected [B={b}, P, K], received {list(lv.shape)}")
    _, lp, lk = lv.shape
    want |= {"lanes_xy": (b, lp, lk, 2), "lanes_on_route": (b, lp), "lanes_speed_limit": (b, lp),
             "lanes_traffic_light": (b, lp)}
    for name, shape in want.items():
        got = tuple(getattr(obs, name).shape)
        if got != shape:
            raise ShapeError(f"Observation.{name}: expected shape {list(shape)} (consistent with "
                             f"agents_valid / lanes_valid), received {list(got)}")


def _config_from_dict(cls: type, data: Any) -> Any:
    """Build the frozen config dataclass ``cls`` from a plain dict, rejecting unknown keys."""
    if not isinstance(data, dict):
        raise DataFormatError(f"{cls.__name__}.from_dict(data): expected a dict, received {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise DataFormatError(f"{cls.__name__}.from_dict(data): unknown keys {unknown}; expected a subset of "
                              f"{sorted(names)}")
    return cls(**data)
