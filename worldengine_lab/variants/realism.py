"""Validity, realism and criticality of variants.

* :func:`realism_report`: one row per scenario about its edited agents (by default the agents whose future
  differs from the parent's): kinematic plausibility (:func:`~worldengine_lab.variants.check_kinematics`: speed,
  acceleration, jerk, curvature, lateral acceleration, and positions that agree with velocities, so a
  teleporting agent is implausible), the off-road rate of edited vehicles (exact drivable-area test of
  :func:`~worldengine_lab.variants.check_on_road`), collisions between an edited agent and any other non-ego agent
  (oriented boxes, :func:`~worldengine_lab.sim.geometry.box_separation`), the open-loop minimum time to collision
  with the logged ego, and ``valid`` (plausible, on the road, no new collisions).
* :func:`motion_stats` / :func:`distribution_distances`: speed, acceleration, jerk and headway samples of the
  agents' futures and their Wasserstein-1 and Jensen-Shannon distances to a reference (held-out logs).
* :func:`min_ttc`: the smallest constant-velocity time to collision between the ego and any agent not behind it.
* :func:`closed_loop_check`: a planner in closed loop on the scenarios (World Engine's 4-s episode, the same
  rollout and scoring as :func:`~worldengine_lab.mining.evaluate.evaluate_closed_loop`), plus the minimum TTC of
  each rollout and ``critical`` (failed, or min TTC below the threshold); :func:`closed_loop_rows` scores
  rollouts already run.

Frames and units: scenario local frame, metres, seconds; arrays ``[T, N, ...]`` (``[B, T, N, ...]`` batched).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd
import torch

from ..datatypes import EGO_INDEX, AgentTracks, AgentType, Scenario
from ..errors import ShapeError
from ..sim.geometry import box_separation
from .feasibility import _on_road, changed_agents, check_kinematics
from .limits import FeasibilityConfig

if TYPE_CHECKING:
    from ..datatypes import Rollout
    from ..metrics.scoring_map import ScoringMap
    from ..mining.evaluate import EvalConfig
    from ..planners.base import Planner

__all__ = ["realism_report", "min_ttc", "non_ego_collisions", "motion_stats", "distribution_distances",
           "closed_loop_check", "closed_loop_rows", "REALISM_COLUMNS", "STAT_BINS"]

logger = logging.getLogger(__name__)

REALISM_COLUMNS = ("scenario_id", "num_edited", "kinematics_ok", "offroad_rate", "num_offroad_agents",
                   "num_collisions", "min_ttc_log_s", "valid")
"""Columns of :func:`realism_report`."""

STAT_BINS: dict[str, np.ndarray] = {
    "speed_mps": np.arange(0.0, 40.5, 1.0), "accel_mps2": np.arange(-10.0, 10.25, 0.5),
    "jerk_mps3": np.arange(-30.0, 31.0, 2.0), "headway_m": np.arange(0.0, 82.0, 2.0)}
"""Histogram edges of the Jensen-Shannon distances (values outside are clipped into the end bins)."""

_TTC_HORIZONS_S = np.arange(0.0, 5.01, 0.1)
_VEHICLES = (int(AgentType.VEHICLE), int(AgentType.BICYCLE), int(AgentType.EGO))


# -------------------------------------------------------------------------------------------------- geometry
def _separation(xy_a: np.ndarray, yaw_a: np.ndarray, half_a: np.ndarray, xy_b: np.ndarray, yaw_b: np.ndarray,
                half_b: np.ndarray) -> np.ndarray:
    """Box gaps (m, <= 0 overlap) of broadcast numpy boxes (centres ``[..., 2]``, yaws ``[...]``, halves
    ``[..., 2]``)."""
    t = {k: torch.as_tensor(np.asarray(v, np.float64)) for k, v in
         dict(ca=xy_a, ya=yaw_a, ha=half_a, cb=xy_b, yb=yaw_b, hb=half_b).items()}
    return box_separation(t["ca"], torch.cos(t["ya"]), torch.sin(t["ya"]), t["ha"], t["cb"], torch.cos(t["yb"]),
                          torch.sin(t["yb"]), t["hb"]).numpy()


def non_ego_collisions(agents: AgentTracks, steps: slice | np.ndarray, among: np.ndarray | None = None
                       ) -> np.ndarray:
    """``[S, N, N]`` bool: at each step of ``steps`` the boxes of non-ego agents i and j (both valid, i != j)
    overlap, and at least one of them is in ``among`` (default: all)."""
    a = agents
    xy, yaw, valid = a.xy[steps].astype(np.float64), a.yaw[steps].astype(np.float64), a.valid[steps]
    half = a.size_lwh[:, :2].astype(np.float64) / 2.0
    gap = _separation(xy[:, :, None], yaw[:, :, None], half[None, :, None], xy[:, None], yaw[:, None],
                      half[None, None])
    n = a.num_agents
    ok = valid[:, :, None] & valid[:, None, :] & ~np.eye(n, dtype=bool)[None]
    ok[:, EGO_INDEX, :] = False
    ok[:, :, EGO_INDEX] = False
    if among is not None:
        sel = np.zeros(n, bool)
        sel[np.asarray(among, np.int64)] = True
        ok &= sel[None, :, None] | sel[None, None, :]
    return (gap <= 0.0) & ok


def min_ttc(agents: AgentTracks, steps: slice | np.ndarray, horizons_s: np.ndarray = _TTC_HORIZONS_S) -> float:
    """Smallest time to collision (s) between the ego (agent 0) and any agent over ``steps``.

    At each step both boxes move on at constant velocity; the TTC is the first horizon at which they overlap (0
    for boxes already overlapping). Agents whose centre is behind the ego's rear bumper are ignored (a collision
    from behind is not the ego's to avoid). Returns ``inf`` when nothing comes within ``horizons_s[-1]``.
    """
    a = agents
    xy, yaw, vel, valid = (a.xy[steps].astype(np.float64), a.yaw[steps].astype(np.float64),
                           a.vel_xy[steps].astype(np.float64), a.valid[steps])
    half = a.size_lwh[:, :2].astype(np.float64) / 2.0
    ego_xy, ego_yaw, ego_vel = xy[:, EGO_INDEX], yaw[:, EGO_INDEX], vel[:, EGO_INDEX]
    fwd = np.stack([np.cos(ego_yaw), np.sin(ego_yaw)], -1)  # [S, 2]
    ahead = ((xy - ego_xy[:, None]) * fwd[:, None]).sum(-1) > -half[EGO_INDEX, 0]  # [S, N]
    ok = valid & valid[:, EGO_INDEX:EGO_INDEX + 1] & ahead
    ok[:, EGO_INDEX] = False
    if not ok.any():
        return float("inf")
    h = np.asarray(horizons_s, np.float64)[:, None, None, None]  # [H, 1, 1, 1]
    pa = ego_xy[None, :, None] + h * ego_vel[None, :, None]  # [H, S, 1, 2]
    pb = xy[None] + h * vel[None]  # [H, S, N, 2]
    gap = _separation(pa, ego_yaw[None, :, None], half[EGO_INDEX][None, None, None], pb, yaw[None], half[None, None])
    hit = (gap <= 0.0) & ok[None]  # [H, S, N]
    if not hit.any():
        return float("inf")
    first = np.where(hit.any(0), np.argmax(hit, axis=0), len(horizons_s))
    return float(np.asarray(horizons_s)[int(first.min())])


# ---------------------------------------------------------------------------------------------- realism rows
def realism_report(scenarios: Sequence[Scenario], parents: Sequence[Scenario] | None = None,
                   agents: Sequence[Sequence[int]] | None = None, horizon_s: float | None = 4.0,
                   config: FeasibilityConfig = FeasibilityConfig()) -> pd.DataFrame:
    """Validity and realism of each scenario's edited agents (:data:`REALISM_COLUMNS`, one row per scenario).

    Args:
        scenarios: the variants (or any scenarios).
        parents: the scenario each was made from; edited agents are those whose future differs
            (:func:`~worldengine_lab.variants.changed_agents`), and collisions or off-road steps the parent
            already had are not held against the variant.
        agents: per scenario, the agent indices to check instead (default: edited agents; without parents, every
            non-ego agent observed over the whole future).
        horizon_s: only the first seconds after now are checked for collisions, off-road and TTC (None: the
            whole future).
    """
    rows = []
    for i, s in enumerate(scenarios):  # one report row per scenario (each has its own map)
        p = parents[i] if parents is not None else None
        if agents is not None:
            idx = np.asarray(agents[i], np.int64)
        elif p is not None:
            idx = changed_agents(p, s)
            idx = idx[idx != EGO_INDEX]
        else:
            idx = np.flatnonzero(s.agents.valid[s.t0:].all(0))
            idx = idx[idx != EGO_INDEX]
        end = s.num_steps if horizon_s is None else min(s.num_steps, s.t0 + int(round(horizon_s / s.dt)) + 1)
        fut = slice(s.t0 + 1, end)
        full = s.agents.valid[s.t0:end][:, idx].all(0) if len(idx) else np.zeros(0, bool)
        kin = check_kinematics(s, idx[full], config) if full.any() else None
        kin_ok = bool(kin["ok"].all()) if kin is not None else True
        veh = idx[np.isin(s.agents.agent_type[idx], _VEHICLES)]
        n_fut = len(range(*fut.indices(s.num_steps)))
        off = ~_on_road(s, veh, config.on_road_margin_m)[fut] if len(veh) else np.zeros((n_fut, 0), bool)
        off &= s.agents.valid[fut][:, veh]
        if p is not None and len(veh):  # vehicles that started off the road in the parent are not held against it
            old = veh < p.agents.num_agents
            started = np.zeros(len(veh), bool)
            started[old] = ~_on_road(p, veh[old], config.on_road_margin_m)[p.t0]
            off &= ~started[None]
        col = non_ego_collisions(s.agents, fut, idx) if len(idx) else np.zeros((n_fut, 1, 1), bool)
        if p is not None and len(idx):  # pairs already overlapping at now in the parent
            before = np.zeros(col.shape[1:], bool)
            m = p.agents.num_agents
            before[:m, :m] = non_ego_collisions(p.agents, slice(p.t0, p.t0 + 1))[0]
            col &= ~before[None]
        checked = int(s.agents.valid[fut][:, veh].sum()) if len(veh) else 0
        n_col = int(np.triu(col.any(0)).sum())
        rows.append({"scenario_id": s.scenario_id, "num_edited": int(len(idx)), "kinematics_ok": kin_ok,
                     "offroad_rate": float(off.sum() / checked) if checked else 0.0,
                     "num_offroad_agents": int(off.any(0).sum()) if off.size else 0, "num_collisions": n_col,
                     "min_ttc_log_s": min_ttc(s.agents, slice(s.t0, end)),
                     "valid": bool(kin_ok and not off.any() and n_col == 0)})
    return pd.DataFrame(rows, columns=list(REALISM_COLUMNS))


# ------------------------------------------------------------------------------------------- distributions
def _headway(a: AgentTracks, steps: slice, idx: np.ndarray) -> np.ndarray:
    """Bumper gaps (m) to the nearest vehicle ahead within 1.5 m sideways, per (step, agent of ``idx``)."""
    xy, yaw, valid = a.xy[steps].astype(np.float64), a.yaw[steps].astype(np.float64), a.valid[steps]
    veh = np.isin(a.agent_type, _VEHICLES)
    rel = xy[:, None, :, :] - xy[:, idx, None, :]  # [S, K, N, 2]
    c, s = np.cos(yaw[:, idx])[..., None], np.sin(yaw[:, idx])[..., None]
    lon, lat = c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1]
    gap = lon - (a.size_lwh[idx, 0][None, :, None] + a.size_lwh[None, None, :, 0]) / 2.0
    ok = valid[:, None, :] & valid[:, idx, None] & veh[None, None] & (np.abs(lat) < 1.5) & (lon > 0)
    ok &= np.arange(a.num_agents)[None, None, :] != idx[None, :, None]
    g = np.where(ok, gap, np.inf).min(-1)  # [S, K]
    return g[np.isfinite(g) & (g < 80.0)]


def motion_stats(scenarios: Sequence[Scenario], agents: Sequence[Sequence[int]] | None = None,
                 horizon_s: float | None = None) -> dict[str, np.ndarray]:
    """Samples of ``speed_mps``, ``accel_mps2``, ``jerk_mps3`` (from ``|vel_xy|`` over consecutive valid steps)
    and ``headway_m`` of vehicles' futures (steps from now on), pooled over the scenarios.

    ``agents``: per scenario the agents to pool (default: every non-ego vehicle or cyclist).
    """
    out: dict[str, list[np.ndarray]] = {k: [] for k in STAT_BINS}
    for i, s in enumerate(scenarios):  # pooled per scenario (ragged agents)
        a = s.agents
        if agents is not None:
            idx = np.asarray(agents[i], np.int64)
        else:
            idx = np.flatnonzero(np.isin(a.agent_type, _VEHICLES))
            idx = idx[idx != EGO_INDEX]
        idx = idx[np.isin(a.agent_type[idx], _VEHICLES)]
        if not len(idx):
            continue
        end = s.num_steps if horizon_s is None else min(s.num_steps, s.t0 + int(round(horizon_s / s.dt)) + 1)
        steps = slice(s.t0, end)
        v = np.linalg.norm(a.vel_xy[steps][:, idx].astype(np.float64), axis=-1)
        ok = a.valid[steps][:, idx]
        acc = np.diff(v, axis=0) / s.dt
        ok_a = ok[1:] & ok[:-1]
        jerk = np.diff(acc, axis=0) / s.dt
        ok_j = ok_a[1:] & ok_a[:-1]
        out["speed_mps"].append(v[ok])
        out["accel_mps2"].append(acc[ok_a])
        out["jerk_mps3"].append(jerk[ok_j])
        out["headway_m"].append(_headway(a, steps, idx))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def distribution_distances(stats: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, float]:
    """``<name>_w1`` (Wasserstein-1, in the quantity's unit) and ``<name>_js`` (Jensen-Shannon divergence, base 2,
    in [0, 1], on :data:`STAT_BINS` histograms) between two :func:`motion_stats` results; NaN where either side
    has no samples."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance

    out: dict[str, float] = {}
    for k, edges in STAT_BINS.items():
        a, b = np.asarray(stats.get(k, [])), np.asarray(reference.get(k, []))
        if not len(a) or not len(b):
            out[f"{k}_w1"] = out[f"{k}_js"] = float("nan")
            continue
        out[f"{k}_w1"] = float(wasserstein_distance(a, b))
        ha = np.histogram(np.clip(a, edges[0], edges[-1]), edges)[0].astype(np.float64) + 1e-9
        hb = np.histogram(np.clip(b, edges[0], edges[-1]), edges)[0].astype(np.float64) + 1e-9
        out[f"{k}_js"] = float(jensenshannon(ha, hb, base=2) ** 2)
    return out


