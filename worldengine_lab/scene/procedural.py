"""Procedural Gaussian scenes from a scenario's map and boxes, so every scenario renders without assets.

``build_scene(scenario)`` makes a :class:`ScenarioScene` on flat ground (z = 0 m, scenario frame):

* ground (flat Gaussians, thin along +z): asphalt on the drivable area and lane polygons, sidewalks (the map's
  walkways, else a band around the road) raised to kerb height, grass elsewhere in the scene extent;
* paint 1 cm above the asphalt: dashed white lines between same-direction lanes, solid white right edges,
  solid yellow left edges (intersection connectors unpainted), zebra stripes on crosswalks; kerbs along the
  road boundary;
* buildings set back beside the road (walls with windows, roofs);
* one rigid model per agent in its box frame (x heading, y left, z up, origin at the box centre): vehicles
  (body, cabin with a body-coloured roof, wheels, head and tail lights), pedestrians (legs, torso, head),
  cyclists (wheels, frame, rider), cones, barriers, construction signs and generic boxes.

Colours are SH band 0 (degree 0). Everything is generated with array operations (grids clipped by shapely's
vectorised point-in-polygon, arc-length sampling of all polylines at once, box surfaces of all parts at once);
the only Python loops run over a handful of templates, crosswalks and guide lines. Seeded: same inputs and
``seed`` give identical Gaussians. ``density`` scales the number of Gaussians per m² (spacing / √density).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import shapely

from ..datatypes import AgentType, GaussianScene, Polylines, Scenario
from ..errors import ScenarioValidationError
from .compose import ScenarioScene, quat_from_yaw
from .ply import SH_C0

__all__ = ["ProceduralConfig", "build_scene", "build_actor_models"]

log = logging.getLogger(__name__)

_ASPHALT, _CONCRETE, _GRASS, _KERB = (0.23, 0.23, 0.24), (0.60, 0.59, 0.56), (0.30, 0.38, 0.21), (0.70, 0.69, 0.66)
_WHITE, _YELLOW, _GLASS, _TYRE = (0.93, 0.93, 0.90), (0.92, 0.74, 0.12), (0.10, 0.13, 0.17), (0.05, 0.05, 0.05)
_CAR_COLOURS = np.array([[0.92, 0.92, 0.92], [0.08, 0.08, 0.09], [0.62, 0.63, 0.65], [0.35, 0.36, 0.38],
                         [0.65, 0.08, 0.07], [0.10, 0.22, 0.55], [0.12, 0.30, 0.18], [0.76, 0.70, 0.55]])
_WALL_COLOURS = np.array([[0.72, 0.66, 0.58], [0.60, 0.38, 0.30], [0.78, 0.78, 0.74], [0.50, 0.52, 0.55],
                          [0.83, 0.76, 0.62]])
_SHIRTS = np.array([[0.70, 0.15, 0.15], [0.15, 0.30, 0.65], [0.85, 0.85, 0.80], [0.20, 0.50, 0.25],
                    [0.90, 0.65, 0.15], [0.25, 0.25, 0.28]])


@dataclass(frozen=True)
class ProceduralConfig:
    """Spacings at ``density = 1`` and layout constants (m)."""

    road_spacing_m: float = 0.45
    """Grid spacing of asphalt and sidewalk Gaussians."""
    terrain_spacing_m: float = 1.3
    """Grid spacing of grass outside road and sidewalk."""
    paint_step_m: float = 0.25
    """Step between paint Gaussians along a line."""
    actor_spacing_m: float = 0.18
    """Surface spacing on actor models."""
    building_spacing_m: float = 0.75
    """Surface spacing on buildings."""
    margin_m: float = 20.0
    """Scene extent beyond the map features and tracks."""
    max_extent_m: float = 300.0
    """Largest side of the (square-clipped) scene extent, centred on the ego at t0."""
    sidewalk_width_m: float = 3.0
    """Width of the band used when the map has no walkways."""
    kerb_height_m: float = 0.15
    """Height of sidewalks and grass above the asphalt."""
    buildings: bool = True
    """Place buildings beside the road."""
    terrain: bool = True
    """Cover the rest of the extent with grass."""
    include_ego: bool = False
    """Give the ego a model too (cameras on the roof would see it)."""


class _Parts:
    """Accumulates Gaussians (float64 means/scales, rgb, opacity) and turns them into a GaussianScene."""

    def __init__(self) -> None:
        self.items: list[tuple[np.ndarray, ...]] = []

    def add(self, means: np.ndarray, quats: np.ndarray, scales: np.ndarray, rgb: np.ndarray, opacity: float,
            ids: np.ndarray | None = None) -> None:
        g = len(means)
        if g:
            self.items.append((means, np.broadcast_to(quats, (g, 4)), np.broadcast_to(scales, (g, 3)),
                               np.broadcast_to(rgb, (g, 3)), np.full(g, opacity),
                               np.full(g, -1) if ids is None else ids))

    def scene(self, rng: np.random.Generator, track_ids: np.ndarray | None = None) -> GaussianScene:
        cat = [np.concatenate([it[i] for it in self.items]) if self.items else np.zeros((0, (3, 4, 3, 3)[i]))
               for i in range(4)]
        op = np.concatenate([it[4] for it in self.items]) if self.items else np.zeros(0)
        ids = np.concatenate([it[5] for it in self.items]) if self.items else np.zeros(0, np.int64)
        rgb = np.clip(cat[3] + rng.normal(0.0, 0.018, cat[3].shape), 0.0, 1.0)
        f = np.float32
        return GaussianScene(cat[0].astype(f), cat[1].astype(f), cat[2].astype(f), op.astype(f),
                             ((rgb - 0.5) / SH_C0)[:, None, :].astype(f), ids.astype(np.int32),
                             track_ids)


# ---------------------------------------------------------------------------------------------- sampling
def _grid_in(geom, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """Jittered grid points ``[M, 2]`` (m) inside a shapely geometry."""
    if geom is None or geom.is_empty:
        return np.zeros((0, 2))
    x0, y0, x1, y1 = geom.bounds
    gx, gy = np.meshgrid(np.arange(x0, x1 + spacing, spacing), np.arange(y0, y1 + spacing, spacing))
    pts = np.stack([gx.ravel(), gy.ravel()], 1) + rng.uniform(-0.3, 0.3, (gx.size, 2)) * spacing
    shapely.prepare(geom)
    return pts[shapely.contains_xy(geom, pts[:, 0], pts[:, 1])]


def _flat(xy: np.ndarray, z: float, spacing: float, thin: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Means ``[M, 3]`` at height z and scales ``[3]`` of flat ground Gaussians on a grid of ``spacing``."""
    return np.concatenate([xy, np.full((len(xy), 1), z)], 1), np.array([0.6 * spacing, 0.6 * spacing, thin])


