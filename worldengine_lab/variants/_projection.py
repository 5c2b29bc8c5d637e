"""The vectorised projection of K edited futures to kinematic feasibility (arrays ``[K, ...]``, no loops).

Input per agent: target positions ``P [K, F+1, 2]`` at steps t0 .. T-1 (row 0 is the logged state at now, kept),
its heading, speed and acceleration at now. Two stages:

1. **Path** (curvature). The target is resampled by arc length every ``ds`` metres and lightly smoothed; its
   headings are passed through a causal rate limiter of ``kappa_max * ds`` per step starting from the logged
   heading, and positions are re-integrated from those headings. ``|d heading / d s| <= kappa_max`` holds
   exactly; how far the path moved is returned (the caller refuses edits that move it too far).
2. **Speed** (along the new path). The target speeds (target step lengths / dt) are clipped to
   ``[0, min(max speed, sqrt(a_lat / |kappa|))]``; a causal rate limiter caps acceleration and deceleration
   (clipping spikes where they happen), an anticausal pass brakes early enough for later speed bounds, a
   causal pass re-caps acceleration. A centred moving average whose width follows from the acceleration range
   and the jerk limit then bounds the jerk (differences of an average are averages of differences, and it keeps
   the speed and acceleration bounds); before now the profile is mirrored through the speed at now, so the
   average starts at the logged speed (where that mirror had to be clipped at 0, a smooth cosine blend inside
   the margin kept for it re-joins the logged speed). The curvature speed bound is re-read where the agent
   actually is, over a few passes. Speeds are step means (a step's length is speed x dt, as backward
   differences of logged positions are); positions follow along the path; yaw is the path heading; velocity
   is speed x heading.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d

from ._paths import batched_interp, centered_moving_average, limit_decrease_anticipating, limit_increase, rate_limit
from .limits import FeasibilityConfig

__all__ = ["Projected", "project_arrays"]

_STILL_M = 0.05  # a target path shorter than this is a standing agent


@dataclass(frozen=True)
class Projected:
    """Result of :func:`project_arrays` (steps t0 .. T-1; row 0 is the state at now).

    Attributes:
        xy: ``[K, F+1, 2]`` m; yaw: ``[K, F+1]`` rad; speed: ``[K, F+1]`` m/s.
        path_deviation_m: ``[K]`` largest distance between the target and the projected path, m.
        anchor_conflict: ``[K]`` bool, later speed bounds need more braking than possible from the speed at now.
        progress_error_m: ``[K]`` largest |projected - target| distance travelled, m (for reports).
    """

    xy: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    path_deviation_m: np.ndarray
    anchor_conflict: np.ndarray
    progress_error_m: np.ndarray


def _project_paths(p: np.ndarray, yaw0: np.ndarray, kappa: np.ndarray, smoothing_m: np.ndarray,
                   cfg: FeasibilityConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Curvature stage. Returns ``(grid_s [Q], headings [K, Q], points [K, Q, 2], s_target [K, F+1],
    deviation [K])``."""
    k, n, _ = p.shape
    ds = cfg.path_resolution_m
    chord = np.linalg.norm(np.diff(p, axis=1), axis=-1)  # [K, F]
    s_t = np.concatenate([np.zeros((k, 1)), np.cumsum(chord, axis=1)], axis=1)  # [K, F+1]
    total = s_t[:, -1]
    q = int(np.ceil((float(total.max(initial=0.0)) + cfg.path_extension_m) / ds)) + 1
    grid = np.arange(q) * ds
    # direction past the end: the last step longer than 1 mm, else the heading at now
    moved = chord > 1e-3
    last = np.where(moved.any(1), n - 2 - np.argmax(moved[:, ::-1], axis=1), 0)
    rows = np.arange(k)
    seg = p[rows, last + 1] - p[rows, last]
    u_end = np.where(moved.any(1)[:, None], seg / np.maximum(np.linalg.norm(seg, axis=-1, keepdims=True), 1e-9),
                     np.stack([np.cos(yaw0), np.sin(yaw0)], -1))
    gq = np.broadcast_to(grid, (k, q))
    target = batched_interp(gq, s_t, p)  # [K, Q, 2] (clamped at the end)
    beyond = np.maximum(gq - total[:, None], 0.0)[..., None]
    target = target + beyond * u_end[:, None, :]
    # light smoothing (tracking noise) with a straight run-up along the heading at now
    hw = np.maximum(np.round(smoothing_m / ds / 2), 0).astype(np.int64)  # [K] half windows
    half = int(hw.max(initial=0))
    head0 = np.stack([np.cos(yaw0), np.sin(yaw0)], -1)[:, None, :]
    back = p[:, :1] - head0 * (np.arange(half, 0, -1) * ds)[None, :, None]
    ahead = target[:, -1:] + u_end[:, None, :] * (np.arange(1, half + 1) * ds)[None, :, None]
    padded = np.concatenate([back, target, ahead], axis=1)
    smooth = np.stack([centered_moving_average(padded[..., c], hw, half) for c in range(2)], -1)  # x, y
    d = np.diff(smooth, axis=1)
    theta = np.unwrap(np.arctan2(d[..., 1], d[..., 0]), axis=1)  # [K, Q-1]
    theta += 2 * np.pi * np.round((yaw0[:, None] - theta[:, :1]) / (2 * np.pi))
    still = total < _STILL_M
    theta = np.where(still[:, None], yaw0[:, None], theta)
    step = cfg.margin * kappa * ds
    head = rate_limit(np.concatenate([yaw0[:, None], theta], axis=1), step, step)  # [K, Q] node headings
    mid = 0.5 * (head[:, :-1] + head[:, 1:])
    inc = ds * np.stack([np.cos(mid), np.sin(mid)], -1)
    pts = p[:, :1] + np.concatenate([np.zeros((k, 1, 2)), np.cumsum(inc, axis=1)], axis=1)
    inside = gq <= total[:, None] + 1e-9
    dev = np.where(inside, np.linalg.norm(pts - target, axis=-1), 0.0).max(axis=1)
    return grid, head, pts, s_t, dev


