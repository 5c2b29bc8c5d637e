"""The jobs tables of the workspace: one row per job, its metric curve and its lifecycle events.

Tables (:data:`JOBS_DDL`):

* ``jobs``: one row per job: spec, status (``queued`` → ``running`` → ``succeeded`` | ``failed`` |
  ``cancelled``), the process that runs it (pid, its start time, host), run folder, times (UTC ISO-8601),
  progress (step, total, message), the cancel flag, the error, the result and provenance (code version, user);
* ``job_metrics``: one row per (job, key, step): a metric curve that resumed jobs extend (a step logged twice
  keeps the last value, so a replayed step never duplicates a point);
* ``job_events``: what happened when (launched, started, resumed, cancel requested, finished, orphaned).

The tables belong in the schema migrations (:mod:`worldengine_lab.store.schema`) as the next migration; until
it is merged, :func:`ensure_job_tables` creates them with ``CREATE TABLE IF NOT EXISTS``. Once the migration
exists, ``Workspace.open`` creates them and :func:`ensure_job_tables` finds them and writes nothing.

Every write is one short ``BEGIN IMMEDIATE`` transaction through ``Workspace.transaction`` (busy-retried), so a
notebook kernel, the CLI and any number of job processes may write at once. Status changes are compare-and-set
(``... WHERE status IN (...)``): a late writer never overwrites a job that already finished.

Examples:
    >>> import tempfile
    >>> from worldengine_lab.datatypes.job import JobSpec
    >>> from worldengine_lab.store import Workspace
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> spec = JobSpec("selftest", workspace=str(ws.root))
    >>> row = insert_job(ws, spec, run_dir=str(ws.root / "runs" / spec.job_id))
    >>> get_job(ws, spec.job_id)["status"]
    'queued'
    >>> log_metrics(ws, spec.job_id, 1, {"loss": 0.5})
    1
    >>> read_metrics(ws, spec.job_id)[["step", "key", "value"]].values.tolist()
    [[1, 'loss', 0.5]]
"""
from __future__ import annotations

import json
import logging
import math
import os
import socket
import sqlite3
import threading
from typing import Any, Mapping, Sequence

import pandas as pd

from ..artifacts import code_version, current_user, utc_now_iso
from ..datatypes.job import JobSpec
from ..errors import WorkspaceError
from ..store.schema import _V5_JOBS, split_statements
from ..store.workspace import Workspace

__all__ = [
    "JOBS_DDL", "JOB_TABLES", "JOB_STATUSES", "ACTIVE_STATUSES", "TERMINAL_STATUSES", "JOB_COLUMNS",
    "ensure_job_tables", "insert_job", "get_job", "require_job", "list_job_rows", "set_status", "update_job",
    "request_cancel", "is_cancel_requested", "heartbeat", "log_metrics", "read_metrics", "add_event",
    "read_events", "this_host",
]

logger = logging.getLogger(__name__)

JOB_STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
"""Every status a job row can hold."""
ACTIVE_STATUSES: tuple[str, ...] = ("queued", "running")
"""Statuses of a job that has not finished."""
TERMINAL_STATUSES: tuple[str, ...] = ("succeeded", "failed", "cancelled")
"""Statuses of a finished job (``failed`` and ``cancelled`` jobs can be resumed)."""

JOBS_DDL = _V5_JOBS
"""DDL of the jobs tables (migration 5 of :mod:`worldengine_lab.store.schema`); ``IF NOT EXISTS`` keeps workspaces
where :func:`ensure_job_tables` made them valid."""

JOB_TABLES: tuple[str, ...] = ("jobs", "job_metrics", "job_events")
"""Tables :data:`JOBS_DDL` creates."""

JOB_COLUMNS: tuple[str, ...] = (
    "job_id", "kind", "name", "spec_json", "status", "entry_point", "pid", "pid_started_at", "host", "backend",
    "run_dir", "attempt", "created_at", "started_at", "heartbeat_at", "finished_at", "step", "total", "message",
    "cancel_requested", "error", "result_json", "code_version", "user",
)
"""Columns of ``jobs``, in table order."""

_UPDATABLE = frozenset(JOB_COLUMNS) - {"job_id", "kind", "spec_json", "created_at", "code_version", "user"}
_READY: set[str] = set()  # database files (path, device, inode) whose job tables this process has seen
_READY_LOCK = threading.Lock()


def this_host() -> str:
    """This machine's host name (how a job's pid is known to be checkable here)."""
    return socket.gethostname()


