"""Agent-centric features of the behaviour world model: every agent token sees its own history, its neighbours
and the nearby map in **its own frame at now** (``t0``; +x along its heading, +y to its left, metres).

:func:`pack_scenes` turns B scenarios into one :class:`BWMBatch` of padded torch tensors. Per scene it picks up to
``max_agents`` tokens: the ego first, then the agents asked for, then the others observed at now by distance to
the ego. Gathering the arrays of a scene is numpy slicing; every transform (frames, pair features, map selection)
is batched in torch over ``[B, N, ...]``.

Layouts (all values O(1); padded entries are exactly 0):

* ``hist [B, N, H, 7]``: per history step (oldest first, now last): x / 20 m, y / 20 m, cos and sin of the
  heading relative to the heading at now, vx / 10 m/s, vy / 10 m/s (own frame), valid flag.
* ``static [B, N, 12]``: length / 5 m, width / 5 m, speed at now / 10 m/s, is-ego flag, one-hot
  :class:`~worldengine_lab.datatypes.AgentType` (8 codes).
* ``pair [B, N, N, 7]``: agent j as seen by agent i at now: x / 50 m, y / 50 m, cos and sin of the relative
  heading, vx / 10 m/s, vy / 10 m/s in i's frame, distance / 50 m.
* ``map [B, N, M, P, 13]``: the M map elements nearest to each agent's next 3 s at constant velocity (chunks of
  lane centrelines and crosswalk outlines, P points 2 m apart), per point: x / 30 m, y / 30 m, cos and sin of
  the element's direction, then per element: is-lane, is-connector, is-crosswalk, traffic light at now one-hot
  (none, green, yellow, red, unknown), speed limit / 20 m/s.
* ``future [B, N, W, 2]``: positions (m, own frame) at the W waypoints ``t0 + stride * k`` (k = 1 .. W) and
  ``future_valid [B, N, W]``; ``cv [B, N, W, 2]``: the constant-velocity positions at the same times (m).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np
import torch

from ..datatypes import EGO_INDEX, AgentType, Scenario
from ..errors import DataFormatError, ShapeError
from ._paths import batched_interp

__all__ = ["BWMFeatureConfig", "BWMBatch", "pack_scenes", "HIST_DIM", "STATIC_DIM", "PAIR_DIM", "MAP_DIM",
           "to_local", "to_own"]

HIST_DIM = 7
STATIC_DIM = 4 + len(AgentType)
PAIR_DIM = 7
MAP_DIM = 4 + 3 + 5 + 1
_HIST_SCALE_M, _PAIR_SCALE_M, _MAP_SCALE_M, _SPEED_SCALE, _SIZE_SCALE = 20.0, 50.0, 30.0, 10.0, 5.0
_REACH_S = 3.0  # map elements are ranked by distance to the agent's next 3 s at constant velocity


@dataclass(frozen=True)
class BWMFeatureConfig:
    """Sizes of the agent-centric features (saved with every checkpoint)."""

    max_agents: int = 24
    """N, agent tokens per scene at most (ego + requested + nearest observed at now)."""
    history_steps: int = 11
    """H, history steps per token, now included (at the scenario step, 0.1 s in the embedded world)."""
    horizon_steps: int = 80
    """Future steps the model generates (80 x 0.1 s = 8 s, the window future of the embedded world)."""
    waypoint_stride: int = 4
    """Steps between generated waypoints; W = horizon_steps / waypoint_stride."""
    max_map_elements: int = 16
    """M, map elements per agent."""
    element_points: int = 8
    """P, points per map element."""
    element_spacing_m: float = 2.0
    """Distance between the points of a map element, m."""
    map_radius_m: float = 150.0
    """Map elements farther than this from the ego at now are ignored, m."""

    def __post_init__(self) -> None:
        for name in ("max_agents", "history_steps", "horizon_steps", "waypoint_stride", "max_map_elements",
                     "element_points"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise DataFormatError(f"BWMFeatureConfig.{name}: expected an int >= 1, received {v!r}")
        if self.horizon_steps % self.waypoint_stride:
            raise DataFormatError(f"BWMFeatureConfig.horizon_steps: expected a multiple of waypoint_stride = "
                                  f"{self.waypoint_stride}, received {self.horizon_steps}")
        if not (self.element_spacing_m > 0 and self.map_radius_m > 0):
            raise DataFormatError("BWMFeatureConfig: element_spacing_m and map_radius_m must be > 0 m")

    @property
    def num_waypoints(self) -> int:
        """W."""
        return self.horizon_steps // self.waypoint_stride

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Any) -> "BWMFeatureConfig":
        if not isinstance(data, dict) or set(data) - {f.name for f in fields(BWMFeatureConfig)}:
            raise DataFormatError(f"BWMFeatureConfig.from_dict: expected a dict of its fields, received {data!r}")
        return BWMFeatureConfig(**data)


@dataclass
class BWMBatch:
    """Model inputs and bookkeeping of B scenes with N agent tokens (layouts in the module docstring).

    Attributes:
        hist ``[B, N, H, 7]``; static ``[B, N, 12]``; pair ``[B, N, N, 7]``; map ``[B, N, M, P, 13]``;
        map_valid ``[B, N, M]`` bool; map_xy ``[B, N, M, P, 2]`` m, own frame (unscaled, for guidance costs);
        future ``[B, N, W, 2]`` m, own frame; future_valid ``[B, N, W]`` bool; cv ``[B, N, W, 2]`` m, own frame;
        token_valid ``[B, N]`` bool; agent_index ``[B, N]`` int64 index into the scenario's agents (-1: padding);
        generate ``[B, N]`` bool, tokens asked to be generated; pose0 ``[B, N, 3]`` (x m, y m, yaw rad) at now,
        scenario local frame; speed0 ``[B, N]`` m/s; agent_type ``[B, N]`` int64; size ``[B, N, 2]`` (length,
        width) m; times_s ``[W]`` s after now of the waypoints.
    """

    hist: torch.Tensor
    static: torch.Tensor
    pair: torch.Tensor
    map: torch.Tensor
    map_valid: torch.Tensor
    map_xy: torch.Tensor
    future: torch.Tensor
    future_valid: torch.Tensor
    cv: torch.Tensor
    token_valid: torch.Tensor
    agent_index: torch.Tensor
    generate: torch.Tensor
    pose0: torch.Tensor
    speed0: torch.Tensor
    agent_type: torch.Tensor
    size: torch.Tensor
    times_s: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.hist.shape[0])

    def index(self, rows: torch.Tensor | slice) -> "BWMBatch":
        """The scenes ``rows`` as a new batch."""
        return BWMBatch(**{f.name: (getattr(self, f.name) if f.name == "times_s" else getattr(self, f.name)[rows])
                           for f in fields(self)})

    @staticmethod
    def cat(parts: Sequence["BWMBatch"]) -> "BWMBatch":
        """Concatenate along B, padding N to the largest part."""
        if not parts:
            raise ShapeError("BWMBatch.cat(parts): expected at least one batch, received none")
        n = max(p.hist.shape[1] for p in parts)
        out = {}
        for f in fields(BWMBatch):
            if f.name == "times_s":
                out[f.name] = parts[0].times_s
                continue
            ts = []
            for p in parts:  # a handful of chunks
                t = getattr(p, f.name)
                pad_n = n - t.shape[1]
                if pad_n:
                    fill = -1 if f.name == "agent_index" else 0
                    shape = list(t.shape)
                    shape[1] = pad_n
                    t = torch.cat([t, torch.full(shape, fill, dtype=t.dtype)], 1)
                    if f.name == "pair":  # the second agent axis too
                        shape = list(t.shape)
                        shape[2] = pad_n
                        t = torch.cat([t, torch.zeros(shape, dtype=t.dtype)], 2)
                ts.append(t)
            out[f.name] = torch.cat(ts)
        return BWMBatch(**out)


# ------------------------------------------------------------------------------------------- frames
def to_own(xy: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Local-frame points ``[..., K, 2]`` -> the frame of ``pose [..., 3]`` (x, y, yaw)."""
    c, s = torch.cos(pose[..., 2:3]), torch.sin(pose[..., 2:3])
    d = xy - pose[..., None, :2]
    return torch.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


