"""Planar polyline helpers for the synthetic map builder: arc length, resampling, offsets, curves, boxes.

All points are ``[K, 2]`` float64 arrays in metres in a map's local frame (x east, y north); headings are
radians counter-clockwise from +x. Lateral offsets are positive to the LEFT of the direction of travel.

Examples:
    >>> import numpy as np
    >>> line = np.array([[0.0, 0.0], [10.0, 0.0]])
    >>> float(polyline_length(line))
    10.0
    >>> offset(line, 2.0)[0].tolist()
    [0.0, 2.0]
"""
from __future__ import annotations

import numpy as np
from shapely.geometry import Polygon

__all__ = [
    "wrap_angle",
    "cumulative_length",
    "polyline_length",
    "resample",
    "substring",
    "offset",
    "vertex_headings",
    "bezier",
    "arc",
    "band_polygon",
    "box_corners",
    "curvature",
]


def wrap_angle(a: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles (rad) into [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi


def cumulative_length(pts: np.ndarray) -> np.ndarray:
    """Arc length at each vertex of ``pts [K, 2]`` -> ``[K]`` (m), starting at 0."""
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def polyline_length(pts: np.ndarray) -> float:
    """Total length of ``pts [K, 2]`` in metres."""
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


def _interp(pts: np.ndarray, cum: np.ndarray, s: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(s, cum, pts[:, 0]), np.interp(s, cum, pts[:, 1])], axis=-1)


def resample(pts: np.ndarray, step: float) -> np.ndarray:
    """Resample ``pts [K, 2]`` at (nearly) uniform arc-length spacing <= ``step`` m, keeping both ends."""
    cum = cumulative_length(pts)
    total = cum[-1]
    n = max(int(np.ceil(total / step)), 1)
    return _interp(pts, cum, np.linspace(0.0, total, n + 1))


def substring(pts: np.ndarray, s0: float, s1: float) -> np.ndarray:
    """The part of ``pts [K, 2]`` between arc lengths ``s0 < s1`` (m), with interpolated end points."""
    cum = cumulative_length(pts)
    s0, s1 = max(s0, 0.0), min(s1, cum[-1])
    if s1 <= s0:
        raise ValueError(f"substring needs s0 < s1 within [0, {cum[-1]:.2f}], received {s0:.2f}, {s1:.2f}")
    inner = (cum > s0) & (cum < s1)
    return np.concatenate([_interp(pts, cum, np.array([s0])), pts[inner], _interp(pts, cum, np.array([s1]))])


def vertex_headings(pts: np.ndarray) -> np.ndarray:
    """Tangent heading (rad) at each vertex of ``pts [K, 2]`` (central differences, one-sided at the ends)."""
    d = np.gradient(pts, axis=0) if len(pts) > 2 else np.repeat(np.diff(pts, axis=0), 2, axis=0)[: len(pts)]
    return np.arctan2(d[:, 1], d[:, 0])


def offset(pts: np.ndarray, d: float) -> np.ndarray:
    """Offset ``pts [K, 2]`` laterally by ``d`` m (left positive) using mitred vertex normals."""
    seg = np.diff(pts, axis=0)
    seg = seg / np.linalg.norm(seg, axis=1, keepdims=True)
    nrm = np.stack([-seg[:, 1], seg[:, 0]], axis=1)  # [K-1, 2] left normals of the segments
    vn = np.empty_like(pts)
    vn[0], vn[-1] = nrm[0], nrm[-1]
    if len(pts) > 2:
        avg = nrm[:-1] + nrm[1:]
        avg /= np.linalg.norm(avg, axis=1, keepdims=True)
        cos_half = np.clip(np.sum(avg * nrm[1:], axis=1, keepdims=True), 0.5, 1.0)  # mitre, limited
        vn[1:-1] = avg / cos_half
    return pts + d * vn


def bezier(p0: np.ndarray, h0: float, p3: np.ndarray, h3: float, step: float = 0.5, k_ratio: float = 0.4) -> np.ndarray:
    """Cubic Bezier from ``p0`` heading ``h0`` to ``p3`` heading ``h3`` -> ``[K, 2]`` resampled at ``step`` m.

    The control points sit ``k_ratio`` x chord length along the end tangents (0.39 gives a near-circular
    quarter turn).
    """
    p0, p3 = np.asarray(p0, float), np.asarray(p3, float)
    k = k_ratio * float(np.linalg.norm(p3 - p0))
    p1 = p0 + k * np.array([np.cos(h0), np.sin(h0)])
    p2 = p3 - k * np.array([np.cos(h3), np.sin(h3)])
    t = np.linspace(0.0, 1.0, 200)[:, None]
    curve = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    return resample(curve, step)


def arc(center: tuple[float, float], radius: float, a0: float, a1: float, step: float = 2.0) -> np.ndarray:
    """Circular arc of ``radius`` m around ``center`` from polar angle ``a0`` to ``a1`` (rad) -> ``[K, 2]``."""
    n = max(int(np.ceil(abs(a1 - a0) * radius / step)), 2)
    a = np.linspace(a0, a1, n + 1)
    return np.stack([center[0] + radius * np.cos(a), center[1] + radius * np.sin(a)], axis=1)


def band_polygon(left: np.ndarray, right: np.ndarray) -> Polygon:
    """Polygon between two roughly parallel polylines ``[K, 2]`` running in the same direction."""
    poly = Polygon(np.concatenate([left, right[::-1]]))
    if not poly.is_valid:
        poly = poly.buffer(0)
    return poly


def curvature(pts: np.ndarray) -> np.ndarray:
    """Unsigned curvature (1/m) at each vertex of ``pts [K, 2]`` from heading change per arc length."""
    if len(pts) < 3:
        return np.zeros(len(pts))
    h = np.unwrap(vertex_headings(pts))
    s = cumulative_length(pts)
    return np.abs(np.gradient(h, s))


def box_corners(xy: np.ndarray, yaw: np.ndarray, length: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Corners of oriented boxes: centres ``xy [..., 2]``, ``yaw [...]``, sizes ``[...]`` -> ``[..., 4, 2]``."""
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    lx = np.array([0.5, 0.5, -0.5, -0.5]) * np.asarray(length)[..., None]
    ly = np.array([0.5, -0.5, -0.5, 0.5]) * np.asarray(width)[..., None]
    return np.stack([xy[..., 0:1] + c * lx - s * ly, xy[..., 1:2] + s * lx + c * ly], axis=-1)
