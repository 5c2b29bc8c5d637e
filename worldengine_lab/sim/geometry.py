"""Batched oriented-box geometry for the scorer and the simulator (torch, no Python loops over boxes).

Conventions (spec/metrics.md §0, §1): metres, radians, scenario local frame; headings CCW from +x.
Boxes are given by centre ``[..., 2]``, heading (or its cos/sin) ``[...]`` and half sizes
``[..., 2] = (half_length, half_width)``. All functions broadcast over leading axes.

* "Two shapes intersect" includes touching boundaries: :func:`box_separation` ``<= 0``.
* "Inside a polygon" is strict: :func:`points_in_polygons` returns False for points on the boundary
  (unless ``include_boundary=True``).

Examples:
    >>> import torch
    >>> from worldengine_lab.sim.geometry import boxes_overlap
    >>> c = torch.tensor([[0.0, 0.0], [4.0, 0.0]], dtype=torch.float64)
    >>> h = torch.tensor([2.0, 1.0], dtype=torch.float64)
    >>> bool(boxes_overlap(c[0], torch.tensor(0.0), h, c[1], torch.tensor(0.0), h))   # touching
    True
"""
from __future__ import annotations

import math

import torch

from .state import EGO_LENGTH_M, EGO_REAR_TO_CENTER_M, EGO_WIDTH_M, X, Y, YAW

__all__ = [
    "EGO_HALF_LENGTH_M", "EGO_HALF_WIDTH_M", "EGO_RADIUS_M",
    "FL", "RL", "RR", "FR", "CENTER",
    "ego_center", "ego_footprint", "box_corners", "box_separation", "boxes_overlap",
    "segment_box_intersects", "bounding_radius", "circles_overlap", "points_in_polygons",
    "relative_angle_deg", "cos_relative_angle", "is_ahead", "is_behind", "AHEAD_DEG", "BEHIND_DEG", "COS_AHEAD",
    "COS_BEHIND",
]

EGO_HALF_LENGTH_M = EGO_LENGTH_M / 2.0  # 2.588
EGO_HALF_WIDTH_M = EGO_WIDTH_M / 2.0  # 1.1485
EGO_RADIUS_M = math.hypot(EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M)

# fixed point order of a footprint (spec §1.1)
FL, RL, RR, FR, CENTER = range(5)

AHEAD_DEG = 30.0
BEHIND_DEG = 150.0


def ego_center(states: torch.Tensor) -> torch.Tensor:
    """Ego box centre from rear-axle states.

    Args:
        states: ``[..., D]`` ego states (sim/state.py layout), rear-axle pose in fields X, Y, YAW.
    Returns:
        ``[..., 2]`` box centre, m, same frame as the states.
    """
    yaw = states[..., YAW]
    return torch.stack(
        (states[..., X] + EGO_REAR_TO_CENTER_M * torch.cos(yaw), states[..., Y] + EGO_REAR_TO_CENTER_M * torch.sin(yaw)),
        dim=-1,
    )


def box_corners(center: torch.Tensor, cos_yaw: torch.Tensor, sin_yaw: torch.Tensor, half_length: torch.Tensor | float,
                half_width: torch.Tensor | float) -> torch.Tensor:
    """Corners of oriented boxes in the fixed order FL, RL, RR, FR.

    Args:
        center: ``[..., 2]`` box centre, m.
        cos_yaw, sin_yaw: ``[...]`` heading cosine / sine.
        half_length, half_width: ``[...]`` or scalars, m.
    Returns:
        ``[..., 4, 2]`` corners, m.
    """
    hl = torch.as_tensor(half_length, dtype=center.dtype)
    hw = torch.as_tensor(half_width, dtype=center.dtype)
    ux, uy = cos_yaw * hl, sin_yaw * hl  # half-length along heading
    nx, ny = -sin_yaw * hw, cos_yaw * hw  # half-width to the left
    cx, cy = center[..., 0], center[..., 1]
    xs = torch.stack((cx + ux + nx, cx - ux + nx, cx - ux - nx, cx + ux - nx), dim=-1)
    ys = torch.stack((cy + uy + ny, cy - uy + ny, cy - uy - ny, cy + uy - ny), dim=-1)
    return torch.stack((xs, ys), dim=-1)


