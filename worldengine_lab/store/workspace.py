"""Workspace: one folder holding ``workspace.sqlite`` (the catalog and, later, results) and ``artifacts/``.

The database runs in WAL mode so that a notebook kernel and several job processes can read and write at once;
every write is one ``BEGIN IMMEDIATE`` transaction, retried with backoff while another process holds the lock.
Each thread and each process gets its own connection (sqlite3 connections cannot cross a fork), so one
Workspace object may be used from threads, and pickled to worker processes (it reconnects there).

Examples:
    >>> import tempfile
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> ws.add_scenarios([{"scenario_id": "a", "source": "synthetic", "log_id": "log0"}], tags={"a": ["rare"]})[:4]
    'imp-'
    >>> ws.catalog()[["scenario_id", "tags"]].to_dict("records")
    [{'scenario_id': 'a', 'tags': ['rare']}]
"""
from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence, TypeVar

import pandas as pd

from ..artifacts import atomic_copy_file, atomic_write_bytes, resolve_workspace, sha256_bytes, utc_now_iso
from ..errors import WorkspaceError
from ..scenarios.filters import ScenarioFilter
from . import catalog as _cat
from ._retry import is_busy_error, retry_on_busy
from .schema import SCHEMA_VERSION, check_version, migrate, read_version

if TYPE_CHECKING:
    from ..scenarios.scenario_set import ScenarioSet

