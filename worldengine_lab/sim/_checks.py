"""Per-step checks of the closed loop, batched over scenarios: ego-vs-agent collisions and area flags.

Built on :mod:`.geometry` (oriented boxes, separating axes, exact point-in-polygon) and :mod:`.raster`
(scanline rasters). The simulator needs one lookup for B scenarios at once, so the per-scenario rasters are
concatenated into one flat table with per-scenario grid origins and strides. Points outside a scenario's grid
fall back to the exact polygon test.

Area flags of a point (spec §2.6 semantics, strict insideness at cell centres):

* drivable: inside a drivable polygon (``MapData.drivable_areas`` minus the hole rings);
* on_route_lane: inside the polygon of an on-route lane (left boundary + reversed right boundary).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..datatypes import MapData, Scenario
from .geometry import (EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M, EGO_RADIUS_M, bounding_radius, box_separation,
                       points_in_polygons)
from .raster import GridSpec, rasterize_counts

__all__ = ["AreaRasters", "build_area_rasters", "area_flags", "ego_agent_overlaps", "DRIVABLE", "ON_ROUTE_LANE"]

log = logging.getLogger(__name__)

DRIVABLE = 1  # bit of the flag table
ON_ROUTE_LANE = 2


@dataclass(frozen=True)
class _Polygons:
    rings: torch.Tensor  # [Q, K, 2] float64
    valid: torch.Tensor  # [Q, K] bool


@dataclass(frozen=True)
class AreaRasters:
    """Flag rasters of B scenarios, concatenated.

    Attributes:
        origin: ``[B, 2]`` lower-left corner of each grid, m (local frame); resolution_m: cell size, m.
        height, width: ``[B]`` int64 grid rows / columns; offset: ``[B]`` int64 start of each grid in ``flags``.
        flags: ``[sum H*W]`` uint8, bits :data:`DRIVABLE` and :data:`ON_ROUTE_LANE` per cell.
        has_drivable, has_route: ``[B]`` bool, the map has drivable areas / on-route lanes (else the flag is
            reported as satisfied: no drivable area means no off-road verdict).
    """

    origin: torch.Tensor
    resolution_m: float
    height: torch.Tensor
    width: torch.Tensor
    offset: torch.Tensor
    flags: torch.Tensor
    has_drivable: torch.Tensor
    has_route: torch.Tensor
    drivable: tuple[_Polygons, ...]
    holes: tuple[_Polygons, ...]
    route_lanes: tuple[_Polygons, ...]


def _rings(xy: np.ndarray, valid: np.ndarray) -> _Polygons:
    return _Polygons(torch.from_numpy(xy.astype(np.float64)), torch.from_numpy(valid.copy()))


def lane_polygons(m: MapData, lanes: np.ndarray) -> _Polygons:
    """Closed rings ``[Q, Kl + Kr + 1, 2]`` of the given lanes: left boundary, reversed right boundary, closure."""
    left, right = m.lane_left, m.lane_right
    nl, nr = left.lengths[lanes], right.lengths[lanes]
    kl, kr = left.xy.shape[1], right.xy.shape[1]
    q = len(lanes)
    k = kl + kr + 1
    out = np.zeros((q, k, 2), np.float64)
    pos = np.arange(k)[None, :]
    # source of point p: left[p] for p < nl, right[nl + nr - 1 - p] for nl <= p < nl + nr, left[0] at nl + nr
    li = np.clip(pos, 0, kl - 1) if kl else np.zeros_like(pos)
    ri = np.clip(nl[:, None] + nr[:, None] - 1 - pos, 0, max(kr - 1, 0))
    if kl:
        out = np.where((pos < nl[:, None])[..., None], left.xy[lanes][np.arange(q)[:, None], li], out)
        out = np.where((pos == (nl + nr)[:, None])[..., None], left.xy[lanes][:, :1], out)
    if kr:
        in_right = (pos >= nl[:, None]) & (pos < (nl + nr)[:, None])
        out = np.where(in_right[..., None], right.xy[lanes][np.arange(q)[:, None], ri], out)
    valid = (pos <= (nl + nr)[:, None]) & ((nl >= 2) & (nr >= 2))[:, None]
    return _rings(out, valid)


def build_area_rasters(
    scenarios: Sequence[Scenario], centers: torch.Tensor, radius_m: float, resolution_m: float
) -> AreaRasters:
    """Rasterise drivable areas and on-route lane polygons of each scenario within ``radius_m`` of its
    ``centers [B, 2]`` (m) at ``resolution_m``. Scenarios sharing a map object, route and grid share one
    raster (variants of one scene)."""
    origins, heights, widths, offsets = [], [], [], []
    drivable, holes, route = [], [], []
    has_drivable, has_route = [], []
    polys: dict[tuple[int, bytes], tuple[_Polygons, _Polygons, _Polygons]] = {}
    layers: dict[tuple, int] = {}  # (map, route, grid) -> offset into the flag table
    chunks: list[torch.Tensor] = []
    size = 0
    for b, s in enumerate(scenarios):  # one raster per distinct map/route/grid; built once per episode
        m = s.map
        route_lanes = np.unique(s.route.lane_indices)
        pkey = (id(m), route_lanes.tobytes())
        if pkey not in polys:
            da = m.drivable_areas
            dv = da.valid & (da.lengths >= 4)[:, None]
            polys[pkey] = (_rings(da.xy[~m.drivable_is_hole], dv[~m.drivable_is_hole]),
                           _rings(da.xy[m.drivable_is_hole], dv[m.drivable_is_hole]), lane_polygons(m, route_lanes))
        d_poly, h_poly, r_poly = polys[pkey]
        drivable.append(d_poly)
        holes.append(h_poly)
        route.append(r_poly)
        has_drivable.append(bool(d_poly.valid.any()))
        has_route.append(bool(r_poly.valid.any()))
        cx, cy = (float(v) for v in centers[b])
        lo = np.array([cx - radius_m, cy - radius_m])
        hi = np.array([cx + radius_m, cy + radius_m])
        pts = [p.rings[p.valid].numpy() for p in (d_poly, r_poly) if p.valid.any()]
        if pts:  # clip the grid to the map's extent
            allp = np.concatenate(pts)
            lo = np.maximum(lo, np.floor((allp.min(0) - lo) / resolution_m - 1) * resolution_m + lo)
            hi = np.minimum(hi, allp.max(0) + resolution_m)
        hi = np.maximum(hi, lo + resolution_m)
        grid = GridSpec((float(lo[0]), float(lo[1])), resolution_m, int(math.ceil((hi[1] - lo[1]) / resolution_m)),
                        int(math.ceil((hi[0] - lo[0]) / resolution_m)))
        key = (pkey, grid)
        if key not in layers:
            layers[key] = size
            flags = _flag_layer(grid, d_poly, h_poly, r_poly)
            chunks.append(flags)
            size += flags.numel()
        origins.append(grid.origin_xy)
        heights.append(grid.height)
        widths.append(grid.width)
        offsets.append(layers[key])
    return AreaRasters(
        origin=torch.tensor(origins, dtype=torch.float64), resolution_m=resolution_m,
        height=torch.tensor(heights, dtype=torch.int64), width=torch.tensor(widths, dtype=torch.int64),
        offset=torch.tensor(offsets, dtype=torch.int64), flags=torch.cat(chunks),
        has_drivable=torch.tensor(has_drivable), has_route=torch.tensor(has_route),
        drivable=tuple(drivable), holes=tuple(holes), route_lanes=tuple(route),
    )


def _flag_layer(grid: GridSpec, drivable: _Polygons, holes: _Polygons, route: _Polygons) -> torch.Tensor:
    """``[H * W]`` uint8 flags of one grid."""
    flags = torch.zeros(grid.height, grid.width, dtype=torch.uint8)

    def count(p: _Polygons) -> torch.Tensor:  # [H, W]; the raster may carry a padding column
        return rasterize_counts(p.rings, p.valid, grid)[..., : grid.width]

    if drivable.valid.any():
        inside = count(drivable) > 0
        if holes.valid.any():
            inside &= count(holes) == 0
        flags |= inside.to(torch.uint8) * DRIVABLE
    if route.valid.any():
        flags |= (count(route) > 0).to(torch.uint8) * ON_ROUTE_LANE
    return flags.reshape(-1)


def area_flags(r: AreaRasters, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(drivable [B, P], on_route_lane [B, P])`` bool for ``points [B, P, 2]`` (m, local frame).

    Scenarios without drivable areas (or without a route) report True for that flag."""
    p = points.to(torch.float64)
    inv = 1.0 / r.resolution_m
    col = torch.floor((p[..., 0] - r.origin[:, 0:1]) * inv).to(torch.int64)
    row = torch.floor((p[..., 1] - r.origin[:, 1:2]) * inv).to(torch.int64)
    w = r.width.unsqueeze(1)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < r.height.unsqueeze(1))
    idx = torch.where(inside, r.offset.unsqueeze(1) + row * w + col, torch.zeros_like(col))
    f = r.flags[idx]
    drivable = (f & DRIVABLE) > 0
    on_route = (f & ON_ROUTE_LANE) > 0
    if not bool(inside.all()):  # rare: exact polygon tests for the points beyond the grids
        for b in torch.nonzero(~inside.all(dim=1)).flatten().tolist():
            out = ~inside[b]
            q = p[b][out]
            d = points_in_polygons(q, r.drivable[b].rings, r.drivable[b].valid).any(-1)
            if r.holes[b].valid.any():
                d &= ~points_in_polygons(q, r.holes[b].rings, r.holes[b].valid).any(-1)
            drivable[b, out] = d
            on_route[b, out] = points_in_polygons(q, r.route_lanes[b].rings, r.route_lanes[b].valid).any(-1)
    drivable |= ~r.has_drivable.unsqueeze(1)
    on_route |= ~r.has_route.unsqueeze(1)
    return drivable, on_route


