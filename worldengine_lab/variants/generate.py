"""Batch generation of variants from mined failures: sample, check, keep, store.

:func:`generate_variants` reads the failure cases of an evaluation run (:func:`~worldengine_lab.mining.store.
load_failure_cases`; ``"latest"`` is the latest run with cases), loads each case's representative window and makes
``per_failure`` variants of it with

* ``"bwm"``: the behaviour world model under adversarial guidance (:func:`~.adversarial.adversarial_variants`);
  a window without an attacker near the ego gets realism-guided samples of all its moving agents instead;
* ``"parametric"``: seeded parametric ops (hard brake, cut-in, stall, pedestrian dart-out, in an order drawn
  from the request seed; an op that does not fit the scene gives way to the next, :func:`parametric_variants`);
* ``"both"``: both.

Failures the expert does not solve either are not varied (``solvable_parents_only``). Every candidate is then
checked (:func:`evaluate_candidates`): **valid** (:func:`~.realism.realism_report`:
plausible kinematics, edited vehicles on the road, no new collisions among non-ego agents), **solvable** (the
expert succeeds in closed loop, :func:`~.realism.closed_loop_check`) and **critical** (the base planner, the
expert unless another is given, fails or comes within 3 s TTC). Valid and solvable variants are stored with their
lineage (:func:`~.store.save_variant`). The same request always gives the same variant ids, and storing is
idempotent.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np
import pandas as pd
import torch

from ..datatypes import Scenario, Variant
from ..errors import InfeasibleEditError, WorkspaceError
from ..store.workspace import Workspace
from .adversarial import GuidanceConfig, adversarial_variants, choose_attacker
from .lineage import make_variant
from .ops_events import CutIn, HardBrake, PedestrianDartOut, Stall
from .realism import closed_loop_check, realism_report
from .store import save_variant

if TYPE_CHECKING:
    from ..planners.base import Planner
    from .bwm_model import BehaviourWorldModel

__all__ = ["GenerateConfig", "GenerateResult", "generate_variants", "parametric_variants", "evaluate_candidates",
           "default_checkpoint", "CANDIDATE_COLUMNS"]

logger = logging.getLogger(__name__)

Method = Literal["bwm", "parametric", "both"]
CANDIDATE_COLUMNS = ("parent_id", "variant_id", "method", "op", "valid", "kinematics_ok", "offroad_rate",
                     "num_collisions", "expert_success", "expert_min_ttc_s", "base_success", "base_min_ttc_s",
                     "critical", "stored")
"""Columns of :attr:`GenerateResult.table` (one row per candidate variant)."""


@dataclass(frozen=True)
class GenerateConfig:
    """How variants are generated and kept."""

    per_failure: int = 4
    """Variants per failure case and method."""
    seed: int = 0
    """Request seed (the same request gives the same variant ids)."""
    method: Method = "bwm"
    """``"bwm"``, ``"parametric"`` or ``"both"``."""
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    """Adversarial guidance of the behaviour world model."""
    keep_all: bool = False
    """Store every candidate, not only the valid and expert-solvable ones."""
    solvable_parents_only: bool = True
    """Vary only failures the expert solves in closed loop (a scene the expert cannot solve is a trap, and so
    are its variants)."""
    ttc_threshold_s: float = 3.0
    """A variant is critical when the base planner fails or its min TTC is below this, s."""
    batch_size: int = 32
    """Scenarios per closed-loop batch."""


@dataclass
class GenerateResult:
    """Candidates with their checks (:data:`CANDIDATE_COLUMNS`), the variants, stored ids and timings (s)."""

    table: pd.DataFrame
    variants: list[Variant]
    stored: list[str]
    num_failures: int
    generate_s: float
    check_s: float
    num_parents: int = 0
    num_trap_parents: int = 0

    def summary(self) -> dict[str, Any]:
        """Counts and rates per method (rates over valid candidates, except ``valid_rate``)."""
        out: dict[str, Any] = {"num_failures": self.num_failures, "num_parents": self.num_parents,
                               "num_trap_parents": self.num_trap_parents, "num_stored": len(self.stored),
                               "generate_s": round(self.generate_s, 2), "check_s": round(self.check_s, 2)}
        for m, g in self.table.groupby("method"):
            v = g[g["valid"]]
            out[m] = {"num_candidates": int(len(g)), "valid_rate": _rate(g["valid"]),
                      "expert_solvable_rate": _rate(v["expert_success"]), "critical_rate": _rate(v["critical"]),
                      "num_stored": int(g["stored"].sum())}
        return out

    def report(self) -> str:
        """A few lines for the command line."""
        s = self.summary()
        lines = [f"variants from {s['num_failures']} failure cases ({s['num_parents']} varied, "
                 f"{s['num_trap_parents']} skipped as the expert fails them too): {s['num_stored']} stored "
                 f"(generate {s['generate_s']} s, checks {s['check_s']} s)"]
        for m in ("bwm", "parametric"):
            if m in s:
                r = s[m]
                lines.append(f"  {m:<10} candidates {r['num_candidates']:>4}  valid {r['valid_rate']:.2f}  "
                             f"expert-solvable {r['expert_solvable_rate']:.2f}  critical {r['critical_rate']:.2f}  "
                             f"stored {r['num_stored']}")
        for row in self.table[self.table["stored"]].head(10).itertuples():
            lines.append(f"  {row.variant_id}  {row.method}:{row.op}  min TTC {row.base_min_ttc_s:.1f} s")
        return "\n".join(lines)


def _rate(x: pd.Series) -> float:
    return float(np.mean(x.astype(float))) if len(x) else float("nan")


def default_checkpoint(ws: Workspace) -> str:
    """Where ``variants train-bwm`` writes and ``variants generate`` reads the behaviour world model by default."""
    return os.path.join(str(ws.root), "models", "bwm", "bwm.pt")


# ------------------------------------------------------------------------------------------- parametric
def _op_candidates(rng: np.random.Generator) -> list[Any]:
    """Seeded parametric ops, in the order to try them."""
    r = lambda lo, hi: round(float(rng.uniform(lo, hi)), 2)  # noqa: E731
    ops = [HardBrake(lead="auto", decel_mps2=r(3.0, 7.0), onset_s=r(0.5, 2.0)),
           CutIn(agent="auto", gap_m=r(4.0, 10.0), duration_s=r(1.5, 3.0), onset_s=r(0.0, 1.5)),
           Stall(agent="auto", at_s=r(0.5, 2.0), decel_mps2=r(2.0, 5.0)),
           PedestrianDartOut(spawn="auto", speed_mps=r(1.2, 2.5), onset_s=r(0.5, 2.0))]
    start = int(rng.integers(len(ops)))
    return ops[start:] + ops[:start]


def parametric_variants(scenarios: Sequence[Scenario], per_scenario: int = 4, seed: int = 0
                        ) -> list[tuple[Scenario, Variant | None, str]]:
    """``per_scenario`` seeded parametric variants of each scenario: ``(parent, variant or None, reason)``.

    Request k of a parent draws its op order and parameters from ``(seed, parent id, k)``; the first op that
    fits the scene is applied.
    """
    out = []
    for s in scenarios:  # each request is one make_variant (ops are vectorised inside)
        for k in range(per_scenario):
            key = np.frombuffer(f"{seed}:{k}:{s.scenario_id}".encode(), np.uint8)
            rng = np.random.default_rng([int(seed), int(k)] + key.astype(int).tolist())
            reasons = []
            for op in _op_candidates(rng):
                try:
                    out.append((s, make_variant(s, [op], seed=seed, objective=f"parametric: {op.name}"), ""))
                    break
                except InfeasibleEditError as exc:
                    reasons.append(f"{op.name}: {str(exc)[:80]}")
            else:
                out.append((s, None, "; ".join(reasons)))
    return out


def _behaviour_variants(model: "BehaviourWorldModel", parents: Sequence[Scenario], config: GenerateConfig
                        ) -> list[Variant]:
    """Scenes without an attacker: ``per_failure`` realism-guided samples of all their moving agents."""
    from .bwm import default_agents, sample_variants

    reqs = [(p, default_agents(p, model.config.features.max_agents), k) for p in parents
            for k in range(config.per_failure)]
    reqs = [r for r in reqs if len(r[1])]
    if not reqs:
        return []
    cfg = replace(config.guidance, attack_weight=0.0)
    from .adversarial import distance_fields, make_guide
    from .bwm_features import pack_scenes

    items, gen = [r[0] for r in reqs], [r[1] for r in reqs]
    batch = pack_scenes(items, model.config.features, gen)
    guide = make_guide(model, batch, torch.full((len(items),), -1), distance_fields(items, cfg), cfg)
    return sample_variants(model, items, gen, seed=config.seed, guide=guide, guidance="realism",
                           index=[r[2] for r in reqs], objective="behaviour variation (no attacker near the ego)",
                           batch=batch)


# ------------------------------------------------------------------------------------------------ checks
def evaluate_candidates(parents: Sequence[Scenario], variants: Sequence[Variant], expert: "Planner",
                        base: "Planner | None" = None, config: GenerateConfig = GenerateConfig()) -> pd.DataFrame:
    """Validity (vs its parent), expert closed loop on the valid ones and criticality of each variant."""
    from ..mining.evaluate import WE_CLOSED_LOOP, EvalConfig

    n = len(variants)
    cols = {c: [] for c in CANDIDATE_COLUMNS}
    if not n:
        return pd.DataFrame(cols)
    rep = realism_report([v.scenario for v in variants], parents)
    ev = EvalConfig(sim=WE_CLOSED_LOOP, batch_size=config.batch_size)
    valid = rep["valid"].to_numpy(bool)
    exp_ok = np.zeros(n, bool)
    exp_ttc = np.full(n, np.inf)
    base_ok = np.zeros(n, bool)
    base_ttc = np.full(n, np.inf)
    idx = np.flatnonzero(valid)
    if len(idx):
        t = closed_loop_check([variants[i].scenario for i in idx], expert, ev, config.ttc_threshold_s)
        exp_ok[idx], exp_ttc[idx] = t["success"].to_numpy(bool), t["min_ttc_s"].to_numpy(float)
        if base is None:
            base_ok[idx], base_ttc[idx] = exp_ok[idx], exp_ttc[idx]
        else:
            tb = closed_loop_check([variants[i].scenario for i in idx], base, ev, config.ttc_threshold_s)
            base_ok[idx], base_ttc[idx] = tb["success"].to_numpy(bool), tb["min_ttc_s"].to_numpy(float)
    return pd.DataFrame({
        "parent_id": [v.parent_id for v in variants], "variant_id": [v.variant_id for v in variants],
        "method": ["parametric" if v.op_records()[0]["op"] != "bwm_sample" else "bwm" for v in variants],
        "op": [v.op_records()[0]["op"] for v in variants], "valid": valid,
        "kinematics_ok": rep["kinematics_ok"].to_numpy(bool), "offroad_rate": rep["offroad_rate"].to_numpy(float),
        "num_collisions": rep["num_collisions"].to_numpy(int), "expert_success": exp_ok,
        "expert_min_ttc_s": exp_ttc, "base_success": base_ok, "base_min_ttc_s": base_ttc,
        "critical": valid & (~base_ok | (base_ttc < config.ttc_threshold_s)), "stored": np.zeros(n, bool)})


# -------------------------------------------------------------------------------------------- the request
def _failure_scenarios(ws: Workspace, failures: str, limit: int | None) -> tuple[list[Scenario], int]:
    from ..mining.store import load_failure_cases

    cases = load_failure_cases(ws, None if failures in ("latest", "", None) else failures)
    if not len(cases):
        raise WorkspaceError(f"generate_variants(failures={failures!r}): no failure cases in {ws.root}; mine a "
                             "planner first (`worldengine-lab mine --planner ... --split mine`)")
    ids = list(dict.fromkeys(cases["scenario_id"].astype(str)))
    if limit is not None:
        ids = ids[:limit]
    found = ws.scenarios(ids=tuple(ids))
    scenarios = list(found)
    missing = sorted(set(ids) - {s.scenario_id for s in scenarios})
    if missing:
        logger.warning("%d failure windows are not in the catalog and are skipped: %s", len(missing), missing[:5])
    by_id = {s.scenario_id: s for s in scenarios}
    return [by_id[i] for i in ids if i in by_id], len(cases)


def generate_variants(ws: Workspace, failures: str = "latest", config: GenerateConfig = GenerateConfig(),
                      model: "BehaviourWorldModel | None" = None, checkpoint: str | os.PathLike[str] | None = None,
                      base: "Planner | None" = None, limit: int | None = None,
                      scenarios: Sequence[Scenario] | None = None) -> GenerateResult:
    """Make, check and store variants of mined failures (see the module docstring).

    Args:
        ws: the workspace (failure cases in, variants out).
        failures: an evaluation run id, or ``"latest"``.
        config: :class:`GenerateConfig`.
        model / checkpoint: the behaviour world model (default checkpoint: :func:`default_checkpoint`); needed
            for ``method`` ``"bwm"`` and ``"both"``.
        base: the planner whose criticality is measured (default: the expert).
        limit: only the first ``limit`` failure cases (by rank).
        scenarios: parents to use instead of the failure cases.
    Raises:
        WorkspaceError: no failure cases. MissingFileError: no behaviour world model checkpoint.
    """
    from ..planners.registry import load_planner

    if config.method not in ("bwm", "parametric", "both"):
        raise WorkspaceError(f"generate_variants: expected method 'bwm', 'parametric' or 'both', received "
                             f"{config.method!r}")
    if scenarios is None:
        parents, num_failures = _failure_scenarios(ws, failures, limit)
    else:
        parents, num_failures = list(scenarios), len(scenarios)
    from ..mining.evaluate import WE_CLOSED_LOOP, EvalConfig

    expert = load_planner("expert")
    t0 = time.perf_counter()
    traps = 0
    if config.solvable_parents_only and parents:
        ok = closed_loop_check(parents, expert, EvalConfig(sim=WE_CLOSED_LOOP, batch_size=config.batch_size))
        keep_p = ok["success"].to_numpy(bool)
        traps = int((~keep_p).sum())
        if traps:
            logger.info("%d of %d failures are not solved by the expert either; not varied", traps, len(parents))
        parents = [p for p, k in zip(parents, keep_p) if k]
    variants: list[Variant] = []
    by_parent = {s.scenario_id: s for s in parents}
    if config.method in ("parametric", "both"):
        made = parametric_variants(parents, config.per_failure, config.seed)
        variants += [v for _, v, _ in made if v is not None]
        skipped = [(p.scenario_id, why) for p, v, why in made if v is None]
        if skipped:
            logger.info("%d parametric requests found no op that fits: %s", len(skipped), skipped[:3])
    if config.method in ("bwm", "both"):
        if model is None:
            from .bwm_model import load_bwm

            model, _ = load_bwm(checkpoint or default_checkpoint(ws))
        variants += adversarial_variants(model, parents, config.per_failure, config.seed, config.guidance)
        variants += _behaviour_variants(model, [p for p in parents if choose_attacker(p) < 0], config)
    gen_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    table = evaluate_candidates([by_parent[v.parent_id] for v in variants], variants, expert, base, config)
    check_s = time.perf_counter() - t1
    keep = table["valid"] & table["expert_success"] if not config.keep_all else pd.Series(True, index=table.index)
    stored = [save_variant(ws, variants[i]) for i in np.flatnonzero(keep.to_numpy(bool))]
    table["stored"] = keep.to_numpy(bool)
    logger.info("generated %d variants of %d parents, stored %d", len(variants), len(parents), len(stored))
    return GenerateResult(table=table, variants=variants, stored=stored, num_failures=num_failures,
                          generate_s=gen_s, check_s=check_s, num_parents=len(parents), num_trap_parents=traps)
