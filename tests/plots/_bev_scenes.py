"""Inputs of the BEV and scenario-viewer tests: a hand-made road scene (vectorised over agents) and a tiny
untrained learned planner."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from worldengine_lab.datatypes import (AgentTracks, AgentType, Polylines, Route, Scenario, StopLineType,
                                       TrafficLights)
from worldengine_lab.planners import (FeatureConfig, LearnedPlanner, ModelConfig, TrajectoryVocabulary,
                                      VocabularyScorer)
from worldengine_lab.testing import make_scenario, make_straight_map

FEATURES = FeatureConfig(max_agents=8, history_steps=4, max_lanes=6, lane_points=10)
PARKED_X_M = 70.0  # the parked car's centre in the ego lane (y = 7 m)


def road_scene(num_per_lane: int = 3, num_pedestrians: int = 2, num_cones: int = 2, t0: int = 20,
               num_steps: int = 101) -> Scenario:
    """Four lanes along +x (lane i centred at y = (3 - i) * 3.5 m). The ego drives lane 1 at 10 m/s and brakes
    at 1.5 m/s^2 from 2 s, stopping before a car parked at x = 70 m; ``num_per_lane`` vehicles drive each of
    lanes 0, 2, 3 at 8, 11, 13 m/s; pedestrians walk the verge at y = 14 m; cones stand at y = -2.5 m. A
    crosswalk spans x = 148..152 m; a traffic-light stop line lies across the start of lane 2, which is
    signalised (green, yellow from step 50, red from step 60).
    Agent order: ego, parked car, vehicles, pedestrians, cones."""
    dt = 0.1
    t = np.arange(num_steps) * dt
    tau = np.clip(t - 2.0, 0.0, 10.0 / 1.5)
    ego_x = 10.0 + 10.0 * np.minimum(t, 2.0) + 10.0 * tau - 0.75 * tau ** 2
    lanes = np.repeat([10.5, 3.5, 0.0], num_per_lane)  # y of each vehicle
    speeds = np.repeat([8.0, 11.0, 13.0], num_per_lane)
    veh_x0 = 5.0 + 9.0 * np.tile(np.arange(num_per_lane), 3)
    ped_x0 = 20.0 + 8.0 * np.arange(num_pedestrians)
    x0 = np.concatenate([[0.0, PARKED_X_M], veh_x0, ped_x0, 100.0 + 10.0 * np.arange(num_cones)])
    y = np.concatenate([[7.0, 7.0], lanes, np.full(num_pedestrians, 14.0), np.full(num_cones, -2.5)])
    v = np.concatenate([[0.0, 0.0], speeds, np.full(num_pedestrians, 1.4), np.zeros(num_cones)])
    n = len(x0)
    xy = np.zeros((num_steps, n, 2), np.float32)
    xy[..., 0] = x0 + v * t[:, None]
    xy[:, 0, 0] = ego_x
    xy[..., 1] = y
    vel = np.zeros_like(xy)
    vel[..., 0] = np.gradient(xy[..., 0], dt, axis=0)
    types = np.concatenate([[AgentType.EGO, AgentType.VEHICLE], np.full(3 * num_per_lane, AgentType.VEHICLE),
                            np.full(num_pedestrians, AgentType.PEDESTRIAN),
                            np.full(num_cones, AgentType.TRAFFIC_CONE)]).astype(np.int8)
    size = np.array([[4.5, 2.0, 1.6], [0.6, 0.6, 1.8], [0.4, 0.4, 0.7]], np.float32)[
        np.select([types == AgentType.PEDESTRIAN, types == AgentType.TRAFFIC_CONE], [1, 2], 0)]
    size[0] = (5.176, 2.297, 1.777)
    ids = np.array(["ego", "parked"] + [f"veh{i}" for i in range(3 * num_per_lane)]
                   + [f"ped{i}" for i in range(num_pedestrians)] + [f"cone{i}" for i in range(num_cones)])
    agents = AgentTracks(xy=xy, yaw=np.zeros((num_steps, n), np.float32), vel_xy=vel, size_lwh=size,
                         agent_type=types, valid=np.ones((num_steps, n), bool), track_ids=ids)
    ring = lambda x0, x1, y0, y1: np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])  # noqa: E731
    m = dataclasses.replace(
        make_straight_map(length_m=300.0, num_lanes=4),
        crosswalks=Polylines.from_list([ring(148.0, 152.0, -1.75, 12.25)]),
        stop_lines=Polylines.from_list([ring(1.0, 1.5, 1.75, 5.25)]),
        stop_line_type=np.array([StopLineType.TRAFFIC_LIGHT], np.int8),
        signalized_lanes=np.array([2], np.int32))
    status = np.select([np.arange(num_steps) >= 60, np.arange(num_steps) >= 50], [2, 1], 0).astype(np.int8)[:, None]
    base = make_scenario(num_agents=2, num_steps=num_steps, t0=t0)
    return dataclasses.replace(base, scenario_id="road-scene", agents=agents, map=m,
                               traffic_lights=TrafficLights(status),
                               route=Route(lane_indices=np.array([1], np.int32),
                                           goal_xy=np.array([290.0, 7.0], np.float32), goal_yaw=0.0))


def tiny_learned_planner(seed: int = 0) -> LearnedPlanner:
    """An untrained scorer over 32 constant-speed, constant-yaw-rate plans (8 speeds x 4 yaw rates)."""
    v, w = torch.meshgrid(torch.linspace(0.0, 14.0, 8, dtype=torch.float64),
                          torch.tensor([-0.2, -0.07, 0.07, 0.2], dtype=torch.float64), indexing="ij")
    v, w = v.reshape(-1, 1), w.reshape(-1, 1)
    yaw = w * torch.arange(1, 41, dtype=torch.float64) * 0.1
    mid = yaw - 0.05 * w
    vocab = TrajectoryVocabulary(torch.stack([torch.cumsum(0.1 * v * torch.cos(mid), 1),
                                              torch.cumsum(0.1 * v * torch.sin(mid), 1), yaw], -1))
    torch.manual_seed(seed)
    model = VocabularyScorer(ModelConfig.for_features(FEATURES, len(vocab), d_model=32, heads=2, layers=1),
                             vocab.trajectories)
    return LearnedPlanner(model, vocab, FEATURES)