def _pad(lines: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    pl = Polylines.from_list(lines, dtype=np.float64) if lines else Polylines.empty()
    return pl.xy.astype(np.float64), pl.valid


def _sample_lines(xy: np.ndarray, valid: np.ndarray, step: float) -> tuple[np.ndarray, ...]:
    """Points every ``step`` m along P padded polylines ``xy [P, K, 2]`` / ``valid [P, K]``, all at once.

    Returns ``(points [M, 2], heading [M] rad, s [M] m along the line, row [M])``.
    """
    if xy.shape[0] == 0 or xy.shape[1] < 2:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    p, k = valid.shape
    seg = xy[:, 1:] - xy[:, :-1]
    seg_ok = valid[:, 1:] & valid[:, :-1]
    seglen = np.where(seg_ok, np.linalg.norm(seg, axis=-1), 0.0)
    cum = np.concatenate([np.zeros((p, 1)), np.cumsum(seglen, 1)], 1)  # [P, K]
    total = cum[:, -1]
    n = np.where(total > 0, np.floor(total / step).astype(np.int64) + 1, 0)
    row = np.repeat(np.arange(p), n)
    s = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) * step
    off = np.concatenate([[0.0], np.cumsum(total + 1.0)[:-1]])
    j = np.searchsorted((cum + off[:, None]).ravel(), s + off[row], side="right") - 1 - row * k
    j = np.clip(j, 0, np.maximum(valid.sum(1) - 2, 0)[row])
    t = (s - cum[row, j]) / np.where(seglen[row, j] > 0, seglen[row, j], 1.0)
    pts = xy[row, j] + t[:, None] * seg[row, j]
    return pts, np.arctan2(seg[row, j, 1], seg[row, j, 0]), s, row


