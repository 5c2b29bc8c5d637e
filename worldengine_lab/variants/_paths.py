"""Numpy building blocks of the edits and the projection: arc-length paths with a Frenet frame, batched
interpolation, causal/anticausal rate limiters and a per-row centred moving average. No Python loops over time
steps or agents: every sequential filter here is a cumulative max/min.

Rate limiters. For a sequence ``x`` and a largest decrease ``r`` per step, the causal filter
``y[t] = max(x[t], y[t-1] - r)`` unrolls to ``y[t] = max_{k<=t}(x[k] + r k) - r t``: one ``maximum.accumulate``.
The increase limiter is the mirror image, and applying the decrease limiter and then the increase limiter keeps
both limits (the second pass never creates a decrease larger than the first allowed).

Examples:
    >>> rate_limit(np.array([0.0, 5.0, 5.0, 5.0, 0.0, 0.0]), up=2.0, down=1.0).tolist()
    [0.0, 2.0, 4.0, 5.0, 4.0, 3.0]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "rate_limit", "limit_increase", "limit_decrease_anticipating", "centered_moving_average", "batched_interp",
    "smoothstep5", "SMOOTHSTEP5_PEAK_ACCEL", "Path", "headings_from_positions",
]

SMOOTHSTEP5_PEAK_ACCEL = 10.0 / np.sqrt(3.0)
"""Largest |second derivative| of :func:`smoothstep5` on [0, 1] (5.7735): a move of ``d`` metres in ``T``
seconds with that profile peaks at ``5.7735 d / T^2`` m/s^2."""

_EPS = 1e-9


def _steps(x: np.ndarray) -> np.ndarray:
    return np.arange(x.shape[-1], dtype=np.float64)


def rate_limit(x: np.ndarray, up: np.ndarray | float, down: np.ndarray | float) -> np.ndarray:
    """Causal two-sided rate limiter along the last axis: increases at most ``up``, decreases at most ``down``
    per step; the first element is kept.

    Args:
        x: ``[..., L]`` sequence.
        up, down: ``[...]`` (or scalar) non-negative largest change per step.
    Returns:
        ``[..., L]``.
    """
    i = _steps(x)
    dn = np.asarray(down, np.float64)[..., None]
    y = np.maximum.accumulate(x + dn * i, axis=-1) - dn * i
    return limit_increase(y, up)


def limit_increase(x: np.ndarray, up: np.ndarray | float) -> np.ndarray:
    """Causal limiter of increases along the last axis: ``y[t] = min(x[t], y[t-1] + up)`` (never above ``x``)."""
    i = _steps(x)
    u = np.asarray(up, np.float64)[..., None]
    return np.minimum.accumulate(x - u * i, axis=-1) + u * i


def limit_decrease_anticipating(x: np.ndarray, down: np.ndarray | float) -> np.ndarray:
    """Anticausal limiter of decreases: ``y[t] = min(x[t], y[t+1] + down)``; the result never exceeds ``x`` and
    starts slowing down early enough to be at or below every later value of ``x``."""
    i = _steps(x)
    d = np.asarray(down, np.float64)[..., None]
    rev = (x + d * i)[..., ::-1]
    return np.minimum.accumulate(rev, axis=-1)[..., ::-1] - d * i


def centered_moving_average(x: np.ndarray, half: np.ndarray, pad: int) -> np.ndarray:
    """Centred moving average with a window of ``2 half[k] + 1`` samples per row.

    Args:
        x: ``[K, L]`` rows already padded with ``pad >= max(half)`` samples on both sides.
        half: ``[K]`` int half widths.
        pad: the padding of ``x``.
    Returns:
        ``[K, L - 2 pad]``: the averages centred on the unpadded samples.
    """
    k, length = x.shape
    c = np.concatenate([np.zeros((k, 1)), np.cumsum(x, axis=-1)], axis=-1)  # c[:, j] = sum x[:, :j]
    centre = np.arange(pad, length - pad)[None, :]
    h = np.asarray(half, np.int64)[:, None]
    rows = np.arange(k)[:, None]
    return (c[rows, centre + h + 1] - c[rows, centre - h]) / (2 * h + 1)


def batched_interp(xq: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Row-wise linear interpolation, clamped at both ends.

    Args:
        xq: ``[K, Q]`` query abscissae.
        xp: ``[K, P]`` non-decreasing abscissae (repeated values allowed).
        fp: ``[K, P, C]`` values.
    Returns:
        ``[K, Q, C]``.
    """
    k, p = xp.shape
    span = float(np.nanmax(np.abs(xp))) if xp.size else 0.0
    span = max(span, float(np.nanmax(np.abs(xq))) if xq.size else 0.0)
    offset = (np.arange(k, dtype=np.float64) * (4.0 * span + 10.0))[:, None]
    flat_xp = (xp + offset).reshape(-1)
    q = np.clip(xq, xp[:, :1], xp[:, -1:])
    hi = np.searchsorted(flat_xp, (q + offset).reshape(-1), side="right").reshape(q.shape) - np.arange(k)[:, None] * p
    hi = np.clip(hi, 1, p - 1) if p > 1 else np.zeros_like(hi)
    lo = np.maximum(hi - 1, 0)
    rows = np.arange(k)[:, None]
    x0, x1 = xp[rows, lo], xp[rows, hi]
    den = x1 - x0
    w = np.where(den > _EPS, (q - x0) / np.where(den > _EPS, den, 1.0), 0.0)[..., None]
    return fp[rows, lo] * (1.0 - w) + fp[rows, hi] * w


