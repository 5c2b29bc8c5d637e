"""The failure table: one row per stored failure case, joined with its run, its result row and its catalog row.

This is what an analyst browses and filters (:class:`~worldengine_lab.mining.failure_filter.FailureFilter`):

* the case (``failure_cases``): ``run_id``, ``rank``, ``case_id``, ``cluster_id`` (the case: a cluster of
  overlapping windows of one event; equal to ``case_id`` for stored cases), ``scenario_id`` (the representative
  window), ``rule``, ``failure_type``, ``collided_with``, ``case_tag`` (its primary tag when mined),
  ``map_context``, ``count`` (windows), ``members`` (list of window ids), ``reason``;
* the run (``eval_runs``): ``planner_id``, ``mode``;
* the representative's result row (``eval_results``): the §2.13 columns (``score`` falls back to the case's worst
  score), ``success``, ``first_violation_step``, ``raw_progress_m``;
* the catalog **now** (so tags added since mining show): ``map_name``, ``location``, ``log_id``, ``split``,
  ``tags`` (sorted list). Uncatalogued ids get empty values.

:func:`table_records` turns a page of rows into JSON-ready dicts (what a widget sends).
:func:`synthetic_failure_table` builds a table of the same layout with any number of rows (benchmarks, demos) and
:func:`write_synthetic_failures` stores a small synthetic evaluation through the mining store API (tests,
notebooks without a planner run).

Examples:
    >>> import tempfile
    >>> from worldengine_lab.store import Workspace
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> run = write_synthetic_failures(ws, num_scenarios=40, seed=0)
    >>> t = failure_table(ws)
    >>> bool((t["run_id"] == run).all()), t["rank"].tolist()[:3]
    (True, [1, 2, 3])
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import ShapeError, WorkspaceError
from ..store.workspace import Workspace
from .clusters import cluster_failures, rank_cases
from .store import save_eval_run, save_failure_cases
from .taxonomy import METRIC_COLUMNS, MODES, RULES, classify_failures

__all__ = [
    "FAILURE_TABLE_COLUMNS", "failure_table", "catalog_tags", "table_records", "synthetic_failure_table",
    "write_synthetic_failures",
]

FAILURE_TABLE_COLUMNS: tuple[str, ...] = (
    "run_id", "planner_id", "mode", "rank", "case_id", "cluster_id", "scenario_id", "rule", "failure_type",
    "collided_with", "case_tag", "map_name", "map_context", "location", "log_id", "split", "tags", "count",
    "members", "reason",
) + METRIC_COLUMNS + ("success", "first_violation_step", "raw_progress_m")
"""Columns of :func:`failure_table`, in order."""

_TAG_SEP = "\x1f"
_TEXT = ("run_id", "planner_id", "mode", "case_id", "cluster_id", "scenario_id", "rule", "failure_type",
         "collided_with", "case_tag", "map_name", "map_context", "location", "log_id", "split", "reason")
_FLOAT = METRIC_COLUMNS + ("raw_progress_m",)

_SQL = f"""
SELECT f.run_id, r.planner_id, r.mode, f.rank, f.case_id, f.case_id AS cluster_id, f.scenario_id, f.rule,
       f.failure_type, f.collided_with, f.tag AS case_tag, COALESCE(NULLIF(s.map_name, ''), f.map_name) AS map_name,
       f.map_context, s.location, s.log_id, sp.split,
       (SELECT group_concat(tag, char(31)) FROM (SELECT t.tag FROM scenario_tags AS t
            WHERE t.scenario_id = f.scenario_id ORDER BY t.tag)) AS tags,
       f.count, f.members_json, f.reason,
       {", ".join(f"e.{c}" for c in METRIC_COLUMNS if c != "score")}, COALESCE(e.score, f.score) AS score,
       e.success, e.first_violation_step, e.raw_progress_m
