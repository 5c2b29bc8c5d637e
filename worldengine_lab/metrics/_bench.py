"""Scoring throughput benchmark: candidate proposals per second of :func:`score_proposals` (no tracker).

The scene is :func:`worldengine_lab.testing.make_scenario`'s ego and agents placed on a two-way four-lane road
of 40 lane segments (:func:`segmented_road`) with traffic in both directions, parked cars, pedestrians and
cones around the ego; the candidates are kinematic rollouts fanning out from the ego's state (random constant
acceleration and yaw rate), ``[K, 41, D]`` at 0.1 s, already "simulated".
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from dataclasses import replace

from ..datatypes import AgentTracks, AgentType, MapData, Polylines, Route, Scenario
from ..sim.state import EGO_REAR_TO_CENTER_M, EGO_WHEEL_BASE_M, make_ego_state
from ..testing import make_scenario
from .observations import ObjectTracks
from .pdm import NAVSIM_V11, ScorerConfig, score_proposals
from .scoring_map import ScoringMap

__all__ = ["bench_scoring", "bench_scene", "segmented_road", "fan_proposals", "kinematic_fan"]

logger = logging.getLogger(__name__)


def segmented_road(length_m: float = 200.0, segment_m: float = 20.0, lane_width_m: float = 3.5) -> MapData:
    """A straight two-way road along x ∈ [0, length_m]: two lanes towards +x (centres y = 0 and 3.5) and two
    towards −x (y = −3.5, −7), each split into ``length_m / segment_m`` lane segments chained by successors
    (40 lanes with the defaults), and one drivable polygon covering the four lanes."""
    n_seg = int(round(length_m / segment_m))
    centres, lefts, rights, succ = [], [], [], []
    for lane_y, direction in ((0.0, 1), (lane_width_m, 1), (-lane_width_m, -1), (-2 * lane_width_m, -1)):
        first = len(centres)
        for k in range(n_seg):
            xs = np.linspace(k * segment_m, (k + 1) * segment_m, 5)[::direction]
            c = np.stack((xs, np.full_like(xs, lane_y)), -1)
            left = c + np.array([0.0, direction * lane_width_m / 2])
            centres.append(c), lefts.append(left), rights.append(2 * c - left)
        order = list(range(first, first + n_seg))[::direction]
        succ += [(a, b) for a, b in zip(order[:-1], order[1:])]
    n = len(centres)
    top, bottom = 1.5 * lane_width_m, -2.5 * lane_width_m
    ring = np.array([[0, bottom], [length_m, bottom], [length_m, top], [0, top], [0, bottom]], np.float64)
    none = np.full(n, -1, np.int32)
    return MapData(
        map_id="bench-road", lane_ids=np.array([str(i) for i in range(n)]), lanes=Polylines.from_list(centres),
        lane_left=Polylines.from_list(lefts), lane_right=Polylines.from_list(rights),
        lane_is_connector=np.zeros(n, bool), lane_roadblock_ids=np.array([str(i % n_seg) for i in range(n)]),
        lane_speed_limit_mps=np.full(n, 15.0, np.float32), lane_successors=np.array(succ, np.int32),
        lane_left_neighbor=none, lane_right_neighbor=none.copy(), drivable_areas=Polylines.from_list([ring]),
        drivable_is_hole=np.zeros(1, bool), crosswalks=Polylines.empty(), stop_lines=Polylines.empty(),
        stop_line_type=np.zeros(0, np.int8), walkways=Polylines.empty(), signalized_lanes=np.zeros(0, np.int32))


def bench_scene(num_objects: int = 30, seed: int = 0) -> Scenario:
    """:func:`~worldengine_lab.testing.make_scenario` (ego at 10 m/s, t0 = 20) on :func:`segmented_road` with
    ``num_objects`` objects: traffic in both directions (≈60 %), cars parked on the shoulder, pedestrians on
    the sidewalks and cones, spread from 60 m behind to 120 m ahead of the ego."""
    base = make_scenario(num_agents=num_objects + 1, num_steps=101, t0=20, speed_mps=10.0, seed=seed)
    rng = np.random.default_rng(seed)
    a = base.agents
    t = base.timestamps_s - base.timestamps_s[base.t0]
    n = num_objects
    ego_x = float(a.xy[base.t0, 0, 0])
    kind = rng.choice(4, size=n, p=[0.6, 0.15, 0.15, 0.1])  # traffic, parked, pedestrian, cone
    lane_y = rng.choice([0.0, 3.5, -3.5, -7.0], size=n)
    y = np.select([kind == 0, kind == 1, kind == 2], [lane_y, 6.6, rng.choice([8.5, -10.5], size=n)], -9.6)
    direction = np.where((kind == 0) & (lane_y < 0), -1.0, 1.0)
    speed = np.select([kind == 0, kind == 2], [rng.uniform(6.0, 13.0, size=n), rng.uniform(0.8, 1.6, size=n)], 0.0)
    x0 = ego_x + rng.uniform(-60.0, 120.0, size=n)
    x0 = np.where((kind == 0) & (np.abs(lane_y) < 1) & (np.abs(x0 - ego_x) < 10), x0 + 25.0, x0)  # not on the ego
    xy = a.xy.copy()
    vel = a.vel_xy.copy()
    xy[:, 1:, 0] = x0[None] + (direction * speed)[None] * t[:, None]
    xy[:, 1:, 1] = y[None]
    vel[:, 1:, 0] = (direction * speed)[None]
    vel[:, 1:, 1] = 0.0
    yaw = a.yaw.copy()
    yaw[:, 1:] = np.where(direction < 0, np.pi - 1e-6, 0.0)[None]
    kinds = a.agent_type.copy()
    kinds[1:] = np.choose(kind, [int(AgentType.VEHICLE), int(AgentType.VEHICLE), int(AgentType.PEDESTRIAN),
                                 int(AgentType.TRAFFIC_CONE)])
    size = a.size_lwh.copy()
    size[1:][kind == 2] = (0.6, 0.6, 1.7)
    size[1:][kind == 3] = (0.5, 0.5, 0.8)
    agents = AgentTracks(xy=xy.astype(np.float32), yaw=yaw.astype(np.float32), vel_xy=vel.astype(np.float32),
                         size_lwh=size, agent_type=kinds, valid=a.valid.copy(), track_ids=a.track_ids.copy())
    road = segmented_road()
    ego_lane = int(np.argmin([abs(c[0, 1]) + (0 if c[0, 0] <= ego_x <= c[-1, 0] else 1e3)
                              for c in (road.lanes.get(i) for i in range(road.num_lanes))]))
    route = Route(roadblock_ids=(), lane_indices=np.arange(ego_lane, 10, dtype=np.int32),
                  goal_xy=np.array([190.0, 0.0], np.float32), goal_yaw=0.0)
    return replace(base, agents=agents, map=road, route=route)


def kinematic_fan(x0: float, y0: float, yaw0: float, v0: float, num_candidates: int, seed: int = 0,
                  num_states: int = 41, dt: float = 0.1, acc_range: tuple[float, float] = (-5.0, 2.5),
                  yaw_rate_max: float = 0.35, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[K, S, D]`` kinematic rollouts from the rear-axle pose (x0, y0, yaw0) at speed v0 with random constant
    acceleration in ``acc_range`` and yaw rate in ±``yaw_rate_max`` (speeds clamped at 0; once stopped the
    acceleration and yaw rate are 0)."""
    g = torch.Generator().manual_seed(seed)
    k = num_candidates
    acc = acc_range[0] + (acc_range[1] - acc_range[0]) * torch.rand(k, 1, generator=g, dtype=torch.float64)
    omega = yaw_rate_max * (2.0 * torch.rand(k, 1, generator=g, dtype=torch.float64) - 1.0)
    tt = torch.arange(num_states, dtype=torch.float64)[None] * dt
    v = torch.clamp(v0 + acc * tt, min=0.0)
    moving = v > 0
    yaw = yaw0 + torch.cumsum(torch.cat((torch.zeros(k, 1, dtype=torch.float64),
                                         (omega * moving * dt)[:, :-1]), 1), 1)
    step = v * dt
    zero = torch.zeros(k, 1, dtype=torch.float64)
    x = x0 + torch.cat((zero, torch.cumsum(step * torch.cos(yaw), 1)[:, :-1]), 1)
    y = y0 + torch.cat((zero, torch.cumsum(step * torch.sin(yaw), 1)[:, :-1]), 1)
    ax = torch.where(moving, acc.expand_as(v), torch.zeros_like(v))
    yaw_rate = torch.where(moving, omega.expand_as(v), torch.zeros_like(v))
    steer = torch.atan(EGO_WHEEL_BASE_M * yaw_rate / torch.clamp(v, min=0.1))
    wrapped = torch.remainder(yaw + np.pi, 2 * np.pi) - np.pi
    return make_ego_state(x=x, y=y, yaw=wrapped, vx=v, ax=ax, steer=steer, yaw_rate=yaw_rate,
                          dtype=torch.float64).to(dtype)