__all__ = ["Workspace", "DB_FILENAME", "ARTIFACTS_DIRNAME", "BUSY_TIMEOUT_S"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DB_FILENAME = "workspace.sqlite"
ARTIFACTS_DIRNAME = "artifacts"
BUSY_TIMEOUT_S = 30.0
"""How long one SQLite call waits for another connection's lock before reporting busy, s."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._~+=@,:-]{0,254}$")

# Connections inherited through fork() belong to the parent: never used, closed or garbage-collected in the child
# (closing one could checkpoint or delete the parent's WAL). They are parked here instead.
_INHERITED: list[sqlite3.Connection] = []


def _connect(db_path: Path) -> sqlite3.Connection:
    """Open one connection with the workspace pragmas (autocommit mode: transactions are explicit)."""
    conn = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        if mode != "wal":
            raise WorkspaceError(
                f"Workspace database {db_path}: expected WAL journal mode, the file system gave {mode!r}. WAL needs "
                f"a local file system with shared memory; put the workspace on a local disk (not NFS/SMB)."
            )
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _check_component(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value) or ".." in value:
        raise WorkspaceError(
            f"Artifact {what} {value!r}: expected one plain file name (letters, digits and ._~+=@,:-, at most 255 "
            f"characters, not starting with '.', no '..', no path separators); pass a name, not a path"
        )
    return value


class Workspace:
    """A workspace folder: the SQLite catalog ``workspace.sqlite`` plus an ``artifacts/`` folder beside it.

    Open one with :meth:`open`. Attributes: ``root`` (the folder), ``db_path``, ``artifacts_dir``.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Wrap an existing, migrated workspace folder without touching it; prefer :meth:`open`."""
        self.root = Path(root)
        self.db_path = self.root / DB_FILENAME
        self.artifacts_dir = self.root / ARTIFACTS_DIRNAME
        self._local = threading.local()
        self._conns: list[tuple[int, sqlite3.Connection]] = []
        self._conns_lock = threading.Lock()
        self._migrating = False

    # -- opening ------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, create: bool = True) -> "Workspace":
        """Open (and with ``create``, create) the workspace at ``path``, else ``$WORLDENGINE_LAB_WORKSPACE``,
        else ``./workspace``, applying pending schema migrations.

        Raises WorkspaceError if the folder is missing and ``create`` is False, the database is not SQLite,
        or it was written by a newer worldengine_lab.
        """
        root = resolve_workspace(path)
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"Workspace {root}: expected a folder, found a file; pass another --workspace path")
        db = root / DB_FILENAME
        if not db.exists():
            if not create:
                raise WorkspaceError(
                    f"No workspace at {root} (expected {db}); create it with Workspace.open(path, create=True) or "
                    f"`worldengine-lab data import --workspace {root}`"
                )
            root.mkdir(parents=True, exist_ok=True)
        (root / ARTIFACTS_DIRNAME).mkdir(exist_ok=True)
        ws = cls(root)
        ws._migrating = True
        try:
            conn = ws.connection()
            retry_on_busy(lambda: migrate(conn, str(root)), what=f"migrate the workspace schema at {root}")
            ws._migrating = False
        except sqlite3.DatabaseError as exc:
            ws.close()
            raise WorkspaceError(f"Workspace {root}: {db} is not a usable SQLite database ({exc}); move it away "
                                 f"or open another workspace") from exc
        except BaseException:
            ws.close()
            raise
        return ws

    def connection(self) -> sqlite3.Connection:
        """This thread's connection in this process (opened on first use, reopened after a fork)."""
        local = self._local
        conn = getattr(local, "conn", None)
        pid = os.getpid()
        if conn is not None and local.pid == pid:
            return conn
        if conn is not None:
            _INHERITED.append(conn)
        try:
            conn = retry_on_busy(lambda: _connect(self.db_path), what=f"open {self.db_path}")
        except sqlite3.DatabaseError as exc:
            if is_busy_error(exc):
                raise
            raise WorkspaceError(f"Workspace {self.root}: cannot open {self.db_path} ({exc})") from exc
        try:
            version = check_version(conn, str(self.root))
            if version < SCHEMA_VERSION and not self._migrating:
                raise WorkspaceError(
                    f"Workspace {self.root} has schema version {version}, expected {SCHEMA_VERSION}; open it with "
                    f"Workspace.open({str(self.root)!r}) to create or migrate it"
                )
        except BaseException:
            conn.close()
            raise
        local.conn, local.pid = conn, pid
        with self._conns_lock:
            self._conns.append((pid, conn))
        return conn

    def close(self) -> None:
        """Close this process's connections (the object stays usable: it reconnects on the next call)."""
        pid = os.getpid()
        with self._conns_lock:
            mine = [c for p, c in self._conns if p == pid]
            self._conns = [(p, c) for p, c in self._conns if p != pid]
        for conn in mine:
            try:
                conn.close()
            except sqlite3.Error as exc:  # a connection closed from another thread mid-statement
                logger.debug("closing a workspace connection failed: %s", exc)
        self._local = threading.local()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"root": str(self.root)}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__init__(state["root"])  # type: ignore[misc]

    @property
    def schema_version(self) -> int:
        """The database's schema version (``PRAGMA user_version``); equals ``store.SCHEMA_VERSION`` once open."""
        return read_version(self.connection())

    # -- transactions -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` if the block raises: all of it or nothing.

        Waiting for the write lock is retried with backoff. Nested use joins the outer transaction through a
        savepoint, so library calls inside ``with ws.transaction():`` commit or roll back together.
        """
        conn = self.connection()
        if conn.in_transaction:
            conn.execute("SAVEPOINT wel_nested")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK TO wel_nested")
                conn.execute("RELEASE wel_nested")
                raise
            conn.execute("RELEASE wel_nested")
            return
        retry_on_busy(lambda: conn.execute("BEGIN IMMEDIATE"), what="start a write transaction")
        try:
            yield conn
            retry_on_busy(lambda: conn.execute("COMMIT"), what="commit a write transaction")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    logger.warning("workspace %s: rollback failed: %s", self.root, exc)
            raise

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run read-only ``fn(conn)`` on one snapshot (a deferred transaction unless one is open)."""
        conn = self.connection()
        if conn.in_transaction:
            return fn(conn)

        def attempt() -> T:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

        return retry_on_busy(attempt, what="read the workspace")

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> pd.DataFrame:
        """Run one SQL query and return its rows as a DataFrame."""
        return self._read(lambda conn: pd.read_sql_query(sql, conn, params=params))

    # -- catalog writes -----------------------------------------------------------------------------------
    def add_scenarios(
        self,
        rows: pd.DataFrame | Sequence[Mapping[str, Any]],
        tags: Mapping[str, Sequence[str]] | None = None,
        import_meta: "_cat.ImportMeta | Mapping[str, Any] | None" = None,
    ) -> str:
        """Catalog scenarios from one import in a single transaction; return the new ``import_id``.

        Args:
            rows: one row per scenario window (a DataFrame or dicts) with ``scenario_id`` and the columns of
                ``store.CATALOG_COLUMNS``: source, path, locator, log_id, map_name, location, start_time_s (s),
                duration_s (s), num_steps, t0, num_agents, window_json (or ``window`` as a dict), maps_root.
                A ``tags`` list per row is added to ``tags``; other keys (e.g. ``num_lanes`` from
                ``Scenario.summary()``) are kept in ``meta_json``.
            tags: scenario_id -> tags to add (to scenarios of this import or already catalogued ones).
            import_meta: an ``ImportMeta`` or dict (source, path, params, started_at, code_version).

        Re-importing a scenario_id updates its row (keeping ``created_at``) and adds tags; existing tags and
        splits are kept. Any error writes nothing.
        """
        records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
        meta = _cat.ImportMeta.coerce(import_meta, records)
        if meta.started_at is None:
            meta = _cat.ImportMeta(meta.source, meta.path, meta.params, utc_now_iso(), meta.code_version)
        prepared, row_tags = _cat.prepare_rows(records, meta.source)
        all_tags = {sid: list(ts) for sid, ts in row_tags.items()}
        for sid, ts in (tags or {}).items():
            all_tags.setdefault(str(sid), []).extend(_cat.check_tags(ts, f"add_scenarios: tags[{sid!r}]"))
        batch = {r["scenario_id"] for r in prepared}
        import_id = _cat.new_import_id()
        with self.transaction() as conn:
            now = utc_now_iso()
            outside = [sid for sid in all_tags if sid not in batch]
            if outside:
                _cat.require_ids(conn, outside, "add_scenarios(tags=...)")
            _cat.insert_import(conn, import_id, meta, len(prepared), now)
            _cat.upsert_scenarios(conn, prepared, import_id, now)
            _cat.insert_tags(conn, ((sid, t) for sid, ts in all_tags.items() for t in dict.fromkeys(ts)), now)
        logger.info("workspace %s: import %s catalogued %d scenarios from %s %s", self.root, import_id,
                    len(prepared), meta.source, meta.path)
        return import_id

    def tag(self, scenario_ids: Any, tag: str | Sequence[str]) -> int:
        """Add ``tag`` (one str or several) to scenarios; return how many (scenario, tag) pairs were new.

        ``scenario_ids`` is an id, a list of ids, a ScenarioSet or a DataFrame with ``scenario_id``.
        Raises WorkspaceError (and writes nothing) if any id is not catalogued.
        """
        ids = _cat.as_id_list(scenario_ids, "tag")
        tags = _cat.check_tags(tag, "tag")
        with self.transaction() as conn:
            _cat.require_ids(conn, ids, "tag")
            return _cat.insert_tags(conn, ((sid, t) for sid in ids for t in tags), utc_now_iso())

    def untag(self, scenario_ids: Any, tag: str | Sequence[str]) -> int:
        """Remove ``tag`` (one str or several) from scenarios; return how many pairs were removed."""
        ids = _cat.as_id_list(scenario_ids, "untag")
        tags = _cat.check_tags(tag, "untag")
        with self.transaction() as conn:
            return _cat.delete_tags(conn, ids, tags)

    def set_split(self, scenario_ids: Any, split: str | None) -> int:
        """Assign scenarios to ``split`` ('pretrain', 'mine', 'test_common', 'test_rare', ...), replacing any
        previous assignment; ``None`` removes them from every split. Returns the rows written."""
        ids = _cat.as_id_list(scenario_ids, "set_split")
        if split is not None and (not isinstance(split, str) or not split.strip()):
            raise WorkspaceError(f"set_split: expected a non-empty split name or None, received {split!r}")
        with self.transaction() as conn:
            if split is not None:
                _cat.require_ids(conn, ids, "set_split")
            return _cat.assign_split(conn, ids, split, utc_now_iso())

    def delete_scenarios(self, scenario_ids: Any) -> int:
        """Remove scenarios from the catalog (their tags and splits go with them); return how many."""
        ids = _cat.as_id_list(scenario_ids, "delete_scenarios")
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM scenarios WHERE scenario_id IN (SELECT value FROM json_each(?))",
                               (json.dumps(ids),))
            return max(cur.rowcount, 0)

    # -- catalog reads ------------------------------------------------------------------------------------
    def catalog(self, where: ScenarioFilter | Mapping[str, Any] | str | None = None, limit: int | None = None, **filters: Any) -> pd.DataFrame:
        """Catalog rows as a DataFrame, one per scenario, with ``tags`` (sorted list) and ``split`` columns.

        ``filters`` are those of :class:`~worldengine_lab.scenarios.ScenarioFilter` (tags, any_tags, location,
        map_name, log_id, source, split, time_range, duration_min, ids, ...); ``where`` is a ready filter (or its
        dict form, or an SQL predicate over the catalog aliased ``s``) that they are ANDed with; ``limit`` keeps the first rows only.
        """
        spec = self._spec(where, filters)
        cols, rows = self._read(lambda conn: _cat.catalog_rows(conn, spec, limit=limit))
        return _cat.rows_to_frame(cols, rows)

    def catalog_rows(self, where: ScenarioFilter | Mapping[str, Any] | str | None = None, limit: int | None = None, offset: int = 0,
                     **filters: Any) -> list[dict[str, Any]]:
        """Catalog rows as the dicts scenario loaders receive (``tags`` list, ``window``/``meta`` parsed)."""
        spec = self._spec(where, filters)
        cols, rows = self._read(lambda conn: _cat.catalog_rows(conn, spec, limit=limit, offset=offset))
        return [_cat.row_dict(cols, r) for r in rows]

    def scenario_ids(self, where: ScenarioFilter | Mapping[str, Any] | str | None = None, **filters: Any) -> list[str]:
        """The ids the filters keep, in catalog order."""
        spec = self._spec(where, filters)
        _, rows = self._read(lambda conn: _cat.catalog_rows(conn, spec, ids_only=True))
        return [r[0] for r in rows]

    def count(self, where: ScenarioFilter | Mapping[str, Any] | str | None = None, **filters: Any) -> int:
        """How many scenarios the filters keep."""
        from_sql, where_sql, params, _ = self._spec(where, filters).to_sql("s")
        return int(self._read(lambda c: c.execute(f"SELECT COUNT(*) FROM {from_sql} WHERE {where_sql}",
                                                  params).fetchone()[0]))

    def stats(self, where: ScenarioFilter | Mapping[str, Any] | str | None = None, **filters: Any) -> dict[str, Any]:
        """Counts per source, location, map, tag and split (``by_*`` dicts, largest first), ``num_scenarios``,
        ``num_logs`` and ``total_duration_s`` (s) over the filtered catalog, plus ``num_imports``."""
        spec = self._spec(where, filters)

        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            out = _cat.catalog_stats(conn, spec)
            out["num_imports"] = int(conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0])
            return out

        return self._read(read)

    def imports(self) -> pd.DataFrame:
        """The ``imports`` table, oldest first."""
        return self.query("SELECT * FROM imports ORDER BY started_at, import_id")

    def migrations(self) -> pd.DataFrame:
        """The ``schema_migrations`` table."""
        return self.query("SELECT * FROM schema_migrations ORDER BY version")

    def scenarios(self, where: ScenarioFilter | Mapping[str, Any] | str | None = None, **filters: Any) -> "ScenarioSet":
        """A lazy :class:`~worldengine_lab.scenarios.ScenarioSet` over the filtered catalog."""
        from ..scenarios.scenario_set import ScenarioSet

        return ScenarioSet(self, where=self._spec(where, filters))

    @staticmethod
    def _spec(where: ScenarioFilter | Mapping[str, Any] | str | None, filters: Mapping[str, Any]) -> ScenarioFilter:
        spec = ScenarioFilter.from_kwargs(**filters)
        return spec if where is None else ScenarioFilter.coerce(where) & spec

    # -- artifacts ----------------------------------------------------------------------------------------
    def artifact_path(self, kind: str, name: str) -> Path:
        """``artifacts/<kind>/<name>`` inside the workspace (nothing is created).

        Both parts must be plain file names; '..', absolute paths and separators raise WorkspaceError.
        """
        path = self.artifacts_dir / _check_component(kind, "kind") / _check_component(name, "name")
        base = os.path.abspath(self.artifacts_dir)
        if os.path.commonpath([base, os.path.abspath(path)]) != base:  # belt and braces
            raise WorkspaceError(f"Artifact path {path} falls outside {self.artifacts_dir}; pass a plain name")
        return path

    def put_artifact(self, kind: str, name: str, data: bytes | bytearray | memoryview | str | os.PathLike[str],
                     overwrite: bool = True) -> tuple[Path, str]:
        """Write ``data`` (bytes, or the path of a file to copy) atomically to :meth:`artifact_path`; return
        ``(path, sha256 hex)``. With ``overwrite=False`` an existing artifact raises WorkspaceError."""
        path = self.artifact_path(kind, name)
        if not overwrite and path.exists():
            raise WorkspaceError(f"Artifact {path} exists; pass overwrite=True or choose another name")
        if isinstance(data, (bytes, bytearray, memoryview)):
            atomic_write_bytes(path, data)
            digest = sha256_bytes(data)
        elif isinstance(data, (str, os.PathLike)):
            src = Path(data)
            if not src.is_file():
                raise WorkspaceError(f"put_artifact: expected bytes or the path of an existing file, received {src}")
            path, digest = atomic_copy_file(src, path)
        else:
            raise WorkspaceError(f"put_artifact: expected bytes or a file path, received {type(data).__name__}")
        logger.debug("workspace %s: wrote artifact %s (sha256 %s)", self.root, path, digest)
        return path, digest

    # -- display ------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def _repr_html_(self) -> str:
        s = self.stats()
        rows = [("root", str(self.root)), ("schema version", f"{self.schema_version} (code {SCHEMA_VERSION})"),
                ("scenarios", s["num_scenarios"]), ("logs", s["num_logs"]),
                ("total duration", f"{s['total_duration_s']:.1f} s"), ("imports", s["num_imports"]),
                ("sources", s["by_source"]), ("splits", s["by_split"])]
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in rows)
        return f"<table><caption>Workspace</caption>{body}</table>"