def _geom_lines(geom) -> tuple[np.ndarray, np.ndarray]:
    """Padded boundary lines of a (multi)polygon: ``xy [P, K, 2]``, ``valid [P, K]``."""
    if geom is None or geom.is_empty:
        return np.zeros((0, 0, 2)), np.zeros((0, 0), bool)
    parts = shapely.get_parts(shapely.get_parts(geom.boundary))
    coords, idx = shapely.get_coordinates(parts, return_index=True)
    counts = np.bincount(idx, minlength=len(parts))
    xy = np.zeros((len(parts), counts.max(), 2))
    valid = np.zeros((len(parts), counts.max()), bool)
    pos = np.arange(len(idx)) - np.repeat(np.cumsum(counts) - counts, counts)
    xy[idx, pos], valid[idx, pos] = coords, True
    return xy, valid


def _paint(parts: _Parts, xy: np.ndarray, valid: np.ndarray, step: float, rgb, dashed: bool) -> None:
    pts, heading, s, _ = _sample_lines(xy, valid, step)
    if dashed:
        keep = (s % 9.0) < 3.0
        pts, heading = pts[keep], heading[keep]
    means = np.concatenate([pts, np.full((len(pts), 1), 0.01)], 1)
    parts.add(means, quat_from_yaw(heading), np.array([0.6 * step, 0.05, 0.005]), np.asarray(rgb), 0.9)


def _box_surfaces(centre: np.ndarray, size: np.ndarray, yaw: np.ndarray, spacing: float, thin: float = 0.012
                  ) -> tuple[np.ndarray, ...]:
    """Flat Gaussians on the 5 visible faces (no bottom) of B boxes, all boxes at once.

    Args:
        centre: ``[B, 3]`` m; size: ``[B, 3]`` (length x, width y, height z) m; yaw: ``[B]`` rad.
    Returns:
        ``(means [M, 3], quats [M, 4], scales [M, 3], box [M], face [M], u [M], v [M])``: face 0/1 = ±x,
        2/3 = ±y, 4 = +z; (u, v) are in-face coordinates (m) from the face's lower corner.
    """
    axes = np.array([[1, 2, 0], [1, 2, 0], [0, 2, 1], [0, 2, 1], [0, 1, 2]])  # (u, v, normal) per face
    sign = np.array([1.0, -1.0, 1.0, -1.0, 1.0])
    b = len(centre)
    du, dv = size[:, axes[:, 0]], size[:, axes[:, 1]]  # [B, 5]
    nu, nv = np.maximum(1, np.ceil(du / spacing)).astype(np.int64), np.maximum(1, np.ceil(dv / spacing)).astype(np.int64)
    count = (nu * nv).ravel()
    cell = np.repeat(np.arange(b * 5), count)
    k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    box, face = cell // 5, cell % 5
    nu_, nv_ = nu.ravel()[cell], nv.ravel()[cell]
    u = (k % nu_ + 0.5) / nu_ * du.ravel()[cell]
    v = (k // nu_ + 0.5) / nv_ * dv.ravel()[cell]
    local = np.zeros((len(k), 3))
    scales = np.full((len(k), 3), thin)
    ax = axes[face]
    rows = np.arange(len(k))
    half = 0.5 * size[box]
    local[rows, ax[:, 0]] = u - half[rows, ax[:, 0]]
    local[rows, ax[:, 1]] = v - half[rows, ax[:, 1]]
    local[rows, ax[:, 2]] = sign[face] * half[rows, ax[:, 2]]
    scales[rows, ax[:, 0]] = 0.6 * du.ravel()[cell] / nu_
    scales[rows, ax[:, 1]] = 0.6 * dv.ravel()[cell] / nv_
    c, s = np.cos(yaw[box]), np.sin(yaw[box])
    means = np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], local[:, 2]], 1) + centre[box]
    return means, quat_from_yaw(yaw[box]), scales, box, face, u, v