FROM json_each(?) AS _runs
CROSS JOIN failure_cases AS f ON f.run_id = _runs.value
JOIN eval_runs AS r ON r.run_id = f.run_id
LEFT JOIN eval_results AS e ON e.run_id = f.run_id AND e.scenario_id = f.scenario_id
LEFT JOIN scenarios AS s ON s.scenario_id = f.scenario_id
LEFT JOIN splits AS sp ON sp.scenario_id = f.scenario_id
ORDER BY _runs.key, f.rank, f.case_id
"""


def _split_tags(raw: pd.Series) -> pd.Series:
    """``[R]`` joined tag strings (None = no tags) -> ``[R]`` lists of str (object Series)."""
    out = np.empty(len(raw), dtype=object)
    have = raw.notna().to_numpy()
    out[have] = raw[have].astype(str).str.split(_TAG_SEP).to_numpy()
    # a Python list of empty lists would be read as a [k, 0] array: build the k empty lists as an object array
    out[~have] = np.frompyfunc(lambda _: [], 1, 1)(np.zeros(int((~have).sum())))
    return pd.Series(out, index=raw.index, dtype=object)


def _resolve_runs(ws: Workspace, run_id: str | Sequence[str] | None) -> list[str]:
    if run_id is None:
        latest = ws.query("SELECT r.run_id FROM eval_runs AS r WHERE EXISTS (SELECT 1 FROM failure_cases AS f "
                          "WHERE f.run_id = r.run_id) ORDER BY r.created_at DESC, r.rowid DESC LIMIT 1")
        return [str(latest["run_id"].iloc[0])] if len(latest) else []
    runs = [run_id] if isinstance(run_id, str) else list(run_id)
    bad = [r for r in runs if not isinstance(r, str) or not r]
    if bad or not runs:
        raise ShapeError(f"failure_table.run_id: expected a run id, a list of run ids or None, received {run_id!r}")
    runs = list(dict.fromkeys(runs))
    known = set(ws.query("SELECT run_id FROM eval_runs WHERE run_id IN (SELECT value FROM json_each(?))",
                         (json.dumps(runs),))["run_id"])
    missing = [r for r in runs if r not in known]
    if missing:
        raise WorkspaceError(f"failure_table.run_id: no evaluation run {missing[:5]} in workspace {ws.root}; list "
                             f"runs with mining.eval_runs(ws)")
    return runs


def failure_table(ws: Workspace, run_id: str | Sequence[str] | None = None) -> pd.DataFrame:
    """One row per failure case of ``run_id`` (a run id or a list of them; None: the latest run with cases).

    Returns:
        :data:`FAILURE_TABLE_COLUMNS` ordered by run (as given), then rank: text columns as str ('' where unknown),
        ``rank`` / ``count`` int64, ``tags`` and ``members`` lists of str, the §2.13 columns and
        ``raw_progress_m`` (m) float64 (NaN where the result row is missing), ``success`` boolean (nullable),
        ``first_violation_step`` Int64. An empty table (same columns) when nothing is stored.
    Raises:
        WorkspaceError: a given run does not exist. ShapeError: ``run_id`` is not a str, a list of str or None.
    """
    runs = _resolve_runs(ws, run_id)
    frame = ws.query(_SQL, (json.dumps(runs),))
    frame["tags"] = _split_tags(frame["tags"])
    frame["members"] = pd.Series([json.loads(m) for m in frame.pop("members_json")], index=frame.index,
                                 dtype=object)
    for c in _TEXT:
        frame[c] = frame[c].fillna("").astype(str)
    for c in _FLOAT:
        frame[c] = pd.to_numeric(frame[c]).astype("float64")
    frame["rank"] = frame["rank"].astype("int64")
    frame["count"] = frame["count"].astype("int64")
    frame["success"] = pd.to_numeric(frame["success"]).astype("boolean")
    frame["first_violation_step"] = pd.to_numeric(frame["first_violation_step"]).astype("Int64")
    frame.attrs["run_ids"] = runs
    return frame[list(FAILURE_TABLE_COLUMNS)]


def catalog_tags(ws: Workspace, scenario_ids: pd.Series) -> pd.Series:
    """``[R]`` the current catalog tags (sorted lists) of each id in ``scenario_ids`` (``[R]`` str), aligned with it.

    Use it to refresh a failure table's ``tags`` column after tagging.
    """
    ids = pd.unique(scenario_ids.astype(str).to_numpy())
    got = ws.query("SELECT i.value AS scenario_id, (SELECT group_concat(tag, char(31)) FROM (SELECT t.tag FROM "
                   "scenario_tags AS t WHERE t.scenario_id = i.value ORDER BY t.tag)) AS tags FROM json_each(?) AS i",
                   (json.dumps(ids.tolist()),))
    lists = pd.Series(_split_tags(got["tags"]).to_numpy(), index=got["scenario_id"].astype(str).to_numpy())
    pos = lists.index.get_indexer(scenario_ids.astype(str))
    return pd.Series(lists.to_numpy()[pos], index=scenario_ids.index, dtype=object)


def table_records(table: pd.DataFrame, positions: np.ndarray | Sequence[int], columns: Sequence[str]
                  ) -> list[dict[str, Any]]:
    """JSON-ready records of a few rows (a page): ``columns`` plus ``scenario_id`` and ``_row`` (the position).

    Args:
        table: a failure table.
        positions: ``[K]`` row positions, in the order wanted (K is small: a page; the loop is over cells).
        columns: the columns to include.
    Returns:
        One dict per row: numbers as float rounded to 4 decimals (int for integer columns), booleans as bool,
        lists (tags, members) as lists of str, text as str, missing values and NaN as None.
    """
    pos = np.asarray(positions, dtype=np.int64)
    names = list(dict.fromkeys(["scenario_id", *columns]))
    sub = table.iloc[pos]
    out: dict[str, list[Any]] = {"_row": pos.tolist()}
    for name in names:
        col = sub[name]
        if pd.api.types.is_bool_dtype(col):
            out[name] = [None if pd.isna(v) else bool(v) for v in col.astype(object)]
        elif pd.api.types.is_numeric_dtype(col):
            arr = col.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
            whole = pd.api.types.is_integer_dtype(col)
            out[name] = [None if not np.isfinite(v) else (int(v) if whole else round(float(v), 4)) for v in arr]
        else:
            out[name] = [[str(t) for t in v] if isinstance(v, (list, tuple, np.ndarray)) else
                         (None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)) for v in col]
    keys = list(out)
    return [dict(zip(keys, vals)) for vals in zip(*out.values())]


# -- synthetic tables -----------------------------------------------------------------------------------------
_MAPS = ("us-ma-boston", "us-pa-pittsburgh-hazelwood", "sg-one-north", "us-nv-las-vegas-strip")
_TAGS = ("rare_pedestrian_dart_out", "rare_cut_in", "rare_red_light_runner", "on_intersection", "crosswalk",
         "high_speed", "night", "review", "lane_change", "traffic_light", "carpark", "unprotected_left")
_SPLITS = ("mine", "test_common", "test_rare")
_AGENTS = ("vehicle", "pedestrian", "bicycle")


def synthetic_failure_table(num_rows: int, seed: int = 0) -> pd.DataFrame:
    """A failure table of ``num_rows`` random cases with the layout of :func:`failure_table` (seeded).

    Scenario ids are ``'sc<i:07d>'``; tags are 0-3 of a fixed vocabulary; metrics are uniform in [0, 1] with
    ``no_at_fault_collisions`` 0 for collisions and ``drivable_area_compliance`` 0 for off-road cases.
    """
    if isinstance(num_rows, bool) or not isinstance(num_rows, (int, np.integer)) or num_rows < 0:
        raise ShapeError(f"synthetic_failure_table.num_rows: expected an int >= 0, received {num_rows!r}")
    n = int(num_rows)
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    sid = pd.Series(i).map("sc{:07d}".format).astype(str)
    rule = np.asarray(RULES, dtype=object)[rng.choice(len(RULES), size=n, p=[0.5, 0.3, 0.2])]
    ftype = np.where(rule == "collision", np.where(rng.random(n) < 0.2, "static_collision", "collision"),
                     np.where(rule == "off_road", "off_road", "none"))
    who = np.where(ftype == "collision", np.asarray(_AGENTS, dtype=object)[rng.integers(0, 3, n)], "")
    ep = rng.random(n)
    nc = np.where(rule == "collision", 0.0, 1.0)
    dac = np.where(rule == "off_road", 0.0, 1.0)
    ttc = (rng.random(n) < 0.7).astype(float)
    comfort = (rng.random(n) < 0.9).astype(float)
    ddc = np.where(rng.random(n) < 0.9, 1.0, 0.5)
    score = nc * dac * (5 * ep + 5 * ttc + 2 * comfort) / 12
    num_tags = rng.integers(0, 4, n)
    tag_codes = rng.integers(0, len(_TAGS), int(num_tags.sum()))
    vocab = np.asarray(_TAGS, dtype=object)
    tags = [sorted(set(vocab[c].tolist())) for c in np.split(tag_codes, np.cumsum(num_tags)[:-1])] if n else []
    count = rng.integers(1, 4, n)
    case_id = pd.Series(rule).astype(str) + "-" + sid
    reason = np.where(rule == "collision", "at-fault collision with a " + pd.Series(who).astype(str),
                      np.where(rule == "off_road", "left the drivable area", "low ego progress"))
    frame = pd.DataFrame({
        "run_id": "run-synthetic", "planner_id": "synthetic", "mode": np.asarray(MODES, dtype=object)[i % 2],
        "rank": i + 1, "case_id": case_id, "cluster_id": case_id, "scenario_id": sid, "rule": rule,
        "failure_type": ftype, "collided_with": who, "case_tag": "untagged",
        "map_name": np.asarray(_MAPS, dtype=object)[rng.integers(0, len(_MAPS), n)],
        "map_context": np.asarray(("intersection", "crosswalk", "carpark", "road"), dtype=object)[rng.integers(0, 4, n)],
        "location": "synthetic", "log_id": pd.Series(i // 20).map("log{:05d}".format).astype(str),
        "split": np.asarray(_SPLITS, dtype=object)[rng.integers(0, len(_SPLITS), n)],
        "tags": pd.Series(tags, dtype=object), "count": count.astype("int64"),
        "members": pd.Series([[s] for s in sid], dtype=object), "reason": reason,
        "no_at_fault_collisions": nc, "drivable_area_compliance": dac, "ego_progress": ep,
        "time_to_collision_within_bound": ttc, "comfort": comfort, "driving_direction_compliance": ddc,
        "score": score, "success": pd.array(~((nc == 0) | (dac == 0)), dtype="boolean"),
        "first_violation_step": pd.array(rng.integers(-1, 40, n), dtype="Int64"), "raw_progress_m": 30.0 * ep,
    })
    for c in _TEXT:
        frame[c] = frame[c].astype(str)
    return frame[list(FAILURE_TABLE_COLUMNS)]


def write_synthetic_failures(ws: Workspace, num_scenarios: int = 40, seed: int = 0, planner_id: str = "synthetic",
                             mode: str = "closed_loop") -> str:
    """Catalog ``num_scenarios`` synthetic windows, store a seeded evaluation of them and its mined failure cases
    (through :func:`save_eval_run`, :func:`classify_failures`, :func:`cluster_failures`, :func:`rank_cases` and
    :func:`save_failure_cases`); return the ``run_id``.

    Windows ``syn<i:04d>`` sit 8 to a log, on three maps, split between ``mine`` and ``test_rare``; about a quarter
    collide (some with pedestrians), a sixth leave the road. Windows of one log whose "now" times are within 4 s
    merge into one case.
    """
    if isinstance(num_scenarios, bool) or not isinstance(num_scenarios, int) or num_scenarios < 1:
        raise ShapeError(f"write_synthetic_failures.num_scenarios: expected an int >= 1, received {num_scenarios!r}")
    rng = np.random.default_rng(seed)
    n = num_scenarios
    i = np.arange(n)
    ids = [f"syn{k:04d}" for k in i]
    offsets = np.array([0.0, 1.0, 10.0, 20.0, 21.0, 30.0, 40.0, 50.0])
    maps = np.asarray(_MAPS[:3], dtype=object)[(i // 8) % 3]
    rows = [{"scenario_id": ids[k], "source": "synthetic", "log_id": f"synlog{k // 8:03d}", "map_name": maps[k],
             "location": "synthetic", "start_time_s": float(offsets[k % 8]), "duration_s": 10.0, "num_steps": 101,
             "t0": 20} for k in range(n)]
    tag_of = {ids[k]: [_TAGS[(k * 7) % len(_TAGS)]] + (["on_intersection"] if k % 3 == 0 else []) for k in range(n)}
    ws.add_scenarios(rows, tags=tag_of, import_meta={"source": "synthetic", "params": {"seed": seed}})
    ws.set_split([ids[k] for k in range(n) if (k // 8) % 2 == 0], "mine")
    ws.set_split([ids[k] for k in range(n) if (k // 8) % 2 == 1], "test_rare")
    u = rng.random(n)
    nc = np.where(u < 0.25, 0.0, 1.0)
    dac = np.where((u >= 0.25) & (u < 0.42), 0.0, 1.0)
    ep = rng.uniform(0.05, 1.0, n)
    ttc = np.where(nc == 0, 0.0, 1.0)
    results = pd.DataFrame({
        "scenario_id": ids, "no_at_fault_collisions": nc, "drivable_area_compliance": dac, "ego_progress": ep,
        "time_to_collision_within_bound": ttc, "comfort": 1.0, "driving_direction_compliance": 1.0,
        "score": nc * dac * (5 * ep + 5 * ttc + 2) / 12, "success": (nc == 1) & (dac == 1),
        "collided_with": np.where(nc == 0, np.where(i % 2 == 0, "pedestrian", "vehicle"), ""),
        "first_violation_step": np.where((nc == 0) | (dac == 0), 3 + i % 5, -1), "raw_progress_m": 25.0 * ep,
    })
    run_id = save_eval_run(ws, results, planner_id, mode, f"synthetic failures, {n} scenarios", {"seed": seed},
                           seed=seed)
    catalog = ws.catalog(ids=ids)
    hits = classify_failures(results.assign(planner_id=planner_id, mode=mode), catalog, percentile=5.0)
    save_failure_cases(ws, run_id, rank_cases(cluster_failures(hits, catalog)))
    return run_id