def ego_agent_overlaps(
    center: torch.Tensor, yaw: torch.Tensor, xy: torch.Tensor, agent_yaw: torch.Tensor, half: torch.Tensor,
    valid: torch.Tensor, reach2: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[B, N]`` bool: the ego footprint intersects agent boxes (touching counts).

    Broad phase on bounding circles, then the separating-axis test on the surviving pairs only.

    Args:
        center: ``[B, 2]`` ego box centre, m; yaw ``[B]`` ego heading, rad.
        xy: ``[B, N, 2]`` agent box centres, m; agent_yaw ``[B, N]`` rad; half ``[B, N, 2]`` (half length, half
            width), m; valid ``[B, N]`` bool (False for the ego's own row).
        reach2: ``[B, N]`` squared sum of the ego's and each agent's bounding radii, m^2 (computed if None).
    """
    if reach2 is None:
        reach2 = (EGO_RADIUS_M + bounding_radius(half)) ** 2
    dx = xy[..., 0] - center[:, 0:1]
    dy = xy[..., 1] - center[:, 1:2]
    near = (dx * dx + dy * dy <= reach2) & valid
    out = torch.zeros_like(near)
    bi, ni = torch.nonzero(near, as_tuple=True)
    if len(bi):
        ey = yaw[bi]
        ay = agent_yaw[bi, ni]
        ego_half = torch.tensor([EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M], dtype=xy.dtype)
        sep = box_separation(center[bi], torch.cos(ey), torch.sin(ey), ego_half, xy[bi, ni],
                             torch.cos(ay), torch.sin(ay), half[bi, ni])
        out[bi, ni] = sep <= 0
    return out
