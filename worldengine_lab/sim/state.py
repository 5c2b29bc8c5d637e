"""Ego state layout shared by the simulator, the tracker and the scorer (torch tensors, last axis = fields).

An ego state is a float tensor ``[..., EGO_STATE_DIM]`` whose last axis holds, in order:

==========  =====  ==========================================================
index       name   meaning (rear-axle reference, spec/metrics.md §0, §2.5)
==========  =====  ==========================================================
X           x      rear-axle x, m, scenario local frame
Y           y      rear-axle y, m, scenario local frame
YAW         yaw    heading, rad, CCW from +x, wrapped to [-pi, pi)
VX          vx     velocity along the body x axis, m/s
VY          vy     velocity along the body y axis (lateral), m/s (the bicycle stores 0)
AX          ax     acceleration along body x, m/s^2
AY          ay     acceleration along body y, m/s^2 (the bicycle stores 0)
STEER       steer  front-wheel steering angle, rad
YAW_RATE    w      yaw rate, rad/s
YAW_ACC     dw     yaw acceleration, rad/s^2
==========  =====  ==========================================================

Leading axes are batch axes, e.g. ``[B, S, EGO_STATE_DIM]`` for S states of B trajectories.
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "X", "Y", "YAW", "VX", "VY", "AX", "AY", "STEER", "YAW_RATE", "YAW_ACC", "EGO_STATE_DIM",
    "EGO_WHEEL_BASE_M", "EGO_REAR_TO_CENTER_M", "EGO_LENGTH_M", "EGO_WIDTH_M", "EGO_REAR_TO_FRONT_M",
    "EGO_REAR_TO_BACK_M", "wrap_angle", "make_ego_state",
]

X, Y, YAW, VX, VY, AX, AY, STEER, YAW_RATE, YAW_ACC = range(10)
EGO_STATE_DIM = 10

# Chrysler Pacifica, nuPlan parameters (spec/metrics.md §1.1)
EGO_WIDTH_M = 2.297
EGO_LENGTH_M = 5.176
EGO_REAR_TO_FRONT_M = 4.049
EGO_REAR_TO_BACK_M = 1.127
EGO_REAR_TO_CENTER_M = 1.461
EGO_WHEEL_BASE_M = 3.089


def wrap_angle(a: torch.Tensor) -> torch.Tensor:
    """Wrap angles (rad) to [-pi, pi)."""
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def make_ego_state(x: torch.Tensor | float = 0.0, y: torch.Tensor | float = 0.0, yaw: torch.Tensor | float = 0.0,
                   vx: torch.Tensor | float = 0.0, vy: torch.Tensor | float = 0.0, ax: torch.Tensor | float = 0.0,
                   ay: torch.Tensor | float = 0.0, steer: torch.Tensor | float = 0.0,
                   yaw_rate: torch.Tensor | float = 0.0, yaw_acc: torch.Tensor | float = 0.0,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Stack fields (scalars or broadcastable tensors) into a ``[..., EGO_STATE_DIM]`` state tensor."""
    fields = [x, y, yaw, vx, vy, ax, ay, steer, yaw_rate, yaw_acc]
    ts = torch.broadcast_tensors(*[torch.as_tensor(f, dtype=dtype) for f in fields])
    return torch.stack(ts, dim=-1)