def _project_speeds(v_target: np.ndarray, v0: np.ndarray, a0: np.ndarray, bound: np.ndarray,
                    lim: dict[str, np.ndarray], cfg: FeasibilityConfig, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Speed stage. ``v_target, bound [K, F]`` (steps t0+1 ..); returns ``(speed [K, F+1] with row 0 = v0,
    anchor_conflict [K])``."""
    m = cfg.margin
    up, down = m * lim["max_accel_mps2"] * dt, m * lim["max_decel_mps2"] * dt  # [K] m/s per step
    x = np.clip(v_target, 0.0, bound)
    seq = np.concatenate([v0[:, None], x], axis=1)
    f = rate_limit(seq, up, down)
    g = np.minimum(f, np.concatenate([np.full((len(v0), 1), np.inf), bound], axis=1))
    b = limit_decrease_anticipating(g, down)
    conflict = b[:, 0] < v0 - 1e-6
    b[:, 0] = v0
    c = limit_increase(b, up)
    # jerk: centred moving average, width from the acceleration range and the jerk limit
    acc = np.diff(c, axis=1) / dt
    hi = np.maximum(acc.max(axis=1, initial=0.0), 0.0)
    lo = np.minimum(acc.min(axis=1, initial=0.0), 0.0)
    width = (hi - lo) / (m * lim["max_jerk_mps3"] * dt)
    half = np.maximum(np.ceil((width - 1.0) / 2.0), 0).astype(np.int64)
    pad = int(half.max(initial=0))
    top = np.maximum(lim["max_speed_mps"], v0)
    # before now: the profile mirrored through (now, v0), so the average at now is v0 and the steps before now
    # repeat the acceleration range of those after it
    mirror = c[:, np.minimum(np.arange(pad, 0, -1), c.shape[1] - 1)]
    before = np.clip(2.0 * v0[:, None] - mirror, 0.0, top[:, None])
    after = np.repeat(c[:, -1:], pad, axis=1)
    z = centered_moving_average(np.concatenate([before, c, after], axis=1), half, pad)
    # re-join the logged speed at now with a cosine blend inside the margin left for it
    gap = v0 - z[:, 0]
    slack_a = max(1.0 - m, 1e-3) * np.minimum(lim["max_accel_mps2"], lim["max_decel_mps2"])
    slack_j = max(1.0 - m, 1e-3) * lim["max_jerk_mps3"]
    n_a = np.pi * np.abs(gap) / (2.0 * slack_a * dt)
    n_j = np.sqrt(np.pi ** 2 * np.abs(gap) / (2.0 * slack_j)) / dt
    n = np.maximum(np.ceil(np.maximum(n_a, n_j)), 1.0)
    t = np.arange(z.shape[1])[None, :]
    w = 0.5 * (1.0 + np.cos(np.pi * np.minimum(t / n[:, None], 1.0)))
    z = np.clip(z + gap[:, None] * w, 0.0, top[:, None])
    z[:, 0] = v0
    return z, conflict


def project_arrays(p: np.ndarray, yaw0: np.ndarray, v0: np.ndarray, a0: np.ndarray, lim: dict[str, np.ndarray],
                   cfg: FeasibilityConfig, dt: float) -> Projected:
    """Project K target futures.

    Args:
        p: ``[K, F+1, 2]`` target positions (m, local frame) at steps t0 .. T-1; row 0 is the state at now.
        yaw0: ``[K]`` heading at now, rad. v0: ``[K]`` speed at now, m/s. a0: ``[K]`` acceleration at now, m/s^2.
        lim: per-agent limit arrays (:meth:`FeasibilityConfig.limit_arrays`).
        cfg: settings. dt: step, s.
    """
    grid, head, pts, s_t, dev = _project_paths(p, yaw0, lim["max_curvature_1pm"], lim["path_smoothing_m"], cfg)
    k = p.shape[0]
    ds = cfg.path_resolution_m
    kap = np.abs(np.diff(head, axis=1)) / ds  # [K, Q-1]
    kap = np.maximum(np.concatenate([kap[:, :1], kap], 1), np.concatenate([kap, kap[:, -1:]], 1))  # per node
    v_lat = np.sqrt(cfg.margin * lim["max_lat_accel_mps2"][:, None] / np.maximum(kap, 1e-9))
    win = 2 * int(round(cfg.lat_window_m / ds)) + 1
    v_lat = minimum_filter1d(v_lat, size=win, axis=1, mode="nearest")
    rows = np.arange(k)[:, None]

    def curve_bound(s_at: np.ndarray) -> np.ndarray:  # [K, F] speed bound where the agent is at each step
        return v_lat[rows, np.clip(np.round(s_at / ds).astype(np.int64), 0, len(grid) - 1)]

    bound = np.minimum(curve_bound(s_t[:, 1:]), np.maximum(lim["max_speed_mps"], v0)[:, None])
    v_target = np.diff(s_t, axis=1) / dt
    for _ in range(max(1, cfg.speed_passes)):  # a few passes over whole profiles: bounds where the agent actually is
        speed, conflict = _project_speeds(v_target, v0, a0, bound, lim, cfg, dt)
        s_new = np.concatenate([np.zeros((k, 1)), np.cumsum(speed[:, 1:] * dt, axis=1)], 1)  # step-mean speeds
        bound = np.minimum(bound, curve_bound(s_new[:, 1:]))
    gq = np.broadcast_to(grid, (k, len(grid)))
    xy = batched_interp(s_new, gq, pts)
    yaw = batched_interp(s_new, gq, head[..., None])[..., 0]
    xy[:, 0] = p[:, 0]
    yaw[:, 0] = yaw0
    return Projected(xy=xy, yaw=yaw, speed=speed, path_deviation_m=dev, anchor_conflict=conflict,
                     progress_error_m=np.abs(s_new - s_t).max(axis=1))
