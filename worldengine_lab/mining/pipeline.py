"""The mining job: evaluate a planner on a scenario set, keep its failures, cluster and rank them, store it all.

For every evaluation mode (open loop, closed loop; :mod:`~worldengine_lab.mining.evaluate`):

1. evaluate the planner on the scenarios (one result row per scenario);
2. record the run and its rows in the workspace (:func:`~worldengine_lab.mining.save_eval_run`);
3. apply the §4 rules and describe every hit (:func:`~worldengine_lab.mining.classify_failures`, with the
   scenarios' catalog rows for tags and map context; scenarios missing from the catalog get ``'unknown'``);
4. merge failures of overlapping windows into cases and rank them (:func:`~worldengine_lab.mining.cluster_failures`,
   :func:`~worldengine_lab.mining.rank_cases`) and store the cases (:func:`~worldengine_lab.mining.save_failure_cases`).

Scenarios are loaded once and shared by both modes. The planner is passed in ready-built (see
:func:`~worldengine_lab.planners.load_planner`): for the PDM-Closed expert its ``tracking`` should match
``config.sim.tracking`` so that it scores its proposals the way the simulator executes them (a mismatch is
logged as a warning).

Examples:
    >>> from worldengine_lab.planners import load_planner  # doctest: +SKIP
    >>> res = mine(ws, load_planner("expert"), split="test_common")  # doctest: +SKIP
    >>> print(res.report())  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..datatypes import Scenario
from ..errors import ShapeError, WorkspaceError
from ..store.workspace import Workspace
from .clusters import cluster_failures, rank_cases
from .evaluate import EvalConfig, evaluate_closed_loop, evaluate_open_loop, summarize
from .store import save_eval_run, save_failure_cases
from .taxonomy import FAILURE_COLUMNS, MODES, RULES, classify_failures, taxonomy_counts

__all__ = ["MiningResult", "mine", "COUNT_KEYS"]

logger = logging.getLogger(__name__)

COUNT_KEYS: tuple[str, ...] = ("mode", "rule", "failure_type", "tag", "map_context")
"""Columns :attr:`MiningResult.counts` is tallied by (plus ``count``)."""

_RARE_PREFIX = "rare_"
_TOP_CASES = 10


@dataclass(frozen=True)
class MiningResult:
    """What :func:`mine` found.

    Attributes:
        planner_id: the planner evaluated.
        run_ids: mode -> ``run_id`` of the stored evaluation run.
        results: mode -> per-scenario result table (:data:`~worldengine_lab.mining.evaluate.RESULT_COLUMNS`).
        summaries: mode -> :func:`~worldengine_lab.mining.evaluate.summarize` (PDMS ×100, success %, counts, N).
        failures: :func:`~worldengine_lab.mining.classify_failures` rows of every mode, ``run_id`` first.
        cases: ranked cases of every mode (``rank`` restarts at 1 per mode), ``run_id`` first.
        counts: failure rows per :data:`COUNT_KEYS` (:func:`~worldengine_lab.mining.taxonomy_counts`).
        rare_tags: per mode and rare event tag (catalog tags starting with ``rare_``): ``num_scenarios``
            carrying the tag and ``num_failed`` of them hit by at least one rule.
        description: the scenario set, in words (stored with the runs).
    """

    planner_id: str
    run_ids: dict[str, str]
    results: dict[str, pd.DataFrame]
    summaries: dict[str, pd.Series]
    failures: pd.DataFrame
    cases: pd.DataFrame
    counts: pd.DataFrame
    rare_tags: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"mode": [], "tag": [], "num_scenarios": [], "num_failed": []}))
    description: str = ""

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes evaluated, in evaluation order."""
        return tuple(self.results)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: planner, run ids, per-mode summaries, failure counts, rare-tag counts and the
        top-10 cases of each mode (what ``worldengine-lab mine --json`` prints)."""
        top = self.cases[self.cases["rank"] <= _TOP_CASES] if len(self.cases) else self.cases
        keep = [c for c in ("mode", "rank", "case_id", "rule", "failure_type", "collided_with", "scenario_id",
                            "count", "score", "tag", "reason") if c in top.columns]
        return {
            "planner_id": self.planner_id,
            "description": self.description,
            "run_ids": dict(self.run_ids),
            "summaries": {m: {k: _plain(v) for k, v in s.items()} for m, s in self.summaries.items()},
            "counts": _records(self.counts),
            "rare_tags": _records(self.rare_tags),
            "top_cases": _records(top[keep]),
        }

    def report(self) -> str:
        """A readable text block: per mode N, PDMS, success %; failures per rule and per failure type; the
        top-10 ranked cases with their reasons; failed scenarios per rare event tag; the stored run ids."""
        lines = [f"mining {self.planner_id}" + (f" on {self.description}" if self.description else "")]
        lines.append("")
        lines.append(f"  {'mode':<12} {'N':>6} {'PDMS':>7} {'success %':>10} {'collision':>10} {'off_road':>9} "
                     f"{'static':>7}")
        for mode, s in self.summaries.items():
            lines.append(f"  {mode:<12} {int(s['num_scenarios']):>6} {s['pdms']:>7.2f} "
                         f"{s['success_rate_pct']:>10.1f} {int(s['num_collision']):>10} {int(s['num_off_road']):>9} "
                         f"{int(s['num_static_collision']):>7}")
        f = self.failures
        lines.append("")
        lines.append("failures per rule (scenarios hit):")
        lines.extend(_crosstab(f, "rule", list(RULES), self.modes))
        lines.append("failures per failure type (rule hits):")
        types = list(dict.fromkeys(f["failure_type"].astype(str))) if len(f) else []
        lines.extend(_crosstab(f, "failure_type", types, self.modes))
        lines.append("")
        for mode in self.modes:
            c = self.cases[self.cases["mode"] == mode] if len(self.cases) else self.cases
            n = len(c)
            lines.append(f"top cases, {mode} ({min(n, _TOP_CASES)} of {n}):")
            if not n:
                lines.append("  (none)")
            for row in c.head(_TOP_CASES).itertuples(index=False):
                windows = f", {int(row.count)} windows" if int(row.count) > 1 else ""
                lines.append(f"  {int(row.rank):>2}. {row.case_id}  [{row.tag}, {row.map_context}{windows}]")
                lines.append(f"      {row.reason}")
        lines.append("")
        lines.append("rare event tags (failed / scenarios with the tag):")
        rare = self.rare_tags
        if not len(rare):
            lines.append("  (no rare event tags in this set)")
        else:
            cell = {(str(r.tag), str(r.mode)): f"{int(r.num_failed)}/{int(r.num_scenarios)}"
                    for r in rare.itertuples(index=False)}
            lines.append(f"  {'tag':<40}" + "".join(f" {m:>14}" for m in self.modes))
            for tag in sorted({t for t, _ in cell}):
                cells = "".join(f" {cell.get((tag, m), '-'):>14}" for m in self.modes)
                lines.append(f"  {tag:<40}{cells}")
        lines.append("")
        lines.append("runs: " + ", ".join(f"{m} {r}" for m, r in self.run_ids.items()))
        return "\n".join(lines)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (list(v) if isinstance(v, (list, tuple, np.ndarray)) else _plain(v)) for k, v in r.items()}
            for r in frame.to_dict("records")]


def _crosstab(f: pd.DataFrame, column: str, values: list[str], modes: Sequence[str]) -> list[str]:
    """Rows ``value: count per mode`` (distinct scenarios for rules, rows for failure types)."""
    lines = [f"  {'':<18}" + "".join(f" {m:>12}" for m in modes)]
    if not values:
        lines.append("  (none)")
        return lines
    counts = f.groupby([column, "mode"]).size() if len(f) else pd.Series(dtype="int64")
    for v in values:
        lines.append(f"  {v:<18}" + "".join(f" {int(counts.get((v, m), 0)):>12}" for m in modes))
    return lines


def _check_modes(modes: Sequence[str] | str) -> tuple[str, ...]:
    items = (modes,) if isinstance(modes, str) else tuple(modes)
    bad = [m for m in items if m not in MODES]
    if bad or not items:
        raise ShapeError(f"mine(modes): expected a non-empty subset of {list(MODES)}, received {list(items)}")
    return tuple(dict.fromkeys(items))


def _empty_error(workspace: Workspace, split: str | None) -> WorkspaceError:
    try:
        splits = workspace.stats().get("by_split") or {}
    except Exception:  # noqa: BLE001 - the hint is best effort; the error below is what matters
        splits = {}
    where = f"split {split!r}" if split is not None else "the catalog"
    have = (f" (splits here: {', '.join(f'{k} {v}' for k, v in sorted(splits.items()))})" if splits
            else " (the catalog is empty)")
    return WorkspaceError(
        f"mine: {where} of workspace {workspace.root} holds no scenarios{have}; run `worldengine-lab demo` to "
        f"build the embedded world, or import data with `worldengine-lab data import`, or pick another --split")


def _catalog_of(workspace: Workspace, scenarios: object, ids: list[str]) -> pd.DataFrame:
    """Catalog rows of the evaluated scenarios (those not catalogued are simply absent)."""
    from ..scenarios.scenario_set import ScenarioSet

    if isinstance(scenarios, ScenarioSet) and scenarios.workspace.root == workspace.root:
        return scenarios.to_frame()
    return workspace.catalog(ids=list(dict.fromkeys(ids)))


def _rare_tag_counts(catalog: pd.DataFrame, results: dict[str, pd.DataFrame],
                     failures: pd.DataFrame) -> pd.DataFrame:
    """Per mode and rare tag: scenarios carrying it and how many of them failed (any rule)."""
    cols = ["mode", "tag", "num_scenarios", "num_failed"]
    if not len(catalog) or "tags" not in catalog.columns:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("mode", "tag") else "int64") for c in cols})
    long = catalog[["scenario_id", "tags"]].explode("tags").dropna(subset=["tags"])
    long = long[long["tags"].astype(str).str.startswith(_RARE_PREFIX)].rename(columns={"tags": "tag"})
    long["scenario_id"] = long["scenario_id"].astype(str)
    out = []
    for mode, table in results.items():  # one pass per mode (two at most)
        evaluated = long[long["scenario_id"].isin(table["scenario_id"].astype(str))]
        failed_ids = failures.loc[failures["mode"] == mode, "scenario_id"] if len(failures) else []
        hit = evaluated["scenario_id"].isin(set(failed_ids))
        g = evaluated.assign(failed=hit).groupby("tag", sort=True)
        out.append(pd.DataFrame({"mode": mode, "tag": g.size().index,
                                 "num_scenarios": g.size().to_numpy().astype("int64"),
                                 "num_failed": g["failed"].sum().to_numpy().astype("int64")}))
    frame = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)
    return frame[cols].sort_values(["mode", "num_failed", "tag"], ascending=[True, False, True],
                                   ignore_index=True)


def mine(workspace: Workspace, planner: Any, scenarios: Iterable[Scenario] | None = None, split: str | None = None,
         modes: Sequence[str] = MODES, config: EvalConfig = EvalConfig(), percentile: float = 1.0,
         gap_s: float = 4.0, description: str = "", progress: bool = False) -> MiningResult:
    """Evaluate ``planner``, record the runs, mine, cluster, rank and store its failure cases.

    Args:
        workspace: where runs, results and cases are stored and whose catalog gives tags and times.
        planner: a ready :class:`~worldengine_lab.planners.Planner` (``planners.load_planner(spec, tracking)``).
        scenarios: a :class:`~worldengine_lab.scenarios.ScenarioSet` or any iterable of Scenarios (they need
            >= 4 s of log after "now", dt = 0.1 s; Scenarios absent from the catalog are mined with context
            ``'unknown'`` and stay single-window cases). Default: ``workspace.scenarios(split=split)``.
        split: the catalog split to evaluate when ``scenarios`` is None (None: the whole catalog).
        modes: which of ``("open_loop", "closed_loop")`` to run, in this order.
        config: :class:`~worldengine_lab.mining.EvalConfig` (closed-loop agents / tracking in ``config.sim``).
        percentile: p in [0, 100] of the §4 low-progress rule.
        gap_s: largest gap between window "now" times that chains failures into one case, s.
        description: the set in words, stored with the runs (default: ``"split=<split>, <N> scenarios"``).
        progress: tqdm bars on stderr.
    Returns:
        :class:`MiningResult`.
    Raises:
        WorkspaceError: the set is empty (the message says how to build or import data).
        ShapeError / ScenarioValidationError: bad modes or config, or a scenario the evaluation cannot score.
    """
    from ..sim.rollout import _planner_id

    run_modes = _check_modes(modes)
    pid = _planner_id(planner)
    config.validate()
    src = workspace.scenarios(split=split) if scenarios is None else scenarios
    sim_tracking = config.sim.tracking
    own = getattr(getattr(planner, "config", None), "tracking", None)
    if own is not None and "closed_loop" in run_modes and own != sim_tracking:
        logger.warning("mine: planner %r scores its proposals with tracking=%r but the simulator executes plans "
                       "with tracking=%r; build it with planners.load_planner(spec, tracking=%r)", pid, own,
                       sim_tracking, sim_tracking)
    if hasattr(src, "__len__") and len(src) == 0:  # type: ignore[arg-type]
        raise _empty_error(workspace, split)
    items = _load(src, progress)
    if not items:
        raise _empty_error(workspace, split)
    ids = [s.scenario_id for s in items]
    dup = pd.Series(ids)[pd.Series(ids).duplicated()]
    if len(dup):
        raise ShapeError(f"mine(scenarios): scenario_id {dup.iloc[0]!r} appears more than once; pass each scenario "
                         f"once")
    desc = description or (f"split={split}, {len(items)} scenarios" if split is not None
                           else f"{len(items)} scenarios")
    catalog = _catalog_of(workspace, src, ids)
    stored_config = _jsonable({"eval": config, "planner": getattr(planner, "config", None),
                               "percentile": percentile, "gap_s": gap_s, "split": split})

    run_ids: dict[str, str] = {}
    results: dict[str, pd.DataFrame] = {}
    summaries: dict[str, pd.Series] = {}
    failures: list[pd.DataFrame] = []
    cases: list[pd.DataFrame] = []
    for mode in run_modes:
        if mode == "open_loop":
            table = evaluate_open_loop(items, planner, config=config, progress=progress)
        else:
            table = evaluate_closed_loop(items, planner, config=config, progress=progress)
        run_id = save_eval_run(workspace, table, pid, mode, desc, stored_config, seed=config.seed)
        hits = classify_failures(table, catalog, percentile=percentile)
        ranked = rank_cases(cluster_failures(hits, catalog, gap_s=gap_s))
        save_failure_cases(workspace, run_id, ranked)
        run_ids[mode], results[mode], summaries[mode] = run_id, table, summarize(table)
        failures.append(hits.assign(run_id=run_id) if len(hits) else hits.assign(run_id=pd.Series(dtype=object)))
        cases.append(ranked.assign(run_id=run_id) if len(ranked) else ranked.assign(run_id=pd.Series(dtype=object)))
        logger.info("mine %s %s: %d scenarios, %d failure rows, %d cases (run %s)", pid, mode, len(table),
                    len(hits), len(ranked), run_id)

    all_failures = _first(pd.concat(failures, ignore_index=True), "run_id")
    all_cases = _first(pd.concat(cases, ignore_index=True), "run_id")
    if not len(all_failures):
        all_failures = pd.DataFrame({c: pd.Series(dtype=object) for c in ("run_id",) + FAILURE_COLUMNS})
    return MiningResult(
        planner_id=pid, run_ids=run_ids, results=results, summaries=summaries, failures=all_failures,
        cases=all_cases, counts=taxonomy_counts(all_failures, by=COUNT_KEYS),
        rare_tags=_rare_tag_counts(catalog, results, all_failures), description=desc,
    )


def _jsonable(value: Any) -> Any:
    """Dataclasses, mappings and sequences as plain JSON values; other leaves (dtypes, devices) as str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    return str(value)


def _first(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame[[column] + [c for c in frame.columns if c != column]]


def _load(scenarios: Iterable[Scenario], progress: bool) -> list[Scenario]:
    """Materialise the scenarios once (a ScenarioSet reads each window from its log here)."""
    total = len(scenarios) if hasattr(scenarios, "__len__") else None  # type: ignore[arg-type]
    if not progress:
        return list(scenarios)
    from tqdm.auto import tqdm

    return list(tqdm(scenarios, total=total, desc="load scenarios", unit="scenario", leave=False))
