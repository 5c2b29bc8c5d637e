"""Bird's-eye-view rasters of map polygons for fast point lookups (torch, built once per scene).

A :class:`MapRaster` is a square grid of ``H × W`` cells of ``resolution_m`` metres around a centre
point (scenario local frame). A cell answers for every point that falls inside it with the answer of its
**cell centre**; the polygon tests at cell centres are strict (a centre on an edge is outside, spec §0),
so a point farther than ``resolution_m / √2`` from every polygon boundary gets exactly the answer of the
exact test (:func:`worldengine_lab.sim.geometry.points_in_polygons`).

Layers:

* **count layers** (``int32 [H, W]``): how many polygons of a set contain the cell centre;
* **bitmask layers** (``int64 [NW, H, W]``): bit ``b`` of word ``w`` is set when polygon ``63·w + b`` of a
  set contains the cell centre (63 bits per word so the sign bit stays clear). The polygon → bit
  assignment is the caller's; :class:`worldengine_lab.metrics.scoring_map.ScoringMap` gives the bits to the
  lanes nearest the raster centre first and limits the number of words (lanes beyond are left out of the
  raster, with a warning, and seen only by the exact path).

Build: a vectorised scanline fill. Every polygon edge is crossed with the cell-centre rows it spans
(half-open rule on the vertex rows, so each row holds an even number of crossings per ring); crossings
are sorted per (polygon, row) and paired (even-odd rule); each span adds its value at its first inside
column and subtracts it after its last; a cumulative sum along the rows fills the interiors. The cost is
proportional to the number of crossings plus one pass over the grid.

Points outside the grid are reported by :meth:`MapRaster.cell_index` (``inside_grid`` False); callers
fall back to the exact test for them.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from ..errors import ScenarioValidationError, ShapeError

__all__ = ["GridSpec", "MapRaster", "scanline_spans", "rasterize_counts", "rasterize_bits", "BITS_PER_WORD"]

logger = logging.getLogger(__name__)

BITS_PER_WORD = 63


@dataclass(frozen=True)
class GridSpec:
    """Geometry of a raster grid.

    Attributes:
        origin_xy: (x, y) of the grid's lower-left corner, m, scenario local frame.
        resolution_m: cell edge length, m.
        height: number of rows H (along +y).
        width: number of columns W (along +x).
    """

    origin_xy: tuple[float, float]
    resolution_m: float
    height: int
    width: int

    @staticmethod
    def around(center_xy: tuple[float, float], radius_m: float = 100.0, resolution_m: float = 0.1) -> "GridSpec":
        """A square grid covering ``center ± radius_m`` with cells of ``resolution_m``."""
        if not (resolution_m > 0 and math.isfinite(resolution_m)):
            raise ScenarioValidationError(f"GridSpec.resolution_m: expected a positive number, received {resolution_m!r}")
        if not (radius_m > 0 and math.isfinite(radius_m)):
            raise ScenarioValidationError(f"GridSpec.radius_m: expected a positive number, received {radius_m!r}")
        cx, cy = float(center_xy[0]), float(center_xy[1])
        if not (math.isfinite(cx) and math.isfinite(cy)):
            raise ScenarioValidationError(f"GridSpec.center_xy: expected finite coordinates, received {center_xy!r}")
        n = int(math.ceil(2.0 * radius_m / resolution_m))
        return GridSpec((cx - radius_m, cy - radius_m), float(resolution_m), n, n)


def scanline_spans(rings: torch.Tensor, valid: torch.Tensor, grid: GridSpec
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spans of cell centres strictly inside each polygon, row by row (even-odd rule).

    Args:
        rings: ``[Q, K, 2]`` closed rings, m (float64 recommended).
        valid: ``[Q, K]`` bool, valid points form a prefix.
        grid: the grid.
    Returns:
        ``(polygon [Z], row [Z], col_start [Z], col_stop [Z])`` int64: the cells ``col_start <= c < col_stop``
        of ``row`` have their centres inside polygon ``polygon`` (spans may be empty).
    """
    if rings.ndim != 3 or rings.shape[-1] != 2 or valid.shape != rings.shape[:2]:
        raise ShapeError(f"scanline_spans: expected rings [Q, K, 2] and valid [Q, K], received "
                         f"{list(rings.shape)} and {list(valid.shape)}")
    empty = torch.zeros(0, dtype=torch.long)
    if rings.shape[0] == 0 or rings.shape[1] < 2:
        return empty, empty, empty, empty
    rings = rings.to(torch.float64)
    x0, y0 = grid.origin_xy
    res = grid.resolution_m
    a, b = rings[:, :-1], rings[:, 1:]
    ev = (valid[:, 1:] & valid[:, :-1]).reshape(-1)
    poly = torch.arange(rings.shape[0]).repeat_interleave(rings.shape[1] - 1)[ev]
    a = a.reshape(-1, 2)[ev]
    b = b.reshape(-1, 2)[ev]
    # row r (centre y0 + (r + 0.5) res) is crossed by an edge iff r(lo) <= r < r(hi) with r(y) below;
    # applying one monotone function to the shared vertices keeps the crossing count per row even.
    ra = torch.ceil((a[:, 1] - y0) / res - 0.5).clamp(0, grid.height).long()
    rb = torch.ceil((b[:, 1] - y0) / res - 0.5).clamp(0, grid.height).long()
    r_lo = torch.minimum(ra, rb)
    counts = (torch.maximum(ra, rb) - r_lo)
    total = int(counts.sum())
    if total == 0:
        return empty, empty, empty, empty
    edge = torch.repeat_interleave(torch.arange(len(counts)), counts)
    offsets = torch.cumsum(counts, 0) - counts
    row = r_lo[edge] + (torch.arange(total) - offsets[edge])
    yc = y0 + (row.to(torch.float64) + 0.5) * res
    ax, ay, bx, by = a[edge, 0], a[edge, 1], b[edge, 0], b[edge, 1]
    xc = ax + (yc - ay) * (bx - ax) / (by - ay)
    pe = poly[edge]
    # sort by (polygon, row, x): x first, then a stable sort on the group key
    order = torch.argsort(xc, stable=True)
    key = pe[order] * (grid.height + 1) + row[order]
    order = order[torch.argsort(key, stable=True)]
    xs = xc[order].view(-1, 2)
    p_out = pe[order].view(-1, 2)[:, 0]
    r_out = row[order].view(-1, 2)[:, 0]
    c0 = (torch.floor((xs[:, 0] - x0) / res - 0.5) + 1).clamp(0, grid.width).long()
    c1 = torch.ceil((xs[:, 1] - x0) / res - 0.5).clamp(0, grid.width).long()
    c1 = torch.maximum(c0, c1)
    return p_out, r_out, c0, c1


