"""Batched torch closed-loop simulator: kinematic bicycle, LQR tracker, log-replay and IDM agents, rollouts.

Main entry point: :func:`rollout` (``sim.rollout(scenarios, planner, config) -> list[Rollout]``).
"""
from .config import SimConfig
from .dynamics import BicycleParams, bicycle_step
from .env import ClosedLoopEnv, Episode, SimState
from .idm import PDMIDMParams, ReactiveIDMParams, pdm_idm_accel, pdm_idm_profile, reactive_idm_accel
from .poses import body_to_global, global_to_body, interpolate_poses, poses_8_to_40, poses_40_to_8, reference_poses
from .rollout import rollout, run_episode
from .tracker import ReferenceProfiles, TrackerParams, fit_profiles, lqr_controls, simulate

__all__ = [
    "rollout",
    "run_episode",
    "ClosedLoopEnv",
    "SimConfig",
    "SimState",
    "Episode",
    "simulate",
    "fit_profiles",
    "lqr_controls",
    "TrackerParams",
    "ReferenceProfiles",
    "bicycle_step",
    "BicycleParams",
    "reference_poses",
    "body_to_global",
    "global_to_body",
    "interpolate_poses",
    "poses_40_to_8",
    "poses_8_to_40",
    "ReactiveIDMParams",
    "PDMIDMParams",
    "reactive_idm_accel",
    "pdm_idm_accel",
    "pdm_idm_profile",
]
