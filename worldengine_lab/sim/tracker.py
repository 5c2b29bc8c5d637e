"""LQR trajectory tracker with reference velocity/curvature fits (spec/metrics.md §2.5), batched.

Given 41 global reference poses at 0.1 s (t = 0 .. 4 s) per trajectory, :func:`fit_profiles` computes the
reference velocity and curvature profiles once (regularised least squares), :func:`lqr_controls` gives the
acceleration and steering-rate commands at step ``i``, and :func:`simulate` rolls the tracker and the kinematic
bicycle (:mod:`.dynamics`) forward from the actual initial state: ``[B, D] x [B, 41, 3] -> [B, 41, D]``.

Both least-squares fits are solved in closed form instead of forming a dense normal matrix per trajectory:

* velocity: the heading vectors have unit length, so the normal matrix of the velocity model is the same for
  every trajectory and the fit is one constant ``[40, 40]`` matrix applied to the displacements projected on
  the reference headings;
* curvature: rewritten with the curvature profile itself as unknowns (``kappa_dot_j = (kappa_{j+1} -
  kappa_j) / dt``), the normal equations are tridiagonal and are solved by the Thomas algorithm.

Both are exact reformulations of the same least-squares problems. Likewise the lateral LQR's composition of the
10 horizon steps (``s_{j+1} = A_j s_j + b u + g_j`` with speeds ``v_j = v + j dt a``) is evaluated in closed
form: the composed terms are polynomials in ``v`` and ``a`` whose coefficients are integer sums over the
horizon and curvature-window moments computed once per reference (tests check both against the dense
matrix formulation).

Examples:
    >>> import torch
    >>> from worldengine_lab.sim.state import make_ego_state
    >>> ref = torch.zeros(1, 41, 3, dtype=torch.float64)
    >>> ref[0, :, 0] = torch.arange(41) * 1.0
    >>> out = simulate(make_ego_state(vx=10.0).unsqueeze(0), ref)
    >>> round(float(out[0, 40, 0]), 6), round(float(out[0, 40, 3]), 6)
    (40.0, 10.0)
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from ._validate import check_tensor, float_dtype
from .dynamics import BicycleParams, bicycle_step
from .state import EGO_STATE_DIM, STEER, VX, X, Y, YAW, wrap_angle

__all__ = ["TrackerParams", "ReferenceProfiles", "fit_profiles", "lqr_controls", "simulate", "NUM_REFERENCE_POSES"]

NUM_REFERENCE_POSES = 41  # t = 0, 0.1, ..., 4.0 s


@dataclass(frozen=True)
class TrackerParams:
    """Tracker constants (NAVSIM v1.1 / nuPlan LQR tracker values, spec §2.5)."""

    dt_s: float = 0.1
    """Step between reference poses and between tracker updates, s."""
    horizon: int = 10
    """Tracking horizon H, steps (1 s)."""
    jerk_penalty: float = 1e-4
    """Velocity fit: penalty on successive acceleration differences."""
    curvature_rate_penalty: float = 1e-2
    """Curvature fit: penalty on curvature rates."""
    initial_curvature_penalty: float = 1e-10
    """Curvature fit: penalty on the initial curvature."""
    stopping_velocity_mps: float = 0.2
    """Stopping mode when both the reference and the current speed are at most this, m/s."""
    stopping_gain: float = 0.5
    """Proportional gain of the stopping controller, 1/s."""
    lon_q: float = 10.0
    """Longitudinal LQR state cost."""
    lon_r: float = 1.0
    """Longitudinal LQR input cost."""
    lat_q: tuple[float, float, float] = (1.0, 10.0, 0.0)
    """Lateral LQR state costs for (lateral error, heading error, steering angle)."""
    lat_r: float = 1.0
    """Lateral LQR input cost."""
    bicycle: BicycleParams = BicycleParams()
    """Vehicle model constants (the tracker uses its wheel base)."""


_DEFAULT = TrackerParams()


@dataclass(frozen=True)
class ReferenceProfiles:
    """Per-trajectory reference quantities, computed once from the 41 reference poses.

    Attributes:
        poses: ``[B, 41, 3]`` global reference poses (m, m, rad).
        velocity: ``[B, 40]`` reference speed profile v_k, m/s.
        curvature: ``[B, 40]`` reference curvature profile kappa_k, 1/m.
        cos_sin: ``[B, 41, 2]`` cos and sin of the reference headings.
        kappa_moments: ``[B, 40, 5]`` for each step i, sums of its curvature window kappa_j (j < H) weighted
            by the horizon polynomials of :func:`_horizon_weights`.
    """

    poses: torch.Tensor  # [B, 41, 3]
    velocity: torch.Tensor  # [B, 40] m/s
    curvature: torch.Tensor  # [B, 40] 1/m
    cos_sin: torch.Tensor  # [B, 41, 2] cos and sin of the reference headings
    kappa_moments: torch.Tensor  # [B, 40, 5] weighted sums of each step's curvature window (lqr_controls)


@lru_cache(maxsize=8)
def _velocity_fit_matrix(n: int, dt: float, penalty: float) -> torch.Tensor:
    """``[n, n]`` float64 matrix G with v = G p, p_k = displacement_k . heading_k (m), v the speed profile.

    Unknowns z = (v0, a_0 .. a_{n-2}); model displacement_k = (L z)_k u_k with L[k] = (dt, dt^2 [j < k]);
    minimise sum_k |d_k - (L z)_k u_k|^2 + penalty |D a|^2. As |u_k| = 1 the normal matrix is
    L^T L + penalty R^T R for every trajectory and the right-hand side is L^T p.
    """
    lower = torch.zeros(n, n, dtype=torch.float64)
    lower[:, 0] = dt
    lower[:, 1:] = dt * dt * torch.tril(torch.ones(n, n - 1, dtype=torch.float64), diagonal=-1)
    diff = torch.zeros(n - 2, n, dtype=torch.float64)
    idx = torch.arange(n - 2)
    diff[idx, idx + 1] = -1.0
    diff[idx, idx + 2] = 1.0
    normal = lower.T @ lower + penalty * diff.T @ diff
    z_from_p = torch.linalg.solve(normal, lower.T)  # [n, n]
    return (lower @ z_from_p) / dt  # v_k = (L z)_k / dt


def _solve_curvature(velocity: torch.Tensor, dheading: torch.Tensor, params: TrackerParams) -> torch.Tensor:
    """Curvature profile ``[B, n]`` from speeds ``[B, n]`` (m/s) and heading changes ``[B, n]`` (rad).

    Minimises sum_k (v_k dt kappa_k - dheading_k)^2 + c_r sum_j ((kappa_{j+1} - kappa_j)/dt)^2 + c_0 kappa_0^2,
    which is the spec's fit in (kappa_0, kappa_dot) rewritten with kappa itself as unknowns; the normal matrix
    is symmetric positive definite and tridiagonal: Thomas algorithm, vectorised over the batch.
    """
    dt = params.dt_s
    n = velocity.shape[-1]
    lam = params.curvature_rate_penalty / (dt * dt)
    vdt = velocity * dt
    diag = vdt * vdt + 2.0 * lam
    diag[..., 0] -= lam
    diag[..., -1] -= lam
    diag[..., 0] += params.initial_curvature_penalty
    rhs = vdt * dheading
    off = -lam
    # Thomas algorithm on per-column tensors (time axis unbound once; fewer tensor ops than indexing)
    dg, rh = diag.unbind(-1), rhs.unbind(-1)
    c: list[torch.Tensor] = []
    d: list[torch.Tensor] = []
    inv = 1.0 / dg[0]
    c.append(off * inv)
    d.append(rh[0] * inv)
    for k in range(1, n):  # forward sweep along the profile (time) axis
        inv = 1.0 / (dg[k] - off * c[k - 1])
        c.append(off * inv)
        d.append((rh[k] - off * d[k - 1]) * inv)
    out = [d[-1]]
    for k in range(n - 2, -1, -1):  # back substitution
        out.append(d[k] - c[k] * out[-1])
    return torch.stack(out[::-1], dim=-1)


def fit_profiles(reference_poses: torch.Tensor, params: TrackerParams = _DEFAULT) -> ReferenceProfiles:
    """Fit the reference velocity and curvature profiles of ``[B, 41, 3]`` global poses (spec §2.5).

    The fits are solved in float64 and returned in the dtype of ``reference_poses``.
    """
    check_tensor("fit_profiles(reference_poses)", reference_poses, (None, NUM_REFERENCE_POSES, 3))
    poses = reference_poses.to(torch.float64)
    n = NUM_REFERENCE_POSES - 1
    disp = poses[:, 1:, :2] - poses[:, :-1, :2]  # [B, 40, 2] m
    heading = poses[:, :-1, 2]  # [B, 40] theta_k
    proj = disp[..., 0] * torch.cos(heading) + disp[..., 1] * torch.sin(heading)  # [B, 40] m
    g = _velocity_fit_matrix(n, params.dt_s, params.jerk_penalty)
    velocity = proj @ g.T  # [B, 40] m/s
    dheading = wrap_angle(poses[:, 1:, 2] - poses[:, :-1, 2])  # [B, 40] rad
    curvature = _solve_curvature(velocity, dheading, params)
    dtype = reference_poses.dtype
    h = params.horizon
    # curvature window of step i: kappa_i .. kappa_{rho-1} padded with kappa_rho, rho = min(i + H, 39)
    padded = torch.cat([curvature, curvature[:, -1:].expand(-1, h - 1)], dim=1)  # [B, 40 + H - 1]
    windows = padded.unfold(1, h, 1)  # [B, 40, H] (a view)
    moments = torch.einsum("bih,hc->bic", windows, _horizon_weights(h, torch.float64))  # [B, 40, 5]
    return ReferenceProfiles(
        poses=reference_poses, velocity=velocity.to(dtype), curvature=curvature.to(dtype),
        cos_sin=torch.stack([torch.cos(reference_poses[..., 2]), torch.sin(reference_poses[..., 2])], dim=-1),
        kappa_moments=moments.to(dtype),
    )


@lru_cache(maxsize=8)
def _horizon_sums(h: int) -> tuple[float, ...]:
    """Integer sums over the horizon j = 0 .. h-1 with T_j = sum_{m<j} m and Q_j = sum_{m<j} m^2:
    (S1 = sum j, S2 = sum j^2, ST = sum T_j, SJT = sum j T_j, SQ = sum Q_j, SJQ = sum j Q_j)."""
    j = range(h)
    t = [m * (m - 1) / 2 for m in j]
    q = [sum(k * k for k in range(m)) for m in j]
    return (float(sum(j)), float(sum(m * m for m in j)), float(sum(t)), float(sum(m * tm for m, tm in zip(j, t))),
            float(sum(q)), float(sum(m * qm for m, qm in zip(j, q))))


@lru_cache(maxsize=8)
def _horizon_weights(h: int, dtype: torch.dtype) -> torch.Tensor:
    """``[h, 5]`` weights w_j of the curvature-window sums (K0, K1, W0, W1, W2) = sum_j w_j kappa_j:
    1, j, n_j, J_j + j n_j, j J_j with n_j = h - 1 - j (later steps) and J_j = sum_{m>j} m."""
    j = torch.arange(h, dtype=torch.float64)
    n_j = h - 1 - j
    big_j = (j + 1 + h - 1) * n_j / 2  # sum of m = j+1 .. h-1
    return torch.stack([torch.ones_like(j), j, n_j, big_j + j * n_j, j * big_j], dim=1).to(dtype)


def lqr_controls(
    state: torch.Tensor, profiles: ReferenceProfiles, i: int, params: TrackerParams = _DEFAULT
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tracker commands at reference step ``i`` (0 <= i < 40) for states ``[B, D]``.

    Returns:
        ``(accel_cmd [B] m/s^2, steer_rate_cmd [B] rad/s)``.
    """
    n = profiles.velocity.shape[-1]
    h = params.horizon
    dt = params.dt_s
    wb = params.bicycle.wheel_base_m
    ref = profiles.poses[:, i]  # [B, 3]
    cs = profiles.cos_sin[:, i]
    x, y, yaw, v, steer = state[:, X], state[:, Y], state[:, YAW], state[:, VX], state[:, STEER]
    e_lat = -(x - ref[:, 0]) * cs[:, 1] + (y - ref[:, 1]) * cs[:, 0]
    e_head = wrap_angle(yaw - ref[:, 2])
    v_ref = profiles.velocity[:, min(i + h, n - 1)]

    # longitudinal one-step LQR over the horizon (B = h dt), or the stopping controller
    b_lon = h * dt
    accel = -(b_lon * params.lon_q / (b_lon * b_lon * params.lon_q + params.lon_r)) * (v - v_ref)
    stopping = (v_ref <= params.stopping_velocity_mps) & (v <= params.stopping_velocity_mps)
    accel = torch.where(stopping, -params.stopping_gain * (v - v_ref), accel)

    # lateral: s = (e_lat, e_head, steer) propagated h steps with speeds v_j = v + j dt a,
    # s_{j+1} = A_j s_j + b u + g_j; the composed (A, b, g) are polynomials in v and a whose coefficients are
    # sums over the horizon (_horizon_sums) and over the curvature window (kappa_moments)
    s1, s2, st, sjt, sq, sjq = _horizon_sums(h)
    k0, k1, w0, w1, w2 = profiles.kappa_moments[:, i].unbind(-1)
    va = v * dt * accel  # v dt a
    aa = (dt * accel) ** 2  # (dt a)^2
    vv = v * v
    sum_p = dt * (h * v + dt * accel * s1)  # sum_j p_j, p_j = v_j dt
    sum_c = sum_p / wb  # sum_j c_j, c_j = p_j / wb
    sum_g = dt * (v * k0 + dt * accel * k1)  # sum_j p_j kappa_j
    sum_pc = dt * dt / wb * (vv * s1 + va * (st + s2) + aa * sjt)  # sum_j p_j C_j, C_j = sum_{m<j} c_m
    sum_pg = dt * dt * (vv * w0 + va * w1 + aa * w2)  # sum_j p_j G_j, G_j = sum_{m<j} p_m kappa_m
    eps_lat = e_lat + e_head * sum_p + steer * sum_pc - sum_pg
    eps_head = wrap_angle(e_head + steer * sum_c - sum_g)
    eps_steer = wrap_angle(steer)
    b_lat = dt ** 3 / wb * (vv * st + va * (sq + sjt) + aa * sjq)
    b_head = dt * dt / wb * (v * s1 + dt * accel * s2)
    b_steer = h * dt
    q0, q1, q2 = params.lat_q
    num = q0 * b_lat * eps_lat + q1 * b_head * eps_head + q2 * b_steer * eps_steer
    den = q0 * b_lat * b_lat + q1 * b_head * b_head + q2 * b_steer * b_steer + params.lat_r
    steer_rate = torch.where(stopping, torch.zeros_like(num), -num / den)
    return accel, steer_rate


