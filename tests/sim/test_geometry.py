"""Oriented-box geometry and map rasters (worldengine_lab.sim.geometry, worldengine_lab.sim.raster)."""
from __future__ import annotations

import math

import numpy as np
import shapely
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worldengine_lab.sim.geometry import (
    CENTER, FL, FR, RL, RR, box_corners, box_separation, boxes_overlap, circles_overlap, ego_footprint, is_ahead,
    is_behind, points_in_polygons, relative_angle_deg, segment_box_intersects,
)
from worldengine_lab.sim.raster import GridSpec, MapRaster, rasterize_bits, rasterize_counts
from worldengine_lab.sim.state import make_ego_state

F64 = torch.float64


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=F64)


def test_ego_footprint_heading_zero_spans_spec_box() -> None:
    fp = ego_footprint(make_ego_state(x=3.0, y=-2.0))
    assert fp.shape == (5, 2)
    xs, ys = fp[:4, 0], fp[:4, 1]
    assert abs(xs.min().item() - (3.0 - 1.127)) < 1e-12 and abs(xs.max().item() - (3.0 + 4.049)) < 1e-12
    assert abs(ys.min().item() + 2.0 + 1.1485) < 1e-12 and abs(ys.max().item() + 2.0 - 1.1485) < 1e-12
    # fixed order FL, RL, RR, FR, centre
    assert fp[FL, 0] > fp[RL, 0] and fp[FL, 1] > fp[RR, 1] and fp[FR, 0] > fp[RR, 0] and fp[FR, 1] < fp[FL, 1]
    assert torch.allclose(fp[CENTER], _t(3.0 + 1.461, -2.0))


def test_ego_footprint_rotated_and_batched() -> None:
    s = make_ego_state(x=torch.zeros(3, 2), yaw=math.pi / 2)
    fp = ego_footprint(s)
    assert fp.shape == (3, 2, 5, 2)
    assert torch.allclose(fp[0, 0, CENTER], _t(0.0, 1.461), atol=1e-12)
    assert torch.allclose(fp[0, 0, FL], _t(-1.1485, 1.461 + 2.588), atol=1e-12)


def test_box_corners_order() -> None:
    c = box_corners(_t(0.0, 0.0), _t(1.0)[0], _t(0.0)[0], 2.0, 1.0)
    assert c.tolist() == [[2.0, 1.0], [-2.0, 1.0], [-2.0, -1.0], [2.0, -1.0]]


def _shapely_box(cx: float, cy: float, yaw: float, hl: float, hw: float) -> shapely.Polygon:
    corners = box_corners(_t(cx, cy), _t(math.cos(yaw))[0], _t(math.sin(yaw))[0], hl, hw)
    return shapely.Polygon(corners.numpy())


coord = st.floats(-6.0, 6.0, allow_nan=False)
angle = st.floats(-math.pi, math.pi, allow_nan=False)
half = st.floats(0.05, 4.0, allow_nan=False)


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coord, coord, angle, half, half, coord, coord, angle, half, half)
def test_sat_agrees_with_shapely(ax: float, ay: float, ayaw: float, ahl: float, ahw: float, bx: float, by: float,
                                 byaw: float, bhl: float, bhw: float) -> None:
    sep = box_separation(_t(ax, ay), _t(math.cos(ayaw))[0], _t(math.sin(ayaw))[0], _t(ahl, ahw),
                         _t(bx, by), _t(math.cos(byaw))[0], _t(math.sin(byaw))[0], _t(bhl, bhw)).item()
    if abs(sep) <= 1e-6:
        return  # numerically touching: either answer is acceptable
    expected = _shapely_box(ax, ay, ayaw, ahl, ahw).intersects(_shapely_box(bx, by, byaw, bhl, bhw))
    assert (sep <= 0) == expected
    if sep > 0:  # the gap is a lower bound of the Euclidean distance
        assert sep <= _shapely_box(ax, ay, ayaw, ahl, ahw).distance(_shapely_box(bx, by, byaw, bhl, bhw)) + 1e-9


def test_sat_touching_counts_and_broadcasts() -> None:
    h = _t(2.0, 1.0)
    z = torch.zeros((), dtype=F64)
    assert boxes_overlap(_t(0.0, 0.0), z, h, _t(4.0, 0.0), z, h).item()  # edge contact
    assert boxes_overlap(_t(0.0, 0.0), z, h, _t(4.0, 2.0), z, h).item()  # corner contact
    assert not boxes_overlap(_t(0.0, 0.0), z, h, _t(4.0 + 1e-9, 0.0), z, h).item()
    centres = torch.stack((torch.linspace(0, 10, 11, dtype=F64), torch.zeros(11, dtype=F64)), -1)
    out = boxes_overlap(_t(0.0, 0.0)[None, None], z, h, centres[None, :], torch.zeros(11, dtype=F64), h)
    assert out.shape == (1, 11) and out[0].tolist() == [True] * 5 + [False] * 6


