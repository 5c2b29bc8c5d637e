"""Per-state ego area flags (spec/metrics.md §2.6), batched over proposals and states.

From the footprint points (FL, RL, RR, FR, centre; §1.1) of every state:

* ``multiple_lanes``: more than one polygon contains at least one corner, and no polygon contains all four.
  Polygons: the lanes (``multiple_lanes_over="lanes"``, NAVSIM) or all drivable polygons
  (``"drivable"``, closed-loop PDMS* and dense reward, §3.3, §5.1).
* ``non_drivable``: at least one corner is not inside the drivable region.
* ``oncoming``: the centre is not inside any on-route lane.
* ``in_intersection``: the rear-axle point is inside an intersection polygon.

Membership is evaluated on bitsets (see :mod:`worldengine_lab.metrics.scoring_map`), so the raster path
(default) and the exact path (``exact=True``) share the logic below.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import ShapeError
from .scoring_map import ScoringMap

__all__ = ["EgoAreas", "ego_areas", "MultipleLanesOver"]

MultipleLanesOver = Literal["lanes", "drivable"]


@dataclass(frozen=True)
class EgoAreas:
    """Area flags, each ``[...]`` bool over the leading axes of the footprint (e.g. ``[P, S]``)."""

    multiple_lanes: torch.Tensor
    non_drivable: torch.Tensor
    oncoming: torch.Tensor
    in_intersection: torch.Tensor


def _or4(b: torch.Tensor) -> torch.Tensor:
    return b[..., 0, :] | b[..., 1, :] | b[..., 2, :] | b[..., 3, :]


def _and4(b: torch.Tensor) -> torch.Tensor:
    return b[..., 0, :] & b[..., 1, :] & b[..., 2, :] & b[..., 3, :]


def _multiple(corner_bits: torch.Tensor) -> torch.Tensor:
    """``[..., 4, NW]`` corner bitsets → ``[...]`` multiple-polygons flag."""
    any_bits = _or4(corner_bits)  # polygons holding at least one corner
    all_bits = _and4(corner_bits)  # polygons holding all four corners
    two_in_a_word = ((any_bits & (any_bits - 1)) != 0).any(-1)  # a word with >= 2 bits set
    words_used = (any_bits != 0).sum(-1)
    more_than_one = two_in_a_word | (words_used > 1)
    return more_than_one & ~(all_bits != 0).any(-1)


def ego_areas(scoring_map: ScoringMap, footprint: torch.Tensor, rear_axle: torch.Tensor,
              multiple_lanes_over: MultipleLanesOver = "lanes", exact: bool = False) -> EgoAreas:
    """Area flags of ego states.

    Args:
        scoring_map: the scene's map inputs.
        footprint: ``[..., 5, 2]`` FL, RL, RR, FR, centre, m (:func:`~worldengine_lab.sim.geometry.ego_footprint`).
        rear_axle: ``[..., 2]`` m.
        multiple_lanes_over: ``"lanes"`` (NAVSIM) or ``"drivable"`` (closed loop / dense reward).
        exact: exact polygon tests instead of the raster.
    Returns:
        :class:`EgoAreas` with ``[...]`` bool fields.
    """
    if footprint.shape[-2:] != (5, 2) or rear_axle.shape != footprint.shape[:-2] + (2,):
        raise ShapeError(f"ego_areas: expected footprint [..., 5, 2] and rear_axle [..., 2] with the same leading "
                         f"axes, received {list(footprint.shape)} and {list(rear_axle.shape)}")
    if multiple_lanes_over not in ("lanes", "drivable"):
        raise ShapeError(f"ego_areas.multiple_lanes_over: expected 'lanes' or 'drivable', received "
                         f"{multiple_lanes_over!r}")
    cells = None if exact else scoring_map.cells(footprint)  # raster indices, computed once for all lookups
    corner_cells = None if cells is None else (cells[0][..., :4], None if cells[1] is None else cells[1][..., :4])
    lane_bits = scoring_map.membership("lanes", footprint, exact=exact, cells=cells)  # [..., 5, NW]
    if multiple_lanes_over == "lanes":
        multiple = _multiple(lane_bits[..., :4, :])
    else:
        multiple = _multiple(scoring_map.membership("areas", footprint[..., :4, :], exact=exact, cells=corner_cells))
    route = scoring_map.route_mask(exact=exact)  # [NW]
    oncoming = ~((lane_bits[..., 4, :] & route) != 0).any(-1)
    non_drivable = ~scoring_map.drivable_at(footprint[..., :4, :], exact=exact, cells=corner_cells).all(-1)
    in_intersection = scoring_map.in_intersection(rear_axle, exact=exact)
    return EgoAreas(multiple, non_drivable, oncoming, in_intersection)