# -- tables ----------------------------------------------------------------------------------------------------
def ensure_job_tables(ws: Workspace) -> None:
    """Create the jobs tables in ``ws`` if they are missing (idempotent, safe from concurrent processes).

    Becomes a no-op (a single read) once the schema migration holding :data:`JOBS_DDL` exists, because
    ``Workspace.open`` has then created the tables already.
    """
    try:
        st = os.stat(ws.db_path)
        key = f"{ws.db_path.resolve()}:{st.st_dev}:{st.st_ino}"  # a re-created database file is checked again
    except OSError:
        key = ""
    with _READY_LOCK:
        if key in _READY:
            return

    def have_all(conn: sqlite3.Connection) -> bool:
        names = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (SELECT value FROM json_each(?))",
            (json.dumps(list(JOB_TABLES)),))}
        return names == set(JOB_TABLES)

    if not ws._read(have_all):
        with ws.transaction() as conn:
            for stmt in split_statements(JOBS_DDL):
                conn.execute(stmt)
        logger.info("workspace %s: created the jobs tables", ws.root)
    if key:
        with _READY_LOCK:
            _READY.add(key)


# -- rows ------------------------------------------------------------------------------------------------------
def _row_dict(cursor: sqlite3.Cursor, row: Sequence[Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {d[0]: v for d, v in zip(cursor.description, row)}


def insert_job(ws: Workspace, spec: JobSpec, run_dir: str, entry_point: str = "") -> dict[str, Any]:
    """Insert a ``queued`` row for ``spec`` (id ``spec.job_id``) and a ``launched`` event; return the row.

    Raises WorkspaceError if a job with that id exists (make a new spec: ``dataclasses.replace(spec,
    created_at="")``).
    """
    ensure_job_tables(ws)
    job_id = spec.job_id
    now = utc_now_iso()
    with ws.transaction() as conn:
        if conn.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone():
            raise WorkspaceError(
                f"Job {job_id} already exists in workspace {ws.root} (expected a new job id). Resume it with "
                f"Job.attach(ws, {job_id!r}).resume(), or launch a new spec: dataclasses.replace(spec, "
                f"created_at='')")
        conn.execute(
            "INSERT INTO jobs(job_id, kind, name, spec_json, status, entry_point, backend, run_dir, attempt, "
            "created_at, message, code_version, user) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, 0, ?, 'queued', ?, ?)",
            (job_id, spec.kind, spec.name, spec.to_json(), entry_point, spec.backend, run_dir, spec.created_at,
             code_version(), current_user()))
        conn.execute("INSERT INTO job_events(job_id, time, event, message) VALUES (?, ?, 'launched', ?)",
                     (job_id, now, f"{spec.kind} on backend {spec.backend}"))
    return require_job(ws, job_id)


def get_job(ws: Workspace, job_id: str) -> dict[str, Any] | None:
    """The ``jobs`` row of ``job_id`` as a dict, or None."""
    ensure_job_tables(ws)

    def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
        cur = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return _row_dict(cur, cur.fetchone())

    return ws._read(read)


def require_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    """:func:`get_job`, raising WorkspaceError (with the recent job ids) when it is missing."""
    row = get_job(ws, job_id)
    if row is None:
        recent = ws.query("SELECT job_id FROM jobs ORDER BY created_at DESC LIMIT 5")["job_id"].tolist()
        raise WorkspaceError(
            f"No job {job_id!r} in workspace {ws.root} (expected one of its job ids; the most recent are "
            f"{recent or 'none'}); list them with `worldengine-lab jobs list --workspace {ws.root}`")
    return row


def list_job_rows(ws: Workspace, status: str | Sequence[str] | None = None, kind: str | None = None,
                  limit: int | None = None) -> pd.DataFrame:
    """Rows of ``jobs`` (newest first), optionally only some statuses or one kind."""
    ensure_job_tables(ws)
    where, params = [], []
    if status is not None:
        wanted = [status] if isinstance(status, str) else list(status)
        bad = [s for s in wanted if s not in JOB_STATUSES]
        if bad:
            raise WorkspaceError(f"list_jobs(status): expected values among {list(JOB_STATUSES)}, received {bad}")
        where.append("status IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(wanted))
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY created_at DESC, job_id DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return ws.query(sql, params)


def update_job(ws: Workspace, job_id: str, **values: Any) -> int:
    """Set columns of one job row (only mutable ones); return the rows changed (0 or 1)."""
    bad = sorted(set(values) - _UPDATABLE)
    if bad:
        raise WorkspaceError(f"update_job: expected columns among {sorted(_UPDATABLE)}, received {bad}")
    if not values:
        return 0
    sets = ", ".join(f"{k} = ?" for k in values)
    with ws.transaction() as conn:
        cur = conn.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", (*values.values(), job_id))
        return max(cur.rowcount, 0)


def set_status(ws: Workspace, job_id: str, status: str, *, only_from: Sequence[str] = ACTIVE_STATUSES,
               event: str | None = None, note: str = "", **values: Any) -> bool:
    """Compare-and-set the status: change it (and ``values``) only if it is one of ``only_from``.

    A terminal ``status`` stamps ``finished_at``. When the row changed, records an event (``event``, default the
    status) with the text ``note``. Returns whether it changed.
    """
    if status not in JOB_STATUSES:
        raise WorkspaceError(f"set_status: expected a status among {list(JOB_STATUSES)}, received {status!r}")
    bad = sorted(set(values) - _UPDATABLE)
    if bad:
        raise WorkspaceError(f"set_status: expected columns among {sorted(_UPDATABLE)}, received {bad}")
    now = utc_now_iso()
    if status in TERMINAL_STATUSES:
        values.setdefault("finished_at", now)
    cols = {"status": status, **values}
    sets = ", ".join(f"{k} = ?" for k in cols)
    with ws.transaction() as conn:
        cur = conn.execute(
            f"UPDATE jobs SET {sets} WHERE job_id = ? AND status IN (SELECT value FROM json_each(?))",
            (*cols.values(), job_id, json.dumps(list(only_from))))
        changed = cur.rowcount > 0
        if changed:
            step = conn.execute("SELECT step FROM jobs WHERE job_id = ?", (job_id,)).fetchone()[0]
            conn.execute("INSERT INTO job_events(job_id, time, event, step, message) VALUES (?, ?, ?, ?, ?)",
                         (job_id, now, event or status, step, note))
    return changed


def request_cancel(ws: Workspace, job_id: str) -> bool:
    """Raise the cancel flag of an unfinished job (the job process polls it); return whether it was raised."""
    now = utc_now_iso()
    with ws.transaction() as conn:
        cur = conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE job_id = ? AND status IN ('queued', 'running')"
                           " AND cancel_requested = 0", (job_id,))
        if cur.rowcount > 0:
            conn.execute("INSERT INTO job_events(job_id, time, event, message) VALUES (?, ?, 'cancel_requested', ?)",
                         (job_id, now, f"by {current_user()} on {this_host()}"))
            return True
    return False


def is_cancel_requested(ws: Workspace, job_id: str) -> bool:
    """Whether the job's cancel flag is raised."""
    row = ws._read(lambda c: c.execute("SELECT cancel_requested FROM jobs WHERE job_id = ?", (job_id,)).fetchone())
    return bool(row and row[0])


def heartbeat(ws: Workspace, job_id: str) -> bool:
    """Stamp ``heartbeat_at`` and return the cancel flag (one transaction)."""
    with ws.transaction() as conn:
        conn.execute("UPDATE jobs SET heartbeat_at = ? WHERE job_id = ?", (utc_now_iso(), job_id))
        row = conn.execute("SELECT cancel_requested FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return bool(row and row[0])


# -- metrics and events ------------------------------------------------------------------------------------------
def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise WorkspaceError(f"log_metrics: expected numbers, received {value!r} ({type(value).__name__}); log "
                             f"text as an event instead") from exc
    return v if math.isfinite(v) else None


def log_metrics(ws: Workspace, job_id: str, step: int, values: Mapping[str, Any],
                time: str | None = None) -> int:
    """Write one point per key at ``step`` (a step written again keeps the new value); return the points."""
    if isinstance(step, bool) or int(step) != step:
        raise WorkspaceError(f"log_metrics: expected an integer step, received {step!r}")
    now = time or utc_now_iso()
    rows = [(job_id, str(k), int(step), _finite(v), now) for k, v in values.items()]
    if not rows:
        return 0
    with ws.transaction() as conn:
        conn.executemany("INSERT OR REPLACE INTO job_metrics(job_id, key, step, value, time) VALUES (?, ?, ?, ?, ?)",
                         rows)
    return len(rows)


def read_metrics(ws: Workspace, job_id: str, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Metric points of a job: columns ``step``, ``key``, ``value``, ``time``, ordered by key then step."""
    ensure_job_tables(ws)
    sql = "SELECT step, key, value, time FROM job_metrics WHERE job_id = ?"
    params: list[Any] = [job_id]
    if keys is not None:
        sql += " AND key IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(keys)))
    return ws.query(sql + " ORDER BY key, step", params)


def add_event(ws: Workspace, job_id: str, event: str, message: str = "", step: int | None = None) -> None:
    """Append one event to ``job_events``."""
    with ws.transaction() as conn:
        conn.execute("INSERT INTO job_events(job_id, time, event, step, message) VALUES (?, ?, ?, ?, ?)",
                     (job_id, utc_now_iso(), event, step, message))


def read_events(ws: Workspace, job_id: str) -> pd.DataFrame:
    """Events of a job, oldest first: ``time``, ``event``, ``step``, ``message``."""
    ensure_job_tables(ws)
    return ws.query("SELECT time, event, step, message FROM job_events WHERE job_id = ? ORDER BY time, rowid",
                    (job_id,))
