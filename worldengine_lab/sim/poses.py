"""Pose frames and time grids for planner outputs (spec/metrics.md §0, §2.4).

A pose is ``(x, y, yaw)`` on the last axis: metres and radians, yaw CCW from +x, wrapped to [-pi, pi).
Planner outputs are rear-axle poses in the ego **body frame** (origin at the current rear axle, +x forward,
+y left); the simulator tracks them in the scenario's **local frame** ("global" below).

Two planner formats exist:

* 40 poses at t = 0.1, 0.2, ..., 4.0 s (this workbench's planners);
* 8 poses at t = 0.5, 1.0, ..., 4.0 s (NAVSIM's format): every 5th pose of the 40 (indices 4, 9, ..., 39).

:func:`reference_poses` turns either into the 41 timed global poses (t = 0, 0.1, ..., 4.0 s) that the LQR
tracker follows: body -> global, prepend the initial pose, shortest-arc interpolation to 0.1 s.

Examples:
    >>> import torch
    >>> plan = torch.tensor([[[5.0 * (i + 1), 0.0, 0.0] for i in range(8)]], dtype=torch.float64)
    >>> ref = reference_poses(plan, torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64))
    >>> tuple(ref.shape), float(ref[0, 1, 0]), float(ref[0, 40, 0])
    ((1, 41, 3), 2.0, 41.0)
"""
from __future__ import annotations

import torch

from ..errors import ShapeError
from .state import wrap_angle

__all__ = [
    "PLAN_DT_S",
    "PLAN_NUM_POSES",
    "NAVSIM_DT_S",
    "NAVSIM_NUM_POSES",
    "body_to_global",
    "global_to_body",
    "unwrap_angle",
    "interpolate_poses",
    "poses_40_to_8",
    "poses_8_to_40",
    "reference_poses",
    "states_from_poses",
]

PLAN_DT_S = 0.1  # s, spacing of the 40-pose planner format
PLAN_NUM_POSES = 40  # poses at 0.1 .. 4.0 s
NAVSIM_DT_S = 0.5  # s, spacing of the 8-pose NAVSIM format
NAVSIM_NUM_POSES = 8  # poses at 0.5 .. 4.0 s
_STRIDE = int(round(NAVSIM_DT_S / PLAN_DT_S))  # 5


