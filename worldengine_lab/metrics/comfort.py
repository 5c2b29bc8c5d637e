"""Comfort (C, spec/metrics.md §2.11): six Savitzky–Golay-filtered checks on the simulated states.

The Savitzky–Golay filter with "interp" edges is linear in the signal, so for a fixed length n it is an
``[n, n]`` matrix: row i of the interior holds the least-squares weights of the window around i evaluated
at the window centre; the first/last ``window // 2`` rows evaluate the polynomial fitted to the first/last
window. For an even window w the interior window of sample i covers ``i − (w/2 − 1) .. i + w/2`` and is
evaluated at its centre ``i + 0.5`` (the half-sample shift of SciPy's even windows). This reproduces
``scipy.signal.savgol_filter(x, w, order, deriv, delta, mode="interp")`` (checked in the tests); the
matrices are built once per (n, w, order, deriv, delta) and applied to all proposals with one matmul.

Checks (all bounds strict, every sample; values rounded to 8 decimals after each filter):

=================  ===================  =============================================  =================
check              signal               processing                                     bound
=================  ===================  =============================================  =================
lon_acc            ax                   SG(n, 2)                                       −4.05 < a < 2.40
lat_acc            ay                   SG(n, 2)                                       |a| < 4.89
jerk               hypot(ax, ay)        SG(8, 2), round, d/dt SG(n, 2, Δt)             |j| < 8.37
lon_jerk           ax                   SG(8, 2), round, d/dt SG(n, 2, Δt)             |j| < 4.13
yaw_rate           unwrapped heading    d/dt SG(5, 2, Δt)                              |ω| < 0.95
yaw_acc            unwrapped heading    d²/dt² SG(5, 3, Δt)                            |α| < 1.93
=================  ===================  =============================================  =================

Windows are capped at n. Computation is float64 regardless of the input dtype.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ..errors import ShapeError
from ..sim.state import AX, AY, YAW

__all__ = ["savgol_matrix", "savgol_filter", "unwrap_angles", "comfort_signals", "comfort", "COMFORT_CHECKS"]

COMFORT_CHECKS = ("lon_acc", "lat_acc", "jerk", "lon_jerk", "yaw_rate", "yaw_acc")
_BOUNDS = {
    "lon_acc": (-4.05, 2.40), "lat_acc": (-4.89, 4.89), "jerk": (-8.37, 8.37), "lon_jerk": (-4.13, 4.13),
    "yaw_rate": (-0.95, 0.95), "yaw_acc": (-1.93, 1.93),
}
_DECIMALS = 8


def _fit_weights(positions: np.ndarray, order: int, deriv: int, at: np.ndarray) -> np.ndarray:
    """Weights ``[len(at), len(positions)]`` mapping samples at ``positions`` to the ``deriv``-th derivative
    of their least-squares polynomial of ``order`` evaluated at ``at`` (positions in samples)."""
    centre = positions.mean()
    x = positions - centre
    vander = x[:, None] ** np.arange(order + 1)[None, :]  # [w, order + 1]
    pinv = np.linalg.pinv(vander)  # [order + 1, w]
    xa = np.asarray(at, dtype=np.float64) - centre
    powers = np.arange(order + 1)
    coef = np.zeros((len(xa), order + 1))
    for m in range(deriv, order + 1):
        coef[:, m] = math.factorial(m) / math.factorial(m - deriv) * xa ** (m - deriv)
    return coef @ pinv if len(powers) else coef


@lru_cache(maxsize=64)
def savgol_matrix(n: int, window: int, order: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """``[n, n]`` float64 matrix M with ``savgol_filter(x) = M @ x`` ("interp" edges, SciPy semantics).

    Args:
        n: signal length; window: window length (capped at n); order: polynomial order (< window);
        deriv: derivative order; delta: sample spacing (s) for derivatives.
    """
    w = min(int(window), int(n))
    if order >= w:
        raise ShapeError(f"savgol_matrix: polynomial order {order} needs a window > {order} samples, received "
                         f"window {w} (n = {n})")
    half = w // 2
    mat = np.zeros((n, n))
    # interior: window starting at i - (w - 1) // 2, evaluated at its centre
    start = (w - 1) // 2
    centre_w = _fit_weights(np.arange(w, dtype=np.float64), order, deriv, np.array([(w - 1) / 2.0]))[0]
    for i in range(half, n - half):
        mat[i, i - start: i - start + w] = centre_w
    # edges: polynomial of the first / last window evaluated at the edge samples
    head = _fit_weights(np.arange(w, dtype=np.float64), order, deriv, np.arange(half, dtype=np.float64))
    mat[:half, :w] = head
    tail = _fit_weights(np.arange(w, dtype=np.float64), order, deriv, np.arange(w - half, w, dtype=np.float64))
    mat[n - half:, n - w:] = tail
    mat /= delta ** deriv
    mat.setflags(write=False)
    return mat


@lru_cache(maxsize=64)
def _global_fit(n: int, order: int, deriv: int, delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-rank form of a window >= n filter: every sample uses one least-squares polynomial of the whole
    signal, so M = E @ C with C ``[order + 1, n]`` (signal → coefficients) and E ``[n, order + 1]``
    (coefficients → deriv-th derivative at each sample)."""
    pos = np.arange(n, dtype=np.float64)
    centre = pos.mean()
    x = pos - centre
    coef = np.linalg.pinv(x[:, None] ** np.arange(order + 1)[None, :])  # [order + 1, n]
    ev = np.zeros((n, order + 1))
    for m in range(deriv, order + 1):
        ev[:, m] = math.factorial(m) / math.factorial(m - deriv) * x ** (m - deriv)
    ev /= delta ** deriv
    return torch.from_numpy(coef.T.copy()), torch.from_numpy(ev.T.copy())  # [n, o + 1], [o + 1, n]


