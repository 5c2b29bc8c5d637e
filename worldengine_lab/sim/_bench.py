"""Simulator benchmarks: closed-loop agent-steps per second and tracker throughput.

Figures (units in the names):

* :func:`bench_sim`: ``agent_steps_per_s`` = B x N x steps / wall time of the whole batched episode (setup of
  paths and rasters, planner calls, reactive IDM agents, collision and drivable checks, output assembly
  included), ``episodes_per_s``, and the split ``setup_s`` (packing, reactive paths, rasters: once per
  :class:`~worldengine_lab.sim.ClosedLoopEnv`, reusable across episodes) / ``loop_s`` (stepping, planner calls
  and the per-step checks) / ``assemble_s`` (numpy ``Rollout`` objects); ``loop_agent_steps_per_s`` counts
  ``loop_s`` alone, i.e. the throughput of an environment that is reused.
* :func:`bench_tracker`: ``trajectories_per_s`` of the 41-state LQR tracker + bicycle simulation.

The scenes are synthetic: a straight 4-lane road of 100 m lane segments joined by successors, with one
signalised segment, N - 1 vehicles spread over the lanes at 5..12 m/s and the ego at 10 m/s. The planner is the
constant-velocity baseline, so the figures measure the simulator, not a planner.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from ..datatypes import AgentTracks, AgentType, MapData, Polylines, Provenance, Route, Scenario, TrafficLights
from ..planners.baselines import ConstantVelocityPlanner
from .config import SimConfig
from .env import ClosedLoopEnv
from .rollout import run_episode, to_rollouts
from .tracker import simulate

__all__ = ["bench_sim", "bench_tracker", "bench_scenarios"]

log = logging.getLogger(__name__)


def _bench_map(num_lanes: int = 4, segments: int = 5, seg_len: float = 100.0, width: float = 3.5) -> MapData:
    centres, lefts, rights, succ = [], [], [], []
    xs = np.linspace(0.0, seg_len, 21)
    for lane in range(num_lanes):
        y = lane * width
        for seg in range(segments):
            x = xs + seg * seg_len
            centres.append(np.stack([x, np.full_like(x, y)], -1))
            lefts.append(np.stack([x, np.full_like(x, y + width / 2)], -1))
            rights.append(np.stack([x, np.full_like(x, y - width / 2)], -1))
            if seg + 1 < segments:
                i = lane * segments + seg
                succ.append((i, i + 1))
    n = len(centres)
    length = segments * seg_len
    ring = np.array([[0, -width / 2], [length, -width / 2], [length, (num_lanes - 0.5) * width],
                     [0, (num_lanes - 0.5) * width], [0, -width / 2]])
    e = Polylines.empty()
    return MapData(
        map_id="bench-road", lane_ids=np.array([str(i) for i in range(n)]), lanes=Polylines.from_list(centres),
        lane_left=Polylines.from_list(lefts), lane_right=Polylines.from_list(rights),
        lane_is_connector=np.zeros(n, bool), lane_roadblock_ids=np.array([str(i % segments) for i in range(n)]),
        lane_speed_limit_mps=np.full(n, 15.0, np.float32), lane_successors=np.array(succ, np.int32).reshape(-1, 2),
        lane_left_neighbor=np.full(n, -1, np.int32), lane_right_neighbor=np.full(n, -1, np.int32),
        drivable_areas=Polylines.from_list([ring]), drivable_is_hole=np.zeros(1, bool), crosswalks=e,
        stop_lines=e, stop_line_type=np.zeros(0, np.int8), walkways=e, signalized_lanes=np.array([3], np.int32),
    )


def bench_scenarios(batch: int = 64, agents: int = 32, num_steps: int = 81, t0: int = 20,
                    seed: int = 0) -> list[Scenario]:
    """``batch`` synthetic scenarios with ``agents`` agents (ego included) on the benchmark road."""
    rng = np.random.default_rng(seed)
    m = _bench_map()
    t = np.arange(num_steps) * 0.1
    out = []
    for b in range(batch):
        lane = np.concatenate([[0], rng.integers(0, 4, agents - 1)])
        x0 = np.concatenate([[20.0], rng.uniform(0.0, 250.0, agents - 1)])
        v = np.concatenate([[10.0], rng.uniform(5.0, 12.0, agents - 1)])
        xy = np.zeros((num_steps, agents, 2), np.float32)
        xy[..., 0] = x0 + v * t[:, None]
        xy[..., 1] = lane * 3.5
        vel = np.zeros_like(xy)
        vel[..., 0] = v
        size = np.tile(np.array([[4.6, 1.9, 1.6]], np.float32), (agents, 1))
        size[0] = (5.176, 2.297, 1.777)
        atype = np.full(agents, int(AgentType.VEHICLE), np.int8)
        atype[0] = int(AgentType.EGO)
        tracks = AgentTracks(xy=xy, yaw=np.zeros((num_steps, agents), np.float32), vel_xy=vel, size_lwh=size,
                             agent_type=atype, valid=np.ones((num_steps, agents), bool))
        status = np.where((np.arange(num_steps) // 30) % 2 == 0, 2, 0).astype(np.int8)[:, None]
        out.append(Scenario(
            scenario_id=f"bench-{seed}-{b}", log_id="bench", dt=0.1, t0=t0, timestamps_s=t.astype(np.float64),
            origin_xy=np.zeros(2), agents=tracks, map=m,
            route=Route(lane_indices=np.arange(5, 10, dtype=np.int32)), traffic_lights=TrafficLights(status),
            provenance=Provenance(source="synthetic"),
        ))
    return out


def bench_sim(batch: int = 64, agents: int = 32, steps: int = 40, reactive: bool = True, repeats: int = 3,
              quick: bool = False) -> dict[str, Any]:
    """Closed-loop throughput over ``batch`` scenarios of ``agents`` agents for ``steps`` steps (best of
    ``repeats``)."""
    if quick:
        batch, repeats = min(batch, 8), 1
    scenarios = bench_scenarios(batch, agents, num_steps=max(81, steps + 41))
    cfg = SimConfig(num_steps=steps, agents="reactive" if reactive else "log_replay")
    planner = ConstantVelocityPlanner()
    best: dict[str, float] = {}
    for _ in range(repeats):
        t_start = time.perf_counter()
        env = ClosedLoopEnv(scenarios, cfg)
        t_setup = time.perf_counter()
        state, plans = run_episode(env, planner)
        episode = env.finalize(state)  # the per-step collision / drivable / oncoming checks, batched over time
        t_loop = time.perf_counter()
        to_rollouts(env, episode, plans, planner.planner_id, 0)
        t_end = time.perf_counter()
        total = t_end - t_start
        if not best or total < best["total_s"]:
            best = {"total_s": total, "setup_s": t_setup - t_start, "loop_s": t_loop - t_setup,
                    "assemble_s": t_end - t_loop}
    agent_steps = batch * agents * steps
    return {
        "agent_steps_per_s": round(agent_steps / best["total_s"]),
        "loop_agent_steps_per_s": round(agent_steps / best["loop_s"]),
        "episodes_per_s": round(batch / best["total_s"], 2),
        "batch": batch, "agents_per_scenario": agents, "steps": steps, "reactive": reactive,
        **{k: round(v, 4) for k, v in best.items()},
    }


def bench_tracker(num: int = 4096, repeats: int = 3, dtype: torch.dtype = torch.float64) -> dict[str, Any]:
    """Throughput of :func:`~worldengine_lab.sim.tracker.simulate` on ``num`` curved reference trajectories."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(41, dtype=dtype) * 0.1
    v = 2.0 + 13.0 * torch.rand(num, 1, generator=g, dtype=dtype)
    kappa = 0.05 * (torch.rand(num, 1, generator=g, dtype=dtype) - 0.5)
    heading = v * t * kappa
    ref = torch.stack([torch.cumsum(v * 0.1 * torch.cos(heading), 1) - v * 0.1,
                       torch.cumsum(v * 0.1 * torch.sin(heading), 1), heading], -1)
    init = torch.zeros(num, 10, dtype=dtype)
    init[:, 3] = v[:, 0]
    simulate(init[:8], ref[:8])
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        simulate(init, ref)
        best = min(best, time.perf_counter() - t0)
    return {"trajectories_per_s": round(num / best), "num": num, "seconds": round(best, 4), "dtype": str(dtype)}
