"""Evaluate a planner over a set of scenarios, open loop and closed loop: one row per scenario.

**Closed loop** (World Engine, spec/metrics.md §3): each scenario is simulated for 4 s from its "now"
(``Scenario.t0``, World Engine's step 3) with the planner replanning every 0.5 s; by default the ego is placed
on its plan (perfect tracking, §3.1) and the other agents replay the log (non-reactive, NR). The executed
rear-axle states at 0.5 s (9 states, t0 .. t0 + 4 s) are scored with the closed-loop PDMS* against the boxes
actually simulated and the logged expert (:func:`~worldengine_lab.metrics.closed_loop_pdms`). Success is
NC == 1 and DAC == 1 (§3.4).

**Open loop** (NAVSIM v1.1, §2): at "now" the planner sees the logged scene once; its 4 s plan is
re-simulated with the LQR tracker + kinematic bicycle and PDM-scored against the logged agents, with EP
normalised against the PDM-Closed expert's plan from the same state (the reference is scored with it as
proposal 0, so NAVSIM's pairwise rule applies).

Rows carry the §2.13 columns and ``failure_type`` (``collision`` / ``off_road`` / ``static_collision`` /
``none``, the earlier violation first when both happen), ``collided_with`` (the agent type of the first
contact), ``first_violation_step`` and ``raw_progress_m``. Simulation and planning are batched over
``batch_size`` scenarios; scoring visits scenes one by one because every scene has its own map.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..datatypes import AgentType, Rollout, Scenario
from ..errors import ScenarioValidationError, ShapeError
from ..metrics.closed_loop import SuccessRule, closed_loop_pdms, episode_success, executed_states
from ..metrics.observations import STATIC_AGENT_CODES, ObjectTracks
from ..metrics.pdm import CLOSED_LOOP, NAVSIM_V11, PDMS_COLUMNS, ScorerConfig, score_proposals
from ..metrics.scoring_map import ScoringMap, ScoringMapConfig
from ..planners.base import PLAN_NUM_POSES, Planner
from ..sim.config import SimConfig
from ..sim.env import ClosedLoopEnv
from ..sim.poses import body_to_global
from ..sim.rollout import _planner_id, rollout
from ..sim.scene_batch import ego_states_from_log
from ..sim.state import VX, VY, X, Y, YAW
from ..sim.tracker import simulate

__all__ = [
    "EvalConfig", "WE_CLOSED_LOOP", "EPISODE_MAP", "evaluate_closed_loop", "evaluate_open_loop", "score_rollout",
    "summarize", "RESULT_COLUMNS", "FAILURE_TYPES",
]

logger = logging.getLogger(__name__)

WE_CLOSED_LOOP = SimConfig(num_steps=40, replan_period_s=0.5, tracking="perfect", agents="log_replay")
"""World Engine's closed-loop episode: 4 s, 2 Hz planning, the ego placed on its plan, agents replaying the log."""

FAILURE_TYPES = ("collision", "off_road", "static_collision", "none")
RESULT_COLUMNS = (
    ("scenario_id", "planner_id", "mode") + PDMS_COLUMNS
    + ("success", "failure_type", "collided_with", "first_violation_step", "raw_progress_m", "any_contact")
)
_SCORED_EVERY = 5  # 0.5 s / 0.1 s: closed-loop states are scored at 2 Hz
EPISODE_MAP = ScoringMapConfig(raster=False)
"""Scoring map of one closed-loop episode: one trajectory's few poses are tested against the exact polygons (a
raster only pays for itself with many candidates; PDM-Closed and the teacher build one)."""
_TYPE_NAMES = {int(t): t.name.lower() for t in AgentType}


