"""The workspace database schema as an ordered list of migrations, and the code that applies them.

The schema version lives in ``PRAGMA user_version``; ``schema_migrations`` records when each migration ran.
Each migration runs in its own ``BEGIN IMMEDIATE`` transaction that also bumps ``user_version``, so a crash or a
failing statement leaves the database at the previous version, and two processes opening a fresh workspace at
once apply each migration exactly once.

To change the schema, append one entry to :data:`MIGRATIONS` (never edit an applied one)::

    Migration(2, "metrics: one row per scenario x planner x metric", '''
        CREATE TABLE metrics (...);
        CREATE INDEX metrics_scenario ON metrics(scenario_id);
    '''),
"""
from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from .._version import __version__
from ..artifacts import code_version, utc_now_iso
from ..errors import WorkspaceError
from ._retry import is_busy_error

__all__ = ["Migration", "MIGRATIONS", "SCHEMA_VERSION", "split_statements", "read_version", "check_version", "migrate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One schema step.

    Attributes:
        version: the ``user_version`` after this step; versions are 1, 2, 3, ... in order.
        description: one line saying what the step adds, stored in ``schema_migrations``.
        sql: statements separated by ``;`` (no BEGIN/COMMIT: the runner owns the transaction).
    """

    version: int
    description: str
    sql: str


_V1_CATALOG = """
CREATE TABLE imports (
    import_id     TEXT PRIMARY KEY,            -- 'imp-<UTC yyyymmddThhmmss>-<8 hex>'
    source        TEXT NOT NULL,               -- 'nuplan', 'av2', 'synthetic', ...
    path          TEXT NOT NULL DEFAULT '',    -- what the user pointed the importer at
    started_at    TEXT NOT NULL,               -- UTC ISO-8601
    finished_at   TEXT NOT NULL,               -- UTC ISO-8601, when the import committed
    num_scenarios INTEGER NOT NULL,
    code_version  TEXT NOT NULL,
    params_json   TEXT NOT NULL DEFAULT '{}',  -- importer parameters (window, filters, seed)
    user          TEXT NOT NULL
);

CREATE TABLE scenarios (
    scenario_id  TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    path         TEXT NOT NULL DEFAULT '',     -- the log file or folder
    locator      TEXT NOT NULL DEFAULT '',     -- what the reader needs to re-read this window
    log_id       TEXT NOT NULL DEFAULT '',
    map_name     TEXT NOT NULL DEFAULT '',
    location     TEXT NOT NULL DEFAULT '',
    start_time_s REAL,                         -- s, dataset clock, first step of the window
    duration_s   REAL,                         -- s, last step minus first step
    num_steps    INTEGER,
    t0           INTEGER,                      -- index of "now" in the window
    num_agents   INTEGER,                      -- ego included
    window_json  TEXT NOT NULL DEFAULT '{}',   -- history/future/dt used to cut the window
    maps_root    TEXT,
    meta_json    TEXT NOT NULL DEFAULT '{}',   -- other summary fields the importer supplied
    import_id    TEXT REFERENCES imports(import_id) ON DELETE SET NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
-- Few indexes on purpose: source/location/map have few distinct values, and scanning the table is fast; each
-- extra index slows bulk imports.
CREATE INDEX scenarios_log ON scenarios(log_id, start_time_s);
CREATE INDEX scenarios_import ON scenarios(import_id);

CREATE TABLE scenario_tags (
    scenario_id TEXT NOT NULL REFERENCES scenarios(scenario_id) ON DELETE CASCADE,
    tag         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    user        TEXT NOT NULL,
    PRIMARY KEY (scenario_id, tag)
) WITHOUT ROWID;
CREATE INDEX scenario_tags_tag ON scenario_tags(tag);

CREATE TABLE splits (
    scenario_id TEXT PRIMARY KEY REFERENCES scenarios(scenario_id) ON DELETE CASCADE,
    split       TEXT NOT NULL,                 -- 'pretrain', 'mine', 'test_common', 'test_rare', ...
    created_at  TEXT NOT NULL,
    user        TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX splits_split ON splits(split);
"""

# Results keep plain scenario_id columns (no foreign key to scenarios) on purpose: evaluation results and
# failure cases must outlive catalog edits, and runs may score ids that were never catalogued (NAVSIM tokens,
# variants).
_V2_EVALUATION = """
CREATE TABLE eval_runs (
    run_id        TEXT PRIMARY KEY,            -- 'run-<UTC yyyymmddThhmmss>-<8 hex>'
    planner_id    TEXT NOT NULL,
    mode          TEXT NOT NULL,               -- 'open_loop' | 'closed_loop'
    description   TEXT NOT NULL DEFAULT '',    -- the split / scenario set evaluated, in words
    config_json   TEXT NOT NULL DEFAULT '{}',  -- evaluation settings
    seed          INTEGER,
    code_version  TEXT NOT NULL,
    created_at    TEXT NOT NULL,               -- UTC ISO-8601
    user          TEXT NOT NULL,
    num_scenarios INTEGER NOT NULL
);
CREATE INDEX eval_runs_planner ON eval_runs(planner_id, mode, created_at);

CREATE TABLE eval_results (
    run_id                          TEXT NOT NULL REFERENCES eval_runs(run_id) ON DELETE CASCADE,
    scenario_id                     TEXT NOT NULL,
    planner_id                      TEXT NOT NULL,
    mode                            TEXT NOT NULL,
    no_at_fault_collisions          REAL,      -- spec/metrics.md 2.13 columns, each in [0, 1]; NULL = invalid
    drivable_area_compliance        REAL,
    ego_progress                    REAL,
    time_to_collision_within_bound  REAL,
    comfort                         REAL,
    driving_direction_compliance    REAL,
    score                           REAL,
    success                         INTEGER,   -- 0/1, closed loop (open loop: NC == 1 and DAC == 1 of the plan)
    failure_type                    TEXT,      -- 'collision' | 'off_road' | 'static_collision' | 'none'
    collided_with                   TEXT,      -- agent type of the first contact, '' none
    first_violation_step            INTEGER,   -- closed-loop step, -1 none
    raw_progress_m                  REAL,      -- m
    extra_json                      TEXT NOT NULL DEFAULT '{}',  -- any other result columns
    PRIMARY KEY (run_id, scenario_id)
);
CREATE INDEX eval_results_scenario ON eval_results(scenario_id);

CREATE TABLE failure_cases (
    run_id        TEXT NOT NULL REFERENCES eval_runs(run_id) ON DELETE CASCADE,
    case_id       TEXT NOT NULL,               -- '<rule>-<representative scenario_id>'
    rank          INTEGER NOT NULL,            -- 1 = review first
    rule          TEXT NOT NULL,               -- 'collision' | 'off_road' | 'low_progress'
    failure_type  TEXT NOT NULL DEFAULT '',
    collided_with TEXT NOT NULL DEFAULT '',
    tag           TEXT NOT NULL DEFAULT '',
    map_name      TEXT NOT NULL DEFAULT '',
    map_context   TEXT NOT NULL DEFAULT '',
    scenario_id   TEXT NOT NULL,               -- the representative window (worst score)
    count         INTEGER NOT NULL,            -- windows in the case
    members_json  TEXT NOT NULL,               -- JSON list of member scenario ids
    reason        TEXT NOT NULL DEFAULT '',
    score         REAL,                        -- worst score in the case
    created_at    TEXT NOT NULL,
    PRIMARY KEY (run_id, case_id)
);
"""

# Curation: tags stay in scenario_tags (migration 1). Notes and decisions keep plain id columns, like the results:
# they may concern ids that were never catalogued (NAVSIM tokens, variants) and must outlive catalog edits.
# Saved views hold filters as JSON data, never copies of rows.
_V3_CURATION = """
CREATE TABLE notes (
    note_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario_id TEXT NOT NULL,
    text        TEXT NOT NULL,
    user        TEXT NOT NULL,
    created_at  TEXT NOT NULL                  -- UTC ISO-8601
);
CREATE INDEX notes_scenario ON notes(scenario_id, note_id);

CREATE TABLE saved_views (
    name          TEXT PRIMARY KEY,            -- unique, chosen by the analyst
    kind          TEXT NOT NULL,               -- what the filter applies to: 'failures' | 'scenarios'
    filter_json   TEXT NOT NULL,               -- the filter as JSON data
    sort_json     TEXT NOT NULL DEFAULT '[]',  -- [[column, 'asc' | 'desc'], ...]
    columns_json  TEXT NOT NULL DEFAULT '[]',  -- columns shown, in order ([] = the viewer's default)
    run_ids_json  TEXT NOT NULL DEFAULT '[]',  -- evaluation runs the view reads ([] = the latest run with cases)
    description   TEXT NOT NULL DEFAULT '',
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,               -- UTC ISO-8601
    updated_by    TEXT NOT NULL,
    updated_at    TEXT NOT NULL                -- UTC ISO-8601
) WITHOUT ROWID;

CREATE TABLE decisions (
    decision_id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_id  TEXT NOT NULL,                 -- the variant, scenario or case decided on
    kind        TEXT NOT NULL,                 -- 'variant' | 'scenario' | 'failure_case' | ...
    decision    TEXT NOT NULL CHECK (decision IN ('accept', 'reject', 'defer')),
    note        TEXT NOT NULL DEFAULT '',
    user        TEXT NOT NULL,
    created_at  TEXT NOT NULL                  -- UTC ISO-8601; the latest row per (kind, subject_id) holds
);
CREATE INDEX decisions_subject ON decisions(kind, subject_id, decision_id);
"""

# Tables owned by variants/ and jobs/ (their modules read these constants); IF NOT EXISTS keeps workspaces whose
# tables were created before these migrations existed valid.
_V4_VARIANTS = """
CREATE TABLE IF NOT EXISTS variants (
    variant_id       TEXT PRIMARY KEY,           -- '<parent_id>~<hash8 of ops + seed>'
    parent_id        TEXT NOT NULL,              -- the edited scenario (plain id: no foreign key, parents may be
                                                 -- variants or ids never catalogued)
    ops_json         TEXT NOT NULL,              -- canonical JSON list of op records [{"op": name, ...}, ...]
    seed             INTEGER,                    -- sampler seed, NULL = none
    objective        TEXT NOT NULL DEFAULT '',   -- why it was made, in words
    code_version     TEXT NOT NULL,
    created_at       TEXT NOT NULL,              -- UTC ISO-8601
    user             TEXT NOT NULL,
    scenario_path    TEXT NOT NULL,              -- edited scenario file, relative to the workspace root
    scenario_sha256  TEXT NOT NULL               -- content hash of that file
);
CREATE INDEX IF NOT EXISTS variants_parent ON variants(parent_id, created_at);
"""

_V5_JOBS = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id           TEXT PRIMARY KEY,            -- 'job-<UTC yyyymmddThhmmss>-<8 hex>' (JobSpec.job_id)
    kind             TEXT NOT NULL,               -- 'pretrain' | 'posttrain' | 'mine' | 'evaluate' | ...
    name             TEXT NOT NULL DEFAULT '',
    spec_json        TEXT NOT NULL,               -- JobSpec.to_json()
    status           TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    entry_point      TEXT NOT NULL DEFAULT '',    -- 'module:function' the job process runs ('' = by kind)
    pid              INTEGER,                     -- the job process (the Ray driver for backend 'ray')
    pid_started_at   REAL,                        -- its start time, s since the epoch (guards against pid reuse)
    host             TEXT NOT NULL DEFAULT '',    -- where pid lives
    backend          TEXT NOT NULL DEFAULT 'local',  -- 'local' | 'ray'
    run_dir          TEXT NOT NULL,               -- checkpoints, job.log; the same across resumes
    attempt          INTEGER NOT NULL DEFAULT 0,  -- launches so far (1 + resumes)
    created_at       TEXT NOT NULL,               -- UTC ISO-8601 (JobSpec.created_at)
    started_at       TEXT,                        -- UTC ISO-8601, the latest attempt's start
    heartbeat_at     TEXT,                        -- UTC ISO-8601, refreshed every few seconds while running
    finished_at      TEXT,                        -- UTC ISO-8601
    step             INTEGER,                     -- progress: steps done
    total            INTEGER,                     -- progress: steps in all (NULL = unknown)
    message          TEXT NOT NULL DEFAULT '',    -- progress in words
    cancel_requested INTEGER NOT NULL DEFAULT 0,  -- 1 once someone asked the job to stop
    error            TEXT,                        -- why it failed (or how it was cancelled)
    result_json      TEXT,                        -- what the kind returned (paths, run ids, summaries)
    code_version     TEXT NOT NULL,
    user             TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);

CREATE TABLE IF NOT EXISTS job_metrics (
    job_id TEXT NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
    key    TEXT NOT NULL,                         -- namespaced: 'losses/policy', 'selftest/loss'
    step   INTEGER NOT NULL,
    value  REAL,                                  -- NULL = not finite
    time   TEXT NOT NULL,                         -- UTC ISO-8601 of the write
    PRIMARY KEY (job_id, key, step)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS job_events (
    job_id  TEXT NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
    time    TEXT NOT NULL,                        -- UTC ISO-8601
    event   TEXT NOT NULL,                        -- 'launched' | 'started' | 'resumed' | 'cancel_requested' |
                                                  -- 'succeeded' | 'failed' | 'cancelled' | 'orphaned' | ...
    step    INTEGER,                              -- progress step at the time, if known
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events(job_id, time);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "scenario catalog: imports, scenarios, scenario_tags, splits", _V1_CATALOG),
    Migration(2, "evaluation: eval_runs, eval_results, failure_cases", _V2_EVALUATION),
    Migration(3, "curation: notes, saved_views, decisions", _V3_CURATION),
    Migration(4, "variants: edited scenarios with their lineage", _V4_VARIANTS),
    Migration(5, "jobs: jobs, job_metrics, job_events", _V5_JOBS),
)
"""Every schema step, oldest first."""

SCHEMA_VERSION: int = MIGRATIONS[-1].version
"""The schema version this code writes and reads."""

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version      INTEGER PRIMARY KEY,
    applied_at   TEXT NOT NULL,
    description  TEXT NOT NULL,
    code_version TEXT NOT NULL
)
"""


def split_statements(sql: str) -> list[str]:
    """Split a script into complete statements (``;`` inside strings, comments and triggers is respected).

    Needed because ``executescript`` commits the open transaction first.

    Examples:
        >>> split_statements("CREATE TABLE a(x TEXT DEFAULT ';'); INSERT INTO a VALUES (1);")
        ["CREATE TABLE a(x TEXT DEFAULT ';');", 'INSERT INTO a VALUES (1);']
    """
    out: list[str] = []
    buf = ""
    for piece in sql.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            stmt = buf.strip()
            if _has_code(stmt):
                out.append(stmt)
            buf = ""
    if _has_code(buf[:-1]):
        raise WorkspaceError(f"Migration SQL ends with an incomplete statement: {buf[:-1].strip()[:200]!r}")
    return out


def _has_code(stmt: str) -> bool:
    """True if ``stmt`` holds more than whitespace, ``--`` comments and semicolons."""
    lines = [ln.split("--", 1)[0] for ln in stmt.splitlines()]
    return bool("".join(lines).replace(";", "").strip())


def read_version(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version``."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_version(conn: sqlite3.Connection, where: str, known: int = SCHEMA_VERSION) -> int:
    """Return the database version; raise WorkspaceError if it is newer than ``known`` (this code's)."""
    found = read_version(conn)
    if found > known:
        raise WorkspaceError(
            f"Workspace {where} has schema version {found}, but this worldengine_lab ({__version__}) knows "
            f"versions up to {known}. A newer worldengine_lab wrote it: upgrade worldengine_lab "
            f"(pip install -U worldengine_lab, or pull and reinstall the checkout), or open another workspace."
        )
    return found


def migrate(conn: sqlite3.Connection, where: str, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply every migration newer than the database's version, each in its own immediate transaction.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open transaction. Returns the
    versions applied by this call (empty if another process got there first). Raises WorkspaceError if the
    database is newer than the code or a migration fails (the failing step is rolled back).
    """
    _check_sequence(migrations)
    applied: list[int] = []
    known = migrations[-1].version
    if check_version(conn, where, known) >= known:
        return applied
    for m in migrations:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if check_version(conn, where, known) >= m.version:  # another process applied it meanwhile
                conn.execute("ROLLBACK")
                continue
            conn.execute(_BOOKKEEPING)
            for stmt in split_statements(m.sql):
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_migrations(version, applied_at, description, code_version) VALUES (?, ?, ?, ?)",
                (m.version, utc_now_iso(), m.description, code_version()),
            )
            conn.execute(f"PRAGMA user_version = {int(m.version)}")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and not is_busy_error(exc):
                raise WorkspaceError(
                    f"Workspace {where}: migration {m.version} ({m.description}) failed: {exc}. The database was "
                    f"left at version {m.version - 1}; report this with the message above."
                ) from exc
            raise
        applied.append(m.version)
        logger.info("workspace %s: applied schema migration %d (%s)", where, m.version, m.description)
    return applied


def _check_sequence(migrations: tuple[Migration, ...]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise WorkspaceError(f"Schema migrations must be numbered 1, 2, 3, ... in order; received {versions}")