def fan_proposals(scenario: Scenario, num_candidates: int, seed: int = 0, num_states: int = 41, dt: float = 0.1,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """:func:`kinematic_fan` from the ego's state at the scenario's t0."""
    a = scenario.agents
    t0 = scenario.t0
    yaw0 = float(a.yaw[t0, 0])
    center = a.xy[t0, 0].astype(np.float64)
    x0 = center[0] - EGO_REAR_TO_CENTER_M * np.cos(yaw0)
    y0 = center[1] - EGO_REAR_TO_CENTER_M * np.sin(yaw0)
    v0 = float(np.hypot(*a.vel_xy[t0, 0]))
    return kinematic_fan(x0, y0, yaw0, v0, num_candidates, seed, num_states, dt, dtype=dtype)


def bench_scoring(num_candidates: int = 4096, num_objects: int = 30, repeats: int = 3,
                  dtype: torch.dtype = torch.float32, config: ScorerConfig = NAVSIM_V11, seed: int = 0) -> dict[str, Any]:
    """Candidates per second of PDM scoring (area flags, NC, DAC, TTC, EP, C, DDC) on a synthetic scene.

    Returns:
        ``{"candidates_per_s_scoring_only": ..., "scoring_ms_per_batch": ..., "map_build_ms": ...,
        "num_candidates": ..., "num_objects": ..., "num_lanes": ..., "fraction_at_fault_collision": ...,
        "dtype": ..., "torch_num_threads": ...}``.
    """
    scene = bench_scene(num_objects, seed)
    build = []
    for _ in range(2):  # the first build also pays one-off kernel initialisation
        t = time.perf_counter()
        smap = ScoringMap.from_scenario(scene)
        build.append(time.perf_counter() - t)
    build_ms = 1e3 * min(build)
    objects = ObjectTracks.from_scenario(scene, num_frames=51, dtype=dtype)
    states = fan_proposals(scene, num_candidates, seed=seed, dtype=dtype)
    warm = score_proposals(states, objects, smap, config)  # warm-up at full size (allocator, caches)
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        score_proposals(states, objects, smap, config)
        times.append(time.perf_counter() - t)
    best = min(times)
    logger.info("bench_scoring: %d candidates in %.1f ms (best of %d)", num_candidates, 1e3 * best, len(times))
    return {
        "candidates_per_s_scoring_only": round(num_candidates / best, 1),
        "scoring_ms_per_batch": round(1e3 * best, 2),
        "map_build_ms": round(build_ms, 2),
        "num_candidates": num_candidates,
        "num_objects": num_objects,
        "num_lanes": scene.map.num_lanes,
        "fraction_at_fault_collision": round(float((warm.nc < 1).float().mean()), 3),
        "dtype": str(dtype).replace("torch.", ""),
        "torch_num_threads": torch.get_num_threads(),
    }
