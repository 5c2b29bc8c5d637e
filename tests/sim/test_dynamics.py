"""Kinematic bicycle, one step (spec/metrics.md §2.5), batched over leading axes."""
from __future__ import annotations

import math

import torch

from worldengine_lab.sim.dynamics import bicycle_step
from worldengine_lab.sim.state import (AX, AY, EGO_WHEEL_BASE_M, STEER, VX, VY, X, Y, YAW, YAW_ACC, YAW_RATE,
                                       make_ego_state)


def test_one_step_by_hand():
    s = make_ego_state(x=1.0, y=2.0, yaw=0.3, vx=8.0, vy=0.4, ax=1.0, ay=0.7, steer=0.1, yaw_rate=0.2)
    a_cmd, u = torch.tensor(3.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)
    out = bicycle_step(s, a_cmd, u, dt=0.1)
    a_new = 1.0 + 0.1 / 0.3 * (3.0 - 1.0)
    steer_new = 0.1 + 0.1 / 0.15 * (0.1 + 0.05 - 0.1)
    v_new = 8.0 + a_new * 0.1
    w_new = v_new * math.tan(steer_new) / EGO_WHEEL_BASE_M
    want = {X: 1.0 + 8.0 * math.cos(0.3) * 0.1, Y: 2.0 + 8.0 * math.sin(0.3) * 0.1,
            YAW: 0.3 + 8.0 * math.tan(0.1) / EGO_WHEEL_BASE_M * 0.1, VX: v_new, VY: 0.0, AX: a_new, AY: 0.0,
            STEER: steer_new, YAW_RATE: w_new, YAW_ACC: (w_new - 0.2) / 0.1}
    for k, v in want.items():
        assert abs(float(out[k]) - v) < 1e-12, k


def test_steering_is_clipped_and_heading_wrapped():
    s = make_ego_state(yaw=math.pi - 0.01, vx=10.0, steer=1.0)
    out = bicycle_step(s, torch.tensor(0.0, dtype=torch.float64), torch.tensor(100.0, dtype=torch.float64))
    assert abs(float(out[STEER]) - math.pi / 3) < 1e-12
    assert -math.pi <= float(out[YAW]) < math.pi and float(out[YAW]) < 0  # crossed +pi


def test_batched_over_leading_axes_matches_single():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 10, generator=g, dtype=torch.float64)
    a = torch.randn(2, 3, generator=g, dtype=torch.float64)
    u = torch.randn(2, 3, generator=g, dtype=torch.float64)
    out = bicycle_step(s, a, u)
    assert out.shape == (2, 3, 10)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(out[i, j], bicycle_step(s[i, j], a[i, j], u[i, j]), rtol=0, atol=0)
