"""World Engine closed-loop evaluation: PDMS* per episode, success rate, aggregation (spec §3.3–§3.5).

An episode is scored once, at its end, on the **executed** rear-axle poses of steps 3..11 (9 states at
0.5 s, no re-simulation) against the boxes actually simulated at those steps (NR or R), with the
:data:`~worldengine_lab.metrics.pdm.CLOSED_LOOP` scorer variant: TTC look-aheads 0/0.5/1.0 s at states
0..6, ``multiple_lanes`` over all drivable polygons, EP against the logged expert with the raw-max rule
(threshold 0.1 m) along the polyline through the expert's rear-axle positions, DDC over contiguous
oncoming segments, lane keeping reported with weight 0.

First violation step (used to invalidate later rollout frames): a DAC violation at state j → step j + 3;
an at-fault collision with an **agent** (the one that makes NC = 0; static-object contacts, NC = 0.5, do
not set it) at time τ → step ⌊τ / 0.5⌋ + 3; the earlier of the two; -1 when there is none.

Success (§3.4): default NC == 1 and DAC == 1; ``success_rule="first_violation"``: NC != 0 and DAC != 0.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import torch

from ..errors import ShapeError
from ..sim.state import EGO_STATE_DIM, make_ego_state
from .centerline import polyline_through
from .observations import ObjectTracks
from .pdm import CLOSED_LOOP, PDMS_COLUMNS, ScorerConfig, score_proposals, validate_states
from .progress import raw_progress
from .scoring_map import ScoringMap

__all__ = [
    "executed_states", "closed_loop_pdms", "first_violation_step", "episode_success", "success_rate",
    "summarize_closed_loop", "SuccessRule", "HISTORY_STEPS", "STEP_S",
]

SuccessRule = Literal["default", "first_violation"]
HISTORY_STEPS = 3  # steps 0..2 replay the log; planning starts at step 3
STEP_S = 0.5


def executed_states(poses: np.ndarray | torch.Tensor, body_velocity: np.ndarray | torch.Tensor | None = None
                    ) -> torch.Tensor:
    """Ego states of an executed closed-loop trajectory: ``[S, 3]`` rear-axle poses (x, y, yaw) and optional
    ``[S, 2]`` body-frame velocities → ``[S, EGO_STATE_DIM]`` float64 with zero accelerations (§3.3)."""
    p = torch.as_tensor(np.asarray(poses) if not isinstance(poses, torch.Tensor) else poses, dtype=torch.float64)
    if p.ndim != 2 or p.shape[-1] != 3:
        raise ShapeError(f"executed_states.poses: expected [S, 3] (x, y, yaw), received {list(p.shape)}")
    v = torch.zeros(p.shape[0], 2, dtype=torch.float64) if body_velocity is None else torch.as_tensor(
        np.asarray(body_velocity) if not isinstance(body_velocity, torch.Tensor) else body_velocity,
        dtype=torch.float64)
    if v.shape != (p.shape[0], 2):
        raise ShapeError(f"executed_states.body_velocity: expected [{p.shape[0]}, 2], received {list(v.shape)}")
    return make_ego_state(x=p[:, 0], y=p[:, 1], yaw=p[:, 2], vx=v[:, 0], vy=v[:, 1])


def first_violation_step(offroad_idx: int, nc: float, agent_collision_idx: int, dt: float = STEP_S,
                         history_steps: int = HISTORY_STEPS, step_s: float = STEP_S) -> int:
    """Simulation step of the first violation (-1 if none); indices are scored-state indices (-1 = none)."""
    cands = []
    if offroad_idx >= 0:
        cands.append(int(offroad_idx) + history_steps)
    if nc == 0 and agent_collision_idx >= 0:
        cands.append(int(math.floor(agent_collision_idx * dt / step_s + 1e-9)) + history_steps)
    return min(cands) if cands else -1


def closed_loop_pdms(ego_states: torch.Tensor, objects: ObjectTracks, scoring_map: ScoringMap,
                     expert_poses: np.ndarray | torch.Tensor, token: str = "",
                     config: ScorerConfig = CLOSED_LOOP) -> dict[str, object]:
    """PDMS* of one episode.

    Args:
        ego_states: ``[S, D]`` (or ``[1, S, D]``) executed ego states, S = 9 at 0.5 s (see :func:`executed_states`).
        objects: boxes simulated at the same S steps (``dt`` = 0.5 s); tracks named "ego" must be dropped
            (``ObjectTracks.from_arrays`` does it).
        scoring_map: the scene's map inputs (its centreline is replaced by the expert path).
        expert_poses: ``[S, 3+]`` logged expert rear-axle poses (x, y, yaw) at the same times.
        token: episode id for the row.
    Returns:
        one row: token, the §2.13 columns, ``lane_keeping``, ``raw_progress_m``, ``expert_progress_m``,
        ``any_contact``, ``first_violation_step``.
    """
    s = ego_states.unsqueeze(0) if isinstance(ego_states, torch.Tensor) and ego_states.ndim == 2 else ego_states
    validate_states(s, "closed_loop_pdms.ego_states", config.num_states)
    if s.shape[0] != 1:
        raise ShapeError(f"closed_loop_pdms.ego_states: expected one episode [S, {EGO_STATE_DIM}], received "
                         f"{list(s.shape)}")
    ex = torch.as_tensor(np.asarray(expert_poses) if not isinstance(expert_poses, torch.Tensor) else expert_poses,
                         dtype=torch.float64)
    if ex.ndim != 2 or ex.shape[0] != s.shape[1] or ex.shape[1] < 3:
        raise ShapeError(f"closed_loop_pdms.expert_poses: expected [{s.shape[1]}, 3] (x, y, yaw per scored step), "
                         f"received {list(ex.shape)}")
    centerline = polyline_through(ex[:, :2])
    expert = executed_states(ex[:, :3])[None]
    expert_progress = float(raw_progress(expert, centerline, config.progress_point)[0])
    sc = score_proposals(s, objects, scoring_map, config, reference_progress=expert_progress,
                         centerline=centerline)
    row = sc.to_frame().iloc[0].to_dict()
    row = {"token": token, **{k: row[k] for k in PDMS_COLUMNS}, "lane_keeping": row.get("lane_keeping", 1.0),
           "raw_progress_m": row["raw_progress_m"], "expert_progress_m": expert_progress,
           "any_contact": bool(row["any_contact"]),
           "first_violation_step": first_violation_step(int(sc.first_offroad_idx[0]), float(sc.nc[0]),
                                                        int(sc.first_agent_collision_idx[0]), config.dt)}
    return row


def episode_success(nc: Sequence[float] | np.ndarray, dac: Sequence[float] | np.ndarray,
                    rule: SuccessRule = "default") -> np.ndarray:
    """``[E]`` bool: default NC == 1 and DAC == 1; ``"first_violation"``: NC != 0 and DAC != 0."""
    nc_a, dac_a = np.asarray(nc, dtype=np.float64), np.asarray(dac, dtype=np.float64)
    if nc_a.shape != dac_a.shape:
        raise ShapeError(f"episode_success: expected nc and dac of the same shape, received {nc_a.shape}, {dac_a.shape}")
    if rule == "default":
        return (nc_a == 1.0) & (dac_a == 1.0)
    if rule == "first_violation":
        return (nc_a != 0.0) & (dac_a != 0.0)
    raise ValueError(f"episode_success.rule: expected 'default' or 'first_violation', received {rule!r}")


def success_rate(nc: Sequence[float] | np.ndarray, dac: Sequence[float] | np.ndarray,
                 rule: SuccessRule = "default") -> float:
    """Success rate in percent; raises on an empty episode list (rather than returning NaN)."""
    ok = episode_success(nc, dac, rule)
    if ok.size == 0:
        raise ShapeError("success_rate: expected at least one episode, received 0")
    return 100.0 * float(ok.mean())


def summarize_closed_loop(rows: Sequence[dict[str, object]] | pd.DataFrame,
                          rule: SuccessRule = "default") -> tuple[pd.DataFrame, pd.Series]:
    """Per-episode table (adds ``success``) and the summary row (§3.5): column-wise means of the §2.13
    columns, ``pdms_star`` (= mean score ×100), ``success_rate_pct`` and ``any_contact_rate_pct``."""
    table = pd.DataFrame(rows).copy()
    missing = [c for c in ("no_at_fault_collisions", "drivable_area_compliance", "score") if c not in table.columns]
    if missing or len(table) == 0:
        raise ShapeError(f"summarize_closed_loop: expected a non-empty table with the §2.13 columns, missing {missing}")
    table["success"] = episode_success(table["no_at_fault_collisions"], table["drivable_area_compliance"], rule)
    cols = [c for c in PDMS_COLUMNS + ("lane_keeping",) if c in table.columns]
    summary = table[cols].astype(float).mean()
    summary["pdms_star"] = 100.0 * summary["score"]
    summary["success_rate_pct"] = 100.0 * float(table["success"].mean())
    if "any_contact" in table.columns:
        summary["any_contact_rate_pct"] = 100.0 * float(table["any_contact"].astype(bool).mean())
    summary["num_episodes"] = float(len(table))
    return table, summary

