"""Vectorised perception checks of the traffic model beyond "the vehicle ahead on my path".

* ``LaneObstacles``: things in a lane that are not simulated vehicles - a pedestrian stepping into the road,
  a vehicle drifting over the centre line - given in the lane's own frame. Every vehicle whose route passes
  that lane ahead, and whose corridor (its width plus a margin) the obstacle occupies now or within
  ``LOOKAHEAD_S`` at its current lateral speed, treats it as an obstacle (``lane_obstacle_gaps``).
* ``violating_signal``: vehicles approaching a red light too fast to stop comfortably and not braking for it;
  vehicles crossing their path yield to them even when they have the right of way.

No loop runs over vehicles or obstacles: everything is an [N, P, H] (vehicles x obstacles x route window)
broadcast.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .signals import RED

__all__ = ["LaneObstacles", "lane_obstacle_gaps", "violating_signal", "LOOKAHEAD_S", "LATERAL_MARGIN_M",
           "NO_OBSTACLES"]

LOOKAHEAD_S = 0.6  # lateral motion is extrapolated this far, s
LATERAL_MARGIN_M = 0.3  # clearance added to both half widths, m
_VIOLATION_DECEL = 2.0  # a vehicle needing more than this to stop at its red and not braking is a violator, m/s^2


@dataclass(frozen=True)
class LaneObstacles:
    """P obstacles, each in the frame of one lane element."""

    elem: np.ndarray  # [P] int64 lane element
    u: np.ndarray  # [P] float64 arc length of the obstacle centre along the element, m
    y: np.ndarray  # [P] float64 lateral offset of the centre from the element centreline, m, left positive
    half_length: np.ndarray  # [P] float64 along the element, m
    half_width: np.ndarray  # [P] float64 across the element, m
    speed: np.ndarray  # [P] float64 along the element direction, m/s (negative: towards its start)
    lat_speed: np.ndarray  # [P] float64 d y / dt, m/s

    def __len__(self) -> int:
        return len(self.elem)


NO_OBSTACLES = LaneObstacles(*(np.zeros(0, np.int64),) + tuple(np.zeros(0) for _ in range(6)))


def lane_obstacle_gaps(obst: LaneObstacles, win: np.ndarray, win_s: np.ndarray, valid_w: np.ndarray,
                       s: np.ndarray, front: np.ndarray, half_width: np.ndarray, active: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest lane obstacle ahead of each vehicle.

    ``win [N, H]`` / ``win_s [N, H]`` / ``valid_w [N, H]``: the next H route elements of each vehicle, where
    they start along its route (m) and whether they exist; ``s [N]`` arc lengths (m); ``front``,
    ``half_width [N]`` (m); ``active [N]``. Returns (bumper gap ``[N]`` m, inf none; obstacle speed along the
    route ``[N]`` m/s).
    """
    n = len(s)
    if len(obst) == 0:
        return np.full(n, np.inf), np.zeros(n)
    match = (win[:, None, :] == obst.elem[None, :, None]) & valid_w[:, None, :]  # [N, P, H]
    centre = np.where(match, win_s[:, None, :] - s[:, None, None] + obst.u[None, :, None], np.inf).min(-1)  # [N, P]
    y_now, y_next = obst.y, obst.y + obst.lat_speed * LOOKAHEAD_S
    reach = half_width[:, None] + obst.half_width[None, :] + LATERAL_MARGIN_M  # [N, P]
    lo, hi = np.minimum(y_now, y_next)[None, :], np.maximum(y_now, y_next)[None, :]
    in_corridor = (lo < reach) & (hi > -reach)
    gap = centre - obst.half_length[None, :] - front[:, None]
    ok = np.isfinite(centre) & in_corridor & (centre + obst.half_length[None, :] > 0.0) & active[:, None]
    gap = np.where(ok, gap, np.inf)
    k = gap.argmin(axis=1)
    ar = np.arange(n)
    return gap[ar, k], np.where(np.isfinite(gap[ar, k]), obst.speed[k], 0.0)


def violating_signal(has_conn: np.ndarray, before: np.ndarray, state: np.ndarray, v: np.ndarray,
                     dfront: np.ndarray, accel: np.ndarray) -> np.ndarray:
    """``[N]`` bool: approaching a red light (``before``: the connector is ahead, ``state`` its status) at a
    speed that needs more than 2 m/s^2 to stop at the line ``dfront`` m ahead, and not braking (``accel`` of
    the last step > -1 m/s^2) - as seen from outside, the vehicle will run the light."""
    need = v * v / (2.0 * np.maximum(dfront, 0.5))
    return has_conn & before & (state == RED) & (need > _VIOLATION_DECEL) & (accel > -1.0) & (v > 3.0)