def savgol_filter(x: torch.Tensor, window: int, order: int, deriv: int = 0, delta: float = 1.0) -> torch.Tensor:
    """Filter ``[..., n]`` signals along the last axis (float64). A window covering the whole signal is
    applied in its rank-(order + 1) form (same result, ~n / (2·(order + 1)) times fewer operations)."""
    n = x.shape[-1]
    x = x.to(torch.float64)
    if window >= n and n > order:
        to_coef, to_value = _global_fit(n, order, deriv, float(delta))
        return (x @ to_coef) @ to_value
    m = torch.from_numpy(np.array(savgol_matrix(n, window, order, deriv, float(delta))))
    return x @ m.T


def unwrap_angles(a: torch.Tensor) -> torch.Tensor:
    """Unwrap ``[..., n]`` headings: add multiples of 2π so successive differences lie in [−π, π]
    (NumPy-rounding of the jumps, as the reference)."""
    jumps = torch.round(torch.diff(a, dim=-1) / (2 * math.pi))
    adj = torch.cat((torch.zeros_like(a[..., :1]), torch.cumsum(jumps, dim=-1)), dim=-1)
    return a - 2 * math.pi * adj


@lru_cache(maxsize=16)
def _yaw_matrix(n: int, dt: float) -> torch.Tensor:
    """``[n, 2n]``: yaw rate (SG 5, order 2, 1st derivative) and yaw acceleration (SG 5, order 3, 2nd) at once."""
    m = np.concatenate((savgol_matrix(n, 5, 2, 1, dt), savgol_matrix(n, 5, 3, 2, dt)), 0)
    return torch.from_numpy(m.T.copy())


def _round(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x, decimals=_DECIMALS)


def _filtered(states: torch.Tensor, dt: float) -> dict[str, torch.Tensor]:
    """The six signals before their final rounding (the window-8 pre-filter output is rounded, as in the
    reference), each ``[P, S]`` float64."""
    if states.ndim != 3 or states.shape[1] < 4:
        raise ShapeError(f"comfort_signals.states: expected [P, S >= 4, D], received {list(states.shape)}")
    n = states.shape[1]
    ax, ay = states[..., AX].to(torch.float64), states[..., AY].to(torch.float64)
    heading = unwrap_angles(states[..., YAW].to(torch.float64))
    # signals sharing a filter are stacked so that each filter is one matmul over all proposals
    acc = savgol_filter(torch.stack((ax, ay)), n, 2)
    pre = _round(savgol_filter(torch.stack((torch.hypot(ax, ay), ax)), 8, 2))
    jerk = savgol_filter(pre, n, 2, deriv=1, delta=dt)
    yaw = heading @ _yaw_matrix(n, float(dt))
    return {"lon_acc": acc[0], "lat_acc": acc[1], "jerk": jerk[0], "lon_jerk": jerk[1],
            "yaw_rate": yaw[..., :n], "yaw_acc": yaw[..., n:]}


def comfort_signals(states: torch.Tensor, dt: float) -> dict[str, torch.Tensor]:
    """The six filtered and rounded signals of §2.11, each ``[P, S]`` float64.

    Args:
        states: ``[P, S, D]`` ego states, S >= 4 (the yaw-acceleration fit needs 4 samples).
        dt: seconds between states.
    """
    return {k: _round(v) for k, v in _filtered(states, dt).items()}


def comfort(states: torch.Tensor, dt: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Comfort of each trajectory.

    Rounding is monotone, so only each signal's extremes are rounded before the strict bound checks (the
    same outcome as rounding every sample).

    Args:
        states: ``[P, S, D]`` simulated ego states; dt: seconds between states.
    Returns:
        ``(C [P] float64 in {0, 1}, checks [P, 6] bool in the order of COMFORT_CHECKS)``.
    """
    sig = _filtered(states, dt)
    checks = []
    for k in COMFORT_CHECKS:
        lo, hi = torch.aminmax(sig[k], dim=-1)
        checks.append((_round(lo) > _BOUNDS[k][0]) & (_round(hi) < _BOUNDS[k][1]))
    ok = torch.stack(checks, -1)
    return ok.all(-1).to(torch.float64), ok
