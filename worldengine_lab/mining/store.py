"""Evaluation runs, their per-scenario results and their ranked failure cases, kept in the workspace database.

Tables (schema migration 2, :mod:`worldengine_lab.store.schema`):

* ``eval_runs``: one row per evaluation: ``run_id``, ``planner_id``, ``mode``, ``description`` (the split or set,
  in words), ``config_json``, ``seed``, ``code_version``, ``created_at`` (UTC ISO), ``user``, ``num_scenarios``;
* ``eval_results``: one row per (run, scenario) with the §2.13 columns, ``success``, ``failure_type``,
  ``collided_with``, ``first_violation_step``, ``raw_progress_m`` and every other result column in ``extra_json``;
* ``failure_cases``: one row per (run, case) of :func:`~worldengine_lab.mining.rank_cases`.

``scenario_id`` in the result tables is a plain column, not a foreign key to ``scenarios``: results and cases
outlive catalog edits, and a run may score ids that were never catalogued. Deleting a run removes its rows.

Examples:
    >>> import tempfile, pandas as pd
    >>> from worldengine_lab.store import Workspace
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> res = pd.DataFrame({"scenario_id": ["a"], "no_at_fault_collisions": [1.0], "drivable_area_compliance": [1.0],
    ...     "ego_progress": [0.5], "time_to_collision_within_bound": [1.0], "comfort": [1.0],
    ...     "driving_direction_compliance": [1.0], "score": [0.7917]})
    >>> run = save_eval_run(ws, res, "cv", "open_loop", "demo", {"horizon_s": 4.0}, seed=0)
    >>> load_eval_results(ws)[["run_id", "scenario_id", "score"]].iloc[0].tolist() == [run, "a", 0.7917]
    True
"""
from __future__ import annotations

import dataclasses
import json
import math
import secrets
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..artifacts import code_version, current_user, utc_now_iso
from ..errors import MissingColumnError, ShapeError, WorkspaceError
from ..store.workspace import Workspace
from .clusters import rank_cases
from .taxonomy import METRIC_COLUMNS, MODES

__all__ = [
    "RESULT_FIELDS", "CASE_FIELDS", "new_run_id", "save_eval_run", "load_eval_results", "eval_runs",
    "save_failure_cases", "load_failure_cases",
]

_INT_FIELDS = ("first_violation_step",)
_BOOL_FIELDS = ("success",)
_TEXT_FIELDS = ("failure_type", "collided_with")
RESULT_FIELDS: tuple[str, ...] = METRIC_COLUMNS + ("success", "failure_type", "collided_with",
                                                   "first_violation_step", "raw_progress_m")
"""Result columns with their own ``eval_results`` column (all optional but the §2.13 ones); others go to JSON."""

CASE_FIELDS: tuple[str, ...] = (
    "case_id", "rank", "rule", "failure_type", "collided_with", "tag", "map_name", "map_context", "scenario_id",
    "count", "members", "reason", "score",
)
"""``failure_cases`` columns as :func:`load_failure_cases` returns them (``members`` as a list)."""

_NON_EXTRA = frozenset(("run_id", "scenario_id", "token", "planner_id", "mode") + RESULT_FIELDS)


def new_run_id() -> str:
    """A sortable unique id: ``run-<UTC yyyymmddThhmmss>-<8 hex>``."""
    return f"run-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


