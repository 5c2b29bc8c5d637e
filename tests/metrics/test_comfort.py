"""Comfort: Savitzky–Golay parity with scipy.signal.savgol_filter (mode 'interp'), batching, unwrapping."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import savgol_filter as scipy_savgol

from worldengine_lab.metrics import comfort, comfort_signals, savgol_filter, unwrap_angles
from worldengine_lab.sim.state import make_ego_state


@pytest.mark.parametrize("n", [41, 9, 12])
@pytest.mark.parametrize("window, order, deriv, delta", [(8, 2, 0, 1.0), (41, 2, 0, 1.0), (41, 2, 1, 0.1),
                                                         (5, 2, 1, 0.1), (5, 3, 2, 0.5), (15, 2, 1, 0.1)])
def test_savgol_matches_scipy(n: int, window: int, order: int, deriv: int, delta: float) -> None:
    x = np.random.default_rng(n + window).normal(size=(7, n))
    w = min(window, n)
    want = scipy_savgol(x, w, order, deriv=deriv, delta=delta, axis=-1, mode="interp")
    got = savgol_filter(torch.from_numpy(x), window, order, deriv, delta).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_comfort_signals_match_the_reference_pipeline_with_scipy() -> None:
    rng = np.random.default_rng(0)
    ax = np.cumsum(rng.normal(0, 0.3, size=(5, 41)), -1)
    ay = rng.normal(0, 0.2, size=(5, 41))
    yaw = np.cumsum(rng.normal(0, 0.05, size=(5, 41)), -1) + 3.0
    states = make_ego_state(ax=torch.from_numpy(ax), ay=torch.from_numpy(ay),
                            yaw=torch.from_numpy((yaw + np.pi) % (2 * np.pi) - np.pi))
    sig = comfort_signals(states, 0.1)
    unwrapped = np.unwrap((yaw + np.pi) % (2 * np.pi) - np.pi, axis=-1)
    r = lambda v: np.round(v, 8)  # noqa: E731
    want = {
        "lon_acc": r(scipy_savgol(ax, 41, 2, axis=-1)),
        "lat_acc": r(scipy_savgol(ay, 41, 2, axis=-1)),
        "jerk": r(scipy_savgol(r(scipy_savgol(np.hypot(ax, ay), 8, 2, axis=-1)), 41, 2, deriv=1, delta=0.1, axis=-1)),
        "lon_jerk": r(scipy_savgol(r(scipy_savgol(ax, 8, 2, axis=-1)), 41, 2, deriv=1, delta=0.1, axis=-1)),
        "yaw_rate": r(scipy_savgol(unwrapped, 5, 2, deriv=1, delta=0.1, axis=-1)),
        "yaw_acc": r(scipy_savgol(unwrapped, 5, 3, deriv=2, delta=0.1, axis=-1)),
    }
    for k, v in want.items():
        np.testing.assert_allclose(sig[k].numpy(), v, rtol=0, atol=2e-8, err_msg=k)
    c, checks = comfort(states, 0.1)
    assert c.shape == (5,) and checks.shape == (5, 6)


def test_unwrap_angles_keeps_steps_within_pi() -> None:
    a = torch.tensor([3.0, -3.1, 3.1, -3.0, 2.9], dtype=torch.float64)
    u = unwrap_angles(a)
    assert (u.diff().abs() <= math.pi).all()
    np.testing.assert_allclose(u.numpy(), np.unwrap(a.numpy()))
