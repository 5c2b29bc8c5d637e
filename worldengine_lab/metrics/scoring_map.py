"""ScoringMap: the map inputs of the PDM scorer (spec/metrics.md §1.4), exact polygons plus a BEV raster.

Built once per scene, from a :class:`~worldengine_lab.datatypes.Scenario` (:meth:`ScoringMap.from_scenario`)
or from explicit polygons (:meth:`ScoringMap.from_polygons`, used by the worked test cases).

Polygon sets (scenario local frame, metres, float64, closed rings padded to a common length):

* ``drivable``: ``MapData.drivable_areas``; rings flagged ``drivable_is_hole`` subtract. When the map has no
  drivable areas, the lane polygons are used instead (warning).
* ``lanes``: one polygon per lane (left boundary + reversed right boundary, closed), same order as
  ``MapData.lanes``; ``lane_on_route`` from ``Route.lane_indices``.
* ``intersections``: the polygons of lane connectors (``lane_is_connector``), or an explicit list.
* ``areas``: the polygon set of the closed-loop / dense-reward ``multiple_lanes`` variant (§3.3, §5.1):
  drivable (non-hole) rings + lanes + explicit intersection polygons (intersections derived from connector
  lanes are lanes already and are not repeated).

Membership queries return **bitsets** (``int64 [..., NW]``, 63 bits per word) so that the exact and the raster
paths feed the same area logic. Bits in the exact path: polygon q → bit q. Bits in the raster: polygons
sorted by the distance of their bounding box to the raster centre; the first ``max_words·63`` that touch
the grid get bits; farther ones are left out of the raster (warning) and only the exact path sees them.
Points outside the raster grid are answered by the exact test with the raster's bit assignment.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, NamedTuple, Sequence

import numpy as np
import torch

from ..datatypes import MapData, Polylines, Scenario
from ..errors import ScenarioValidationError, ShapeError
from ..sim.geometry import points_in_polygons
from ..sim.raster import BITS_PER_WORD, GridSpec, MapRaster, rasterize_bits, rasterize_counts
from .centerline import polyline_through, route_centerline

__all__ = ["PolygonSet", "MapPolygons", "ScoringMapConfig", "ScoringMap", "lane_rings", "pack_bits", "unpack_bits"]

logger = logging.getLogger(__name__)

SetName = Literal["lanes", "areas"]


@dataclass(frozen=True, eq=False)
class PolygonSet:
    """Q closed polygon rings padded to K points.

    Attributes:
        rings: ``[Q, K, 2]`` float64, m; valid: ``[Q, K]`` bool (prefix); bbox: ``[Q, 4]`` (xmin, ymin, xmax, ymax).
    """

    rings: torch.Tensor
    valid: torch.Tensor

    def __post_init__(self) -> None:
        r, v = self.rings, self.valid
        if r.ndim != 3 or r.shape[-1] != 2 or tuple(v.shape) != tuple(r.shape[:2]) or v.dtype != torch.bool:
            raise ShapeError(f"PolygonSet: expected rings [Q, K, 2] and valid [Q, K] bool, received "
                             f"{list(r.shape)} and {list(v.shape)} {v.dtype}")
        if not bool(torch.isfinite(torch.where(v[..., None], r, torch.zeros_like(r))).all()):
            raise ScenarioValidationError("PolygonSet.rings: expected finite valid points, received NaN/inf")

    def __len__(self) -> int:
        return int(self.rings.shape[0])

    @property
    def bbox(self) -> torch.Tensor:
        big = torch.finfo(self.rings.dtype).max
        vx = self.valid[..., None]
        lo = torch.where(vx, self.rings, torch.full_like(self.rings, big)).amin(1)
        hi = torch.where(vx, self.rings, torch.full_like(self.rings, -big)).amax(1)
        return torch.cat((lo, hi), -1)

    @staticmethod
    def from_list(rings: Sequence[np.ndarray | Sequence[Sequence[float]]]) -> "PolygonSet":
        """Pad a list of ``[k_i, 2]`` rings (closed automatically when the last point differs from the first)."""
        closed = []
        for i, ring in enumerate(rings):
            a = np.asarray(ring, dtype=np.float64)
            if a.ndim != 2 or a.shape[-1] != 2:
                raise ShapeError(f"PolygonSet.from_list: ring {i}: expected [k, 2], received {list(a.shape)}")
            if len(a) and (a[0] != a[-1]).any():
                a = np.concatenate((a, a[:1]))
            closed.append(a)
        k = max((len(a) for a in closed), default=0)
        xy = np.zeros((len(closed), k, 2))
        valid = np.zeros((len(closed), k), bool)
        for i, a in enumerate(closed):
            xy[i, :len(a)] = a
            valid[i, :len(a)] = True
        return PolygonSet(torch.from_numpy(xy), torch.from_numpy(valid))

    @staticmethod
    def from_polylines(p: Polylines) -> "PolygonSet":
        return PolygonSet.from_list([p.get(i) for i in range(len(p))])

    def take(self, index: torch.Tensor) -> "PolygonSet":
        return PolygonSet(self.rings[index], self.valid[index])

    @staticmethod
    def concat(sets: Sequence["PolygonSet"]) -> "PolygonSet":
        k = max((s.rings.shape[1] for s in sets), default=0)
        rings = [torch.nn.functional.pad(s.rings, (0, 0, 0, k - s.rings.shape[1])) for s in sets]
        valid = [torch.nn.functional.pad(s.valid, (0, k - s.valid.shape[1])) for s in sets]
        return PolygonSet(torch.cat(rings) if rings else torch.zeros(0, 0, 2, dtype=torch.float64),
                          torch.cat(valid) if valid else torch.zeros(0, 0, dtype=torch.bool))

    def contains(self, points: torch.Tensor, include_boundary: bool = False) -> torch.Tensor:
        """Exact test, ``[..., 2]`` points → ``[..., Q]`` bool (strict unless ``include_boundary``)."""
        flat = points.reshape(-1, 2).to(torch.float64)
        out = points_in_polygons(flat, self.rings, self.valid, include_boundary=include_boundary)
        return out.reshape(*points.shape[:-1], len(self))


class MapPolygons(NamedTuple):
    """Polygons of one map shared by its scoring maps (:meth:`ScoringMap.map_polygons`)."""

    lanes: PolygonSet
    drivable: PolygonSet
    drivable_is_hole: torch.Tensor | None
    intersections: PolygonSet


def lane_rings(m: MapData) -> PolygonSet:
    """One closed ring per lane: left boundary, then the right boundary reversed (vectorised over lanes).
    Lanes with fewer than 2 points on a boundary get an empty ring (never contains anything)."""
    ll, rr = m.lane_left, m.lane_right
    nl, nr = ll.valid.sum(1), rr.valid.sum(1)
    usable = (nl >= 2) & (nr >= 2)
    nl, nr = np.where(usable, nl, 0), np.where(usable, nr, 0)
    n_ring = np.where(usable, nl + nr + 1, 0)
    k = int(n_ring.max()) if len(n_ring) else 0
    j = np.arange(k)[None, :]
    from_left = j < nl[:, None]
    from_right = (j >= nl[:, None]) & (j < (nl + nr)[:, None])
    li = np.clip(j, 0, max(ll.xy.shape[1] - 1, 0))
    ri = np.clip(nr[:, None] - 1 - (j - nl[:, None]), 0, max(rr.xy.shape[1] - 1, 0))
    rows = np.arange(m.num_lanes)[:, None]
    left = ll.xy[rows, li].astype(np.float64) if ll.xy.shape[1] else np.zeros((m.num_lanes, k, 2))
    right = rr.xy[rows, ri].astype(np.float64) if rr.xy.shape[1] else np.zeros((m.num_lanes, k, 2))
    first = ll.xy[:, 0].astype(np.float64)[:, None, :] if ll.xy.shape[1] else np.zeros((m.num_lanes, 1, 2))
    xy = np.where(from_left[..., None], left, np.where(from_right[..., None], right, first))
    valid = j < n_ring[:, None]
    xy = np.where(valid[..., None], xy, 0.0)
    return PolygonSet(torch.from_numpy(np.ascontiguousarray(xy)), torch.from_numpy(valid))


@dataclass(frozen=True)
class ScoringMapConfig:
    """How a ScoringMap is built.

    Attributes:
        raster: build the BEV raster (the fast path); False keeps only the exact polygons.
        resolution_m: raster cell size; 0.1 m keeps raster and exact answers identical for points farther
            than 0.071 m from every boundary.
        radius_m: half the raster's side, around the ego centre at t0 (the scorer's map radius, §1.4).
        max_words: 63-bit words per bitmask layer (lanes / areas polygons beyond 63·max_words nearest are
            left out of the raster, with a warning).
    """

    raster: bool = True
    resolution_m: float = 0.1
    radius_m: float = 100.0
    max_words: int = 2


class _BitLayer:
    """Raster bit assignment of one polygon set."""

    def __init__(self, polys: PolygonSet, grid: GridSpec, center: torch.Tensor, max_words: int, name: str) -> None:
        q = len(polys)
        bb = polys.bbox
        x0, y0 = grid.origin_xy
        x1, y1 = x0 + grid.width * grid.resolution_m, y0 + grid.height * grid.resolution_m
        touches = (bb[:, 2] >= x0) & (bb[:, 0] <= x1) & (bb[:, 3] >= y0) & (bb[:, 1] <= y1) & polys.valid.any(1)
        gap = torch.clamp(torch.maximum(bb[:, :2] - center, center - bb[:, 2:]), min=0)
        dist = torch.where(touches, torch.linalg.vector_norm(gap, dim=-1), torch.full((q,), float("inf"),
                                                                                           dtype=bb.dtype))
        order = torch.argsort(dist, stable=True)
        n_touch = int(touches.sum())
        cap = max_words * BITS_PER_WORD
        if n_touch > cap:
            logger.warning("ScoringMap raster: %d %s polygons touch the grid, only the %d nearest are rasterised; "
                           "farther ones are seen by the exact path only (raise ScoringMapConfig.max_words)",
                           n_touch, name, cap)
        kept = order[: min(n_touch, cap)]
        self.bit_index = torch.full((q,), -1, dtype=torch.long)
        self.bit_index[kept] = torch.arange(len(kept))
        self.num_words = max(1, -(-len(kept) // BITS_PER_WORD))
        self.layer = rasterize_bits(polys.rings, polys.valid, grid, self.bit_index, self.num_words)


def pack_bits(member: torch.Tensor, bit_index: torch.Tensor, num_words: int) -> torch.Tensor:
    """``[..., Q]`` bool membership → ``int64 [..., NW]`` bitsets (polygon q → bit ``bit_index[q]``; -1 = dropped)."""
    out = torch.zeros(*member.shape[:-1], num_words, dtype=torch.long)
    ok = bit_index >= 0
    for w in range(num_words):  # a handful of words
        sel = ok & (bit_index // BITS_PER_WORD == w)
        if bool(sel.any()):
            vals = torch.ones_like(bit_index[sel]) << (bit_index[sel] % BITS_PER_WORD)
            out[..., w] = (member[..., sel].long() * vals).sum(-1)
    return out


def unpack_bits(bits: torch.Tensor, bit_index: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: ``int64 [..., NW]`` → ``[..., Q]`` bool (False for dropped polygons)."""
    ok = bit_index >= 0
    idx = bit_index.clamp(min=0)
    words = bits[..., idx // BITS_PER_WORD]  # [..., Q]
    return ((words >> (idx % BITS_PER_WORD)) & 1).bool() & ok


class ScoringMap:
    """Map inputs of the scorer: exact polygon sets, route flags, route centreline and (optionally) a raster.

    Attributes:
        drivable, drivable_is_hole ``[D]``, lanes, lane_on_route ``[L]``, intersections, areas: see the module
        docstring. centerline: ``[C, 2]`` float64 route centreline (may be empty: progress is then 0).
        center_xy: ``[2]`` float64, the raster centre (ego centre at t0). raster: :class:`MapRaster` or None.
    """

    def __init__(self, drivable: PolygonSet, lanes: PolygonSet, lane_on_route: torch.Tensor,
                 intersections: PolygonSet, centerline: torch.Tensor, center_xy: Sequence[float],
                 drivable_is_hole: torch.Tensor | None = None, extra_area_polygons: PolygonSet | None = None,
                 config: ScoringMapConfig = ScoringMapConfig()) -> None:
        self.config = config
        self.drivable = drivable
        self.drivable_is_hole = (torch.zeros(len(drivable), dtype=torch.bool) if drivable_is_hole is None
                                 else torch.as_tensor(drivable_is_hole, dtype=torch.bool))
        if self.drivable_is_hole.shape != (len(drivable),):
            raise ShapeError(f"ScoringMap.drivable_is_hole: expected [{len(drivable)}], received "
                             f"{list(self.drivable_is_hole.shape)}")
        self.lanes = lanes
        self.lane_on_route = torch.as_tensor(lane_on_route, dtype=torch.bool)
        if self.lane_on_route.shape != (len(lanes),):
            raise ShapeError(f"ScoringMap.lane_on_route: expected [{len(lanes)}], received {list(self.lane_on_route.shape)}")
        self.intersections = intersections
        extra = extra_area_polygons if extra_area_polygons is not None else PolygonSet.concat([])
        self.areas = PolygonSet.concat([drivable.take(torch.nonzero(~self.drivable_is_hole)[:, 0]), lanes, extra])
        self.centerline = polyline_through(centerline) if len(centerline) else torch.zeros((0, 2), dtype=torch.float64)
        self.center_xy = torch.as_tensor(center_xy, dtype=torch.float64).reshape(2)
        if not bool(torch.isfinite(self.center_xy).all()):
            raise ScenarioValidationError(f"ScoringMap.center_xy: expected finite, received {self.center_xy.tolist()}")
        self._exact_bits = {"lanes": torch.arange(len(lanes)), "areas": torch.arange(len(self.areas))}
        self.raster: MapRaster | None = None
        self._bit_layers: dict[str, _BitLayer] = {}
        if config.raster:
            self.raster = MapRaster(GridSpec.around(tuple(self.center_xy.tolist()), config.radius_m, config.resolution_m))
            self._build_raster()

    # -- construction -----------------------------------------------------------------------------------
    def _build_raster(self) -> None:
        assert self.raster is not None
        grid = self.raster.grid
        flags = torch.zeros((grid.height, grid.width + 1), dtype=torch.uint8)
        if len(self.drivable):
            w = torch.where(self.drivable_is_hole, 1 << 15, 1).to(torch.int32)
            cnt = rasterize_counts(self.drivable.rings, self.drivable.valid, grid, w)
            flags |= ((cnt > 0) & (cnt < (1 << 15))).to(torch.uint8)  # in a ring and in no hole
        if len(self.intersections):
            cnt = rasterize_counts(self.intersections.rings, self.intersections.valid, grid)
            flags |= ((cnt > 0).to(torch.uint8) << 1)
        self.raster.add_layer("flags", flags)
        self._add_bits("lanes")

    def _add_bits(self, name: SetName) -> _BitLayer:
        assert self.raster is not None
        if name not in self._bit_layers:
            polys = self.lanes if name == "lanes" else self.areas
            bl = _BitLayer(polys, self.raster.grid, self.center_xy, self.config.max_words, name)
            self._bit_layers[name] = bl
            self.raster.add_layer(name, bl.layer)
        return self._bit_layers[name]

    @staticmethod
    def from_polygons(drivable: Sequence[np.ndarray], lanes: Sequence[np.ndarray] = (),
                      lane_on_route: Sequence[bool] | None = None, intersections: Sequence[np.ndarray] = (),
                      centerline: np.ndarray | None = None, center_xy: Sequence[float] = (0.0, 0.0),
                      drivable_is_hole: Sequence[bool] | None = None,
                      config: ScoringMapConfig = ScoringMapConfig()) -> "ScoringMap":
        """Build from explicit rings (``[k, 2]`` arrays, closed automatically); lanes default to on-route;
        explicit intersection polygons also join the ``areas`` set."""
        lane_set = PolygonSet.from_list(list(lanes))
        on = np.ones(len(lane_set), bool) if lane_on_route is None else np.asarray(lane_on_route, bool)
        inter = PolygonSet.from_list(list(intersections))
        cl = torch.zeros((0, 2), dtype=torch.float64) if centerline is None else \
            torch.as_tensor(np.asarray(centerline, np.float64))
        hole = None if drivable_is_hole is None else torch.as_tensor(np.asarray(drivable_is_hole, bool))
        return ScoringMap(PolygonSet.from_list(list(drivable)), lane_set, torch.from_numpy(on), inter, cl, center_xy,
                          drivable_is_hole=hole, extra_area_polygons=inter, config=config)

    @staticmethod
    def map_polygons(m: MapData) -> "MapPolygons":
        """The polygons of map ``m`` that every scoring map of it shares (lane rings, drivable areas,
        intersections); pass them to :meth:`from_scenario` when scoring many states on one map."""
        lanes = lane_rings(m)
        if len(m.drivable_areas):
            drivable = PolygonSet.from_polylines(m.drivable_areas)
            hole = torch.from_numpy(np.asarray(m.drivable_is_hole, bool).copy())
        else:
            logger.warning("ScoringMap: map %s has no drivable areas; using lane polygons", m.map_id)
            drivable, hole = lanes, None
        inter = lanes.take(torch.from_numpy(np.flatnonzero(m.lane_is_connector)))
        return MapPolygons(lanes, drivable, hole, inter)

    @staticmethod
    def from_scenario(scenario: Scenario, config: ScoringMapConfig = ScoringMapConfig(),
                      centerline: np.ndarray | torch.Tensor | None = None,
                      polygons: "MapPolygons | None" = None) -> "ScoringMap":
        """Build from a scenario's map and route around the ego at t0 (§1.4). ``centerline`` overrides the
        route centreline (e.g. the PDM-Closed centreline of §5.1); ``polygons``: :meth:`map_polygons` of the
        scenario's map, when already built."""
        m = scenario.map
        a = scenario.agents
        center = a.xy[scenario.t0, 0].astype(np.float64)
        yaw = float(a.yaw[scenario.t0, 0])
        rear = center - scenario.ego_rear_axle_to_center_m * np.array([np.cos(yaw), np.sin(yaw)])
        lanes, drivable, hole, inter = polygons if polygons is not None else ScoringMap.map_polygons(m)
        on = np.zeros(m.num_lanes, bool)
        on[np.asarray(scenario.route.lane_indices, dtype=np.int64)] = True
        cl = route_centerline(m, scenario.route.lane_indices, rear, yaw) if centerline is None else \
            torch.as_tensor(np.asarray(centerline, np.float64) if not isinstance(centerline, torch.Tensor)
                            else centerline, dtype=torch.float64)
        return ScoringMap(drivable, lanes, torch.from_numpy(on), inter, cl, center, drivable_is_hole=hole,
                          config=config)

    def with_centerline(self, centerline: np.ndarray | torch.Tensor) -> "ScoringMap":
        """A shallow copy sharing polygons and raster, with another centreline (closed-loop expert path)."""
        other = object.__new__(ScoringMap)
        other.__dict__.update(self.__dict__)
        other._bit_layers = self._bit_layers
        other.centerline = polyline_through(centerline)
        return other

    def recentered(self, center_xy: Sequence[float], config: ScoringMapConfig | None = None) -> "ScoringMap":
        """A copy sharing polygons and centreline whose raster is rebuilt around ``center_xy`` (m, local frame),
        for a vehicle that has driven away from the original centre (points off the raster fall back to the
        exact, slower polygon tests). ``config`` replaces the raster settings (e.g. a smaller radius)."""
        other = object.__new__(ScoringMap)
        other.__dict__.update(self.__dict__)
        other.config = self.config if config is None else config
        other.center_xy = torch.as_tensor(center_xy, dtype=torch.float64).reshape(2)
        if not bool(torch.isfinite(other.center_xy).all()):
            raise ScenarioValidationError(f"ScoringMap.recentered: expected a finite centre, received "
                                          f"{other.center_xy.tolist()}")
        other._bit_layers = {}
        other.raster = None
        if other.config.raster:
            other.raster = MapRaster(GridSpec.around(tuple(other.center_xy.tolist()), other.config.radius_m,
                                                     other.config.resolution_m))
            other._build_raster()
        return other

    def sharing_raster(self, other: "ScoringMap") -> "ScoringMap":
        """A copy of this map (polygons, route, centreline) that uses ``other``'s raster, grid and raster settings
        — for many states on the same map polygons (:meth:`map_polygons`), where one raster covers them all. The
        raster holds map geometry only (no route), so sharing it changes no result."""
        mine = object.__new__(ScoringMap)
        mine.__dict__.update(self.__dict__)
        mine.config, mine.center_xy = other.config, other.center_xy
        mine.raster, mine._bit_layers = other.raster, other._bit_layers
        return mine

    # -- queries ---------------------------------------------------------------------------------------
    def route_mask(self, exact: bool) -> torch.Tensor:
        """``int64 [NW]`` bitset of the on-route lanes (in the exact or the raster bit assignment)."""
        bits, nw = self._assignment("lanes", exact)
        return pack_bits(self.lane_on_route, bits, nw)

    def _assignment(self, name: SetName, exact: bool) -> tuple[torch.Tensor, int]:
        if exact or self.raster is None:
            n = len(self.lanes) if name == "lanes" else len(self.areas)
            return self._exact_bits[name], max(1, -(-n // BITS_PER_WORD))
        bl = self._add_bits(name)
        return bl.bit_index, bl.num_words

    def cells(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """Raster cell indices of ``[..., 2]`` points and their on-grid mask (None: all on the grid), to share
        between lookups; None without a raster."""
        return None if self.raster is None else self.raster.cell_index_fast(points)

    def membership(self, name: SetName, points: torch.Tensor, exact: bool = False,
                   cells: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> torch.Tensor:
        """Bitsets of the ``name`` polygons strictly containing each point: ``[..., 2]`` → ``int64 [..., NW]``.
        ``cells`` (from :meth:`cells`) skips recomputing the raster indices."""
        polys = self.lanes if name == "lanes" else self.areas
        bits, nw = self._assignment(name, exact)
        if exact or self.raster is None:
            return pack_bits(polys.contains(points), bits, nw)
        self._add_bits(name)
        idx, inside = cells if cells is not None else self.raster.cell_index_fast(points)
        out = self.raster.lookup(name, idx)
        if inside is not None and not bool(inside.all()):
            out[~inside] = pack_bits(polys.contains(points[~inside]), bits, nw)
        return out

    def members(self, name: SetName, points: torch.Tensor, exact: bool = False) -> torch.Tensor:
        """Per-polygon answers ``[..., Q]`` bool of :meth:`membership` (polygons left out of the raster are
        False in the raster path)."""
        bits, _ = self._assignment(name, exact)
        return unpack_bits(self.membership(name, points, exact), bits)

    def drivable_at(self, points: torch.Tensor, exact: bool = False,
                    cells: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> torch.Tensor:
        """``[..., 2]`` → ``[...]`` bool: strictly inside a drivable polygon and not in (or on) a hole."""
        if exact or self.raster is None:
            return self._drivable_exact(points)
        idx, inside = cells if cells is not None else self.raster.cell_index_fast(points)
        out = (self.raster.lookup("flags", idx) & 1).bool()
        if inside is not None and not bool(inside.all()):
            out[~inside] = self._drivable_exact(points[~inside])
        return out

    def _drivable_exact(self, points: torch.Tensor) -> torch.Tensor:
        if not len(self.drivable):
            return torch.zeros(points.shape[:-1], dtype=torch.bool)
        hole = self.drivable_is_hole
        inside = self.drivable.contains(points)
        ok = (inside & ~hole).any(-1)
        if bool(hole.any()):
            on_hole = PolygonSet(self.drivable.rings[hole], self.drivable.valid[hole]).contains(points, True)
            ok &= ~on_hole.any(-1)
        return ok

    def in_intersection(self, points: torch.Tensor, exact: bool = False) -> torch.Tensor:
        """``[..., 2]`` → ``[...]`` bool: strictly inside an intersection polygon."""
        if exact or self.raster is None:
            return self.intersections.contains(points).any(-1)
        idx, inside = self.raster.cell_index_fast(points)
        out = ((self.raster.lookup("flags", idx) >> 1) & 1).bool()
        if inside is not None and not bool(inside.all()):
            out[~inside] = self.intersections.contains(points[~inside]).any(-1)
        return out

    def __repr__(self) -> str:
        return (f"ScoringMap(drivable={len(self.drivable)}, lanes={len(self.lanes)} "
                f"({int(self.lane_on_route.sum())} on route), intersections={len(self.intersections)}, "
                f"centerline={len(self.centerline)} pts, raster={self.raster!r})")