# ---------------------------------------------------------------------------------------------- actors
def _templates(kind: int, lwh: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Parts of n actors of one kind: ``(centre [n, P, 3], size [n, P, 3], rgb [n, P, 3], roof_rgb [n, P, 3])``
    in the box frame (z = −H/2 is the ground)."""
    n = len(lwh)
    L, W, H = (lwh[:, i:i + 1] for i in range(3))
    g = -0.5 * H  # ground height in the box frame
    one = np.ones_like(L)
    if kind in (AgentType.VEHICLE, AgentType.EGO):
        body = _CAR_COLOURS[rng.integers(0, len(_CAR_COLOURS), n)][:, None]
        r = np.clip(0.2 * H, 0.25, 0.45)
        z_top_body = g + 0.55 * H
        wx, wy = 0.33 * L, 0.5 * W - 0.1
        parts = [  # (cx, cy, cz, sx, sy, sz, rgb, roof rgb)
            (0 * L, 0 * L, 0.5 * (g + 0.5 * r + z_top_body), 0.98 * L, 0.98 * W, z_top_body - g - 0.5 * r, body, body),
            (-0.05 * L, 0 * L, 0.5 * (z_top_body + 0.5 * H), 0.55 * L, 0.86 * W, 0.5 * H - z_top_body, _GLASS, body),
            *[(sx * wx, sy * wy, g + r, 2 * r, 0.24 * one, 2 * r, _TYRE, _TYRE) for sx in (1, -1) for sy in (1, -1)],
            *[(0.49 * L, sy * 0.33 * W, g + 0.42 * H, 0.04 * one, 0.22 * W, 0.1 * H, (0.95, 0.95, 0.85), body)
              for sy in (1, -1)],
            *[(-0.49 * L, sy * 0.33 * W, g + 0.45 * H, 0.04 * one, 0.22 * W, 0.1 * H, (0.8, 0.05, 0.05), body)
              for sy in (1, -1)],
        ]
    elif kind in (AgentType.PEDESTRIAN, AgentType.BICYCLE):
        k = H / 1.75
        shirt = _SHIRTS[rng.integers(0, len(_SHIRTS), n)][:, None]
        skin = (np.array([0.85, 0.68, 0.55]) * rng.uniform(0.55, 1.05, (n, 1)))[:, None]
        trousers = (np.array([0.15, 0.17, 0.25]) * rng.uniform(0.6, 1.6, (n, 1)))[:, None]
        base = g + (0.35 * k if kind == AgentType.BICYCLE else 0.0)
        parts = [(0 * L, 0 * L, base + 0.23 * k, 0.22 * one, 0.34 * one, 0.46 * k, trousers, trousers),
                 (0 * L, 0 * L, base + 0.64 * k, 0.26 * one, 0.44 * one, 0.36 * k, shirt, shirt),
                 (0 * L, 0 * L, base + 0.89 * k, 0.2 * one, 0.18 * one, 0.14 * k, skin, (0.1, 0.07, 0.05))]
        if kind == AgentType.BICYCLE:
            legs = parts[0]
            parts[0] = (legs[0], legs[1], g + 0.6 * k, legs[3], legs[4], 0.55 * k, *legs[6:])  # pedal to saddle
            frame = _CAR_COLOURS[rng.integers(0, len(_CAR_COLOURS), n)][:, None]
            parts += [(sx * 0.32 * L, 0 * L, g + 0.33, 0.66 * one, 0.06 * one, 0.66 * one, _TYRE, _TYRE)
                      for sx in (1, -1)]
            parts += [(0 * L, 0 * L, g + 0.55, 0.5 * L, 0.06 * one, 0.08 * one, frame, frame)]
    elif kind == AgentType.TRAFFIC_CONE:
        orange = (0.95, 0.40, 0.05)
        parts = [(0 * L, 0 * L, g + 0.025 * H, L, W, 0.05 * H, _TYRE, _TYRE),
                 (0 * L, 0 * L, g + 0.275 * H, 0.7 * L, 0.7 * W, 0.45 * H, orange, orange),
                 (0 * L, 0 * L, g + 0.575 * H, 0.5 * L, 0.5 * W, 0.15 * H, _WHITE, _WHITE),
                 (0 * L, 0 * L, g + 0.825 * H, 0.3 * L, 0.3 * W, 0.35 * H, orange, orange)]
    elif kind == AgentType.CZONE_SIGN:
        parts = [(0 * L, 0 * L, g + 0.3 * H, 0.06 * one, 0.06 * one, 0.6 * H, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                 (0 * L, 0 * L, g + 0.8 * H, 0.05 * one, W, 0.4 * H, (0.95, 0.45, 0.05), (0.95, 0.45, 0.05))]
    elif kind == AgentType.BARRIER:
        parts = [(0 * L, 0 * L, 0 * L, L, W, H, (0.85, 0.1, 0.08), _WHITE)]
    else:
        parts = [(0 * L, 0 * L, 0 * L, L, W, H, (0.45, 0.42, 0.38), (0.5, 0.47, 0.42))]
    vec = lambda v: np.broadcast_to(np.asarray(v, np.float64).reshape(-1), (n,))  # noqa: E731
    geo = np.stack([np.stack([vec(v) for v in p[:6]], -1) for p in parts], 1)  # [n, P, 6]
    rgb = np.stack([np.broadcast_to(np.asarray(p[6], np.float64).reshape(-1, 3), (n, 3)) for p in parts], 1)
    roof = np.stack([np.broadcast_to(np.asarray(p[7], np.float64).reshape(-1, 3), (n, 3)) for p in parts], 1)
    return geo[..., :3], geo[..., 3:], rgb, roof


def build_actor_models(scenario: Scenario, *, seed: int = 0, density: float = 1.0,
                       config: ProceduralConfig = ProceduralConfig()) -> GaussianScene:
    """Rigid models of the scenario's agents (observed at least once; the ego only if ``config.include_ego``)
    in their box frames: ``actor_track_ids`` = their track ids, ``actor_ids`` index them."""
    rng = np.random.default_rng([seed, 0xAC7])
    tr = scenario.agents
    keep = tr.valid.any(0)
    keep[0] &= config.include_ego
    agents = np.flatnonzero(keep)
    lwh = np.maximum(tr.size_lwh[agents].astype(np.float64), 0.2)
    kinds = tr.agent_type[agents].astype(int)
    centre, size, rgb, roof, actor = [], [], [], [], []
    for kind in np.unique(kinds):  # one vectorised template per agent type
        sel = np.flatnonzero(kinds == kind)
        c, s, col, top = _templates(int(kind), lwh[sel], rng)
        centre.append(c.reshape(-1, 3)), size.append(s.reshape(-1, 3)), rgb.append(col.reshape(-1, 3))
        roof.append(top.reshape(-1, 3)), actor.append(np.repeat(sel, c.shape[1]))
    parts = _Parts()
    if centre:
        c, s, col, top, a = (np.concatenate(x) for x in (centre, size, rgb, roof, actor))
        spacing = config.actor_spacing_m / np.sqrt(density)
        means, quats, scales, box, face, u, _ = _box_surfaces(c, np.maximum(s, 1e-3), np.zeros(len(c)), spacing)
        colour = np.where((face == 4)[:, None], top[box], col[box])
        barrier = (kinds[a[box]] == AgentType.BARRIER) & (face != 4) & ((u // 0.4) % 2 == 1)
        colour[barrier] = _WHITE
        parts.add(means, quats, scales, colour, 0.97, a[box])
    return parts.scene(rng, np.asarray(tr.track_ids)[agents].astype(str))


# ---------------------------------------------------------------------------------------------- world
def _regions(scenario: Scenario, cfg: ProceduralConfig):
    """Shapely geometries: extent, road, sidewalk, crosswalks (scenario frame)."""
    m = scenario.map

    def polys(pl: Polylines, keep: np.ndarray | None = None):
        n = pl.lengths
        rows = np.flatnonzero((n >= 3) & (True if keep is None else keep))
        if not len(rows):
            return np.array([], dtype=object)
        coords = pl.xy[rows][pl.valid[rows]].astype(np.float64)
        rings = shapely.linearrings(coords, indices=np.repeat(np.arange(len(rows)), n[rows]))
        return shapely.make_valid(shapely.polygons(rings))

    nl, nr = m.lane_left.lengths, m.lane_right.lengths
    k = max(m.lane_left.xy.shape[1], 1) + max(m.lane_right.xy.shape[1], 1)
    lane_xy = np.zeros((m.num_lanes, k, 2))
    lane_valid = np.zeros((m.num_lanes, k), bool)
    if m.num_lanes:
        kl = m.lane_left.xy.shape[1]
        lane_xy[:, :kl], lane_valid[:, :kl] = m.lane_left.xy, m.lane_left.valid
        rev = np.clip(nr[:, None] - 1 - np.arange(m.lane_right.xy.shape[1]), 0, None)
        lane_xy[:, kl:kl + rev.shape[1]] = np.take_along_axis(m.lane_right.xy, rev[..., None], 1)
        lane_valid[:, kl:kl + rev.shape[1]] = m.lane_right.valid
        order = np.argsort(~lane_valid, axis=1, kind="stable")  # valid points first (a prefix)
        lane_xy, lane_valid = np.take_along_axis(lane_xy, order[..., None], 1), np.take_along_axis(lane_valid, order, 1)
    lanes = polys(Polylines(lane_xy.astype(np.float32), lane_valid), (nl >= 2) & (nr >= 2))
    holes = polys(m.drivable_areas, m.drivable_is_hole)
    road = shapely.union_all(np.concatenate([polys(m.drivable_areas, ~m.drivable_is_hole), lanes]))
    if len(holes):
        road = road.difference(shapely.union_all(holes))
    tr = scenario.agents
    pts = [tr.xy[tr.valid].astype(np.float64)]
    if not road.is_empty:
        pts.append(np.array(road.bounds).reshape(2, 2))
    pts = np.concatenate(pts)
    lo, hi = pts.min(0) - cfg.margin_m, pts.max(0) + cfg.margin_m
    ego = tr.xy[scenario.t0, 0].astype(np.float64)
    lo, hi = np.maximum(lo, ego - cfg.max_extent_m / 2), np.minimum(hi, ego + cfg.max_extent_m / 2)
    extent = shapely.box(lo[0], lo[1], hi[0], hi[1])
    road = road.intersection(extent)
    walk = shapely.union_all(polys(m.walkways)).difference(road) if len(m.walkways) else \
        road.buffer(cfg.sidewalk_width_m).difference(road)
    cross = shapely.union_all(polys(m.crosswalks)).intersection(extent) if len(m.crosswalks) else None
    return extent, road, walk.intersection(extent), cross


def _buildings(parts: _Parts, occupied, extent, cfg: ProceduralConfig, spacing: float,
               rng: np.random.Generator) -> int:
    if occupied.is_empty:
        return 0
    guide = shapely.orient_polygons(occupied.buffer(6.0), exterior_cw=False)  # exteriors CCW, holes CW
    xy, valid = _geom_lines(guide)
    pts, heading, s, row = _sample_lines(xy, valid, 17.0)
    b = len(pts)
    if not b:
        return 0
    width, depth, height = rng.uniform(9, 15, b), rng.uniform(8, 13, b), rng.uniform(5, 24, b)
    # exteriors run counter-clockwise and holes clockwise, so away from the road is to the right
    out = np.stack([np.sin(heading), -np.cos(heading)], 1)
    centre = pts + out * (0.5 * depth - 2.0)[:, None]
    c, sn = np.cos(heading), np.sin(heading)
    corners = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * 0.5
    loc = corners[None] * np.stack([width, depth], 1)[:, None]
    ring = centre[:, None] + np.stack([c[:, None] * loc[..., 0] - sn[:, None] * loc[..., 1],
                                       sn[:, None] * loc[..., 0] + c[:, None] * loc[..., 1]], -1)
    foot = shapely.polygons(ring)
    ok = ~shapely.intersects(foot, occupied) & shapely.within(foot, extent)
    tree = shapely.STRtree(foot)
    i, j = tree.query(foot, predicate="intersects")
    clash = np.zeros(b, bool)
    clash[j[(i < j) & ok[i]]] = True
    keep = np.flatnonzero(ok & ~clash)
    if not len(keep):
        return 0
    size = np.stack([width[keep], depth[keep], height[keep]], 1)
    centre3 = np.concatenate([centre[keep], 0.5 * height[keep, None] + cfg.kerb_height_m], 1)
    means, quats, scales, box, face, u, v = _box_surfaces(centre3, size, heading[keep], spacing, thin=0.03)
    wall = _WALL_COLOURS[rng.integers(0, len(_WALL_COLOURS), len(keep))][box]
    window = (face < 4) & ((u % 3.0) > 0.8) & ((u % 3.0) < 2.2) & ((v % 3.2) > 1.0) & ((v % 3.2) < 2.3)
    colour = np.where(window[:, None], _GLASS, np.where((face == 4)[:, None], 0.6 * wall, wall))
    parts.add(means, quats, scales, colour, 0.98)
    return len(keep)


def build_scene(scenario: Scenario, *, seed: int = 0, density: float = 1.0,
                config: ProceduralConfig | None = None) -> ScenarioScene:
    """A procedural :class:`ScenarioScene` from the scenario's map and boxes (see the module doc).

    Args:
        scenario: any Scenario (an empty map gives grass and actors only).
        seed: RNG seed (jitter, colours, building sizes).
        density: Gaussians per m² relative to the defaults (spacing / √density); 1 gives roughly 50k–300k
            Gaussians for an embedded-world scenario.
        config: spacings and options.
    Returns:
        ScenarioScene on flat ground (z = 0 m), degree-0 SH, actors keyed by track id.
    """
    if not (np.isfinite(density) and density > 0):
        raise ScenarioValidationError(f"build_scene: expected density > 0, received {density}")
    cfg = config or ProceduralConfig()
    t_start = time.perf_counter()
    rng = np.random.default_rng([seed, 0x5CE])
    k = 1.0 / np.sqrt(density)
    extent, road, walk, cross = _regions(scenario, cfg)
    parts = _Parts()
    sp = cfg.road_spacing_m * k
    m, s = _flat(_grid_in(road, sp, rng), 0.0, sp)
    parts.add(m, np.array([1.0, 0, 0, 0]), s, np.array(_ASPHALT) * rng.uniform(0.85, 1.1, (len(m), 1)), 0.97)
    m, s = _flat(_grid_in(walk, sp, rng), cfg.kerb_height_m, sp)
    parts.add(m, np.array([1.0, 0, 0, 0]), s, _CONCRETE, 0.97)
    if cfg.terrain:
        st = cfg.terrain_spacing_m * k
        m, s = _flat(_grid_in(extent.difference(road.union(walk)), st, rng), cfg.kerb_height_m - 0.01, st, 0.03)
        parts.add(m, np.array([1.0, 0, 0, 0]), s, np.array(_GRASS) * rng.uniform(0.8, 1.15, (len(m), 1)), 0.97)
    # paint
    mp = scenario.map
    step = cfg.paint_step_m * k
    lane = ~mp.lane_is_connector
    for side, has_nb, colour, dashed in ((mp.lane_left, mp.lane_left_neighbor >= 0, _WHITE, True),
                                         (mp.lane_right, mp.lane_right_neighbor < 0, _WHITE, False),
                                         (mp.lane_left, mp.lane_left_neighbor < 0, _YELLOW, False)):
        rows = np.flatnonzero(lane & has_nb)
        _paint(parts, side.xy[rows].astype(np.float64), side.valid[rows], step, colour, dashed)
    if cross is not None and not cross.is_empty:
        for poly in shapely.get_parts(cross):  # a few crosswalks per scenario
            rect = np.asarray(poly.minimum_rotated_rectangle.exterior.coords)[:4]
            e = np.diff(rect[:3], axis=0)
            axis = e[np.argmax(np.linalg.norm(e, axis=1))]
            axis = axis / np.linalg.norm(axis)
            p = _grid_in(poly, 0.18 * k, rng)
            p = p[(((p - rect[0]) @ axis) % 1.0) < 0.5]
            mm, ss = _flat(p, 0.012, 0.18 * k, 0.005)
            parts.add(mm, np.array([1.0, 0, 0, 0]), ss, _WHITE, 0.92)
    # kerbs along the road boundary (not along the extent's edge)
    xy, valid = _geom_lines(road)
    pts, heading, _, _ = _sample_lines(xy, valid, step)
    x0, y0, x1, y1 = extent.bounds
    inner = (pts[:, 0] > x0 + 0.5) & (pts[:, 0] < x1 - 0.5) & (pts[:, 1] > y0 + 0.5) & (pts[:, 1] < y1 - 0.5)
    h = cfg.kerb_height_m
    parts.add(np.concatenate([pts[inner], np.full((inner.sum(), 1), 0.5 * h)], 1), quat_from_yaw(heading[inner]),
              np.array([0.6 * step, 0.03, 0.5 * h]), _KERB, 0.97)
    num_buildings = _buildings(parts, road.union(walk), extent, cfg, cfg.building_spacing_m * k, rng) \
        if cfg.buildings else 0
    background = parts.scene(rng)
    actors = build_actor_models(scenario, seed=seed, density=density, config=cfg)
    build_s = time.perf_counter() - t_start
    log.info("build_scene %s: %d background + %d actor Gaussians (%d actors, %d buildings) in %.2f s",
             scenario.scenario_id, background.num_gaussians, actors.num_gaussians, actors.num_actors,
             num_buildings, build_s)
    return ScenarioScene(background, actors, scenario, meta={
        "source": "procedural", "seed": seed, "density": density, "num_buildings": num_buildings,
        "build_s": build_s})