@dataclass(frozen=True)
class EvalConfig:
    """How a planner is evaluated.

    Attributes:
        sim: closed-loop settings (default :data:`WE_CLOSED_LOOP`; ``agents="reactive"`` for the R setting,
            ``tracking="lqr"`` to drive through the tracker). ``num_steps`` must be 40 (the scored 4 s).
        closed_loop_scorer: the PDMS* variant (§3.3).
        open_loop_scorer: the NAVSIM v1.1 variant (§2).
        batch_size: scenarios simulated (and planned) together.
        success_rule: ``"default"`` (NC == 1 and DAC == 1) or ``"first_violation"`` (§3.4).
        seed: episode seed (recorded; seeds torch during episodes).
    """

    sim: SimConfig = WE_CLOSED_LOOP
    closed_loop_scorer: ScorerConfig = CLOSED_LOOP
    open_loop_scorer: ScorerConfig = NAVSIM_V11
    batch_size: int = 32
    success_rule: SuccessRule = "default"
    seed: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def validate(self) -> None:
        if self.sim.num_steps != 8 * _SCORED_EVERY or abs(self.sim.dt_s - 0.1) > 1e-9:
            raise ScenarioValidationError(
                f"EvalConfig.sim: the closed-loop score needs 4 s episodes at 0.1 s (num_steps=40, dt_s=0.1), "
                f"received num_steps={self.sim.num_steps}, dt_s={self.sim.dt_s}")
        if self.batch_size < 1:
            raise ShapeError(f"EvalConfig.batch_size: expected >= 1, received {self.batch_size}")


def _chunks(items: Sequence[Scenario], n: int) -> Iterable[list[Scenario]]:
    for i in range(0, len(items), n):
        yield list(items[i : i + n])


def _progress(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="scenario", disable=not enabled, leave=False)


def _failure(nc: float, dac: float, first_off: int, first_agent: int) -> str:
    if nc == 0.0 and dac == 0.0:
        return "off_road" if 0 <= first_off < first_agent else "collision"
    if nc == 0.0:
        return "collision"
    if dac == 0.0:
        return "off_road"
    if nc == 0.5:
        return "static_collision"
    return "none"


def _first_contact_type(flags: np.ndarray, types: np.ndarray) -> str:
    """Type name of an agent in the first contact of ``flags [S, N]`` (ego column excluded), '' if none."""
    hit = np.flatnonzero(flags.any(1))
    if not len(hit):
        return ""
    who = np.flatnonzero(flags[hit[0]])
    moving = who[~np.isin(types[who], STATIC_AGENT_CODES)]
    return _TYPE_NAMES.get(int(types[(moving if len(moving) else who)[0]]), "unknown")


def score_rollout(ro: Rollout, scenario: Scenario, config: ScorerConfig = CLOSED_LOOP,
                  scoring_map: ScoringMap | None = None) -> dict[str, object]:
    """Closed-loop PDMS* row of one 4-s rollout (§3.3) plus the failure fields of this module.

    ``scoring_map``: ``ScoringMap.from_scenario(scenario)`` if already built (it depends only on the map, the
    route and the ego at t0, so edits of other agents can share their parent's).

    Raises:
        ScenarioValidationError: the rollout is shorter than 4 s or the log has no expert pose at 4 s.
    """
    steps = ro.t0 + _SCORED_EVERY * np.arange(9)
    if ro.num_sim_steps < steps[-1] - ro.t0:
        raise ScenarioValidationError(
            f"score_rollout({ro.scenario_id!r}): expected a rollout of >= 40 steps (4 s), received {ro.num_sim_steps}")
    log = ego_states_from_log(scenario)
    if steps[-1] >= len(log):
        raise ScenarioValidationError(
            f"score_rollout({ro.scenario_id!r}): the log ends {(len(log) - 1 - ro.t0) * scenario.dt:.1f} s after "
            "'now'; the closed-loop score needs the logged expert 4 s ahead — import windows with >= 4 s future")
    ego = ro.ego_states[steps]
    states = executed_states(ego[:, [X, Y, YAW]], ego[:, [VX, VY]])
    a = ro.agents
    types = a.agent_type
    objects = ObjectTracks.from_arrays(
        a.xy[steps][:, 1:], a.yaw[steps][:, 1:], a.size_lwh[1:, :2], a.vel_xy[steps][:, 1:], a.valid[steps][:, 1:],
        is_static=np.isin(types[1:], STATIC_AGENT_CODES),
        track_ids=[str(t) for t in a.track_ids[1:]], dt=0.5)
    smap = scoring_map if scoring_map is not None else ScoringMap.from_scenario(scenario, EPISODE_MAP)
    row = closed_loop_pdms(states, objects, smap, log[steps, :3],
                           token=ro.scenario_id, config=config)
    sim = slice(ro.t0, ro.t0 + ro.num_sim_steps + 1)
    contact = np.asarray(ro.info["sim/collision_agents"])[sim][:, 1:] if "sim/collision_agents" in ro.info else \
        np.zeros((1, max(a.num_agents - 1, 0)), bool)
    fv = int(row["first_violation_step"])
    flags = np.asarray(ro.info.get("sim/collision", np.zeros(0, bool)))[sim]
    offroad = np.asarray(ro.info.get("sim/offroad", np.zeros(0, bool)))[sim]
    first_hit = int(np.argmax(flags)) if flags.any() else 10**9
    first_off = int(np.argmax(offroad)) if offroad.any() else -1
    ftype = _failure(float(row["no_at_fault_collisions"]), float(row["drivable_area_compliance"]), first_off,
                     first_hit)
    return {
        "scenario_id": ro.scenario_id, "planner_id": ro.planner_id, "mode": "closed_loop",
        **{k: float(row[k]) for k in PDMS_COLUMNS},
        "failure_type": ftype,
        "collided_with": _first_contact_type(contact, types[1:]) if ftype in ("collision", "static_collision") else "",
        "first_violation_step": fv, "raw_progress_m": float(row["raw_progress_m"]),
        "expert_progress_m": float(row["expert_progress_m"]), "lane_keeping": float(row["lane_keeping"]),
        "any_contact": bool(row["any_contact"]),
    }