# ------------------------------------------------------------------------------------------- closed loop
def closed_loop_check(scenarios: Sequence[Scenario], planner: "Planner", config: "EvalConfig | None" = None,
                      ttc_threshold_s: float = 3.0, scoring_maps: "Sequence[ScoringMap | None] | None" = None
                      ) -> pd.DataFrame:
    """Closed-loop rows of ``planner`` (as :func:`~worldengine_lab.mining.evaluate.evaluate_closed_loop`:
    batched rollouts of ``config.batch_size`` scenarios, PDMS*, ``success``, ``failure_type``), plus
    ``min_ttc_s`` (:func:`min_ttc` over each rollout's simulated steps) and ``critical`` (not ``success`` or
    ``min_ttc_s < ttc_threshold_s``).

    Args:
        config: an :class:`~worldengine_lab.mining.evaluate.EvalConfig` (default: World Engine's closed loop,
            :data:`~worldengine_lab.mining.evaluate.WE_CLOSED_LOOP`).
        scoring_maps: per scenario, its ``ScoringMap.from_scenario`` if already built (None entries are built);
            variants of one parent can share the parent's (see :func:`closed_loop_rows`).
    """
    from ..sim.rollout import rollout

    cfg = _eval_config(config)
    items = list(scenarios)
    if not items:
        raise ShapeError("closed_loop_check(scenarios): expected at least one scenario, received none")
    maps = list(scoring_maps) if scoring_maps is not None else [None] * len(items)
    if len(maps) != len(items):
        raise ShapeError(f"closed_loop_check(scoring_maps): expected {len(items)} entries (one per scenario), "
                         f"received {len(maps)}")
    tables = []
    for i in range(0, len(items), cfg.batch_size):
        chunk = items[i:i + cfg.batch_size]
        outs = rollout(chunk, planner, cfg.sim, seed=cfg.seed)
        tables.append(closed_loop_rows(chunk, outs, cfg, ttc_threshold_s, maps[i:i + cfg.batch_size]))
    return pd.concat(tables, ignore_index=True)