def to_local(xy: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Points ``[..., K, 2]`` in the frame of ``pose [..., 3]`` -> the scenario local frame."""
    c, s = torch.cos(pose[..., 2:3]), torch.sin(pose[..., 2:3])
    return torch.stack([c * xy[..., 0] - s * xy[..., 1], s * xy[..., 0] + c * xy[..., 1]], -1) + pose[..., None, :2]


def _rotate(v: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """Vectors ``[..., 2]`` into a frame rotated by ``yaw [...]`` (same leading axes)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    return torch.stack([c * v[..., 0] + s * v[..., 1], -s * v[..., 0] + c * v[..., 1]], -1)


# ---------------------------------------------------------------------------------------------- map
def _map_elements(s: Scenario, cfg: BWMFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Map elements near the ego: ``points [C, P, 2]`` (m, local frame) and per-element ``attrs [C, 9]`` (is-lane,
    is-connector, is-crosswalk, light one-hot x5, speed limit / 20)."""
    m = s.map
    p, ds = cfg.element_points, cfg.element_spacing_m
    ego = s.agents.xy[s.t0, EGO_INDEX].astype(np.float64)
    light = np.zeros(m.num_lanes, np.int64)  # 0 = no signal
    tl = s.traffic_lights.status if s.traffic_lights is not None else np.zeros((s.num_steps, 0), np.int8)
    if len(m.signalized_lanes) and tl.shape[1]:
        light[np.asarray(m.signalized_lanes, np.int64)] = tl[s.t0].astype(np.int64) + 1
    groups = [(m.lanes.xy, m.lanes.valid, np.stack([np.ones(m.num_lanes), m.lane_is_connector.astype(float),
                                                    np.zeros(m.num_lanes)], -1), light,
               np.nan_to_num(m.lane_speed_limit_mps.astype(np.float64), nan=0.0))]
    cw = m.crosswalks
    if len(cw):
        k = len(cw)
        groups.append((cw.xy, cw.valid, np.tile([[0.0, 0.0, 1.0]], (k, 1)), np.zeros(k, np.int64), np.zeros(k)))
    pts_all, attr_all = [], []
    for xy, valid, kind, lights, limit in groups:  # two element kinds
        if not len(xy) or xy.shape[1] < 2:
            continue
        xy = xy.astype(np.float64)
        seg = np.linalg.norm(np.diff(xy, axis=1), axis=-1) * (valid[:, 1:] & valid[:, :-1])
        s_cum = np.concatenate([np.zeros((len(xy), 1)), np.cumsum(seg, 1)], 1)  # [L, K] non-decreasing
        length = s_cum[:, -1]
        # only the stretch of each polyline near the ego: points within the radius (plus one element either side)
        near = (np.linalg.norm(xy - ego, axis=-1) <= cfg.map_radius_m) & valid
        if not near.any():
            continue
        lo = np.where(near.any(1), np.where(near, s_cum, np.inf).min(1), 0.0)
        hi = np.where(near.any(1), np.where(near, s_cum, -np.inf).max(1), -1.0)
        step = (p - 1) * ds
        first = np.maximum(np.floor(lo / step) - 1, 0)
        count = np.where(hi >= lo, np.ceil((np.minimum(hi + step, length) - first * step) / step), 0).astype(int)
        rows = np.repeat(np.arange(len(xy)), count)
        if not len(rows):
            continue
        within = np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count)
        start = (first[rows] + within) * step
        q = np.minimum(start[:, None] + ds * np.arange(p)[None], length[rows][:, None])  # [C, P]
        pts = batched_interp(q, s_cum[rows], xy[rows])
        attrs = np.concatenate([kind[rows], np.eye(5)[np.clip(lights[rows], 0, 4)], limit[rows, None] / 20.0], 1)
        pts_all.append(pts)
        attr_all.append(attrs)
    if not pts_all:
        return np.zeros((0, p, 2)), np.zeros((0, 9))
    return np.concatenate(pts_all), np.concatenate(attr_all)


def _select_map(points: torch.Tensor, attrs: torch.Tensor, valid: torch.Tensor, pose0: torch.Tensor,
                vel0_own: torch.Tensor, cfg: BWMFeatureConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per agent, the M elements nearest to its constant-velocity reach. ``points [B, C, P, 2]`` local frame,
    ``attrs [B, C, 9]``, ``valid [B, C]``, ``pose0 [B, N, 3]``, ``vel0_own [B, N, 2]``. Returns ``map [B, N, M,
    P, 13]``, ``map_valid [B, N, M]``, ``map_xy [B, N, M, P, 2]`` (own frame, m)."""
    b, c, p, _ = points.shape
    n = pose0.shape[1]
    m = cfg.max_map_elements
    own = to_own(points.reshape(b, 1, c * p, 2), pose0).reshape(b, n, c, p, 2)
    reach = (vel0_own * _REACH_S)[:, :, None, None, :]  # [B, N, 1, 1, 2] the segment 0 -> reach
    t = ((own * reach).sum(-1) / reach.square().sum(-1).clamp(min=1e-6)).clamp(0.0, 1.0)
    dist = (own - t[..., None] * reach).norm(dim=-1).amin(-1)  # [B, N, C]
    dist = torch.where(valid[:, None, :], dist, torch.full_like(dist, math.inf))
    k = min(m, c)
    near, idx = torch.topk(dist, k, dim=-1, largest=False, sorted=True) if k else (dist[..., :0], dist[..., :0].long())
    ok = torch.isfinite(near)
    xy = torch.gather(own, 2, idx[..., None, None].expand(b, n, k, p, 2))
    d = torch.diff(xy, dim=3)
    d = torch.cat([d, d[:, :, :, -1:]], 3)
    u = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    na = attrs.shape[-1]
    at = torch.gather(attrs[:, None].expand(b, n, c, na), 2, idx[..., None].expand(b, n, k, na))
    feats = torch.cat([xy / _MAP_SCALE_M, u, at[:, :, :, None].expand(b, n, k, p, at.shape[-1])], -1)
    feats = feats * ok[..., None, None]
    out = torch.zeros(b, n, m, p, MAP_DIM)
    out[:, :, :k] = feats.float()
    out_xy = torch.zeros(b, n, m, p, 2)
    out_xy[:, :, :k] = (xy * ok[..., None, None]).float()
    out_ok = torch.zeros(b, n, m, dtype=torch.bool)
    out_ok[:, :, :k] = ok
    return out, out_ok, out_xy


# --------------------------------------------------------------------------------------------- pack
def _tokens(s: Scenario, want: np.ndarray, cap: int) -> np.ndarray:
    """Agent indices of the tokens of one scene: ego, then ``want``, then the nearest observed at now."""
    a = s.agents
    seen = a.valid[s.t0].copy()
    seen[EGO_INDEX] = False
    d = np.linalg.norm(a.xy[s.t0] - a.xy[s.t0, EGO_INDEX], axis=-1)
    order = np.argsort(np.where(seen, d, np.inf), kind="stable")[: int(seen.sum())]
    want = np.asarray(want, np.int64)
    rest = order[~np.isin(order, want)]
    return np.concatenate([[EGO_INDEX], want, rest])[:cap].astype(np.int64)


def pack_scenes(scenarios: Sequence[Scenario], config: BWMFeatureConfig = BWMFeatureConfig(),
                generate: Sequence[Sequence[int]] | None = None) -> BWMBatch:
    """Agent-centric features of ``scenarios`` (one scene each; layouts in the module docstring).

    Args:
        scenarios: B scenarios with the same ``dt``.
        config: feature sizes.
        generate: per scene, agent indices to mark in ``BWMBatch.generate`` (each must be observed at now and
            not the ego); they are always among the tokens.
    Raises:
        ShapeError: an agent to generate is the ego, out of range, not observed at now, or there are more than
            ``max_agents - 1`` of them.
    """
    cfg = config
    if not scenarios:
        raise ShapeError("pack_scenes(scenarios): expected at least one scenario, received none")
    b, h, w, k = len(scenarios), cfg.history_steps, cfg.num_waypoints, cfg.waypoint_stride
    want = [np.asarray(g, np.int64).reshape(-1) for g in generate] if generate is not None else \
        [np.zeros(0, np.int64)] * b
    if len(want) != b:
        raise ShapeError(f"pack_scenes(generate): expected one index list per scenario ({b}), received {len(want)}")
    toks = []
    for s, g in zip(scenarios, want):  # gathering per scene (ragged agents and maps)
        bad = g[(g <= EGO_INDEX) | (g >= s.agents.num_agents)]
        if len(bad) or not s.agents.valid[s.t0, g].all() or len(g) >= cfg.max_agents:
            raise ShapeError(f"pack_scenes(generate) of {s.scenario_id!r}: expected at most {cfg.max_agents - 1} "
                             f"non-ego agent indices observed at now, received {g.tolist()}; pick agents with "
                             "valid[t0] True")
        toks.append(_tokens(s, g, cfg.max_agents))
    n = max(len(t) for t in toks)
    steps = np.arange(-h + 1, 1)
    fsteps = k * np.arange(1, w + 1)
    arr = {name: np.zeros((b, n) + shape, dtype) for name, shape, dtype in (
        ("hxy", (h, 2), np.float64), ("hyaw", (h,), np.float64), ("hvel", (h, 2), np.float64),
        ("hvalid", (h,), bool), ("fxy", (w, 2), np.float64), ("fvalid", (w,), bool), ("size", (2,), np.float64),
        ("type", (), np.int64), ("tok", (), bool), ("index", (), np.int64), ("gen", (), bool))}
    arr["index"][:] = -1
    elems = []
    for i, (s, t) in enumerate(zip(scenarios, toks)):  # numpy slicing per scene
        a = s.agents
        j = len(t)
        hs = s.t0 + steps
        ok = (hs >= 0)[:, None]
        hc = np.clip(hs, 0, s.num_steps - 1)
        arr["hxy"][i, :j] = a.xy[hc][:, t].transpose(1, 0, 2)
        arr["hyaw"][i, :j] = a.yaw[hc][:, t].T
        arr["hvel"][i, :j] = a.vel_xy[hc][:, t].transpose(1, 0, 2)
        arr["hvalid"][i, :j] = (a.valid[hc][:, t] & ok).T
        fs = s.t0 + fsteps
        fok = (fs < s.num_steps)[:, None]
        fc = np.clip(fs, 0, s.num_steps - 1)
        arr["fxy"][i, :j] = a.xy[fc][:, t].transpose(1, 0, 2)
        arr["fvalid"][i, :j] = (a.valid[fc][:, t] & fok).T
        arr["size"][i, :j] = a.size_lwh[t, :2]
        arr["type"][i, :j] = a.agent_type[t]
        arr["tok"][i, :j] = True
        arr["index"][i, :j] = t
        arr["gen"][i, :j] = np.isin(t, want[i])
        elems.append(_map_elements(s, cfg))
    c = max(1, max(len(e[0]) for e in elems))
    pts = np.zeros((b, c, cfg.element_points, 2))
    attrs = np.zeros((b, c, 9))
    evalid = np.zeros((b, c), bool)
    for i, (e_pts, e_attr) in enumerate(elems):
        pts[i, :len(e_pts)], attrs[i, :len(e_attr)], evalid[i, :len(e_pts)] = e_pts, e_attr, True
    return _features(arr, pts, attrs, evalid, cfg, scenarios[0].dt)


def _features(arr: dict[str, np.ndarray], pts: np.ndarray, attrs: np.ndarray, evalid: np.ndarray,
              cfg: BWMFeatureConfig, dt: float) -> BWMBatch:
    """The batched torch part of :func:`pack_scenes`."""
    T = {k: torch.from_numpy(v) for k, v in arr.items()}
    tok = T["tok"]
    hvalid = T["hvalid"] & tok[..., None]
    pose0 = torch.cat([T["hxy"][:, :, -1], T["hyaw"][:, :, -1:]], -1)  # [B, N, 3]
    yaw0 = pose0[..., 2]
    hxy = to_own(T["hxy"], pose0)
    hvel = _rotate(T["hvel"], yaw0[..., None])
    dyaw = T["hyaw"] - yaw0[..., None]
    hist = torch.cat([hxy / _HIST_SCALE_M, torch.cos(dyaw)[..., None], torch.sin(dyaw)[..., None],
                      hvel / _SPEED_SCALE, torch.ones_like(dyaw)[..., None]], -1) * hvalid[..., None]
    vel0 = hvel[:, :, -1]  # [B, N, 2] own frame
    speed0 = vel0.norm(dim=-1) * tok
    onehot = torch.nn.functional.one_hot(T["type"].clamp(0, len(AgentType) - 1), len(AgentType)).double()
    is_ego = torch.zeros_like(speed0)
    is_ego[:, 0] = 1.0
    static = torch.cat([T["size"] / _SIZE_SCALE, speed0[..., None] / _SPEED_SCALE, is_ego[..., None], onehot], -1)
    static = static * tok[..., None]
    # pairs: j in i's frame at now
    b, n = tok.shape
    rel = to_own(pose0[:, None, :, :2].expand(b, n, n, 2), pose0)  # [B, N(i), N(j), 2]
    ryaw = yaw0[:, None, :] - yaw0[:, :, None]
    vel_local = _rotate(vel0, -yaw0)  # back to the local frame
    rvel = _rotate(vel_local[:, None].expand(b, n, n, 2), yaw0[:, :, None].expand(b, n, n))
    pair_ok = tok[:, :, None] & tok[:, None, :]
    pair = torch.cat([rel / _PAIR_SCALE_M, torch.cos(ryaw)[..., None], torch.sin(ryaw)[..., None],
                      rvel / _SPEED_SCALE, rel.norm(dim=-1, keepdim=True) / _PAIR_SCALE_M], -1) * pair_ok[..., None]
    times = torch.arange(1, cfg.num_waypoints + 1, dtype=torch.float64) * cfg.waypoint_stride * dt
    cv = vel0[:, :, None, :] * times[None, None, :, None]
    fvalid = T["fvalid"] & tok[..., None]
    future = to_own(T["fxy"], pose0) * fvalid[..., None]
    mp, mvalid, mxy = _select_map(torch.from_numpy(pts), torch.from_numpy(attrs), torch.from_numpy(evalid), pose0,
                                  vel0, cfg)
    mvalid &= tok[..., None]
    return BWMBatch(hist=hist.float(), static=static.float(), pair=pair.float(), map=mp * mvalid[..., None, None],
                    map_valid=mvalid, map_xy=mxy * mvalid[..., None, None], future=future.float(),
                    future_valid=fvalid, cv=(cv * tok[..., None, None]).float(), token_valid=tok,
                    agent_index=T["index"], generate=T["gen"], pose0=pose0, speed0=speed0.float(),
                    agent_type=T["type"], size=T["size"].float(), times_s=times.float())
