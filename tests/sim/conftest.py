"""Hand-made maps and scenarios for the simulator tests (exposed as fixtures returning builder functions)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

from worldengine_lab.datatypes import (AgentTracks, AgentType, MapData, Polylines, Provenance, Route, Scenario,
                                       TrafficLights)


def build_map(centrelines: Sequence[np.ndarray], successors: Sequence[tuple[int, int]] = (),
              signalized: Sequence[int] = (), width: float = 3.5, margin: float = 10.0) -> MapData:
    """Lanes from centrelines (boundaries offset by +-width/2 along the normals); one drivable rectangle
    around everything grown by ``margin``."""
    lefts, rights = [], []
    for c in centrelines:
        c = np.asarray(c, np.float64)
        d = np.gradient(c, axis=0)
        nrm = np.stack([-d[:, 1], d[:, 0]], -1) / np.linalg.norm(d, axis=-1, keepdims=True)
        lefts.append(c + nrm * width / 2)
        rights.append(c - nrm * width / 2)
    allp = np.concatenate(list(centrelines))
    lo, hi = allp.min(0) - margin, allp.max(0) + margin
    ring = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]], [lo[0], lo[1]]])
    n = len(centrelines)
    e = Polylines.empty()
    return MapData(
        map_id="test-map", lane_ids=np.array([str(i) for i in range(n)]), lanes=Polylines.from_list(centrelines),
        lane_left=Polylines.from_list(lefts), lane_right=Polylines.from_list(rights),
        lane_is_connector=np.isin(np.arange(n), list(signalized)),
        lane_roadblock_ids=np.array([str(i) for i in range(n)]),
        lane_speed_limit_mps=np.full(n, 15.0, np.float32),
        lane_successors=np.array(list(successors), np.int32).reshape(-1, 2),
        lane_left_neighbor=np.full(n, -1, np.int32), lane_right_neighbor=np.full(n, -1, np.int32),
        drivable_areas=Polylines.from_list([ring]), drivable_is_hole=np.zeros(1, bool), crosswalks=e, stop_lines=e,
        stop_line_type=np.zeros(0, np.int8), walkways=e, signalized_lanes=np.array(list(signalized), np.int32),
    )


def build_tracks(xy: np.ndarray, dt: float = 0.1, yaw: np.ndarray | None = None,
                 sizes: np.ndarray | None = None, types: Sequence[int] | None = None) -> AgentTracks:
    """AgentTracks from box centres ``[T, N, 2]``; velocities by finite differences, headings along them
    unless given (0 where an agent stands still)."""
    t, n, _ = xy.shape
    vel = np.gradient(xy, dt, axis=0) if t > 1 else np.zeros_like(xy)
    if yaw is None:
        speed = np.linalg.norm(vel, axis=-1)
        yaw = np.where(speed > 1e-6, np.arctan2(vel[..., 1], vel[..., 0]), 0.0)
    if sizes is None:
        sizes = np.tile(np.array([[4.5, 2.0, 1.6]]), (n, 1))
        sizes[0] = (5.176, 2.297, 1.777)
    atype = np.full(n, int(AgentType.VEHICLE), np.int8) if types is None else np.asarray(types, np.int8)
    atype[0] = int(AgentType.EGO)
    return AgentTracks(xy=xy.astype(np.float32), yaw=yaw.astype(np.float32), vel_xy=vel.astype(np.float32),
                       size_lwh=np.asarray(sizes, np.float32), agent_type=atype, valid=np.ones((t, n), bool))


def build_scenario(tracks: AgentTracks, m: MapData, t0: int = 10, route: Sequence[int] = (0,),
                   lights: np.ndarray | None = None, scenario_id: str = "test-scn") -> Scenario:
    t = tracks.num_steps
    return Scenario(
        scenario_id=scenario_id, log_id="test-log", dt=0.1, t0=t0,
        timestamps_s=np.arange(t, dtype=np.float64) * 0.1, origin_xy=np.zeros(2), agents=tracks, map=m,
        route=Route(lane_indices=np.array(list(route), np.int32)),
        traffic_lights=None if lights is None else TrafficLights(np.asarray(lights, np.int8)),
        provenance=Provenance(source="test"),
    )


@pytest.fixture
def builders():
    """(build_map, build_tracks, build_scenario)."""
    return build_map, build_tracks, build_scenario
