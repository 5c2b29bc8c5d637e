"""Kinematic bicycle model of the ego, rear-axle reference (spec/metrics.md §2.5), batched over leading axes.

One step of ``dt`` from a state ``[..., EGO_STATE_DIM]`` (layout in :mod:`worldengine_lab.sim.state`) under
two commands, both ``[...]``:

* ``accel_cmd``: longitudinal acceleration command, m/s^2;
* ``steer_rate_cmd``: steering-rate command, rad/s.

Both commands pass through first-order lags (0.2 s on acceleration, 0.05 s on steering), then the pose is
integrated with explicit Euler from the *old* speed, heading and steering angle.

Examples:
    >>> import torch
    >>> from worldengine_lab.sim.state import make_ego_state, X, VX
    >>> s = make_ego_state(vx=10.0)
    >>> s1 = bicycle_step(s, torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64))
    >>> float(s1[X]), float(s1[VX])
    (1.0, 10.0)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .state import AX, AY, EGO_WHEEL_BASE_M, STEER, VX, VY, X, Y, YAW, YAW_ACC, YAW_RATE, wrap_angle

__all__ = ["BicycleParams", "bicycle_step", "wrap_angle_exact"]


@dataclass(frozen=True)
class BicycleParams:
    """Constants of the kinematic bicycle (nuPlan / NAVSIM values)."""

    wheel_base_m: float = EGO_WHEEL_BASE_M
    """Rear axle to front axle, m."""
    accel_time_constant_s: float = 0.2
    """First-order lag of the acceleration response, s."""
    steer_time_constant_s: float = 0.05
    """First-order lag of the steering response, s."""
    max_steer_rad: float = math.pi / 3
    """Steering angle limit (symmetric), rad."""


_DEFAULT = BicycleParams()


def wrap_angle_exact(a: torch.Tensor) -> torch.Tensor:
    """Wrap to [-pi, pi), leaving values already in range bit-identical (``wrap_angle`` rounds them)."""
    inside = (a >= -math.pi) & (a < math.pi)
    return torch.where(inside, a, wrap_angle(a))


def bicycle_step(
    state: torch.Tensor,
    accel_cmd: torch.Tensor,
    steer_rate_cmd: torch.Tensor,
    dt: float = 0.1,
    params: BicycleParams = _DEFAULT,
) -> torch.Tensor:
    """Propagate ego states one step of ``dt`` seconds (spec §2.5, "Kinematic bicycle").

    Args:
        state: ``[..., EGO_STATE_DIM]`` rear-axle states, local frame (m, rad, m/s, ...).
        accel_cmd: ``[...]`` acceleration command, m/s^2 (broadcast against ``state[..., 0]``).
        steer_rate_cmd: ``[...]`` steering-rate command, rad/s.
        dt: step, s.
        params: vehicle constants.
    Returns:
        ``[..., EGO_STATE_DIM]`` next states: lateral velocity 0, stored ay 0, stored ax = the lagged
        acceleration, yaw rate from the new speed and steering, yaw acceleration by finite difference.
    """
    x, y, yaw = state[..., X], state[..., Y], state[..., YAW]
    v, a, steer, yaw_rate = state[..., VX], state[..., AX], state[..., STEER], state[..., YAW_RATE]
    # 1-2. first-order lags on the commands
    a_new = a + dt / (dt + params.accel_time_constant_s) * (accel_cmd - a)
    steer_ideal = steer + dt * steer_rate_cmd
    steer_lag = steer + dt / (dt + params.steer_time_constant_s) * (steer_ideal - steer)
    # 3. Euler integration with the old speed, heading and steering
    x_new = x + v * torch.cos(yaw) * dt
    y_new = y + v * torch.sin(yaw) * dt
    yaw_new = wrap_angle_exact(yaw + v * torch.tan(steer) / params.wheel_base_m * dt)
    # 4. speed, steering limit, derived rates
    v_new = v + a_new * dt
    steer_new = steer_lag.clamp(-params.max_steer_rad, params.max_steer_rad)
    yaw_rate_new = v_new * torch.tan(steer_new) / params.wheel_base_m
    zero = torch.zeros_like(v_new)
    fields = {X: x_new, Y: y_new, YAW: yaw_new, VX: v_new, VY: zero, AX: a_new, AY: zero, STEER: steer_new,
              YAW_RATE: yaw_rate_new, YAW_ACC: (yaw_rate_new - yaw_rate) / dt}
    return torch.stack(torch.broadcast_tensors(*(fields[k] for k in range(len(fields)))), dim=-1)