def smoothstep5(u: np.ndarray) -> np.ndarray:
    """Minimum-jerk blend ``10u^3 - 15u^4 + 6u^5`` of ``u`` clipped to [0, 1] (0 -> 0, 1 -> 1, flat ends)."""
    v = np.clip(u, 0.0, 1.0)
    return v * v * v * (10.0 + v * (-15.0 + 6.0 * v))


def headings_from_positions(xy: np.ndarray, yaw0: np.ndarray, min_step_m: float = 0.05) -> np.ndarray:
    """Direction of motion at each step of ``xy [L, ..., 2]`` (rad): the heading of the step into it, held while
    the agent moves less than ``min_step_m`` per step; ``yaw0 [...]`` before the first move."""
    d = np.diff(xy, axis=0)
    moving = np.linalg.norm(d, axis=-1) > min_step_m  # [L-1, ...]
    head = np.arctan2(d[..., 1], d[..., 0])
    idx = np.where(moving, np.arange(1, xy.shape[0]).reshape((-1,) + (1,) * (xy.ndim - 2)), 0)
    last = np.maximum.accumulate(idx, axis=0)  # index (into 1..L-1) of the latest move, 0 = none yet
    full = np.concatenate([np.broadcast_to(yaw0, head.shape[1:])[None], head], axis=0)
    return np.take_along_axis(full, np.concatenate([np.zeros_like(last[:1]), last], axis=0), axis=0)


