"""Reference paths of reactive agents: the logged track, then the nearest map lane chain (spec §3.2).

For every agent that needs one (batched over scenarios and agents; only those agents are computed):

1. its logged box centres from t0 to its last observation (unobserved steps skipped);
2. the lane nearest to that end point whose direction agrees with the agent's last heading (within 60 deg and
   ``max_lane_distance_m``), from the projection point on, then up to ``lane_depth`` successors
   (``LaneBatch.next_lane``, the straightest continuation);
3. a straight extension along the final direction;

resampled at a uniform arc-length spacing (float32). Arc length ``s = 0`` is the agent's position at t0.
Lookups before the start or past the end extrapolate linearly along the first or last segment.

Signalised lanes (traffic-light-controlled connectors) crossed by a path are found by projecting the lane's
first and last centreline points onto the path; ``stop_s`` is the arc length of the lane start (the stop line).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .scene_batch import LaneBatch

__all__ = ["AgentPaths", "build_paths", "lookup", "lookup_rows"]


@dataclass(frozen=True)
class AgentPaths:
    """Uniformly resampled paths of the R agents (of B x N) that have one.

    Attributes:
        spacing_m: arc length between samples, m. num_points: K, samples per path.
        row_of: ``[B * N]`` int64 path row of each agent (flat index ``b * N + n``), -1 if it has none.
        table: ``[R * K, 5]`` float32 rows ``(x, y, tx, ty, heading)`` per sample: point (m, local frame), the
            unit tangent towards the next sample and its heading (rad); the last sample repeats the previous
            tangent.
        xy: ``[R, K, 2]`` float32 samples, m.
        stop_s: ``[B, N, M]`` float32 arc length of each signalised lane's start on the path, m; +inf if not
            crossed (or no path).
        max_curvature: ``[B, N]`` float32 largest |curvature| along the path (turn between samples / spacing),
            1/m; 0 without a path.
    """

    spacing_m: float
    num_points: int
    row_of: torch.Tensor  # [B * N] int64
    table: torch.Tensor  # [R * K, 5] float32
    xy: torch.Tensor  # [R, K, 2] float32
    stop_s: torch.Tensor  # [B, N, M] float32
    max_curvature: torch.Tensor  # [B, N] float32, 1/m


def _forward_fill(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``values [..., S, C]``: invalid entries take the last valid entry before them (the first if none)."""
    s = valid.shape[-1]
    idx = torch.where(valid, torch.arange(s), torch.zeros((), dtype=torch.int64))
    idx = torch.cummax(idx, dim=-1).values
    return torch.gather(values, -2, idx.unsqueeze(-1).expand(*idx.shape, values.shape[-1]))


