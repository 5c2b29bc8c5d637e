"""Tiny synthetic builders for tests and docstrings: hand-made scenarios with known geometry.

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> s = make_scenario(num_agents=3, num_steps=21)
    >>> s.agents.xy.shape
    (21, 3, 2)
"""
from __future__ import annotations

import numpy as np

from .datatypes import AgentTracks, AgentType, MapData, Polylines, Provenance, Route, Scenario

__all__ = ["make_straight_map", "make_scenario"]


def make_straight_map(length_m: float = 200.0, num_lanes: int = 2, lane_width_m: float = 3.5) -> MapData:
    """A straight road along +x from x=0 to ``length_m`` with ``num_lanes`` lanes (lane 0 is the leftmost,
    centred at y = (num_lanes - 1 - i) * lane_width_m)."""
    xs = np.linspace(0.0, length_m, 41)
    centres, lefts, rights = [], [], []
    for i in range(num_lanes):
        y = (num_lanes - 1 - i) * lane_width_m
        centres.append(np.stack([xs, np.full_like(xs, y)], -1))
        lefts.append(np.stack([xs, np.full_like(xs, y + lane_width_m / 2)], -1))
        rights.append(np.stack([xs, np.full_like(xs, y - lane_width_m / 2)], -1))
    top = (num_lanes - 0.5) * lane_width_m
    bottom = -0.5 * lane_width_m
    ring = np.array([[0, bottom], [length_m, bottom], [length_m, top], [0, top], [0, bottom]], np.float64)
    idx = np.arange(num_lanes, dtype=np.int32)
    return MapData(
        map_id="test-straight",
        lane_ids=np.array([str(i) for i in range(num_lanes)]),
        lanes=Polylines.from_list(centres),
        lane_left=Polylines.from_list(lefts),
        lane_right=Polylines.from_list(rights),
        lane_is_connector=np.zeros(num_lanes, bool),
        lane_roadblock_ids=np.array(["1"] * num_lanes),
        lane_speed_limit_mps=np.full(num_lanes, 15.0, np.float32),
        lane_successors=np.zeros((0, 2), np.int32),
        lane_left_neighbor=np.where(idx > 0, idx - 1, -1).astype(np.int32),
        lane_right_neighbor=np.where(idx < num_lanes - 1, idx + 1, -1).astype(np.int32),
        drivable_areas=Polylines.from_list([ring]),
        drivable_is_hole=np.zeros(1, bool),
        crosswalks=Polylines.empty(),
        stop_lines=Polylines.empty(),
        stop_line_type=np.zeros(0, np.int8),
        walkways=Polylines.empty(),
        signalized_lanes=np.zeros(0, np.int32),
    )


def make_scenario(
    num_agents: int = 3,
    num_steps: int = 101,
    t0: int = 20,
    dt: float = 0.1,
    speed_mps: float = 10.0,
    gap_m: float = 20.0,
    seed: int = 0,
) -> Scenario:
    """Ego and ``num_agents - 1`` vehicles driving along +x in lane 1 of :func:`make_straight_map`,
    each ``gap_m`` ahead of the previous one, at constant ``speed_mps``."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_steps) * dt
    x0 = 10.0 + gap_m * np.arange(num_agents)
    xy = np.zeros((num_steps, num_agents, 2), np.float32)
    xy[..., 0] = x0[None] + speed_mps * t[:, None]
    xy[..., 1] = 0.0
    vel = np.zeros_like(xy)
    vel[..., 0] = speed_mps
    size = np.tile(np.array([[4.5, 2.0, 1.6]], np.float32), (num_agents, 1))
    size[0] = (5.176, 2.297, 1.777)
    size[1:, :2] += rng.uniform(-0.2, 0.2, size=(num_agents - 1, 2)).astype(np.float32)
    agent_type = np.full(num_agents, int(AgentType.VEHICLE), np.int8)
    agent_type[0] = int(AgentType.EGO)
    agents = AgentTracks(
        xy=xy, yaw=np.zeros((num_steps, num_agents), np.float32), vel_xy=vel, size_lwh=size,
        agent_type=agent_type, valid=np.ones((num_steps, num_agents), bool),
        track_ids=np.array(["ego"] + [f"veh{i}" for i in range(1, num_agents)]),
    )
    m = make_straight_map()
    return Scenario(
        scenario_id=f"test-{seed}", log_id="test-log", dt=dt, t0=t0, timestamps_s=t.astype(np.float64),
        origin_xy=np.zeros(2), agents=agents, map=m,
        route=Route(roadblock_ids=("1",), lane_indices=np.array([1], np.int32),
                    goal_xy=np.array([190.0, 0.0], np.float32), goal_yaw=0.0),
        tags=frozenset({"following_lane_with_lead"}),
        provenance=Provenance(source="test", log_id="test-log", map_name="test-straight"),
    )
