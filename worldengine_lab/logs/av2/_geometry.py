"""Vectorised rigid-body helpers for AV2: quaternions (w, x, y, z), pose interpolation, angle maths.

Conventions: quaternions are scalar first; ``a_SE3_b`` maps points of frame b into frame a; yaw is the
rotation about +z, CCW from +x, in radians.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "wrap_angle",
    "quat_normalize",
    "quat_multiply",
    "quat_to_matrix",
    "quat_yaw",
    "quat_slerp",
    "interp_angle",
    "bracket",
    "resample_arc_length",
]


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Wrap angles (rad) into [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """``q [..., 4]`` (w, x, y, z) scaled to unit norm. Zero-norm rows become NaN (callers reject them)."""
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, q / n, np.nan)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of ``[..., 4]`` (w, x, y, z) arrays: the rotation b followed by a."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` of unit quaternions ``q [..., 4]`` (w, x, y, z)."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    r = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return r.reshape(q.shape[:-1] + (3, 3))


def quat_yaw(q: np.ndarray) -> np.ndarray:
    """Yaw (rad, rotation about +z) of quaternions ``q [..., 4]``: atan2(2(wz + xy), 1 - 2(y^2 + z^2))."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation between unit quaternions ``q0, q1 [..., 4]`` at fractions ``w [...]``.

    Takes the short arc (q and -q are the same rotation); falls back to normalised lerp for nearly equal
    rotations, where slerp is numerically unstable.
    """
    w = np.asarray(w, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_t = np.sin(theta)
    close = sin_t < 1e-6
    safe = np.where(close, 1.0, sin_t)
    a = np.where(close, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    b = np.where(close, w, np.sin(w * theta) / safe)
    return quat_normalize(a * q0 + b * q1)


def interp_angle(a0: np.ndarray, a1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Interpolate angles (rad) from ``a0`` to ``a1`` along the shorter way; result wrapped to [-pi, pi)."""
    return wrap_angle(a0 + w * wrap_angle(a1 - a0))


def bracket(times: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bracketing samples of ``query`` in the sorted sample ``times`` (same integer or float unit).

    Args:
        times: ``[S]`` strictly increasing sample times, S >= 2.
        query: ``[Q]`` times inside ``[times[0], times[-1]]`` (the caller checks the range).
    Returns:
        i0: ``[Q]`` int64, index of the sample at or before each query, in ``[0, S - 2]``.
        w: ``[Q]`` float64 in [0, 1], fraction of the way from ``times[i0]`` to ``times[i0 + 1]``;
            exactly 0 (or 1 at the last sample) where the query equals a sample time.
    """
    i0 = np.clip(np.searchsorted(times, query, side="right") - 1, 0, len(times) - 2)
    span = (times[i0 + 1] - times[i0]).astype(np.float64)  # int64 differences are exact
    w = (query - times[i0]).astype(np.float64) / span
    return i0.astype(np.int64), np.clip(w, 0.0, 1.0)


def resample_arc_length(line: np.ndarray, num: int) -> np.ndarray:
    """Resample polyline ``line [k, D]`` to ``num`` points equally spaced along its arc length.

    Repeated points (zero-length segments) are tolerated; a zero-length line returns ``num`` copies.
    """
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return np.repeat(line[:1], num, axis=0)
    keep = np.concatenate([[True], seg > 0])  # np.interp needs increasing sample positions
    targets = np.linspace(0.0, s[-1], num)
    return np.stack([np.interp(targets, s[keep], line[keep, d]) for d in range(line.shape[1])], axis=1)
