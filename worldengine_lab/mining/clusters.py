"""Failure cases: near-duplicate failures from overlapping windows of one log collapse into one case, then rank.

Windows are cut from logs with overlap, so one real event (say, a cut-in the planner hits) often fails in several
windows whose "now" times are a second or two apart. :func:`cluster_failures` merges failure rows with the same
planner, mode, rule and log whose window "now" times chain within ``gap_s`` seconds (sorted by time, a new case
starts wherever the gap to the previous window exceeds ``gap_s``), and keeps the worst-scoring window as the
case's representative. :func:`rank_cases` orders cases for review: collisions, then off-road, then low progress;
within a rule by score ascending, then by size descending.

Window "now" time (s, dataset clock) = ``start_time_s + t0 * dt`` with ``dt = duration_s / (num_steps - 1)``.
Failures whose scenario is not catalogued, or has no log id or no times, stay single-window cases.

Examples:
    >>> import pandas as pd
    >>> f = pd.DataFrame({"scenario_id": ["w0", "w1", "w2"], "planner_id": "p", "mode": "closed_loop",
    ...                   "rule": "collision", "score": [0.0, 0.0, 0.0]})
    >>> cat = pd.DataFrame({"scenario_id": ["w0", "w1", "w2"], "log_id": "L", "start_time_s": [0.0, 1.0, 9.0],
    ...                     "duration_s": 10.0, "num_steps": 101, "t0": 20})
    >>> cluster_failures(f, cat)[["case_id", "count", "members"]].to_dict("records")
    [{'case_id': 'collision-w0', 'count': 2, 'members': ['w0', 'w1']}, {'case_id': 'collision-w2', 'count': 1, 'members': ['w2']}]
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import MissingColumnError, ShapeError
from .taxonomy import RULES

__all__ = ["CASE_COLUMNS", "window_now_s", "cluster_failures", "rank_cases"]

CASE_COLUMNS: tuple[str, ...] = (
    "case_id", "planner_id", "mode", "rule", "scenario_id", "count", "members", "failure_type", "collided_with",
    "tag", "map_name", "map_context", "log_id", "first_now_s", "last_now_s", "score", "reason",
)
"""Columns of :func:`cluster_failures` (``scenario_id`` is the representative; ``score`` the worst in the case)."""

_TIME_COLUMNS = ("scenario_id", "log_id", "start_time_s", "duration_s", "num_steps", "t0")
_CARRIED = ("failure_type", "collided_with", "tag", "map_name", "map_context", "reason")
_KEY = ["planner_id", "mode", "rule", "_log"]


def window_now_s(catalog: pd.DataFrame) -> pd.Series:
    """``[rows]`` float64: each catalog window's "now" time, s on the dataset clock (NaN where unknown).

    Args:
        catalog: frame with ``start_time_s`` (s), ``duration_s`` (s), ``num_steps`` and ``t0``.
    """
    missing = [c for c in _TIME_COLUMNS[2:] if c not in catalog.columns]
    if missing:
        raise MissingColumnError(f"window_now_s.catalog: expected columns {list(_TIME_COLUMNS[2:])} "
                                 f"(Workspace.catalog()), missing {missing}")
    num = {c: pd.to_numeric(catalog[c], errors="coerce").astype("float64") for c in _TIME_COLUMNS[2:]}
    steps = num["num_steps"].where(num["num_steps"] > 1)
    dt = num["duration_s"] / (steps - 1.0)
    return num["start_time_s"] + num["t0"] * dt


def cluster_failures(failures: pd.DataFrame, catalog: pd.DataFrame, gap_s: float = 4.0) -> pd.DataFrame:
    """Collapse failures of overlapping windows into cases.

    Args:
        failures: :func:`~worldengine_lab.mining.classify_failures` output (needs ``scenario_id``, ``planner_id``,
            ``mode``, ``rule``, ``score``; carries ``failure_type``, ``collided_with``, ``tag``, ``map_name``,
            ``map_context``, ``reason`` when present).
        catalog: ``Workspace.catalog()`` (``scenario_id``, ``log_id``, ``start_time_s``, ``duration_s``,
            ``num_steps``, ``t0``).
        gap_s: largest gap between consecutive window "now" times (s) that still chains them into one case.
    Returns:
        One row per case with :data:`CASE_COLUMNS`: ``case_id`` = ``'<rule>-<representative scenario_id>'``
        (stable across reruns; unique within one planner x mode), the representative (lowest score; ties: the
        earliest window, then the smallest id) and its failure fields and reason, ``count`` (distinct member
        windows), ``members`` (their ids in time order), ``first_now_s`` / ``last_now_s`` (s, dataset clock) and
        ``score`` (the worst). Ordered by planner, mode, rule, log and time; see :func:`rank_cases`.
    """
    if not np.isfinite(gap_s) or gap_s < 0:
        raise ShapeError(f"cluster_failures.gap_s: expected a finite number of seconds >= 0, received {gap_s!r}")
    need = ("scenario_id", "planner_id", "mode", "rule", "score")
    missing = [c for c in need if c not in failures.columns]
    if missing:
        raise MissingColumnError(f"cluster_failures.failures: expected columns {list(need)} (classify_failures "
                                 f"output), missing {missing}")
    if len(failures) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CASE_COLUMNS})
    missing = [c for c in _TIME_COLUMNS if c not in catalog.columns]
    if missing:
        raise MissingColumnError(f"cluster_failures.catalog: expected columns {list(_TIME_COLUMNS)} "
                                 f"(Workspace.catalog()), missing {missing}")
    cat = catalog[list(_TIME_COLUMNS)].drop_duplicates("scenario_id")
    ctx = pd.DataFrame({"scenario_id": cat["scenario_id"].astype(str).to_numpy(),
                        "log_id": cat["log_id"].fillna("").astype(str).to_numpy(),
                        "_now": window_now_s(cat).to_numpy()})
    f = failures.reset_index(drop=True).copy()
    for c in ("scenario_id", "planner_id", "mode", "rule"):
        f[c] = f[c].astype(str)
    f["score"] = pd.to_numeric(f["score"], errors="coerce").astype("float64")
    for c in _CARRIED:
        if c not in f.columns:
            f[c] = ""
    f = f.drop(columns=[c for c in ("log_id", "_now") if c in f.columns]).merge(ctx, on="scenario_id", how="left")
    f["log_id"] = f["log_id"].fillna("").astype(str)
    alone = (f["log_id"] == "") | ~np.isfinite(f["_now"])
    f["_log"] = f["log_id"].where(~alone, "\x00" + f["scenario_id"])  # never chains with anything else
    # chain windows: sort, then a new case wherever the key changes or the time gap exceeds gap_s
    f = f.sort_values(_KEY + ["_now", "scenario_id"], kind="stable", ignore_index=True)
    same_key = (f[_KEY] == f[_KEY].shift()).all(axis=1)
    close = (f["_now"].diff() <= gap_s).to_numpy()
    f["_case"] = np.cumsum(~(same_key.to_numpy() & close))
    # representative: worst score, then earliest window, then smallest id
    rep = f.sort_values(["_case", "score", "_now", "scenario_id"], kind="stable", na_position="last")
    rep = rep.drop_duplicates("_case").set_index("_case")
    grouped = f.groupby("_case", sort=True)
    members = grouped["scenario_id"].unique().map(list)
    out = rep.assign(
        members=members, count=members.map(len).astype("int64"),
        first_now_s=grouped["_now"].min(), last_now_s=grouped["_now"].max(), score=grouped["score"].min(),
    ).reset_index(drop=True)
    out["case_id"] = out["rule"] + "-" + out["scenario_id"]
    out["_rule"] = out["rule"].map({r: i for i, r in enumerate(RULES)}).fillna(len(RULES))
    out = out.sort_values(["planner_id", "mode", "_rule", "log_id", "first_now_s", "case_id"], kind="stable")
    return out[list(CASE_COLUMNS)].reset_index(drop=True)


def rank_cases(cases: pd.DataFrame) -> pd.DataFrame:
    """Order cases for review and number them.

    Order: collisions, then off-road, then low progress (unknown rules last); within a rule by ``score``
    ascending (NaN last), then ``count`` descending, then ``case_id``. ``rank`` runs 1..n within each
    (planner_id, mode) present (1..n overall for one planner and mode).

    Args:
        cases: :func:`cluster_failures` output (needs ``case_id``, ``rule``, ``score``, ``count``).
    Returns:
        A copy with ``rank`` (int64) as the first column, sorted by it.
    """
    need = ("case_id", "rule", "score", "count")
    missing = [c for c in need if c not in cases.columns]
    if missing:
        raise MissingColumnError(f"rank_cases.cases: expected columns {list(need)} (cluster_failures output), "
                                 f"missing {missing}")
    groups = [c for c in ("planner_id", "mode") if c in cases.columns]
    c = cases.drop(columns=["rank"], errors="ignore").copy()
    c["_rule"] = c["rule"].map({r: i for i, r in enumerate(RULES)}).fillna(len(RULES))
    c["_score"] = pd.to_numeric(c["score"], errors="coerce")
    c["_count"] = -pd.to_numeric(c["count"], errors="coerce").fillna(0)
    c = c.sort_values(groups + ["_rule", "_score", "_count", "case_id"], kind="stable", na_position="last",
                      ignore_index=True)
    rank = (c.groupby(groups, sort=False).cumcount() if groups else pd.Series(np.arange(len(c)))) + 1
    c.insert(0, "rank", rank.astype("int64").to_numpy())
    return c.drop(columns=["_rule", "_score", "_count"])