# -- value conversion -----------------------------------------------------------------------------------------
def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, PurePath):
        return str(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return dataclasses.asdict(v)
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    raise TypeError(f"{type(v).__name__} is not JSON-serialisable")


def _dumps(value: Any, where: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise WorkspaceError(f"{where}: expected JSON-serialisable values (numbers, str, lists, dicts, "
                             f"dataclasses), received {exc}; convert it or drop it") from exc


def _column_values(series: pd.Series, kind: str) -> list[Any]:
    """One column as Python values for sqlite3 (``kind``: real, int, bool, text); missing → None."""
    if kind == "real":
        vals = pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()
        return [None if math.isnan(v) else float(v) for v in vals.tolist()]
    missing = series.isna().to_numpy()
    if kind == "int":
        vals = pd.to_numeric(series, errors="coerce").fillna(0).astype("int64").tolist()
        return [None if m else int(v) for v, m in zip(vals, missing)]
    if kind == "bool":
        vals = series.fillna(False).astype(bool).tolist()
        return [None if m else int(v) for v, m in zip(vals, missing)]
    vals = series.astype(object).tolist()
    return [None if m else str(v) for v, m in zip(vals, missing)]


def _extra_json(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    if not columns:
        return ["{}"] * len(frame)
    sub = frame[list(columns)].astype(object)
    sub = sub.where(sub.notna(), None)
    return [_dumps(r, f"save_eval_run.results (extra columns {list(columns)})") for r in sub.to_dict("records")]


# -- runs and results -----------------------------------------------------------------------------------------
def save_eval_run(ws: Workspace, results: pd.DataFrame, planner_id: str, mode: str, description: str = "",
                  config: Mapping[str, Any] | Any = None, seed: int | None = None) -> str:
    """Record one evaluation and its per-scenario rows in one transaction; return the new ``run_id``.

    Args:
        ws: the workspace.
        results: one row per scenario (``scenario_id``, or NAVSIM's ``token``) with the §2.13 columns; optional
            ``success``, ``failure_type``, ``collided_with``, ``first_violation_step``, ``raw_progress_m``; every
            other column except ``planner_id``/``mode`` is kept in ``extra_json``. ``planner_id``/``mode``
            columns, if present, must equal the arguments.
        planner_id: the planner evaluated.
        mode: ``'open_loop'`` or ``'closed_loop'``.
        description: the split or scenario set, in words (e.g. ``"split=mine, 480 windows"``).
        config: evaluation settings (dict or dataclass), stored as JSON.
        seed: the evaluation seed.
    Raises:
        MissingColumnError / ShapeError for a bad table; WorkspaceError for an unserialisable config.
        Any error writes nothing.
    """
    if not isinstance(results, pd.DataFrame):
        raise ShapeError(f"save_eval_run.results: expected a pandas DataFrame, received {type(results).__name__}")
    if not isinstance(planner_id, str) or not planner_id:
        raise ShapeError(f"save_eval_run.planner_id: expected a non-empty str, received {planner_id!r}")
    if mode not in MODES:
        raise ShapeError(f"save_eval_run.mode: expected one of {list(MODES)}, received {mode!r}")
    t = results.reset_index(drop=True)
    if "scenario_id" not in t.columns and "token" in t.columns:
        t = t.rename(columns={"token": "scenario_id"})
    missing = [c for c in ("scenario_id",) + METRIC_COLUMNS if c not in t.columns]
    if missing:
        raise MissingColumnError(f"save_eval_run.results: expected columns {['scenario_id', *METRIC_COLUMNS]}, "
                                 f"missing {missing}; received {list(t.columns)}")
    for col, want in (("planner_id", planner_id), ("mode", mode)):
        if col in t.columns:
            other = sorted(set(t[col].astype(str)) - {want})
            if other:
                raise ShapeError(f"save_eval_run.results[{col!r}]: expected every row to be {want!r} (the "
                                 f"{col} argument), received also {other[:5]}; save one run per planner and mode")
    ids = t["scenario_id"].astype(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ShapeError(f"save_eval_run.results: scenario_id {dup.iloc[0]!r} appears more than once; a run "
                         f"holds one row per scenario")
    config_json = _dumps(dict(config) if isinstance(config, Mapping) else ({} if config is None else config),
                         "save_eval_run.config")
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ShapeError(f"save_eval_run.seed: expected an int or None, received {seed!r}")
    present = [f for f in RESULT_FIELDS if f in t.columns]
    kinds = {**{f: "real" for f in RESULT_FIELDS}, **{f: "int" for f in _INT_FIELDS},
             **{f: "bool" for f in _BOOL_FIELDS}, **{f: "text" for f in _TEXT_FIELDS}}
    columns = [_column_values(t[f], kinds[f]) for f in present]
    extra = _extra_json(t, [c for c in t.columns if c not in _NON_EXTRA])
    run_id = new_run_id()
    n = len(t)
    rows = list(zip([run_id] * n, ids.tolist(), [planner_id] * n, [mode] * n, *columns, extra))
    sql = (f"INSERT INTO eval_results (run_id, scenario_id, planner_id, mode, {', '.join(present)}, extra_json) "
           f"VALUES ({', '.join('?' * (len(present) + 5))})")
    with ws.transaction() as conn:
        conn.execute(
            "INSERT INTO eval_runs (run_id, planner_id, mode, description, config_json, seed, code_version, "
            "created_at, user, num_scenarios) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, planner_id, mode, str(description), config_json, None if seed is None else int(seed),
             code_version(), utc_now_iso(), current_user(), n))
        conn.executemany(sql, rows)
    return run_id


def eval_runs(ws: Workspace, planner_id: str | None = None, mode: str | None = None) -> pd.DataFrame:
    """The ``eval_runs`` rows (optionally of one planner / mode), newest first; ``config`` parsed from JSON."""
    where, params = _run_filter(planner_id, mode)
    runs = ws.query(f"SELECT * FROM eval_runs {where} ORDER BY created_at DESC, rowid DESC", params)
    runs["config"] = [json.loads(c) for c in runs["config_json"]]
    return runs


def _run_filter(planner_id: str | None, mode: str | None) -> tuple[str, list[Any]]:
    conds, params = [], []
    if planner_id is not None:
        conds.append("planner_id = ?")
        params.append(planner_id)
    if mode is not None:
        conds.append("mode = ?")
        params.append(mode)
    return ("WHERE " + " AND ".join(conds)) if conds else "", params


def _resolve_run(ws: Workspace, run_id: str | None, planner_id: str | None, mode: str | None,
                 where: str) -> dict[str, Any]:
    """The ``eval_runs`` row of ``run_id``, or of the latest run matching the filters (``config`` parsed)."""
    if run_id is not None:
        runs = ws.query("SELECT * FROM eval_runs WHERE run_id = ?", (run_id,))
        if not len(runs):
            raise WorkspaceError(f"{where}: no evaluation run {run_id!r} in workspace {ws.root}; list runs with "
                                 f"mining.eval_runs(ws)")
    else:
        cond, params = _run_filter(planner_id, mode)
        runs = ws.query(f"SELECT * FROM eval_runs {cond} ORDER BY created_at DESC, rowid DESC LIMIT 1", params)
        if not len(runs):
            raise WorkspaceError(f"{where}: no evaluation run (planner_id={planner_id!r}, mode={mode!r}) in "
                                 f"workspace {ws.root}; save one with mining.save_eval_run(ws, results, ...)")
    run = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in runs.iloc[0].to_dict().items()}
    run = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in run.items()}  # NULL seed
    run["config"] = json.loads(run.pop("config_json"))
    return run


def load_eval_results(ws: Workspace, run_id: str | None = None, planner_id: str | None = None,
                      mode: str | None = None) -> pd.DataFrame:
    """The per-scenario rows of one run (default: the latest run, of ``planner_id`` / ``mode`` if given).

    Returns:
        ``run_id``, ``scenario_id``, ``planner_id``, ``mode``, :data:`RESULT_FIELDS` and the extra columns, in the
        saved row order; ``success`` bool, ``first_violation_step`` int64 (nullable types where values are
        missing; ``failure_type`` / ``collided_with`` None where they were not saved). ``.attrs["run"]`` holds
        the ``eval_runs`` row (``config`` parsed).
    Raises:
        WorkspaceError: the run does not exist, or no run matches.
    """
    run = _resolve_run(ws, run_id, planner_id, mode, "load_eval_results")
    frame = ws.query("SELECT * FROM eval_results WHERE run_id = ? ORDER BY rowid", (run["run_id"],))
    for c in METRIC_COLUMNS + ("raw_progress_m",):
        frame[c] = pd.to_numeric(frame[c]).astype("float64")
    for c in _BOOL_FIELDS:
        frame[c] = frame[c].astype("boolean") if frame[c].isna().any() else frame[c].astype(bool)
    for c in _INT_FIELDS:
        frame[c] = frame[c].astype("Int64") if frame[c].isna().any() else frame[c].astype("int64")
    for c in _TEXT_FIELDS:
        frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    extras = pd.DataFrame([json.loads(e) for e in frame.pop("extra_json")], index=frame.index)
    if len(extras.columns):
        frame = pd.concat([frame, extras], axis=1)
    frame.attrs["run"] = run
    return frame


# -- failure cases --------------------------------------------------------------------------------------------
def save_failure_cases(ws: Workspace, run_id: str, cases: pd.DataFrame) -> int:
    """Store the failure cases of ``run_id``, replacing any stored before, in one transaction; return how many.

    Args:
        cases: :func:`~worldengine_lab.mining.cluster_failures` output, ranked or not (unranked cases are ranked
            with :func:`~worldengine_lab.mining.rank_cases`). ``planner_id`` / ``mode`` columns, if present, must
            match the run's.
    Raises:
        WorkspaceError: unknown run. MissingColumnError / ShapeError: bad table.
    """
    need = ("case_id", "rule", "scenario_id", "count", "members", "score")
    missing = [c for c in need if c not in cases.columns]
    if missing:
        raise MissingColumnError(f"save_failure_cases.cases: expected columns {list(need)} (cluster_failures "
                                 f"output), missing {missing}")
    c = cases if "rank" in cases.columns else rank_cases(cases)
    c = c.reset_index(drop=True)
    dup = c["case_id"][c["case_id"].astype(str).duplicated()]
    if len(dup):
        raise ShapeError(f"save_failure_cases.cases: case_id {dup.iloc[0]!r} appears more than once; save the "
                         f"cases of one planner and mode per run")
    members = c["members"].map(lambda m: _dumps(list(m), "save_failure_cases.cases['members']")).tolist()
    text = {k: (_column_values(c[k], "text") if k in c.columns else [""] * len(c))
            for k in ("failure_type", "collided_with", "tag", "map_name", "map_context", "reason")}
    text = {k: ["" if v is None else v for v in vals] for k, vals in text.items()}
    now = utc_now_iso()
    rows = list(zip(
        [run_id] * len(c), _column_values(c["case_id"], "text"), _column_values(c["rank"], "int"),
        _column_values(c["rule"], "text"), text["failure_type"], text["collided_with"], text["tag"],
        text["map_name"], text["map_context"], _column_values(c["scenario_id"], "text"),
        _column_values(c["count"], "int"), members, text["reason"], _column_values(c["score"], "real"),
        [now] * len(c)))
    with ws.transaction() as conn:
        run = conn.execute("SELECT planner_id, mode FROM eval_runs WHERE run_id = ?", (run_id,)).fetchone()
        if run is None:
            raise WorkspaceError(f"save_failure_cases: no evaluation run {run_id!r} in workspace {ws.root}; save "
                                 f"the run first with mining.save_eval_run")
        for col, want in zip(("planner_id", "mode"), run):
            if col in c.columns:
                other = sorted(set(c[col].astype(str)) - {want})
                if other:
                    raise ShapeError(f"save_failure_cases.cases[{col!r}]: run {run_id!r} is {col}={want!r}, the "
                                     f"cases include {other[:5]}; filter the cases to that {col}")
        conn.execute("DELETE FROM failure_cases WHERE run_id = ?", (run_id,))
        conn.executemany(
            "INSERT INTO failure_cases (run_id, case_id, rank, rule, failure_type, collided_with, tag, map_name, "
            "map_context, scenario_id, count, members_json, reason, score, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def load_failure_cases(ws: Workspace, run_id: str | None = None) -> pd.DataFrame:
    """The ranked failure cases of ``run_id`` (default: the latest run that has any), by rank.

    Returns:
        ``run_id``, ``planner_id``, ``mode`` and :data:`CASE_FIELDS` (``members`` a list of scenario ids); an
        empty frame with those columns when nothing is stored.
    Raises:
        WorkspaceError: ``run_id`` given and unknown.
    """
    out_cols = ["run_id", "planner_id", "mode", *CASE_FIELDS]
    if run_id is None:
        latest = ws.query("SELECT r.run_id FROM eval_runs AS r WHERE EXISTS (SELECT 1 FROM failure_cases AS f "
                          "WHERE f.run_id = r.run_id) ORDER BY r.created_at DESC, r.rowid DESC LIMIT 1")
        if not len(latest):
            return pd.DataFrame({c: pd.Series(dtype=object) for c in out_cols})
        run_id = str(latest["run_id"].iloc[0])
    else:
        _resolve_run(ws, run_id, None, None, "load_failure_cases")
    frame = ws.query(
        "SELECT f.run_id, r.planner_id, r.mode, f.case_id, f.rank, f.rule, f.failure_type, f.collided_with, "
        "f.tag, f.map_name, f.map_context, f.scenario_id, f.count, f.members_json, f.reason, f.score "
        "FROM failure_cases AS f JOIN eval_runs AS r ON r.run_id = f.run_id WHERE f.run_id = ? "
        "ORDER BY f.rank, f.case_id", (run_id,))
    frame["members"] = [json.loads(m) for m in frame.pop("members_json")]
    frame["rank"] = frame["rank"].astype("int64")
    frame["count"] = frame["count"].astype("int64")
    frame["score"] = pd.to_numeric(frame["score"]).astype("float64")
    return frame[out_cols]