def _footprint_matrix(dtype: torch.dtype) -> torch.Tensor:
    """``[4, 10]`` W with footprint.flatten(-2) = (x_r, y_r, cosθ, sinθ) @ W for the points FL, RL, RR, FR, centre:
    x_k = x_r + a_k cosθ − b_k sinθ, y_k = y_r + a_k sinθ + b_k cosθ."""
    sl = torch.tensor([1.0, -1.0, -1.0, 1.0, 0.0], dtype=torch.float64)  # along the heading
    sw = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0], dtype=torch.float64)  # to the left
    a = EGO_REAR_TO_CENTER_M + sl * EGO_HALF_LENGTH_M
    b = sw * EGO_HALF_WIDTH_M
    w = torch.zeros(4, 5, 2, dtype=torch.float64)
    w[0, :, 0] = 1.0
    w[1, :, 1] = 1.0
    w[2, :, 0], w[2, :, 1] = a, b
    w[3, :, 0], w[3, :, 1] = -b, a
    return w.reshape(4, 10).to(dtype)


def ego_footprint(states: torch.Tensor, cos_sin: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Ego footprint points from rear-axle states (spec §1.1).

    Args:
        states: ``[..., D]`` ego states.
        cos_sin: the headings' ``(cos, sin)`` ``[...]`` if already computed.
    Returns:
        ``[..., 5, 2]`` points FL, RL, RR, FR, centre (m, same frame as the states).
    """
    yaw = states[..., YAW]
    c, s = (torch.cos(yaw), torch.sin(yaw)) if cos_sin is None else cos_sin
    basis = torch.stack((states[..., X], states[..., Y], c, s), -1)  # [..., 4]
    return (basis @ _footprint_matrix(states.dtype)).view(*states.shape[:-1], 5, 2)


def box_separation(center_a: torch.Tensor, cos_a: torch.Tensor, sin_a: torch.Tensor, half_a: torch.Tensor,
                   center_b: torch.Tensor, cos_b: torch.Tensor, sin_b: torch.Tensor,
                   half_b: torch.Tensor) -> torch.Tensor:
    """Separating-axis gap between oriented boxes A and B (broadcast over leading axes).

    The value is the largest gap between the two projections over the four candidate axes (the edge
    normals of both boxes). ``> 0`` means separated (the Euclidean distance is at least this value);
    ``<= 0`` means the closed boxes intersect (touching included). Degenerate boxes (a zero half size,
    i.e. a segment) are handled exactly.

    Args:
        center_a, center_b: ``[..., 2]`` centres, m.
        cos_a, sin_a, cos_b, sin_b: ``[...]`` heading cosines / sines.
        half_a, half_b: ``[..., 2]`` (half_length, half_width), m, >= 0.
    Returns:
        ``[...]`` gap, m.
    """
    dx = center_b[..., 0] - center_a[..., 0]
    dy = center_b[..., 1] - center_a[..., 1]
    hla, hwa = half_a[..., 0], half_a[..., 1]
    hlb, hwb = half_b[..., 0], half_b[..., 1]
    cc = torch.abs(cos_a * cos_b + sin_a * sin_b)  # |cos(yaw_b - yaw_a)|
    ss = torch.abs(sin_a * cos_b - cos_a * sin_b)  # |sin(yaw_b - yaw_a)|
    g1 = torch.abs(dx * cos_a + dy * sin_a) - hla - hlb * cc - hwb * ss  # axis u_a
    g2 = torch.abs(-dx * sin_a + dy * cos_a) - hwa - hlb * ss - hwb * cc  # axis n_a
    g3 = torch.abs(dx * cos_b + dy * sin_b) - hlb - hla * cc - hwa * ss  # axis u_b
    g4 = torch.abs(-dx * sin_b + dy * cos_b) - hwb - hla * ss - hwa * cc  # axis n_b
    return torch.maximum(torch.maximum(g1, g2), torch.maximum(g3, g4))


def boxes_overlap(center_a: torch.Tensor, yaw_a: torch.Tensor, half_a: torch.Tensor, center_b: torch.Tensor,
                  yaw_b: torch.Tensor, half_b: torch.Tensor) -> torch.Tensor:
    """True where oriented boxes A and B intersect (touching counts). Shapes as :func:`box_separation`,
    with headings ``yaw_a``, ``yaw_b`` ``[...]`` in rad."""
    return box_separation(center_a, torch.cos(yaw_a), torch.sin(yaw_a), half_a,
                          center_b, torch.cos(yaw_b), torch.sin(yaw_b), half_b) <= 0


def segment_box_intersects(p0: torch.Tensor, p1: torch.Tensor, center_b: torch.Tensor, cos_b: torch.Tensor,
                           sin_b: torch.Tensor, half_b: torch.Tensor) -> torch.Tensor:
    """True where the closed segment p0→p1 intersects the closed oriented box B (e.g. the ego front bumper
    FL→FR against an object box, spec §2.7 rule 4).

    Args:
        p0, p1: ``[..., 2]`` segment end points, m (p0 != p1).
        center_b, cos_b, sin_b, half_b: box B as in :func:`box_separation`.
    Returns:
        ``[...]`` bool.
    """
    mid = 0.5 * (p0 + p1)
    d = p1 - p0
    length = torch.linalg.vector_norm(d, dim=-1)
    # segment as a box whose length axis is its normal (zero extent) and whose width axis is its direction
    cos_s = d[..., 1] / length
    sin_s = -d[..., 0] / length
    half_s = torch.stack((torch.zeros_like(length), 0.5 * length), dim=-1)
    return box_separation(mid, cos_s, sin_s, half_s, center_b, cos_b, sin_b, half_b) <= 0


def bounding_radius(half: torch.Tensor) -> torch.Tensor:
    """Radius of the circle around a box centre that contains the box: ``[..., 2]`` half sizes → ``[...]`` m."""
    return torch.linalg.vector_norm(half, dim=-1)


def circles_overlap(center_a: torch.Tensor, radius_a: torch.Tensor, center_b: torch.Tensor,
                    radius_b: torch.Tensor) -> torch.Tensor:
    """Broad phase: True where two circles (``[..., 2]`` centres, ``[...]`` radii, m) touch or overlap.
    Boxes whose bounding circles do not overlap cannot intersect."""
    d2 = (center_a[..., 0] - center_b[..., 0]) ** 2 + (center_a[..., 1] - center_b[..., 1]) ** 2
    return d2 <= (radius_a + radius_b) ** 2


def points_in_polygons(points: torch.Tensor, rings: torch.Tensor, valid: torch.Tensor,
                       include_boundary: bool = False, chunk_elems: int = 1 << 23) -> torch.Tensor:
    """Exact point-in-polygon test of M points against Q padded polygon rings (even-odd rule).

    Args:
        points: ``[M, 2]`` query points, m.
        rings: ``[Q, K, 2]`` closed rings (first valid point == last valid point), m.
        valid: ``[Q, K]`` bool, valid points form a prefix of each row.
        include_boundary: if False (default, spec §0) points on an edge are *not* inside; if True they are.
        chunk_elems: bound on the size of the ``[m, Q, E]`` work tensors (memory control).
    Returns:
        ``[M, Q]`` bool.
    """
    m_total = points.shape[0]
    q = rings.shape[0]
    out = torch.zeros((m_total, q), dtype=torch.bool, device=points.device)
    if m_total == 0 or q == 0 or rings.shape[1] < 2:
        return out
    rings = rings.to(points.dtype)
    a = rings[:, :-1]  # [Q, E, 2]
    b = rings[:, 1:]
    ev = valid[:, 1:] & valid[:, :-1]  # [Q, E]
    # per-polygon bounding boxes let whole chunks skip far polygons cheaply
    big = torch.finfo(points.dtype).max
    vx = torch.where(valid, rings[..., 0], torch.full_like(rings[..., 0], big))
    vy = torch.where(valid, rings[..., 1], torch.full_like(rings[..., 1], big))
    lo = torch.stack((vx.min(1).values, vy.min(1).values), -1)  # [Q, 2]
    vx = torch.where(valid, rings[..., 0], torch.full_like(rings[..., 0], -big))
    vy = torch.where(valid, rings[..., 1], torch.full_like(rings[..., 1], -big))
    hi = torch.stack((vx.max(1).values, vy.max(1).values), -1)
    ax, ay, bx, by = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    dy = by - ay
    safe_dy = torch.where(dy == 0, torch.ones_like(dy), dy)
    e = a.shape[1]
    step = max(1, chunk_elems // max(1, q * e))
    for s in range(0, m_total, step):
        p = points[s:s + step]
        px = p[:, 0, None, None]
        py = p[:, 1, None, None]
        in_box = ((p[:, None, :] >= lo[None]) & (p[:, None, :] <= hi[None])).all(-1)  # [m, Q]
        if not bool(in_box.any()):
            continue
        crosses = ((ay > py) != (by > py)) & (px < ax + (py - ay) * (bx - ax) / safe_dy) & ev
        inside = (crosses.sum(-1) % 2) == 1
        cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
        on_edge = (cross == 0) & (px >= torch.minimum(ax, bx)) & (px <= torch.maximum(ax, bx)) \
            & (py >= torch.minimum(ay, by)) & (py <= torch.maximum(ay, by)) & ev
        on_boundary = on_edge.any(-1)
        res = (inside | on_boundary) if include_boundary else (inside & ~on_boundary)
        out[s:s + step] = res & in_box
    return out


def relative_angle_deg(origin: torch.Tensor, heading: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """Angle α (degrees, [0, 180]) between the heading at ``origin`` and the direction to ``point`` (§1.3).

    Args:
        origin: ``[..., 2]`` (the ego rear axle), m.
        heading: ``[...]`` rad.
        point: ``[..., 2]`` (an object's centroid), m.
    Returns:
        ``[...]`` degrees; NaN where ``point == origin`` (undefined: neither ahead nor behind).
    """
    d = point - origin
    norm = torch.linalg.vector_norm(d, dim=-1)
    cos_alpha = (torch.cos(heading) * d[..., 0] + torch.sin(heading) * d[..., 1]) / norm
    alpha = torch.rad2deg(torch.arccos(torch.clamp(cos_alpha, -1.0, 1.0)))
    return torch.where(norm > 0, alpha, torch.full_like(alpha, float("nan")))


def cos_relative_angle(origin: torch.Tensor, cos_h: torch.Tensor, sin_h: torch.Tensor,
                       point: torch.Tensor) -> torch.Tensor:
    """cos α of :func:`relative_angle_deg` from the heading's cos/sin; NaN where ``point == origin``.
    α < 30° ⟺ cos α > cos 30°, α > 150° ⟺ cos α < cos 150° (arccos is decreasing), which avoids arccos."""
    dx = point[..., 0] - origin[..., 0]
    dy = point[..., 1] - origin[..., 1]
    norm = torch.sqrt(dx * dx + dy * dy)
    return (cos_h * dx + sin_h * dy) / norm  # 0/0 = NaN: neither ahead nor behind


COS_AHEAD = math.cos(math.radians(AHEAD_DEG))
COS_BEHIND = math.cos(math.radians(BEHIND_DEG))


def is_ahead(origin: torch.Tensor, heading: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """α < 30° (False where α is undefined)."""
    return relative_angle_deg(origin, heading, point) < AHEAD_DEG


def is_behind(origin: torch.Tensor, heading: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """α > 150° (False where α is undefined)."""
    return relative_angle_deg(origin, heading, point) > BEHIND_DEG
