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


_FAR_M = 1.0e6  # masked-out points are moved this far away: farther than any clamp below


def _sq_dist(xy: torch.Tensor, pts: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Squared distances ``[B, K, C, P]`` (m², dtype of ``pts``) from the candidate poses ``xy [K, C, 2]`` to the
    points ``pts [B, P, 2]``; points where ``keep [B, P]`` is False count as :data:`_FAR_M` away.

    |x|² + |p|² − 2 x·p as one batched matrix product in float64 (exact to float32 at map scales), instead of
    materialising the ``[B, K, C, P, 2]`` differences.
    """
    k, c, _ = xy.shape
    x = xy.reshape(k * c, 2).to(torch.float64)
    p = torch.where(keep[..., None], pts.to(torch.float64), _FAR_M)
    d2 = torch.baddbmm((p * p).sum(-1)[:, None, :], x[None].expand(p.shape[0], -1, -1), p.transpose(1, 2),
                       alpha=-2.0) + (x * x).sum(-1)[None, :, None]
    return d2.clamp_(min=0.0).to(pts.dtype).view(p.shape[0], k, c, -1)


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
    near_d2, near = _sq_dist(xy, pts, valid).min(-1)  # [B, K, C]
    near_dir = torch.gather(dirs[:, None, None].expand(-1, xy.shape[0], xy.shape[1], -1, -1), 3,
                            near[..., None, None].expand(-1, -1, -1, 1, 2)).squeeze(3)  # [B, K, C, 2]
    lane_cos = (near_dir * heading[None]).sum(-1)
    has_lane = valid.any(-1)[:, None, None]
    lane_d = torch.where(has_lane, near_d2.clamp(max=1e6).sqrt() / _LANE_SCALE_M, 2.0).clamp(max=2.0)
    lane_cos = torch.where(has_lane, lane_cos, 0.0)
    # the on-route points only (a few lanes of each scene), packed to the batch's largest count
    n_route = route.sum(-1)
    r_max = max(int(n_route.max()), 1) if b else 1
    order = torch.argsort((~route).to(torch.int8), dim=-1, stable=True)[:, :r_max]  # route points first
    route_pts = torch.gather(pts, 1, order[..., None].expand(-1, -1, 2))
    route_keep = torch.arange(r_max)[None] < n_route[:, None]
    route_d2 = _sq_dist(xy, route_pts, route_keep).min(-1).values
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
    gap = torch.where(a_ok[:, None, None], gap, torch.finfo(dtype).max).min(-1).values  # [B, K, C]
    clear = (gap / _CLEAR_SCALE_M).clamp(min=-1.0, max=3.0)

    spd = (speed / SPEED_SCALE_MPS)[None].expand(b, -1, -1)
    return torch.stack([lane_d, lane_cos, route_d, clear, spd], -1)
