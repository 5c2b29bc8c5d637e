"""Hand-made scenarios for the variant tests: a straight two-lane road with a lead and a neighbour, and a
signalised crossing (fixtures in conftest.py)."""
from __future__ import annotations

import dataclasses

import numpy as np

from worldengine_lab.datatypes import (AgentTracks, AgentType, MapData, Polylines, Provenance, Route, Scenario,
                                       TrafficLights)
from worldengine_lab.testing import make_scenario

DT, T, T0 = 0.1, 101, 20


def with_agents(s: Scenario, xy: np.ndarray, types: list[int] | None = None, ids: list[str] | None = None,
                sizes: np.ndarray | None = None, scenario_id: str | None = None) -> Scenario:
    """``s`` with agents from box centres ``xy [T, N, 2]`` (agent 0 = ego); velocities by finite differences,
    headings along them (0 while standing)."""
    n = xy.shape[1]
    vel = np.gradient(xy, DT, axis=0)
    speed = np.linalg.norm(vel, axis=-1)
    yaw = np.where(speed > 1e-6, np.arctan2(vel[..., 1], vel[..., 0]), 0.0)
    atype = np.full(n, int(AgentType.VEHICLE), np.int8) if types is None else np.asarray(types, np.int8)
    atype[0] = int(AgentType.EGO)
    if sizes is None:
        sizes = np.tile(np.array([[4.5, 2.0, 1.6]]), (n, 1))
        sizes[0] = (5.176, 2.297, 1.777)
    agents = AgentTracks(xy=xy.astype(np.float32), yaw=yaw.astype(np.float32), vel_xy=vel.astype(np.float32),
                         size_lwh=np.asarray(sizes, np.float32), agent_type=atype, valid=np.ones(xy.shape[:2], bool),
                         track_ids=np.array(ids if ids is not None else ["ego"] + [f"veh{i}" for i in range(1, n)]))
    return dataclasses.replace(s, agents=agents, scenario_id=scenario_id or s.scenario_id)


def straight_road(lead_gap_m: float = 25.0, neighbour_dx_m: float | None = 8.0, speed_mps: float = 10.0) -> Scenario:
    """Ego at ``speed_mps`` along lane 1 (y = 0) of the straight two-lane road, a lead ``lead_gap_m`` ahead (centre
    to centre) at the same speed and, optionally, a car in lane 0 (y = 3.5) ``neighbour_dx_m`` ahead of the ego."""
    s = make_scenario(num_agents=2, num_steps=T, t0=T0, speed_mps=speed_mps, gap_m=lead_gap_m)
    t = np.arange(T) * DT
    cols = [np.stack([10.0 + speed_mps * t, np.zeros(T)], -1),
            np.stack([10.0 + lead_gap_m + speed_mps * t, np.zeros(T)], -1)]
    if neighbour_dx_m is not None:
        cols.append(np.stack([10.0 + neighbour_dx_m + speed_mps * t, np.full(T, 3.5)], -1))
    return with_agents(s, np.stack(cols, 1), scenario_id="straight")


def crossing_map() -> MapData:
    """Lane 0: eastbound along y = 0 (x 0..200); lane 1: a signalised northbound connector along x = 100
    (y -100..100); the drivable area is the union of both 7 m wide roads."""
    xs = np.linspace(0.0, 200.0, 41)
    ys = np.linspace(-100.0, 100.0, 41)
    east = np.stack([xs, np.zeros_like(xs)], -1)
    north = np.stack([np.full_like(ys, 100.0), ys], -1)
    lefts = [east + [0.0, 1.75], north + [-1.75, 0.0]]
    rights = [east - [0.0, 1.75], north - [-1.75, 0.0]]
    h = np.array([[0, -3.5], [200, -3.5], [200, 3.5], [0, 3.5], [0, -3.5]], np.float64)
    v = np.array([[96.5, -100], [103.5, -100], [103.5, 100], [96.5, 100], [96.5, -100]], np.float64)
    e = Polylines.empty()
    return MapData(
        map_id="test-crossing", lane_ids=np.array(["east", "north"]), lanes=Polylines.from_list([east, north]),
        lane_left=Polylines.from_list(lefts), lane_right=Polylines.from_list(rights),
        lane_is_connector=np.array([False, True]), lane_roadblock_ids=np.array(["r0", "r1"]),
        lane_speed_limit_mps=np.full(2, 15.0, np.float32), lane_successors=np.zeros((0, 2), np.int32),
        lane_left_neighbor=np.full(2, -1, np.int32), lane_right_neighbor=np.full(2, -1, np.int32),
        drivable_areas=Polylines.from_list([h, v]), drivable_is_hole=np.zeros(2, bool), crosswalks=e, stop_lines=e,
        stop_line_type=np.zeros(0, np.int8), walkways=e, signalized_lanes=np.array([1], np.int32))


def crossing_scenario() -> Scenario:
    """The ego drives east at 10 m/s through the crossing (its centre passes x = 100 at 4.0 s after now); a car
    waits on the northbound lane 20 m south of the crossing; the northbound light is green in the log."""
    m = crossing_map()
    t = np.arange(T) * DT
    ego = np.stack([60.0 + 10.0 * (t - T0 * DT), np.zeros(T)], -1)
    waiting = np.tile(np.array([[100.0, -20.0]]), (T, 1))
    s = make_scenario(num_agents=2, num_steps=T, t0=T0)
    s = dataclasses.replace(s, map=m, route=Route(roadblock_ids=("r0",), lane_indices=np.array([0], np.int32),
                                                  goal_xy=np.array([190.0, 0.0], np.float32), goal_yaw=0.0),
                            traffic_lights=TrafficLights(np.zeros((T, 1), np.int8)),
                            provenance=Provenance(source="test", map_name="test-crossing"))
    s = with_agents(s, np.stack([ego, waiting], 1), scenario_id="crossing")
    yaw = s.agents.yaw.copy()
    yaw[:, 1] = np.pi / 2
    return dataclasses.replace(s, agents=dataclasses.replace(s.agents, yaw=yaw))