def _gather_lanes(lanes: LaneBatch, scene: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points of lanes ``index [R, ...]`` (-1 = none) of scenarios ``scene [R]``: ``([R, ..., K, 2], [R, ..., K])``."""
    _, num_l, k = lanes.valid.shape
    flat = (scene.view(-1, *([1] * (index.ndim - 1))) * num_l + index.clamp(min=0)).reshape(-1)
    xy = lanes.xy.reshape(-1, k, 2).index_select(0, flat).reshape(*index.shape, k, 2)
    valid = lanes.valid.reshape(-1, k).index_select(0, flat).reshape(*index.shape, k) & (index >= 0).unsqueeze(-1)
    return xy, valid


def _nearest_lane(
    lanes: LaneBatch, scene: torch.Tensor, point: torch.Tensor, heading: torch.Tensor, max_dist: float,
    candidates: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest heading-compatible lane segment to ``point [R, 2]`` with heading ``[R]`` (rad) in scenario
    ``scene [R]``.

    The ``candidates`` lanes whose bounding circles come closest are searched exhaustively; a segment is
    compatible when its direction is within 60 deg of ``heading``.
    Returns ``lane [R]`` (-1 if none within ``max_dist``), projected point ``[R, 2]`` and segment index ``[R]``.
    """
    r = point.shape[0]
    center = lanes.center.index_select(0, scene).to(point.dtype)  # [R, L, 2]
    radius = lanes.radius.index_select(0, scene).to(point.dtype)
    lb = (point.unsqueeze(1) - center).norm(dim=-1) - radius  # [R, L]
    lb = torch.where(lanes.present.index_select(0, scene), lb, torch.full_like(lb, math.inf))
    k = min(candidates, lb.shape[-1])
    near_lb, cand = torch.topk(lb, k, dim=-1, largest=False)  # [R, k]
    cand = torch.where(near_lb.isfinite(), cand, torch.full_like(cand, -1))
    pts, valid = _gather_lanes(lanes, scene, cand)  # [R, k, K, 2]
    pts = pts.to(point.dtype)
    ax, ay = pts[..., :-1, 0], pts[..., :-1, 1]  # [R, k, K - 1]
    sx, sy = pts[..., 1:, 0] - ax, pts[..., 1:, 1] - ay
    seg_len2 = (sx * sx + sy * sy).clamp(min=1e-12)
    px, py = point[:, 0, None, None], point[:, 1, None, None]
    frac = (((px - ax) * sx + (py - ay) * sy) / seg_len2).clamp(0.0, 1.0)
    qx, qy = ax + frac * sx, ay + frac * sy
    d2 = (px - qx) ** 2 + (py - qy) ** 2
    cos_h = sx * torch.cos(heading)[:, None, None] + sy * torch.sin(heading)[:, None, None]
    ok = valid[..., 1:] & (cos_h >= 0.5 * seg_len2.sqrt())
    cost = torch.where(ok, d2, torch.full_like(d2, math.inf)).flatten(1)  # [R, k * (K - 1)] (R may be 0)
    best_cost, best = cost.min(dim=-1)  # [R]
    nseg = sx.shape[-1]
    lane = torch.gather(cand, -1, (best // nseg).unsqueeze(-1)).squeeze(-1)
    lane = torch.where(best_cost <= max_dist * max_dist, lane, torch.full_like(lane, -1))
    q = torch.stack([qx.flatten(1).gather(-1, best.unsqueeze(-1)).squeeze(-1),
                     qy.flatten(1).gather(-1, best.unsqueeze(-1)).squeeze(-1)], dim=-1)
    return lane, q, best % nseg


def build_paths(
    future_xy: torch.Tensor,
    future_yaw: torch.Tensor,
    future_valid: torch.Tensor,
    lanes: LaneBatch,
    signal_lane: torch.Tensor,
    mask: torch.Tensor,
    spacing_m: float = 1.0,
    max_length_m: float = 200.0,
    lane_depth: int = 4,
    max_lane_distance_m: float = 3.0,
    extension_m: float = 50.0,
    signal_match_m: float = 1.5,
    candidates: int = 8,
) -> AgentPaths:
    """Build the reference paths of the agents in ``mask`` (see the module docstring).

    Args:
        future_xy: ``[B, N, F, 2]`` logged box centres from t0 on, m; ``future_yaw [B, N, F]`` rad;
            ``future_valid [B, N, F]`` bool (agents in ``mask`` must be valid at t0).
        lanes: padded lane centrelines of the B maps.
        signal_lane: ``[B, M]`` int64 lane index of each traffic-light column (-1 padding).
        mask: ``[B, N]`` bool, the agents that get a path.
        spacing_m: resampling step, m. max_length_m: paths are cut at this arc length, m (lookups beyond
            extrapolate). lane_depth: successors appended after the nearest lane.
    """
    bsz, n, f, _ = future_xy.shape
    f32 = torch.float32
    rows = torch.nonzero(mask.reshape(-1)).squeeze(1)  # [R] flat agent index b * N + n
    r = len(rows)
    row_of = torch.full((bsz * n,), -1, dtype=torch.int64)
    row_of[rows] = torch.arange(r)
    scene = rows // n
    # 1. logged part, unobserved steps skipped (filled with the last observation)
    fxy = future_xy.reshape(bsz * n, f, 2).index_select(0, rows).to(f32)  # [R, F, 2]
    fyaw = future_yaw.reshape(bsz * n, f).index_select(0, rows).to(f32)
    fvalid = future_valid.reshape(bsz * n, f).index_select(0, rows)
    fvalid[:, 0] = True
    log_xy = _forward_fill(fxy, fvalid)
    last = torch.where(fvalid, torch.arange(f), torch.zeros((), dtype=torch.int64)).amax(-1)  # [R]
    end = torch.gather(log_xy, 1, last.view(r, 1, 1).expand(r, 1, 2)).squeeze(1)
    end_yaw = torch.gather(fyaw, 1, last.unsqueeze(-1)).squeeze(-1)
    # 2. nearest lane and its chain of successors
    lane0, q, seg0 = _nearest_lane(lanes, scene, end, end_yaw, max_lane_distance_m, candidates)
    chain = [lane0]
    next_lane = lanes.next_lane.index_select(0, scene)  # [R, L]
    for _ in range(lane_depth):
        prev = chain[-1]
        nxt = torch.gather(next_lane, 1, prev.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        chain.append(torch.where(prev >= 0, nxt, prev))
    lane_pts, lane_ok = _gather_lanes(lanes, scene, torch.stack(chain, dim=1))  # [R, D + 1, K, 2]
    kk = lane_pts.shape[-2]
    lane_ok[:, 0] &= torch.arange(kk).view(1, kk) > seg0.unsqueeze(-1)  # first lane: after the projection
    seq = torch.cat([log_xy, q.unsqueeze(1), lane_pts.flatten(1, 2).to(f32)], dim=1)
    ok = torch.cat([fvalid, (lane0 >= 0).unsqueeze(-1), lane_ok.flatten(1)], dim=1)
    seq = _forward_fill(seq, ok)
    # 3. straight extension along the final non-degenerate segment (else the last logged heading)
    seg = seq[:, 1:] - seq[:, :-1]
    seg_len = (seg[..., 0] ** 2 + seg[..., 1] ** 2).sqrt()  # [R, S - 1]
    idx = torch.where(seg_len > 1e-3, torch.arange(seg_len.shape[-1]), torch.full((), -1, dtype=torch.int64))
    last_seg = idx.amax(dim=-1)  # [R]
    d = torch.gather(seg, 1, last_seg.clamp(min=0).view(r, 1, 1).expand(r, 1, 2)).squeeze(1)
    d = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    yaw_dir = torch.stack([torch.cos(end_yaw), torch.sin(end_yaw)], dim=-1)
    d = torch.where((last_seg >= 0).unsqueeze(-1), d, yaw_dir)
    seq = torch.cat([seq, (seq[:, -1] + extension_m * d).unsqueeze(1)], dim=1)
    seg_len = torch.cat([seg_len, torch.full((r, 1), extension_m, dtype=f32)], dim=1)
    # 4. uniform resampling by arc length
    arc = torch.cat([torch.zeros(r, 1, dtype=f32), torch.cumsum(seg_len, -1)], dim=-1)  # [R, S]
    total = float(arc[:, -1].max()) if r else 0.0
    num = int(math.ceil(min(total, max_length_m) / spacing_m)) + 2
    query = (torch.arange(num, dtype=f32) * spacing_m).expand(r, num).contiguous()
    j = (torch.searchsorted(arc, query, right=True) - 1).clamp(0, arc.shape[-1] - 2)
    a0, a1 = torch.gather(arc, 1, j), torch.gather(arc, 1, j + 1)
    w = ((query - a0) / (a1 - a0).clamp(min=1e-9)).unsqueeze(-1)
    p0 = torch.gather(seq, 1, j.unsqueeze(-1).expand(r, num, 2))
    p1 = torch.gather(seq, 1, (j + 1).unsqueeze(-1).expand(r, num, 2))
    xy = p0 + w * (p1 - p0)  # [R, K, 2]
    delta = torch.cat([xy[:, 1:] - xy[:, :-1], xy[:, -1:] - xy[:, -2:-1]], dim=1)
    tangent = delta / delta.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    if r == 0:  # keep one dummy row so that lookups of agents without a path stay in bounds
        xy = torch.zeros(1, num, 2, dtype=f32)
        tangent = torch.zeros(1, num, 2, dtype=f32)
        tangent[..., 0] = 1.0
    tx, ty = tangent[..., 0], tangent[..., 1]
    table = torch.cat([xy, tangent, torch.atan2(ty, tx).unsqueeze(-1)], dim=-1).reshape(-1, 5).contiguous()
    turn = torch.atan2(tx[:, 1:] * ty[:, :-1] - ty[:, 1:] * tx[:, :-1], tx[:, 1:] * tx[:, :-1] + ty[:, 1:] * ty[:, :-1])
    max_curv = torch.zeros(bsz * n, dtype=f32)
    max_curv[rows] = turn.abs().amax(dim=-1)[:r] / spacing_m
    stop_s = torch.full((bsz * n, signal_lane.shape[1]), math.inf, dtype=f32)
    stop_s[rows] = _signal_stops(xy[:r], scene, lanes, signal_lane, spacing_m, signal_match_m)
    return AgentPaths(spacing_m=spacing_m, num_points=num, row_of=row_of, table=table, xy=xy,
                      stop_s=stop_s.view(bsz, n, -1), max_curvature=max_curv.view(bsz, n))


def _signal_stops(
    xy: torch.Tensor, scene: torch.Tensor, lanes: LaneBatch, signal_lane: torch.Tensor, spacing_m: float,
    match_m: float,
) -> torch.Tensor:
    """``[R, M]`` arc length of the start of each signalised lane crossed by each path ``xy [R, K, 2]``
    (scenarios ``scene [R]``), +inf otherwise.

    A path crosses lane m when the lane's first and last centreline points both lie within ``match_m`` of a
    path sample, the last one farther along. Only (path, lane) pairs whose lane start lies inside the path's
    bounding box (grown by ``match_m``) are measured."""
    r = xy.shape[0]
    m = signal_lane.shape[1]
    out = torch.full((r, m), math.inf, dtype=xy.dtype)
    if m == 0 or r == 0:
        return out
    sig = signal_lane.index_select(0, scene)  # [R, M]
    pts, valid = _gather_lanes(lanes, scene, sig)  # [R, M, K, 2]
    count = valid.sum(-1)  # [R, M]
    first = pts[..., 0, :].to(xy.dtype)
    last = torch.gather(pts, 2, (count - 1).clamp(min=0).view(r, m, 1, 1).expand(r, m, 1, 2)).squeeze(2).to(xy.dtype)
    lo, hi = xy.amin(dim=1) - match_m, xy.amax(dim=1) + match_m  # [R, 2]
    inside = ((first >= lo.unsqueeze(1)) & (first <= hi.unsqueeze(1))).all(-1) & (sig >= 0)  # [R, M]
    ri, mi = torch.nonzero(inside, as_tuple=True)
    if not len(ri):
        return out
    path = xy.index_select(0, ri)  # [P, K, 2]
    ends = torch.stack([first[ri, mi], last[ri, mi]], dim=1)  # [P, 2, 2]
    d2 = ((path.unsqueeze(1) - ends.unsqueeze(2)) ** 2).sum(-1)  # [P, 2, K]
    dmin, kmin = d2.min(dim=-1)  # [P, 2]
    crossed = (dmin < match_m * match_m).all(-1) & (kmin[:, 1] > kmin[:, 0])
    s_start = kmin[:, 0].to(xy.dtype) * spacing_m
    out[ri, mi] = torch.where(crossed, s_start, torch.full_like(s_start, math.inf))
    return out


def lookup_rows(paths: AgentPaths, agent: torch.Tensor, s: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points, unit tangents and headings on the paths of agents ``agent [...]`` (flat ``b * N + n``, int64)
    at arc lengths ``s [...]`` (m): ``(xy [..., 2], tangent [..., 2], heading [...])`` float32 (m, -, rad);
    linear extrapolation outside the path. Agents without a path get meaningless values."""
    k = paths.num_points
    row = paths.row_of.index_select(0, agent.reshape(-1)).clamp(min=0).view(agent.shape)
    sf = s.to(torch.float32)
    idx = torch.floor(sf * (1.0 / paths.spacing_m)).clamp(0, k - 2).to(torch.int64)
    rows = paths.table.index_select(0, (row * k + idx).reshape(-1)).view(*s.shape, 5)
    ds = sf - idx.to(torch.float32) * paths.spacing_m  # distance along the sample's tangent
    tx, ty = rows[..., 2], rows[..., 3]
    xy = torch.stack([rows[..., 0] + ds * tx, rows[..., 1] + ds * ty], dim=-1)
    return xy, rows[..., 2:4], rows[..., 4]


def lookup(paths: AgentPaths, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points, unit tangents and headings at arc lengths ``s [B, N, ...]`` (m) on each agent's own path.

    Returns ``(xy [B, N, ..., 2] m, tangent [B, N, ..., 2], heading [B, N, ...] rad)`` float32; linear
    extrapolation outside the path.
    """
    bsz, n = s.shape[:2]
    agent = torch.arange(bsz * n).view(bsz, n, *([1] * (s.ndim - 2))).expand_as(s)
    return lookup_rows(paths, agent, s)
