"""Metrics: NAVSIM PDM Score (open loop), closed-loop PDMS* and success rate, per-step dense reward, comfort.

Everything works on batches of already simulated ego states (``[P, S, D]`` torch tensors, sim/state.py
layout) against one scene's :class:`ObjectTracks` and :class:`ScoringMap`. Reference: shared/spec/metrics.md.
"""
from .areas import EgoAreas, ego_areas
from .centerline import polyline_through, project_to_polyline, route_centerline
from .closed_loop import (
    closed_loop_pdms, episode_success, executed_states, first_violation_step, success_rate, summarize_closed_loop,
)
from .collisions import CollisionResult, collision_metrics
from .comfort import COMFORT_CHECKS, comfort, comfort_signals, savgol_filter, savgol_matrix, unwrap_angles
from .compliance import driving_direction_compliance, lane_keeping
from .observations import ObjectTracks, interpolate_keyframes
from .pdm import (
    CLOSED_LOOP, DENSE_REWARD, NAVSIM_V11, PDMS_COLUMNS, PDMScores, ScorerConfig, aggregate_scene_table, pdm_score,
    score_proposals, validate_states,
)
from .progress import ep_navsim, ep_raw_max, raw_progress
from .reward import DenseReward, dense_reward, pairwise_reward
from .scoring_map import PolygonSet, ScoringMap, ScoringMapConfig, lane_rings

__all__ = [
    "EgoAreas", "ego_areas",
    "polyline_through", "project_to_polyline", "route_centerline",
    "closed_loop_pdms", "episode_success", "executed_states", "first_violation_step", "success_rate",
    "summarize_closed_loop",
    "CollisionResult", "collision_metrics",
    "COMFORT_CHECKS", "comfort", "comfort_signals", "savgol_filter", "savgol_matrix", "unwrap_angles",
    "driving_direction_compliance", "lane_keeping",
    "ObjectTracks", "interpolate_keyframes",
    "CLOSED_LOOP", "DENSE_REWARD", "NAVSIM_V11", "PDMS_COLUMNS", "PDMScores", "ScorerConfig",
    "aggregate_scene_table", "pdm_score", "score_proposals", "validate_states",
    "ep_navsim", "ep_raw_max", "raw_progress",
    "DenseReward", "dense_reward", "pairwise_reward",
    "PolygonSet", "ScoringMap", "ScoringMapConfig", "lane_rings",
]
