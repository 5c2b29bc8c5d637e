"""Build the planner's :class:`~worldengine_lab.planners.Observation` from the simulator state (batched).

Agents and lanes are expressed in the ego's current rear-axle body frame; lanes are the ``obs_max_lanes``
nearest to the ego (by bounding circle) within ``obs_radius_m``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..planners.base import Observation
from .config import SimConfig
from .scene_batch import SceneBatch
from .state import wrap_angle

__all__ = ["AgentBoxes", "build_observation"]


@dataclass(frozen=True)
class AgentBoxes:
    """Oriented boxes of all agents (agent 0 = the ego) over R steps, time-major.

    Attributes:
        xy: ``[R, B, N, 2]`` box centres, m, local frame; yaw ``[R, B, N]`` rad; vel ``[R, B, N, 2]`` m/s;
        valid: ``[R, B, N]`` bool.
    """

    xy: torch.Tensor
    yaw: torch.Tensor
    vel: torch.Tensor
    valid: torch.Tensor


def build_observation(batch: SceneBatch, config: SimConfig, step: int, ego: torch.Tensor, history: AgentBoxes,
                      window_row: int) -> Observation:
    """The observation at ``step`` (steps since t0) from the ego state ``[B, D]`` and the last H steps of boxes
    ``history`` (``[H, B, N, ...]``, the last row is now); ``window_row`` indexes the batch's traffic lights."""
    origin = ego[:, :3]  # [B, 3] x, y, yaw of the rear axle
    c, s = torch.cos(origin[:, 2]).view(-1, 1, 1), torch.sin(origin[:, 2]).view(-1, 1, 1)
    ox, oy = origin[:, 0].view(-1, 1, 1), origin[:, 1].view(-1, 1, 1)
    xy = history.xy.transpose(0, 1)  # [B, H, N, 2]
    vel = history.vel.transpose(0, 1)
    valid = history.valid.transpose(0, 1)
    dx, dy = xy[..., 0] - ox, xy[..., 1] - oy
    m = valid.to(ego.dtype)
    agents_xy = torch.stack([(c * dx + s * dy) * m, (c * dy - s * dx) * m], dim=-1)
    agents_vel = torch.stack([(c * vel[..., 0] + s * vel[..., 1]) * m, (c * vel[..., 1] - s * vel[..., 0]) * m], -1)
    agents_yaw = wrap_angle(history.yaw.transpose(0, 1) - origin[:, 2].view(-1, 1, 1)) * m
    # lanes: the nearest (by bounding circle) within the radius
    ln = batch.lanes
    gap = (ln.center - origin[:, None, :2]).norm(dim=-1) - ln.radius  # [B, L]
    gap = torch.where(ln.present, gap, torch.full_like(gap, math.inf))
    p = min(config.obs_max_lanes, gap.shape[1])
    near_gap, idx = torch.topk(gap, p, dim=1, largest=False)  # [B, P]
    keep = near_gap <= config.obs_radius_m
    k = ln.xy.shape[2]
    lxy = torch.gather(ln.xy, 1, idx.view(*idx.shape, 1, 1).expand(-1, -1, k, 2))  # [B, P, K, 2]
    lvalid = torch.gather(ln.valid, 1, idx.unsqueeze(-1).expand(-1, -1, k)) & keep.unsqueeze(-1)
    lm = lvalid.to(ego.dtype)
    ldx, ldy = lxy[..., 0] - ox, lxy[..., 1] - oy
    lanes_xy = torch.stack([(c * ldx + s * ldy) * lm, (c * ldy - s * ldx) * lm], dim=-1)
    col = torch.gather(ln.signal_col, 1, idx)
    status = torch.gather(batch.signal_status[window_row], 1, col.clamp(min=0))
    minus_one = torch.full_like(idx, -1)
    return Observation(
        scenario_ids=batch.scenario_ids, step=step, dt=config.dt_s, log_step=batch.t0 + step, ego_state=ego,
        agents_xy=agents_xy, agents_yaw=agents_yaw, agents_vel=agents_vel, agents_valid=valid,
        agents_size=batch.size_lwh, agents_type=batch.agent_type,
        lanes_xy=lanes_xy, lanes_valid=lvalid, lanes_index=torch.where(keep, idx, minus_one),
        lanes_on_route=torch.gather(ln.on_route, 1, idx) & keep,
        lanes_speed_limit=torch.gather(ln.speed_limit, 1, idx),
        lanes_traffic_light=torch.where((col >= 0) & keep, status, minus_one),
    )