def evaluate_closed_loop(scenarios: Sequence[Scenario] | Iterable[Scenario], planner: Planner,
                         config: EvalConfig = EvalConfig(), progress: bool = False) -> pd.DataFrame:
    """Closed-loop rows (PDMS*, success, failure) of ``planner`` on every scenario, in input order.

    Args:
        scenarios: Scenarios (a :class:`~worldengine_lab.scenarios.ScenarioSet` works) with >= 4 s of log
            after "now" and dt = 0.1 s.
        planner: any :class:`~worldengine_lab.planners.Planner`.
        config: :class:`EvalConfig`.
        progress: show a tqdm bar on stderr.
    Returns:
        DataFrame with :data:`RESULT_COLUMNS` (+ ``expert_progress_m``, ``lane_keeping``).
    """
    config.validate()
    items = list(scenarios)
    if not items:
        raise ShapeError("evaluate_closed_loop.scenarios: expected at least one scenario, received none")
    rows: list[dict[str, object]] = []
    bar = _progress(len(items), f"closed loop {_planner_id(planner)}", progress)
    try:
        for chunk in _chunks(items, config.batch_size):
            outs = rollout(chunk, planner, config.sim, seed=config.seed)
            rows.extend(score_rollout(r, s, config.closed_loop_scorer) for r, s in zip(outs, chunk))
            bar.update(len(chunk))
    finally:
        bar.close()
    table = pd.DataFrame(rows)
    table.insert(table.columns.get_loc("failure_type"), "success",
                 episode_success(table["no_at_fault_collisions"], table["drivable_area_compliance"],
                                 config.success_rule))
    return table