def _eval_config(config: "EvalConfig | None") -> "EvalConfig":
    from ..mining.evaluate import WE_CLOSED_LOOP, EvalConfig

    cfg = config if config is not None else EvalConfig(sim=WE_CLOSED_LOOP)
    cfg.validate()
    return cfg


def closed_loop_rows(scenarios: Sequence[Scenario], rollouts: Sequence["Rollout"], config: "EvalConfig | None" = None,
                     ttc_threshold_s: float = 3.0, scoring_maps: "Sequence[ScoringMap | None] | None" = None
                     ) -> pd.DataFrame:
    """The rows of :func:`closed_loop_check` for rollouts already run (one per scenario, in order).

    A scenario's scoring map depends only on its map, route and the ego at t0, none of which an edit of other
    agents changes: pass the parent's map for each of its variants (``scoring_maps``) to skip rebuilding it.
    """
    from ..metrics.closed_loop import episode_success
    from ..mining.evaluate import score_rollout

    cfg = _eval_config(config)
    if len(rollouts) != len(scenarios):
        raise ShapeError(f"closed_loop_rows(rollouts): expected one rollout per scenario ({len(scenarios)}), "
                         f"received {len(rollouts)}")
    maps = list(scoring_maps) if scoring_maps is not None else [None] * len(scenarios)
    rows: list[dict[str, object]] = []
    for r, s, m in zip(rollouts, scenarios, maps):  # scoring is per scene (each has its own map)
        row = score_rollout(r, s, cfg.closed_loop_scorer, scoring_map=m)
        row["min_ttc_s"] = min_ttc(r.agents, slice(r.t0, r.t0 + r.num_sim_steps + 1))
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(table.columns.get_loc("failure_type"), "success",
                 episode_success(table["no_at_fault_collisions"], table["drivable_area_compliance"],
                                 cfg.success_rule))
    table["critical"] = ~table["success"].astype(bool) | (table["min_ttc_s"] < ttc_threshold_s)
    return table
