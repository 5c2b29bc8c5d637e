"""Per-candidate geometry against the scene: how each vocabulary trajectory sits on the lanes and among the agents.

Attention over scene tokens learns "this candidate leaves the road" or "this one meets that car" slowly from a
few thousand states. These features give the sub-score heads the distances directly, computed from the same
:class:`~worldengine_lab.planners.features.SceneFeatures` (ego body frame, so they inherit their invariance):

for each candidate and each of the poses at 1, 2, 3 and 4 s (:data:`CHECK_POSES`), ``[B, K, 4, 5]``:

1. distance to the nearest lane-centreline point, / 5 m (clamped at 2);
2. cosine between the candidate's heading and that lane's direction there;
3. distance to the nearest point of an **on-route** lane, / 5 m (clamped at 2; 2 when no route lane is seen);
4. clearance to the agents under a constant-velocity forecast: centre distance minus half the agent's length
   and half the ego's length, / 10 m (clamped at 3; 3 with no agent);
5. the speed along the candidate between the previous check pose and this one, / 10 m/s.

All of it is batched over scenes, candidates, poses, lanes and agents; scenes are processed in chunks to bound
memory (``[b, K, 4, L·P]`` distances).
"""
from __future__ import annotations

import torch

from .features import POSITION_SCALE_M, SIZE_SCALE_M, SPEED_SCALE_MPS, SceneFeatures

__all__ = ["candidate_geometry", "CHECK_POSES", "GEOMETRY_DIM"]

CHECK_POSES = (9, 19, 29, 39)
"""Indices of the checked poses in the 40-pose plan (1, 2, 3, 4 s)."""
GEOMETRY_DIM = 5
"""Features per checked pose."""
_EGO_HALF_LENGTH_M = 2.4  # roughly half a passenger car; the clearance is a learning signal, not a metric
_LANE_SCALE_M = 5.0
_CLEAR_SCALE_M = 10.0


def candidate_geometry(features: SceneFeatures, candidates: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """``[B, K, len(CHECK_POSES), GEOMETRY_DIM]`` features of the body-frame ``candidates [K, 40, 3]``."""
    out = [_geometry(features.index(slice(i, i + chunk)), candidates)
           for i in range(0, features.batch_size, chunk)]  # chunks bound memory; each chunk is fully batched
    return torch.cat(out) if out else candidates.new_zeros(0, candidates.shape[0], len(CHECK_POSES), GEOMETRY_DIM)


def _geometry(f: SceneFeatures, candidates: torch.Tensor) -> torch.Tensor:
    dtype = f.lanes.dtype
    idx = torch.tensor(CHECK_POSES)
    pose = candidates.to(dtype)[:, idx]  # [K, C, 3]
    prev = candidates.to(dtype)[:, idx - 10].clone()  # 1 s earlier (index -1 is the origin)
    prev[:, 0] = 0.0
    speed = (pose[..., :2] - prev[..., :2]).norm(dim=-1) / 1.0  # [K, C] m/s
    xy = pose[..., :2]  # [K, C, 2]
    heading = torch.stack([torch.cos(pose[..., 2]), torch.sin(pose[..., 2])], -1)  # [K, C, 2]

    # lanes: points [B, L·P, 2] m, directions, on-route flags, validity
    b, n_l, n_p, _ = f.lanes.shape
    pts = (f.lanes[..., :2] * POSITION_SCALE_M).reshape(b, n_l * n_p, 2)
    dirs = f.lanes[..., 2:4].reshape(b, n_l * n_p, 2)
    valid = f.lanes_mask[:, :, None].expand(b, n_l, n_p).reshape(b, -1)
    route = valid & (f.lanes[..., 4].reshape(b, -1) > 0.5)
    d2 = ((xy[None, :, :, None, :] - pts[:, None, None, :, :]) ** 2).sum(-1)  # [B, K, C, LP]
    big = torch.finfo(dtype).max
    d2_all = torch.where(valid[:, None, None], d2, big)
    near_d2, near = d2_all.min(-1)  # [B, K, C]
    near_dir = torch.gather(dirs[:, None, None].expand(-1, xy.shape[0], xy.shape[1], -1, -1), 3,
                            near[..., None, None].expand(-1, -1, -1, 1, 2)).squeeze(3)  # [B, K, C, 2]
    lane_cos = (near_dir * heading[None]).sum(-1)
    has_lane = valid.any(-1)[:, None, None]
    lane_d = torch.where(has_lane, near_d2.clamp(max=1e6).sqrt() / _LANE_SCALE_M, 2.0).clamp(max=2.0)
    lane_cos = torch.where(has_lane, lane_cos, 0.0)
    route_d2 = torch.where(route[:, None, None], d2, big).min(-1).values
    route_d = torch.where(route.any(-1)[:, None, None], route_d2.clamp(max=1e6).sqrt() / _LANE_SCALE_M, 2.0)
    route_d = route_d.clamp(max=2.0)

    # agents: constant-velocity forecast from "now" (the last history step)
    now = f.agents[:, :, -1]  # [B, A, F]
    a_xy = now[..., 0:2] * POSITION_SCALE_M
    a_v = now[..., 4:6] * SPEED_SCALE_MPS
    a_half = now[..., 6] * SIZE_SCALE_M / 2
    a_ok = f.agents_mask & (now[..., -1] > 0.5)  # [B, A]
    t = (idx.to(dtype) + 1.0) * 0.1  # [C] s
    fut = a_xy[:, None] + t[None, :, None, None] * a_v[:, None]  # [B, C, A, 2]
    gap = (xy[None, :, :, None, :] - fut[:, None]).norm(dim=-1) - a_half[:, None, None] - _EGO_HALF_LENGTH_M
    gap = torch.where(a_ok[:, None, None], gap, big).min(-1).values  # [B, K, C]
    clear = (gap / _CLEAR_SCALE_M).clamp(min=-1.0, max=3.0)

    spd = (speed / SPEED_SCALE_MPS)[None].expand(b, -1, -1)
    return torch.stack([lane_d, lane_cos, route_d, clear, spd], -1)