def _check_poses(name: str, poses: torch.Tensor, num: int | None = None) -> None:
    if not isinstance(poses, torch.Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor of poses [..., 3], received {type(poses).__name__}")
    if poses.ndim < 1 or poses.shape[-1] != 3:
        raise ShapeError(f"{name}: expected poses [..., 3] (x, y, yaw), received shape {list(poses.shape)}")
    if num is not None and (poses.ndim < 2 or poses.shape[-2] != num):
        raise ShapeError(f"{name}: expected [..., {num}, 3] poses, received shape {list(poses.shape)}")


def body_to_global(poses_body: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """Map body-frame poses into the global frame of their origin pose.

    Args:
        poses_body: ``[..., P, 3]`` poses (m, m, rad) in the body frame of ``origin``.
        origin: ``[..., 3]`` the body frame's pose (rear axle) in the global frame.
    Returns:
        ``[..., P, 3]`` global poses: p = R(yaw0) p_body + (x0, y0), yaw = wrap(yaw_body + yaw0).
    """
    _check_poses("body_to_global(poses_body)", poses_body)
    _check_poses("body_to_global(origin)", origin)
    c = torch.cos(origin[..., 2:3])  # [..., 1]
    s = torch.sin(origin[..., 2:3])
    xb, yb = poses_body[..., 0], poses_body[..., 1]
    x = origin[..., 0:1] + c * xb - s * yb
    y = origin[..., 1:2] + s * xb + c * yb
    yaw = wrap_angle(poses_body[..., 2] + origin[..., 2:3])
    return torch.stack([x, y, yaw], dim=-1)


def global_to_body(poses: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`body_to_global`: ``[..., P, 3]`` global poses -> body frame of ``origin [..., 3]``."""
    _check_poses("global_to_body(poses)", poses)
    _check_poses("global_to_body(origin)", origin)
    c = torch.cos(origin[..., 2:3])
    s = torch.sin(origin[..., 2:3])
    dx = poses[..., 0] - origin[..., 0:1]
    dy = poses[..., 1] - origin[..., 1:2]
    return torch.stack([c * dx + s * dy, -s * dx + c * dy, wrap_angle(poses[..., 2] - origin[..., 2:3])], dim=-1)


def unwrap_angle(angles: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Add multiples of 2 pi along ``dim`` so that successive differences lie in [-pi, pi)."""
    first = angles.narrow(dim, 0, 1)
    return torch.cat([first, first + torch.cumsum(wrap_angle(torch.diff(angles, dim=dim)), dim=dim)], dim=dim)


def interpolate_poses(times: torch.Tensor, poses: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """Interpolate timed poses: x, y linearly, yaw along the shortest arc (unwrap, lerp, re-wrap).

    Args:
        times: ``[P]`` strictly increasing sample times, s (shared by the batch).
        poses: ``[..., P, 3]`` poses at ``times``.
        query_times: ``[Q]`` times within ``[times[0], times[-1]]``, s.
    Returns:
        ``[..., Q, 3]`` interpolated poses.
    """
    _check_poses("interpolate_poses(poses)", poses, num=int(times.shape[0]))
    if times.ndim != 1 or times.shape[0] < 2 or not bool((torch.diff(times) > 0).all()):
        raise ShapeError(
            f"interpolate_poses(times): expected >= 2 strictly increasing times, received {times.tolist()}")
    t = times.to(poses.dtype)
    q = query_times.to(poses.dtype)
    if bool((q < t[0] - 1e-9).any()) or bool((q > t[-1] + 1e-9).any()):
        raise ShapeError(
            f"interpolate_poses(query_times): expected times within [{float(t[0])}, {float(t[-1])}] s, "
            f"received [{float(q.min())}, {float(q.max())}]"
        )
    hi = torch.searchsorted(t, q, right=True).clamp(1, t.shape[0] - 1)  # [Q]
    lo = hi - 1
    w = ((q - t[lo]) / (t[hi] - t[lo])).unsqueeze(-1)  # [Q, 1]
    unwrapped = torch.cat([poses[..., :2], unwrap_angle(poses[..., 2], dim=-1).unsqueeze(-1)], dim=-1)
    a = unwrapped[..., lo, :]
    b = unwrapped[..., hi, :]
    out = a + w * (b - a)
    return torch.cat([out[..., :2], wrap_angle(out[..., 2:3])], dim=-1)


def poses_40_to_8(poses40: torch.Tensor) -> torch.Tensor:
    """``[..., 40, 3]`` poses at 0.1 .. 4.0 s -> ``[..., 8, 3]`` poses at 0.5 .. 4.0 s (indices 4, 9, ..., 39)."""
    _check_poses("poses_40_to_8(poses40)", poses40, num=PLAN_NUM_POSES)
    return poses40[..., _STRIDE - 1 :: _STRIDE, :]


def poses_8_to_40(poses8: torch.Tensor) -> torch.Tensor:
    """``[..., 8, 3]`` body-frame poses at 0.5 .. 4.0 s -> ``[..., 40, 3]`` at 0.1 .. 4.0 s.

    The implicit current pose (0, 0, 0) is prepended at t = 0, then shortest-arc interpolation (§2.4)."""
    _check_poses("poses_8_to_40(poses8)", poses8, num=NAVSIM_NUM_POSES)
    zero = torch.zeros_like(poses8[..., :1, :])
    times = torch.arange(NAVSIM_NUM_POSES + 1, dtype=torch.float64) * NAVSIM_DT_S
    query = torch.arange(1, PLAN_NUM_POSES + 1, dtype=torch.float64) * PLAN_DT_S
    return interpolate_poses(times, torch.cat([zero, poses8], dim=-2), query)


def reference_poses(plan_body: torch.Tensor, initial_pose: torch.Tensor) -> torch.Tensor:
    """Planner output -> the 41 global reference poses at t = 0, 0.1, ..., 4.0 s that the tracker follows.

    Args:
        plan_body: ``[B, 8, 3]`` (0.5 s spacing, NAVSIM) or ``[B, 40, 3]`` (0.1 s spacing) body-frame
            rear-axle poses; the current pose is implicit.
        initial_pose: ``[B, 3]`` the current rear-axle pose (x, y, yaw) in the global frame.
    Returns:
        ``[B, 41, 3]`` global poses; row 0 is ``initial_pose``.
    Raises:
        ShapeError: wrong shapes or non-finite values, naming the argument.
    """
    _check_poses("reference_poses(plan_body)", plan_body)
    if plan_body.ndim != 3 or plan_body.shape[1] not in (NAVSIM_NUM_POSES, PLAN_NUM_POSES):
        raise ShapeError(
            f"reference_poses(plan_body): expected [B, 8, 3] (0.5 s) or [B, 40, 3] (0.1 s) poses, received "
            f"{list(plan_body.shape)}"
        )
    if initial_pose.shape != (plan_body.shape[0], 3):
        raise ShapeError(
            f"reference_poses(initial_pose): expected [{plan_body.shape[0]}, 3], received {list(initial_pose.shape)}"
        )
    if not bool(torch.isfinite(plan_body).all()) or not bool(torch.isfinite(initial_pose).all()):
        raise ShapeError("reference_poses: expected finite poses, received NaN/inf; check the planner output")
    glob = body_to_global(plan_body, initial_pose)  # [B, P, 3]
    poses = torch.cat([initial_pose.unsqueeze(1).to(glob.dtype), glob], dim=1)  # [B, P + 1, 3]
    if plan_body.shape[1] == PLAN_NUM_POSES:
        return poses
    times = torch.arange(NAVSIM_NUM_POSES + 1, dtype=torch.float64) * NAVSIM_DT_S
    query = torch.arange(PLAN_NUM_POSES + 1, dtype=torch.float64) * PLAN_DT_S
    out = interpolate_poses(times, poses, query)
    out[:, 0] = poses[:, 0]  # exact initial pose (no wrap round-off)
    return out



def states_from_poses(poses: torch.Tensor, initial_state: torch.Tensor, dt: float = PLAN_DT_S) -> torch.Tensor:
    """Ego states of a vehicle placed exactly on successive rear-axle poses (perfect tracking, spec §3.1).

    Velocities are the finite differences of consecutive poses in the body frame of the later pose;
    accelerations, yaw rate and yaw acceleration are finite differences too; the steering angle is the
    kinematic bicycle's ``atan(L·yaw_rate / vx)`` (0 below 1 m/s), clamped to ±60°.

    Args:
        poses: ``[B, S, 3]`` rear-axle poses (x m, y m, yaw rad), local frame, at dt, dt·2, ... after the
            initial state.
        initial_state: ``[B, D]`` the state before the first pose.
        dt: spacing, s.
    Returns:
        ``[B, S, D]`` states (same dtype as ``poses``).
    """
    from .state import AX, AY, EGO_STATE_DIM, EGO_WHEEL_BASE_M, STEER, VX, VY, X, Y, YAW, YAW_ACC, YAW_RATE

    _check_poses("states_from_poses(poses)", poses)
    if initial_state.ndim != 2 or initial_state.shape != (poses.shape[0], EGO_STATE_DIM):
        raise ShapeError(f"states_from_poses(initial_state): expected [{poses.shape[0]}, {EGO_STATE_DIM}], received "
                         f"{list(initial_state.shape)}")
    init = initial_state.to(poses.dtype)
    prev = torch.cat([init[:, None, [X, Y, YAW]], poses[:, :-1]], 1)
    c, s = torch.cos(poses[..., 2]), torch.sin(poses[..., 2])
    dx, dy = (poses[..., 0] - prev[..., 0]) / dt, (poses[..., 1] - prev[..., 1]) / dt
    vx, vy = c * dx + s * dy, -s * dx + c * dy
    yaw_rate = wrap_angle(poses[..., 2] - prev[..., 2]) / dt
    moving = vx > 1.0
    steer = torch.where(moving, torch.atan(EGO_WHEEL_BASE_M * yaw_rate / torch.where(moving, vx, 1.0)), 0.0)
    prev_v = torch.cat([init[:, None, [VX, VY, YAW_RATE]], torch.stack([vx, vy, yaw_rate], -1)[:, :-1]], 1)
    fields = {X: poses[..., 0], Y: poses[..., 1], YAW: poses[..., 2], VX: vx, VY: vy,
              AX: (vx - prev_v[..., 0]) / dt, AY: (vy - prev_v[..., 1]) / dt,
              STEER: steer.clamp(-torch.pi / 3, torch.pi / 3), YAW_RATE: yaw_rate,
              YAW_ACC: (yaw_rate - prev_v[..., 2]) / dt}
    return torch.stack([fields[j] for j in range(EGO_STATE_DIM)], dim=-1)