def simulate(
    initial_state: torch.Tensor, reference_poses: torch.Tensor, params: TrackerParams = _DEFAULT
) -> torch.Tensor:
    """Track 41 reference poses with the LQR tracker and the kinematic bicycle (spec §2.5).

    Args:
        initial_state: ``[B, D]`` actual ego states at t = 0 (D = EGO_STATE_DIM, rear axle, global frame).
        reference_poses: ``[B, 41, 3]`` global rear-axle poses at t = 0, 0.1, ..., 4.0 s.
        params: tracker and vehicle constants.
    Returns:
        ``[B, 41, D]`` simulated states; state 0 equals ``initial_state``. Computed in float64 unless both
        inputs are float32.
    Raises:
        ShapeError: wrong shapes or dtypes; ScenarioValidationError: NaN/inf inputs.
    """
    check_tensor("simulate(initial_state)", initial_state, (None, EGO_STATE_DIM))
    check_tensor("simulate(reference_poses)", reference_poses, (initial_state.shape[0], NUM_REFERENCE_POSES, 3))
    dtype = float_dtype("simulate", initial_state, reference_poses)
    state = initial_state.to(dtype)
    profiles = fit_profiles(reference_poses.to(dtype), params)
    states = [state]
    for i in range(NUM_REFERENCE_POSES - 1):
        accel, steer_rate = lqr_controls(state, profiles, i, params)
        state = bicycle_step(state, accel, steer_rate, params.dt_s, params.bicycle)
        states.append(state)
    return torch.stack(states, dim=1)