def evaluate_open_loop(scenarios: Sequence[Scenario] | Iterable[Scenario], planner: Planner,
                       reference: Planner | None = None, config: EvalConfig = EvalConfig(),
                       progress: bool = False) -> pd.DataFrame:
    """NAVSIM v1.1 open-loop rows of ``planner`` at each scenario's "now", in input order.

    Args:
        reference: the EP reference planner (default: a fresh PDM-Closed expert). When ``planner`` is the
            reference itself its rows have EP = 1 wherever it is safe.
    Returns:
        DataFrame with :data:`RESULT_COLUMNS` (``success`` = NC == 1 and DAC == 1 of the plan) and
        ``reference_progress_m``.
    """
    from ..planners.pdm_closed import PDMClosedPlanner  # the expert imports metrics; import on use

    config.validate()
    items = list(scenarios)
    if not items:
        raise ShapeError("evaluate_open_loop.scenarios: expected at least one scenario, received none")
    ref = reference if reference is not None else (planner if isinstance(planner, PDMClosedPlanner)
                                                   else PDMClosedPlanner())
    sim_cfg = replace(config.sim, num_steps=1, agents="log_replay")
    pid = _planner_id(planner)
    rows: list[dict[str, object]] = []
    bar = _progress(len(items), f"open loop {pid}", progress)
    try:
        for chunk in _chunks(items, config.batch_size):
            env = ClosedLoopEnv(chunk, sim_cfg)
            state = env.reset()
            obs = env.observe(state)
            plans = []
            for p in (planner, ref) if ref is not planner else (planner,):
                if hasattr(p, "reset"):
                    p.reset(chunk, config.seed)  # type: ignore[attr-defined]
                with torch.random.fork_rng():
                    torch.manual_seed(config.seed)
                    out = p.plan(obs)
                if out.shape != (len(chunk), PLAN_NUM_POSES, 3) or not bool(torch.isfinite(out).all()):
                    raise ShapeError(f"evaluate_open_loop: planner {_planner_id(p)!r} returned "
                                     f"{list(out.shape)} (finite={bool(torch.isfinite(out).all())}), expected "
                                     f"[{len(chunk)}, {PLAN_NUM_POSES}, 3] finite poses")
                plans.append(out.to(torch.float64))
            if len(plans) == 1:
                plans.append(plans[0])
            ego0 = state.ego.to(torch.float64)  # [B, D]
            both = torch.stack(plans, 1)  # [B, 2 (candidate, reference), 40, 3]
            local = body_to_global(both, ego0[:, None, [X, Y, YAW]])
            ref_poses = torch.cat([ego0[:, None, None, [X, Y, YAW]].expand(-1, 2, 1, 3), local], 2)  # [B, 2, 41, 3]
            states = simulate(ego0[:, None].expand(-1, 2, -1).reshape(-1, ego0.shape[-1]),
                              ref_poses.reshape(-1, PLAN_NUM_POSES + 1, 3)).view(len(chunk), 2, PLAN_NUM_POSES + 1, -1)
            for b, s in enumerate(chunk):  # one scene at a time: each has its own map
                sc = score_proposals(states[b].flip(0), ObjectTracks.from_scenario(s), _scoring_map(ref, s),
                                     config.open_loop_scorer)
                f = sc.to_frame().iloc[1]
                nc, dac = float(f["no_at_fault_collisions"]), float(f["drivable_area_compliance"])
                ftype = _failure(nc, dac, int(sc.first_offroad_idx[1]), int(sc.first_agent_collision_idx[1]))
                rows.append({
                    "scenario_id": s.scenario_id, "planner_id": pid, "mode": "open_loop",
                    **{k: float(f[k]) for k in PDMS_COLUMNS},
                    "success": nc == 1.0 and dac == 1.0, "failure_type": ftype, "collided_with": "",
                    "first_violation_step": -1, "raw_progress_m": float(sc.raw_progress[1]),
                    "any_contact": bool(sc.any_contact[1]), "reference_progress_m": float(sc.raw_progress[0]),
                })
            bar.update(len(chunk))
    finally:
        bar.close()
    return pd.DataFrame(rows)


def _scoring_map(ref: Planner, scenario: Scenario) -> ScoringMap:
    get: Callable[[str], ScoringMap | None] | None = getattr(ref, "scoring_map", None)
    smap = get(scenario.scenario_id) if get is not None else None
    return smap if smap is not None else ScoringMap.from_scenario(scenario)


def summarize(table: pd.DataFrame) -> pd.Series:
    """Mean of the §2.13 columns, PDMS (×100), success and any-contact rates (%), failure counts, N."""
    if len(table) == 0:
        raise ShapeError("summarize: expected a non-empty result table")
    out = table[list(PDMS_COLUMNS)].astype(float).mean()
    out["pdms"] = 100.0 * out["score"]
    out["success_rate_pct"] = 100.0 * float(table["success"].astype(bool).mean())
    out["any_contact_rate_pct"] = 100.0 * float(table["any_contact"].astype(bool).mean())
    for ft in FAILURE_TYPES[:-1]:
        out[f"num_{ft}"] = float((table["failure_type"] == ft).sum())
    out["num_scenarios"] = float(len(table))
    return out
