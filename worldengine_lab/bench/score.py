"""``bench score``: PDM scoring of 4-s candidate trajectories *including* the tracker + bicycle re-simulation.

Each candidate is a kinematic 41-pose reference fanning out from the ego's state at t0
(:func:`worldengine_lab.metrics._bench.fan_proposals`); the figure times
(1) the LQR tracker + kinematic bicycle simulation of every candidate from the actual ego state (spec §2.5) and
(2) scoring every simulated candidate (area flags, NC, DAC, TTC, EP, comfort, DDC) against the scene's
log-replay objects, on the raster path, in float32. Scene setup (scoring map, observations) is excluded and
reported separately, because it is paid once per scene whatever the number of candidates.
"""
from __future__ import annotations

import time
from typing import Any

import torch

__all__ = ["bench_score"]


def bench_score(quick: bool = False, num_candidates: int | None = None, num_objects: int = 30,
                repeats: int | None = None) -> dict[str, Any]:
    from ..metrics._bench import bench_scene, fan_proposals
    from ..metrics.observations import ObjectTracks
    from ..metrics.pdm import score_proposals
    from ..metrics.scoring_map import ScoringMap
    from ..sim.tracker import simulate

    k = num_candidates or (1024 if quick else 4096)
    reps = repeats or (1 if quick else 3)
    dtype = torch.float32
    scene = bench_scene(num_objects, seed=0)
    t = time.perf_counter()
    smap = ScoringMap.from_scenario(scene)
    objects = ObjectTracks.from_scenario(scene, num_frames=51, dtype=dtype)
    setup_s = time.perf_counter() - t
    refs = fan_proposals(scene, k, seed=0, dtype=dtype)  # [K, 41, D] kinematic states used as references
    poses = refs[..., :3].contiguous()
    init = refs[:, 0].clone()
    best_total = best_sim = best_score = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        states = simulate(init, poses)
        t1 = time.perf_counter()
        score_proposals(states, objects, smap)
        t2 = time.perf_counter()
        best_total = min(best_total, t2 - t0)
        best_sim = min(best_sim, t1 - t0)
        best_score = min(best_score, t2 - t1)
    return {
        "candidates_per_s": round(k / best_total, 1),
        "tracker_candidates_per_s": round(k / best_sim, 1),
        "scoring_candidates_per_s": round(k / best_score, 1),
        "num_candidates": k,
        "num_objects": num_objects,
        "scene_setup_ms": round(1e3 * setup_s, 1),
        "dtype": "float32",
    }