@dataclass(frozen=True)
class Path:
    """A polyline parametrised by arc length, with a Frenet frame (``d`` > 0 to the left).

    Attributes:
        xy: ``[P, 2]`` float64 points, m, scenario local frame.
        s: ``[P]`` float64 arc length along the path, m, increasing; 0 at the chosen origin point (negative on
            a backward extension).
    """

    xy: np.ndarray
    s: np.ndarray

    @staticmethod
    def from_points(points: np.ndarray, start_yaw: float, end_yaw: float, extend_back_m: float = 0.0,
                    extend_ahead_m: float = 0.0, origin_index: int = 0) -> "Path":
        """Path through ``points [P, 2]`` (consecutive repeats allowed), extended straight by ``extend_back_m``
        before the first point (along ``start_yaw``) and ``extend_ahead_m`` after the last (along ``end_yaw``,
        or along the last segment when it is longer than 1 m). ``s = 0`` at ``points[origin_index]``."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        seg = np.diff(p, axis=0)
        lens = np.linalg.norm(seg, axis=-1)
        moving = np.flatnonzero(lens > 1.0)
        ahead = np.array([np.cos(end_yaw), np.sin(end_yaw)])
        back = np.array([np.cos(start_yaw), np.sin(start_yaw)])
        if len(moving):
            ahead = seg[moving[-1]] / lens[moving[-1]]
            back = seg[moving[0]] / lens[moving[0]]
        parts = [p]
        if extend_back_m > 0:
            parts.insert(0, (p[0] - extend_back_m * back)[None])
        if extend_ahead_m > 0:
            parts.append((p[-1] + extend_ahead_m * ahead)[None])
        xy = np.concatenate(parts)
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=-1))])
        origin = origin_index + (1 if extend_back_m > 0 else 0)
        return Path(xy=xy, s=s - s[origin])

    @property
    def length_m(self) -> float:
        return float(self.s[-1] - self.s[0])

    def point(self, s: np.ndarray) -> np.ndarray:
        """``[...]`` arc positions (m, clamped to the path) -> ``[..., 2]`` points."""
        q = np.asarray(s, np.float64)
        out = batched_interp(q.reshape(1, -1), self.s[None], self.xy[None])[0]
        return out.reshape(q.shape + (2,))

    def tangent(self, s: np.ndarray) -> np.ndarray:
        """``[..., 2]`` unit direction of the segment holding each arc position."""
        q = np.asarray(s, np.float64)
        seg = np.diff(self.xy, axis=0)
        lens = np.linalg.norm(seg, axis=-1, keepdims=True)
        # a zero-length segment borrows the direction of the nearest real one
        good = lens[:, 0] > _EPS
        idx = np.where(good, np.arange(len(seg)), -1)
        fwd = np.maximum.accumulate(idx)
        first = int(np.flatnonzero(good)[0]) if good.any() else 0
        fwd = np.where(fwd < 0, first, fwd)
        unit = seg[fwd] / np.maximum(lens[fwd], _EPS)
        j = np.clip(np.searchsorted(self.s, q, side="right") - 1, 0, len(seg) - 1)
        return unit[j]

    def heading(self, s: np.ndarray) -> np.ndarray:
        """``[...]`` heading of the path at each arc position, rad."""
        t = self.tangent(s)
        return np.arctan2(t[..., 1], t[..., 0])

    def to_xy(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Frenet ``(s, d)`` (m; d > 0 left) -> ``[..., 2]`` points."""
        t = self.tangent(s)
        n = np.stack([-t[..., 1], t[..., 0]], axis=-1)
        return self.point(s) + np.asarray(d, np.float64)[..., None] * n

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest-point projection of ``[..., 2]`` points -> ``(s [...], d [...])`` (m; d > 0 left)."""
        p = np.asarray(points, np.float64)
        flat = p.reshape(-1, 2)
        a, b = self.xy[:-1], self.xy[1:]
        ab = b - a
        l2 = np.maximum((ab * ab).sum(-1), _EPS)  # [S]
        ap = flat[:, None, :] - a[None]  # [M, S, 2]
        t = np.clip((ap * ab[None]).sum(-1) / l2[None], 0.0, 1.0)
        foot = a[None] + t[..., None] * ab[None]
        dist2 = ((flat[:, None, :] - foot) ** 2).sum(-1)
        j = np.argmin(dist2, axis=1)  # [M]
        rows = np.arange(len(flat))
        tj = t[rows, j]
        seg_len = np.sqrt(l2[j])
        s = self.s[j] + tj * seg_len
        u = ab[j] / seg_len[:, None]
        rel = flat - a[j]
        d = u[:, 0] * rel[:, 1] - u[:, 1] * rel[:, 0]
        return s.reshape(p.shape[:-1]), d.reshape(p.shape[:-1])