def _fill(spans: tuple[torch.Tensor, ...], values: torch.Tensor, grid: GridSpec, num_words: int,
          word: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    poly, row, c0, c1 = spans
    w1 = grid.width + 1
    acc = torch.zeros(num_words * grid.height * w1, dtype=dtype)
    if len(poly):
        base = row * w1 if word is None else (word * grid.height + row) * w1
        v = values.to(dtype)
        acc.index_add_(0, base + c0, v)
        acc.index_add_(0, base + c1, -v)
    # the last column is padding (it absorbs the span ends at the right edge); layers keep it so that no
    # copy is needed: see MapRaster (row stride W + 1)
    return acc.view(num_words, grid.height, w1).cumsum_(dim=2)


def rasterize_counts(rings: torch.Tensor, valid: torch.Tensor, grid: GridSpec,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    """``int32 [H, W + 1]`` (last column = padding): Σ over polygons strictly containing the cell centre of
    the polygon's weight (default 1, i.e. the number of containing polygons).

    Args:
        rings: ``[Q, K, 2]`` closed rings, m; valid: ``[Q, K]`` bool; weights: ``[Q]`` int, optional.
    """
    spans = scanline_spans(rings, valid, grid)
    w = torch.ones(rings.shape[0], dtype=torch.int32) if weights is None else weights.to(torch.int32)
    return _fill(spans, w[spans[0]], grid, 1, None, torch.int32)[0]


def rasterize_bits(rings: torch.Tensor, valid: torch.Tensor, grid: GridSpec, bit_index: torch.Tensor,
                   num_words: int) -> torch.Tensor:
    """``int64 [NW, H, W + 1]`` bitmasks (last column = padding): polygon q sets bit ``bit_index[q] % 63`` of word ``bit_index[q] // 63``
    in the cells whose centres it strictly contains. ``bit_index[q] < 0`` leaves polygon q out.

    Args:
        rings: ``[Q, K, 2]``; valid: ``[Q, K]``; bit_index: ``[Q]`` int64; num_words: NW.
    """
    if bit_index.shape != rings.shape[:1]:
        raise ShapeError(f"rasterize_bits.bit_index: expected shape [{rings.shape[0]}], received {list(bit_index.shape)}")
    keep = bit_index >= 0
    spans = scanline_spans(rings[keep], valid[keep], grid)
    bits = bit_index[keep].long()[spans[0]]
    if len(bits) and int(bits.max()) >= num_words * BITS_PER_WORD:
        raise ShapeError(f"rasterize_bits.bit_index: expected values < {num_words * BITS_PER_WORD} "
                         f"({num_words} words of {BITS_PER_WORD} bits), received {int(bits.max())}")
    values = torch.ones_like(bits) << (bits % BITS_PER_WORD)
    return _fill(spans, values, grid, num_words, bits // BITS_PER_WORD, torch.int64)


class MapRaster:
    """A set of named raster layers on one :class:`GridSpec`, with point lookups.

    Layers are stored flattened with a row stride of ``W + 1`` (one padding column per row, which is how the
    scanline fill produces them; ``[H, W]`` inputs are padded on registration).

    Attributes:
        grid: the grid geometry.
        layers: name → ``[H·(W+1)]`` tensor (count/flag layers) or ``[NW, H·(W+1)]`` int64 (bitmask layers).
    """

    def __init__(self, grid: GridSpec, layers: dict[str, torch.Tensor] | None = None) -> None:
        self.grid = grid
        self.layers: dict[str, torch.Tensor] = {}
        for name, layer in (layers or {}).items():
            self.add_layer(name, layer)

    def add_layer(self, name: str, layer: torch.Tensor) -> None:
        """Register ``[H, W]`` / ``[NW, H, W]`` (padded here) or ``[H, W + 1]`` / ``[NW, H, W + 1]`` under ``name``."""
        h, w = self.grid.height, self.grid.width
        if layer.ndim not in (2, 3) or layer.shape[-2] != h or layer.shape[-1] not in (w, w + 1):
            raise ShapeError(f"MapRaster.add_layer({name!r}): expected [H, W] or [NW, H, W] with H, W = {(h, w)} "
                             f"(or W + 1 columns), received {list(layer.shape)}")
        if layer.shape[-1] == w:
            layer = torch.nn.functional.pad(layer, (0, 1)) if layer.is_floating_point() else \
                torch.cat((layer, torch.zeros_like(layer[..., :1])), dim=-1)
        self.layers[name] = layer.reshape(*layer.shape[:-2], h * (w + 1))

    def cell_index(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat cell index (row stride W + 1) of each point.

        Args:
            points: ``[..., 2]`` m, scenario local frame.
        Returns:
            ``(index [...] int64, inside_grid [...] bool)``; index is 0 where outside the grid.
        """
        idx, inside = self.cell_index_fast(points)
        return idx, (torch.ones_like(idx, dtype=torch.bool) if inside is None else inside)

    def cell_index_fast(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """As :meth:`cell_index`, but ``inside_grid`` is None when every point is on the grid (the common
        case, detected from the points' bounding box without a per-point mask)."""
        g = self.grid
        inv = 1.0 / g.resolution_m
        u = torch.floor((points[..., 0] - g.origin_xy[0]) * inv)
        v = torch.floor((points[..., 1] - g.origin_xy[1]) * inv)
        if u.numel() == 0:
            return u.long(), None
        u_lo, u_hi = torch.aminmax(u)
        v_lo, v_hi = torch.aminmax(v)
        if bool((u_lo >= 0) & (u_hi < g.width) & (v_lo >= 0) & (v_hi < g.height)):
            if (g.width + 1) * g.height < (1 << 24) or u.dtype == torch.float64:
                # u + (W + 1) v is an exact integer in float32 below 2^24
                return torch.add(u, v, alpha=g.width + 1).long(), None
            return v.long() * (g.width + 1) + u.long(), None
        inside = (u >= 0) & (u < g.width) & (v >= 0) & (v < g.height)
        idx = torch.where(inside, v * (g.width + 1) + u, torch.zeros_like(u)).long()
        return idx, inside

    def dense(self, name: str) -> torch.Tensor:
        """Layer ``name`` as ``[H, W]`` or ``[NW, H, W]`` (a view without the padding column)."""
        g = self.grid
        t = self.layers[name]
        return t.view(*t.shape[:-1], g.height, g.width + 1)[..., : g.width]

    def lookup(self, name: str, index: torch.Tensor) -> torch.Tensor:
        """Values of layer ``name`` at flat cell indices ``[...]`` → ``[...]`` (2-D layers) or
        ``[..., NW]`` (bitmask layers)."""
        layer = self.layers[name]
        flat = index.reshape(-1)
        if layer.ndim == 1:
            return layer.index_select(0, flat).view(index.shape)
        words = [layer[w].index_select(0, flat) for w in range(layer.shape[0])]  # NW is small
        return torch.stack(words, -1).view(*index.shape, layer.shape[0])

    def lookup_points(self, name: str, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer values at ``points [..., 2]`` and the ``inside_grid [...]`` mask (values outside are cell 0's
        and must not be used)."""
        idx, inside = self.cell_index(points)
        return self.lookup(name, idx), inside

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.layers.values())

    def __repr__(self) -> str:
        g = self.grid
        return (f"MapRaster({g.height}x{g.width} cells of {g.resolution_m:g} m at {g.origin_xy}, "
                f"layers={sorted(self.layers)}, {self.nbytes / 2**20:.1f} MiB)")
