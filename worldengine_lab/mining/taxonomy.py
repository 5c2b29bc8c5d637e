"""Failure taxonomy: which §4 rule each failed scenario hits, what kind of failure it was, and where.

:func:`classify_failures` runs the rare-case rules of spec/metrics.md §4 (:func:`~worldengine_lab.mining.mine_rare_cases`,
reused as is) on a per-scenario result table, separately for every ``(planner_id, mode)``, and returns one row per
(scenario, rule hit) with the scenario's context from the workspace catalog and a sentence saying why it failed.
:func:`taxonomy_counts` tallies those rows by rule x failure type x scenario tag x map context.

Scenario context, derived from the catalog only (no map geometry is read):

* ``tag``: the scenario's first ``rare_*`` event tag, else its first other tag, else ``'untagged'``;
* ``map_context``: ``'intersection'`` if any tag names an intersection, a turn, a traffic light, a stop sign, a
  red-light runner or an unprotected left; else ``'crosswalk'`` if a tag names a crosswalk; else ``'carpark'``
  (car park, pick-up/drop-off); else ``'road'``. Scenarios missing from the catalog get ``'unknown'``.

Examples:
    >>> import pandas as pd
    >>> res = pd.DataFrame({"scenario_id": ["a", "b"], "planner_id": "p", "mode": "open_loop",
    ...     "no_at_fault_collisions": [1.0, 0.0], "drivable_area_compliance": [1.0, 1.0],
    ...     "ego_progress": [0.9, 0.0], "time_to_collision_within_bound": [1.0, 0.0], "comfort": 1.0,
    ...     "driving_direction_compliance": 1.0, "score": [0.95, 0.0], "collided_with": ["", "pedestrian"]})
    >>> cat = pd.DataFrame({"scenario_id": ["a", "b"], "map_name": "m", "tags": [[], ["on_intersection"]]})
    >>> classify_failures(res, cat)[["scenario_id", "rule", "map_context", "reason"]].to_dict("records")
    [{'scenario_id': 'b', 'rule': 'collision', 'map_context': 'intersection', 'reason': 'at-fault collision with a pedestrian (NC 0, PDMS 0.00)'}]
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import MissingColumnError, ShapeError
from .rules import mine_rare_cases, percentile_name

__all__ = [
    "RULES", "MODES", "METRIC_COLUMNS", "FAILURE_COLUMNS", "classify_failures", "taxonomy_counts",
    "scenario_context",
]

logger = logging.getLogger(__name__)

RULES: tuple[str, ...] = ("collision", "off_road", "low_progress")
"""The §4 rules, in ranking order (collisions first)."""

MODES: tuple[str, ...] = ("open_loop", "closed_loop")
"""Evaluation modes of a result row."""

METRIC_COLUMNS: tuple[str, ...] = (
    "no_at_fault_collisions", "drivable_area_compliance", "ego_progress", "time_to_collision_within_bound",
    "comfort", "driving_direction_compliance", "score",
)
"""The per-scene columns of spec/metrics.md §2.13, each in [0, 1]."""

FAILURE_COLUMNS: tuple[str, ...] = (
    ("scenario_id", "planner_id", "mode", "rule", "failure_type", "collided_with", "tag", "map_name", "map_context")
    + METRIC_COLUMNS + ("success", "first_violation_step", "raw_progress_m", "ep_threshold", "reason")
)
"""Columns of :func:`classify_failures`, in order."""

_CL_HISTORY_STEPS = 3  # closed-loop step 3 is "now" (spec §3.1)
_CL_STEP_S = 0.5  # closed-loop simulation step, s (spec §3.1)
_INTERSECTION_RE = r"intersection|_turn|traffic_light|stop_sign|red_light|unprotected_left"
_CONTEXTS = ("intersection", "crosswalk", "carpark", "road")
_RULE_KEYS = {"collision": "collision", "off_road": "off_road"}  # low_progress -> "_ep_<p>pct"


# -- scenario context ---------------------------------------------------------------------------------------
def scenario_context(catalog: pd.DataFrame | None) -> pd.DataFrame:
    """One row per catalogued scenario: ``scenario_id``, ``map_name``, ``tag``, ``map_context`` (module docstring).

    Args:
        catalog: ``Workspace.catalog()`` or any frame with ``scenario_id`` and optionally ``map_name`` and
            ``tags`` (a list of str per row; a str is one tag; None/empty for none). ``None`` gives an empty frame.
    """
    cols = ["scenario_id", "map_name", "tag", "map_context"]
    if catalog is None or len(catalog) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    if "scenario_id" not in catalog.columns:
        raise MissingColumnError(f"catalog: expected a 'scenario_id' column (Workspace.catalog()), received "
                                 f"columns {list(catalog.columns)}")
    cat = catalog.drop_duplicates("scenario_id")
    ids = cat["scenario_id"].astype(str).to_numpy()
    out = pd.DataFrame({"scenario_id": ids})
    out["map_name"] = (cat["map_name"].fillna("").astype(str).to_numpy() if "map_name" in cat.columns else "")
    tags = cat["tags"] if "tags" in cat.columns else pd.Series([[]] * len(cat), dtype=object)
    long = pd.DataFrame({"scenario_id": ids, "tag": tags.to_numpy()}).explode("tag").dropna(subset=["tag"])
    long["tag"] = long["tag"].astype(str)
    long = long[long["tag"].str.len() > 0]
    # primary tag: the first rare_* tag, else the first tag (stable sort keeps each row's list order)
    is_rare = long["tag"].str.startswith("rare_")
    primary = long.assign(_rank=np.where(is_rare, 0, 1)).sort_values("_rank", kind="stable")
    primary = primary.drop_duplicates("scenario_id").set_index("scenario_id")["tag"]
    # map context: the highest-priority context any tag names
    code = np.select(
        [long["tag"].str.contains(_INTERSECTION_RE, regex=True), long["tag"].str.contains("crosswalk"),
         long["tag"].str.contains("carpark|pickup_dropoff", regex=True)], [0, 1, 2], default=3)
    best = pd.Series(code, index=long["scenario_id"].to_numpy()).groupby(level=0).min()
    out["tag"] = out["scenario_id"].map(primary).astype(object).fillna("untagged").astype(str)
    ctx = out["scenario_id"].map(best).fillna(3).astype(int).to_numpy()
    out["map_context"] = np.asarray(_CONTEXTS, dtype=object)[ctx]
    return out[cols]


# -- inputs -------------------------------------------------------------------------------------------------
def _prepare_results(results: pd.DataFrame) -> pd.DataFrame:
    """Validate the result table, fill optional columns, drop invalid rows (NaN metrics or ``valid`` False)."""
    if not isinstance(results, pd.DataFrame):
        raise ShapeError(f"classify_failures.results: expected a pandas DataFrame, received {type(results).__name__}")
    need = ("scenario_id", "planner_id", "mode") + METRIC_COLUMNS
    missing = [c for c in need if c not in results.columns]
    if missing:
        raise MissingColumnError(
            f"classify_failures.results: expected columns {list(need)} (one row per scenario x planner x mode, "
            f"as mining.evaluate returns), missing {missing}; received {list(results.columns)}")
    t = results.reset_index(drop=True).copy()
    t["scenario_id"] = t["scenario_id"].astype(str)
    t["planner_id"] = t["planner_id"].astype(str)
    t["mode"] = t["mode"].astype(str)
    bad_modes = sorted(set(t["mode"]) - set(MODES))
    if bad_modes:
        raise ShapeError(f"classify_failures.results['mode']: expected values in {list(MODES)}, received "
                         f"{bad_modes}")
    for c in METRIC_COLUMNS:
        t[c] = pd.to_numeric(t[c], errors="coerce").astype("float64")
    usable = np.isfinite(t[["no_at_fault_collisions", "drivable_area_compliance", "ego_progress"]].to_numpy()).all(1)
    if "valid" in t.columns:
        usable &= t["valid"].fillna(False).astype(bool).to_numpy()
    if not usable.all():
        logger.info("classify_failures: skipping %d invalid rows (evaluation errors or NaN NC/DAC/EP)",
                    int((~usable).sum()))
        t = t[usable].reset_index(drop=True)
    nc, dac = t["no_at_fault_collisions"], t["drivable_area_compliance"]
    # missing failure types are derived as mining.evaluate would, without violation timing (collision first)
    derived = pd.Series(np.select([nc == 0.0, dac == 0.0, nc == 0.5], ["collision", "off_road", "static_collision"],
                                  default="none"), index=t.index)
    given = t["failure_type"].astype(object) if "failure_type" in t.columns else pd.Series(None, index=t.index)
    t["failure_type"] = given.where(given.notna() & (given != ""), derived).astype(str)
    t["collided_with"] = (t["collided_with"].fillna("").astype(str) if "collided_with" in t.columns else "")
    t["success"] = (t["success"].fillna(False).astype(bool) if "success" in t.columns else (nc == 1.0) & (dac == 1.0))
    t["first_violation_step"] = (pd.to_numeric(t["first_violation_step"], errors="coerce").fillna(-1).astype("int64")
                                 if "first_violation_step" in t.columns else -1)
    t["raw_progress_m"] = (pd.to_numeric(t["raw_progress_m"], errors="coerce").astype("float64")
                           if "raw_progress_m" in t.columns else np.nan)
    for c in ("first_collision_time_s", "first_offroad_time_s"):
        t[c] = pd.to_numeric(t[c], errors="coerce").astype("float64") if c in t.columns else np.nan
    return t


def _check_rules(rules: Sequence[str]) -> tuple[str, ...]:
    items = (rules,) if isinstance(rules, str) else tuple(rules)
    bad = [r for r in items if r not in RULES]
    if bad or not items:
        raise ShapeError(f"classify_failures.rules: expected a non-empty subset of {list(RULES)}, received "
                         f"{list(items)}")
    return tuple(dict.fromkeys(items))


def _ep_threshold(group: pd.DataFrame, percentile: float) -> float:
    """The §4 low-progress threshold of one group, for the reason sentence only (membership comes from
    :func:`mine_rare_cases`); NaN when the safe pool is empty."""
    ep = group["ego_progress"].to_numpy()
    pool = (group["no_at_fault_collisions"].to_numpy() == 1.0) & (group["drivable_area_compliance"].to_numpy() == 1.0) \
        & (ep > 0.0)
    return float(np.percentile(ep[pool], percentile)) if pool.any() else float("nan")


# -- reasons ------------------------------------------------------------------------------------------------
def ordinal(p: float) -> str:
    """``1 → '1st'``, ``2 → '2nd'``, ``13 → '13th'``, ``0.5 → '0.5th'``."""
    name = percentile_name(p)
    if "." in name:
        return name + "th"
    n = int(name)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _fmt(values: pd.Series, spec: str) -> pd.Series:
    return values.map(lambda v: format(float(v), spec))


def _when(t: pd.DataFrame, time_col: str, own_type: str) -> pd.Series:
    """' at 1.4 s' from ``time_col`` (s after "now"), else ' at step k (~x s after now)' for closed-loop rows whose
    first violation is this one, else ''."""
    step = t["first_violation_step"]
    after = (step - _CL_HISTORY_STEPS) * _CL_STEP_S
    by_step = (t["mode"] == "closed_loop") & (step >= _CL_HISTORY_STEPS) & (t["failure_type"] == own_type)
    has_time = np.isfinite(t[time_col])
    text_time = " at " + _fmt(t[time_col].fillna(0.0), ".1f") + " s"
    text_step = " at step " + step.astype(str) + " (~" + _fmt(after, ".1f") + " s after now)"
    return pd.Series(np.where(has_time, text_time, np.where(by_step, text_step, "")), index=t.index)


def _reasons(t: pd.DataFrame, percentile: float) -> pd.Series:
    """One human-readable sentence per hit row (vectorised over rows)."""
    pdms = " PDMS " + _fmt(t["score"], ".2f") + ")"
    # collision
    who = t["collided_with"].str.replace("_", " ", regex=False)
    article = np.where(who.str.match(r"^[aeiou]"), "an ", "a ")
    with_who = pd.Series(np.where(who != "", " with " + article + who, ""), index=t.index)
    also_off = pd.Series(np.where(t["drivable_area_compliance"] == 0.0, " and left the drivable area", ""), index=t.index)
    collision = ("at-fault collision" + with_who + _when(t, "first_collision_time_s", "collision") + also_off
                 + " (NC " + _fmt(t["no_at_fault_collisions"], "g") + "," + pdms)
    # off-road
    off_road = ("left the drivable area" + _when(t, "first_offroad_time_s", "off_road")
                + " (DAC " + _fmt(t["drivable_area_compliance"], "g") + "," + pdms)
    # low progress
    ep_s, thr_s = _fmt(t["ego_progress"], ".2f"), _fmt(t["ep_threshold"].fillna(0.0), ".2f")
    tie = ep_s == thr_s
    ep_s = ep_s.where(~tie, _fmt(t["ego_progress"], ".4f"))
    thr_s = thr_s.where(~tie, _fmt(t["ep_threshold"].fillna(0.0), ".4f"))
    ref = np.where(t["mode"] == "closed_loop", "expert's", "reference planner's")
    raw = pd.Series(np.where(np.isfinite(t["raw_progress_m"]), " (" + _fmt(t["raw_progress_m"].fillna(0.0), ".1f")
                             + " m)", ""), index=t.index)
    low = ("progress " + ep_s + " of the " + ref + raw + ", below the " + ordinal(percentile) + " percentile "
           + thr_s + " of safe scenarios")
    return pd.Series(np.select([t["rule"] == "collision", t["rule"] == "off_road"], [collision, off_road], low),
                     index=t.index)


# -- public -------------------------------------------------------------------------------------------------
def classify_failures(results: pd.DataFrame, catalog: pd.DataFrame | None, percentile: float = 1.0,
                      rules: Sequence[str] = RULES) -> pd.DataFrame:
    """Apply the §4 rules per ``(planner_id, mode)`` and describe every hit.

    Args:
        results: one row per scenario x planner x mode with ``scenario_id``, ``planner_id``, ``mode``
            (``'open_loop'`` | ``'closed_loop'``) and the §2.13 columns (:data:`METRIC_COLUMNS`, in [0, 1]);
            optional ``failure_type`` (derived from NC/DAC if absent), ``collided_with`` (agent type name or ''),
            ``success``, ``first_violation_step`` (closed-loop step, -1 none), ``raw_progress_m`` (m),
            ``first_collision_time_s`` / ``first_offroad_time_s`` (s after "now"), ``valid``. Rows with NaN
            NC/DAC/EP or ``valid`` False (evaluation errors) are skipped, as §2.13 excludes them.
        catalog: ``Workspace.catalog()`` (or a frame with ``scenario_id``, ``map_name``, ``tags``) for context.
        percentile: p in [0, 100] of the low-progress rule.
        rules: which of :data:`RULES` to apply.
    Returns:
        One row per (scenario, rule hit) with :data:`FAILURE_COLUMNS`, ordered by planner, mode, rule
        (:data:`RULES` order), then input order. A scenario in several sets has several rows. ``ep_threshold``
        is the group's low-progress EP threshold (NaN when its safe pool is empty). ``reason`` reads e.g.
        "at-fault collision with a pedestrian at step 8 (~2.5 s after now) (NC 0, PDMS 0.00)".
    Raises:
        MissingColumnError: a required column is missing. ShapeError: bad mode, rules, percentile, or a
        scenario_id repeated within one (planner_id, mode).
    """
    rules = _check_rules(rules)
    t = _prepare_results(results)
    t["_order"] = np.arange(len(t))
    hits: list[pd.DataFrame] = []
    for (planner, mode), group in t.groupby(["planner_id", "mode"], sort=True):  # a few groups, not rows
        dup = group["scenario_id"][group["scenario_id"].duplicated()]
        if len(dup):
            raise ShapeError(f"classify_failures.results: scenario_id {dup.iloc[0]!r} appears more than once for "
                             f"planner {planner!r}, mode {mode!r}; pass one row per scenario x planner x mode")
        sets = mine_rare_cases(group, "set", percentile, token_column="scenario_id")
        threshold = _ep_threshold(group, percentile)
        for rule in rules:
            key = f"set_{_RULE_KEYS[rule]}" if rule in _RULE_KEYS else f"set_ep_{percentile_name(percentile)}pct"
            hit = group[group["scenario_id"].isin(sets[key])]
            hits.append(hit.assign(rule=rule, ep_threshold=threshold))
    if not hits or not sum(len(h) for h in hits):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FAILURE_COLUMNS})
    out = pd.concat([h for h in hits if len(h)], ignore_index=True)
    ctx = scenario_context(catalog)
    out = out.merge(ctx, on="scenario_id", how="left", validate="many_to_one")
    known = out["scenario_id"].isin(ctx["scenario_id"])
    out["tag"] = out["tag"].fillna("untagged").astype(str)
    out["map_name"] = out["map_name"].fillna("").astype(str)
    out["map_context"] = out["map_context"].where(known, "unknown").astype(str)
    out["reason"] = _reasons(out, percentile)
    out["_rule"] = out["rule"].map({r: i for i, r in enumerate(RULES)})
    out = out.sort_values(["planner_id", "mode", "_rule", "_order"], kind="stable")
    return out[list(FAILURE_COLUMNS)].reset_index(drop=True)


def taxonomy_counts(failures: pd.DataFrame,
                    by: Sequence[str] = ("rule", "failure_type", "tag", "map_context")) -> pd.DataFrame:
    """How many failure rows fall in each rule x failure type x scenario tag x map context (or ``by``).

    Args:
        failures: :func:`classify_failures` output (add ``"planner_id"``, ``"mode"`` to ``by`` when it mixes
            planners).
    Returns:
        ``by`` columns + ``count``, largest first (ties in ``by`` order).
    """
    keys = list(by)
    missing = [c for c in keys if c not in failures.columns]
    if missing:
        raise MissingColumnError(f"taxonomy_counts.failures: expected columns {keys} (classify_failures output), "
                                 f"missing {missing}")
    if len(failures) == 0:
        return pd.DataFrame({**{c: pd.Series(dtype=object) for c in keys}, "count": pd.Series(dtype="int64")})
    counts = failures.groupby(keys, dropna=False, sort=True).size().rename("count").reset_index()
    return counts.sort_values(["count"] + keys, ascending=[False] + [True] * len(keys), kind="stable",
                              ignore_index=True)
