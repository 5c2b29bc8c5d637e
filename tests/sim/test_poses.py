"""Body/global frames, shortest-arc interpolation and the 8 <-> 40 pose formats (spec/metrics.md §0, §2.4)."""
from __future__ import annotations

import math

import pytest
import torch

from worldengine_lab.errors import ShapeError
from worldengine_lab.sim.poses import (body_to_global, global_to_body, interpolate_poses, poses_8_to_40,
                                       poses_40_to_8, reference_poses)


def test_body_global_round_trip():
    g = torch.Generator().manual_seed(0)
    body = torch.randn(4, 40, 3, generator=g, dtype=torch.float64)
    body[..., 2] = torch.remainder(body[..., 2] + math.pi, 2 * math.pi) - math.pi
    origin = torch.randn(4, 3, generator=g, dtype=torch.float64) * 10
    glob = body_to_global(body, origin)
    torch.testing.assert_close(global_to_body(glob, origin), body, rtol=0, atol=1e-9)
    # a pose 1 m ahead of an origin heading +y lands 1 m along +y
    p = body_to_global(torch.tensor([[[1.0, 0.0, 0.0]]], dtype=torch.float64),
                       torch.tensor([[2.0, 3.0, math.pi / 2]], dtype=torch.float64))
    torch.testing.assert_close(p[0, 0], torch.tensor([2.0, 4.0, math.pi / 2], dtype=torch.float64))


def test_shortest_arc_interpolation_across_pi():
    times = torch.tensor([0.0, 1.0], dtype=torch.float64)
    poses = torch.tensor([[0.0, 0.0, 3.0], [2.0, 4.0, -3.0]], dtype=torch.float64)  # 3.0 -> -3.0 is +0.283 rad
    out = interpolate_poses(times, poses, torch.tensor([0.5], dtype=torch.float64))[0]
    assert abs(float(out[0]) - 1.0) < 1e-12 and abs(float(out[1]) - 2.0) < 1e-12
    assert abs(abs(float(out[2])) - math.pi) < 1e-9  # through +-pi, not through 0


def test_40_to_8_takes_every_fifth_and_8_to_40_interpolates():
    p40 = torch.zeros(2, 40, 3, dtype=torch.float64)
    p40[..., 0] = torch.arange(1, 41, dtype=torch.float64) * 0.5  # 5 m/s straight
    p8 = poses_40_to_8(p40)
    assert p8.shape == (2, 8, 3)
    torch.testing.assert_close(p8[0, :, 0], torch.arange(1, 9, dtype=torch.float64) * 2.5)
    torch.testing.assert_close(poses_8_to_40(p8), p40, rtol=0, atol=1e-12)


def test_reference_poses_from_8_and_40_poses_agree_on_straight_line():
    origin = torch.tensor([[10.0, -5.0, 0.5]], dtype=torch.float64)
    p40 = torch.zeros(1, 40, 3, dtype=torch.float64)
    p40[..., 0] = torch.arange(1, 41, dtype=torch.float64)
    r40 = reference_poses(p40, origin)
    r8 = reference_poses(poses_40_to_8(p40), origin)
    assert r40.shape == r8.shape == (1, 41, 3)
    torch.testing.assert_close(r40[0, 0], origin[0])
    torch.testing.assert_close(r8, r40, rtol=0, atol=1e-9)
    assert abs(float(r40[0, 40, 0]) - (10.0 + 40 * math.cos(0.5))) < 1e-9


@pytest.mark.parametrize("shape", [(1, 10, 3), (1, 40, 2), (40, 3)])
def test_reference_poses_rejects_bad_shapes(shape):
    with pytest.raises(ShapeError, match="reference_poses"):
        reference_poses(torch.zeros(shape, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64))


def test_reference_poses_rejects_nan():
    p = torch.zeros(1, 8, 3, dtype=torch.float64)
    p[0, 3, 0] = float("nan")
    with pytest.raises(ShapeError, match="finite"):
        reference_poses(p, torch.zeros(1, 3, dtype=torch.float64))