@settings(max_examples=200, derandomize=True, deadline=None)
@given(coord, coord, coord, coord, coord, coord, angle, half, half)
def test_segment_box_agrees_with_shapely(x0: float, y0: float, x1: float, y1: float, bx: float, by: float,
                                         byaw: float, bhl: float, bhw: float) -> None:
    if math.hypot(x1 - x0, y1 - y0) < 1e-3:
        return
    box = _shapely_box(bx, by, byaw, bhl, bhw)
    seg = shapely.LineString([(x0, y0), (x1, y1)])
    if abs(box.exterior.distance(seg)) < 1e-6 and not box.contains(seg):
        return  # grazing
    got = segment_box_intersects(_t(x0, y0), _t(x1, y1), _t(bx, by), _t(math.cos(byaw))[0],
                                 _t(math.sin(byaw))[0], _t(bhl, bhw)).item()
    assert got == seg.intersects(box)


def _rings() -> tuple[torch.Tensor, torch.Tensor, list[shapely.Polygon]]:
    polys = [
        np.array([[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]], float),
        np.array([[5, 0], [9, 0], [9, 3], [7, 1], [5, 3], [5, 0]], float),  # concave
        np.array([[-3, -3], [-1, -2.5], [-2, -0.5], [-3, -3]], float),  # triangle
    ]
    k = max(len(p) for p in polys)
    rings = torch.zeros(len(polys), k, 2, dtype=F64)
    valid = torch.zeros(len(polys), k, dtype=torch.bool)
    for i, p in enumerate(polys):
        rings[i, : len(p)] = torch.from_numpy(p)
        valid[i, : len(p)] = True
    return rings, valid, [shapely.Polygon(p) for p in polys]


def test_points_in_polygons_strict_and_vs_shapely() -> None:
    rings, valid, polys = _rings()
    rng = np.random.default_rng(0)
    pts = rng.uniform(-4, 10, size=(4000, 2))
    got = points_in_polygons(torch.from_numpy(pts), rings, valid)
    want = np.stack([shapely.contains_xy(p, pts[:, 0], pts[:, 1]) for p in polys], -1)
    assert (got.numpy() == want).all()
    boundary = torch.tensor([[0.0, 2.0], [4.0, 4.0], [2.0, 0.0], [7.0, 1.0], [6.0, 2.0]], dtype=F64)
    assert not points_in_polygons(boundary, rings, valid).any()
    assert points_in_polygons(boundary[:3], rings, valid, include_boundary=True)[:, 0].all()


def test_relative_angle_predicates() -> None:
    o = _t(0.0, 0.0)
    h = torch.zeros((), dtype=F64)
    assert abs(relative_angle_deg(o, h, _t(1.0, 1.0)).item() - 45.0) < 1e-9
    assert is_ahead(o, h, _t(10.0, 5.0)).item()  # 26.6 deg
    assert not is_ahead(o, h, _t(10.0, 6.0)).item()  # 31 deg
    assert is_behind(o, h, _t(-10.0, 5.0)).item()  # 153.4 deg
    assert not is_behind(o, h, _t(-10.0, 6.0)).item()
    assert not is_ahead(o, h, o).item() and not is_behind(o, h, o).item()  # undefined → neither


def test_circles_overlap_broad_phase() -> None:
    assert circles_overlap(_t(0.0, 0.0), _t(1.0)[0], _t(3.0, 0.0), _t(2.0)[0]).item()
    assert not circles_overlap(_t(0.0, 0.0), _t(1.0)[0], _t(3.0, 0.1), _t(2.0)[0]).item()


def test_raster_counts_and_bits_match_exact_at_cell_centres() -> None:
    rings, valid, _ = _rings()
    grid = GridSpec((-4.0, -4.0), 0.05, 300, 300)
    counts = rasterize_counts(rings, valid, grid)[:, :-1]
    bits = rasterize_bits(rings, valid, grid, torch.tensor([0, 64, 1]), num_words=2)[..., :-1]
    ys, xs = torch.meshgrid(torch.arange(300, dtype=F64), torch.arange(300, dtype=F64), indexing="ij")
    centres = torch.stack((-4.0 + (xs + 0.5) * 0.05, -4.0 + (ys + 0.5) * 0.05), -1).reshape(-1, 2)
    exact = points_in_polygons(centres, rings, valid).reshape(300, 300, 3)
    # cell centres lying exactly on an edge may go either way; everything else must match exactly
    edges = shapely.union_all([p.exterior for p in _rings()[2]])
    off_edge = torch.from_numpy(shapely.distance(edges, shapely.points(centres.numpy())) > 1e-9).reshape(300, 300)
    assert int((~off_edge).sum()) < 200  # a few diagonal edges run through cell centres
    assert torch.equal(counts[off_edge], exact.sum(-1).to(torch.int32)[off_edge])
    assert torch.equal(bits[0][off_edge], (exact[..., 0].long() | (exact[..., 2].long() << 1))[off_edge])
    assert torch.equal(bits[1][off_edge], (exact[..., 1].long() << 1)[off_edge])  # bit 64 = word 1, bit 1


def test_raster_point_lookup_and_outside_grid() -> None:
    rings, valid, _ = _rings()
    grid = GridSpec.around((2.0, 2.0), radius_m=8.0, resolution_m=0.1)
    r = MapRaster(grid, {"count": rasterize_counts(rings, valid, grid)})
    pts = torch.tensor([[[2.0, 2.0], [8.5, 0.5]], [[7.0, 2.5], [50.0, 0.0]]], dtype=F64)
    vals, inside = r.lookup_points("count", pts)
    assert inside.tolist() == [[True, True], [True, False]]
    assert vals[inside].tolist() == [1, 1, 0]
    assert r.dense("count").shape == (160, 160)
