"""ScoringMap: polygons from MapData, route centreline, raster vs exact agreement."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import shapely
import torch

from worldengine_lab.datatypes import MapData, Polylines
from worldengine_lab.errors import ShapeError
from worldengine_lab.metrics import ScoringMap, ScoringMapConfig, lane_rings, project_to_polyline, route_centerline
from worldengine_lab.testing import make_scenario, make_straight_map

TOL_M = 0.1


def _annulus_sector(r0: float, r1: float, a0: float, a1: float, n: int = 60) -> np.ndarray:
    a = np.linspace(a0, a1, n)
    outer = np.stack((r1 * np.cos(a), r1 * np.sin(a)), -1)
    inner = np.stack((r0 * np.cos(a[::-1]), r0 * np.sin(a[::-1])), -1)
    return np.concatenate((outer, inner))


def _curved_map() -> tuple[ScoringMap, list[np.ndarray], list[np.ndarray], list[bool]]:
    drivable = [_annulus_sector(30, 40, -0.3, 2.0), np.array([[-20, -5], [10, -5], [10, 5], [-20, 5.0]]),
                np.array([[-5, -2], [0, -2], [0, 2], [-5, 2.0]])]  # the last one is a hole
    hole = [False, False, True]
    lanes = [_annulus_sector(30, 33.5, -0.3, 2.0), _annulus_sector(33.5, 37, -0.3, 2.0),
             np.array([[-20, -5], [10, -5], [10, 0], [-20, 0.0]])]
    smap = ScoringMap.from_polygons(drivable=drivable, drivable_is_hole=hole, lanes=lanes, lane_on_route=[True, False, True],
                                    intersections=[np.array([[0, -5], [10, -5], [10, 5], [0, 5.0]])],
                                    centerline=np.array([[-20.0, -2.5], [10.0, -2.5]]), center_xy=(5.0, 10.0),
                                    config=ScoringMapConfig(radius_m=50.0))
    return smap, drivable, lanes, hole


def _boundary_distance(rings: list[np.ndarray], pts: np.ndarray) -> np.ndarray:
    edges = shapely.union_all([shapely.LinearRing(r) for r in rings])
    return shapely.distance(edges, shapely.points(pts))


def test_raster_and_exact_agree_beyond_tolerance() -> None:
    smap, drivable, lanes, hole = _curved_map()
    rng = np.random.default_rng(1)
    pts = rng.uniform([-45, -45], [55, 60], size=(60000, 2))
    tp = torch.from_numpy(pts)
    # drivable region: union of rings minus the hole
    region = shapely.difference(shapely.union_all([shapely.Polygon(r) for r, h in zip(drivable, hole) if not h]),
                                shapely.Polygon(drivable[2]))
    far = _boundary_distance(drivable, pts) > TOL_M
    fast, exact = smap.drivable_at(tp).numpy(), smap.drivable_at(tp, exact=True).numpy()
    assert (fast[far] == exact[far]).all()
    assert (exact[far] == shapely.contains_xy(region, pts[far, 0], pts[far, 1])).all()
    assert (fast != exact).sum() < 0.01 * len(pts)  # disagreements only in the thin boundary band
    far_l = _boundary_distance(lanes, pts) > TOL_M
    assert torch.equal(smap.members("lanes", tp)[far_l], smap.members("lanes", tp, exact=True)[far_l])
    inter = [np.array([[0, -5], [10, -5], [10, 5], [0, 5.0]])]
    far_i = _boundary_distance(inter, pts) > TOL_M
    assert torch.equal(smap.in_intersection(tp)[far_i], smap.in_intersection(tp, exact=True)[far_i])


def test_points_outside_the_raster_fall_back_to_exact() -> None:
    smap, *_ = _curved_map()
    far_pts = torch.tensor([[500.0, 0.0], [-3.0, -30.0], [5.0, 35.0]], dtype=torch.float64)
    pts = torch.cat((far_pts, torch.tensor([[36.0 * np.cos(1.0), 36.0 * np.sin(1.0)]], dtype=torch.float64)))
    assert torch.equal(smap.drivable_at(pts), smap.drivable_at(pts, exact=True))
    assert torch.equal(smap.members("lanes", pts), smap.members("lanes", pts, exact=True))


def test_more_than_63_lanes_use_several_words() -> None:
    lanes = [np.array([[x, 0], [x + 0.8, 0], [x + 0.8, 1], [x, 1.0]]) for x in np.arange(100) * 1.0]
    smap = ScoringMap.from_polygons(drivable=[np.array([[0, 0], [100, 0], [100, 1], [0, 1.0]])], lanes=lanes,
                                    center_xy=(50.0, 0.5), config=ScoringMapConfig(radius_m=60.0))
    pts = torch.tensor([[x + 0.4, 0.5] for x in range(100)], dtype=torch.float64)
    m = smap.members("lanes", pts)
    assert torch.equal(m, torch.eye(100, dtype=torch.bool))
    assert smap.membership("lanes", pts).shape == (100, 2)


def test_raster_drops_far_lanes_beyond_the_word_budget(caplog: pytest.LogCaptureFixture) -> None:
    lanes = [np.array([[x, 0], [x + 0.8, 0], [x + 0.8, 1], [x, 1.0]]) for x in np.arange(70) * 1.0]
    with caplog.at_level(logging.WARNING):
        smap = ScoringMap.from_polygons(drivable=[np.array([[0, 0], [70, 0], [70, 1], [0, 1.0]])], lanes=lanes,
                                        center_xy=(0.0, 0.5), config=ScoringMapConfig(radius_m=80.0, max_words=1))
    assert "only the 63 nearest" in caplog.text
    pts = torch.tensor([[x + 0.4, 0.5] for x in range(70)], dtype=torch.float64)
    fast = smap.members("lanes", pts)
    assert fast[:63].diagonal().all() and not fast[63:].any()  # the 7 farthest lanes are exact-only
    assert smap.members("lanes", pts, exact=True).diagonal().all()


def test_lane_rings_from_boundaries() -> None:
    m = make_straight_map(length_m=100.0, num_lanes=2)
    rings = lane_rings(m)
    assert len(rings) == 2
    poly = shapely.Polygon(rings.rings[1][rings.valid[1]].numpy())
    assert poly.equals(shapely.box(0, -1.75, 100, 1.75))
    assert (rings.rings[0][rings.valid[0]][0] == rings.rings[0][rings.valid[0]][-1]).all()  # closed


def _graph_map() -> MapData:
    """Lanes 0 → 1 → 2 straight along +x, 0 → 3 turning left, 4 → 0 (predecessor)."""
    def lane(p0: tuple[float, float], p1: tuple[float, float]) -> np.ndarray:
        return np.linspace(p0, p1, 11)

    centres = [lane((0, 0), (50, 0)), lane((50, 0), (100, 0)), lane((100, 0), (150, 0)), lane((50, 0), (60, 30)),
               lane((-50, 0), (0, 0))]
    off = np.array([0.0, 1.75])
    n = len(centres)
    idx = np.full(n, -1, np.int32)
    return MapData(
        map_id="graph", lane_ids=np.array([str(i) for i in range(n)]), lanes=Polylines.from_list(centres),
        lane_left=Polylines.from_list([c + off for c in centres]),
        lane_right=Polylines.from_list([c - off for c in centres]), lane_is_connector=np.zeros(n, bool),
        lane_roadblock_ids=np.array([""] * n), lane_speed_limit_mps=np.full(n, 10.0, np.float32),
        lane_successors=np.array([[0, 3], [0, 1], [1, 2], [4, 0]], np.int32), lane_left_neighbor=idx,
        lane_right_neighbor=idx.copy(), drivable_areas=Polylines.empty(), drivable_is_hole=np.zeros(0, bool),
        crosswalks=Polylines.empty(), stop_lines=Polylines.empty(), stop_line_type=np.zeros(0, np.int8),
        walkways=Polylines.empty(), signalized_lanes=np.zeros(0, np.int32))


def test_route_centerline_follows_route_lanes_and_prepends_a_predecessor() -> None:
    m = _graph_map()
    cl = route_centerline(m, np.array([0, 1, 2]), np.array([10.0, 0.2]), 0.0)
    assert cl[0].tolist() == [-50.0, 0.0] and cl[-1].tolist() == [150.0, 0.0]
    # off-route successor 3 is not taken even though it is listed first
    assert (cl[:, 1].abs() < 1e-9).all()
    s, d = project_to_polyline(torch.tensor([[12.0, 0.5]], dtype=torch.float64), cl)
    assert s.item() == pytest.approx(62.0) and d.item() == pytest.approx(0.5)


def test_route_centerline_with_empty_route_uses_nearest_lane(caplog: pytest.LogCaptureFixture) -> None:
    m = _graph_map()
    with caplog.at_level(logging.WARNING):
        cl = route_centerline(m, np.zeros(0, np.int32), np.array([10.0, 0.2]), 0.0)
    assert "route is empty" in caplog.text
    # successors by smallest heading change: 0 → 1 → 2 (straight) rather than 0 → 3 (turn)
    assert cl[-1].tolist() == [150.0, 0.0]


def test_from_scenario_builds_polygons_route_and_raster() -> None:
    s = make_scenario()
    smap = ScoringMap.from_scenario(s)
    assert len(smap.lanes) == 2 and smap.lane_on_route.tolist() == [False, True]
    assert len(smap.drivable) == 1 and len(smap.intersections) == 0
    assert smap.centerline[0].tolist() == [0.0, 0.0] and smap.centerline[-1].tolist() == [200.0, 0.0]
    ego_c = torch.tensor([[30.0, 0.0]], dtype=torch.float64)
    assert smap.members("lanes", ego_c).tolist() == [[False, True]]
    assert smap.raster is not None and smap.raster.grid.resolution_m == 0.1


def test_polygon_set_rejects_bad_rings() -> None:
    with pytest.raises(ShapeError, match="expected \\[k, 2\\]"):
        ScoringMap.from_polygons(drivable=[np.zeros((4, 3))])
