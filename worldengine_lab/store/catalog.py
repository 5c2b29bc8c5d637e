"""The scenario catalog's SQL: validating import rows, upserts, tags, splits, filtered reads and statistics.

Functions here take an open connection; :class:`~worldengine_lab.store.Workspace` owns connections and
transactions and calls them. Write functions expect to run inside a transaction.
"""
from __future__ import annotations

import json
import logging
import math
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..artifacts import code_version, current_user, utc_now_iso
from ..errors import WorkspaceError
from ..scenarios.filters import ScenarioFilter

__all__ = [
    "CATALOG_COLUMNS",
    "ImportMeta",
    "new_import_id",
    "prepare_rows",
    "check_tags",
    "as_id_list",
    "insert_import",
    "upsert_scenarios",
    "insert_tags",
    "delete_tags",
    "assign_split",
    "require_ids",
    "catalog_rows",
    "split_tags",
    "row_dict",
    "rows_to_frame",
    "catalog_stats",
]

logger = logging.getLogger(__name__)

_TEXT = ("scenario_id", "source", "path", "locator", "log_id", "map_name", "location")
_FLOAT = ("start_time_s", "duration_s")
_INT = ("num_steps", "t0", "num_agents")
_JSON = ("window_json", "meta_json")
CATALOG_COLUMNS: tuple[str, ...] = _TEXT + _FLOAT + _INT + _JSON + ("maps_root",)
"""Catalog columns an importer may fill (``import_id``, ``created_at``, ``updated_at`` are set by the store)."""

_READ_COLUMNS = CATALOG_COLUMNS + ("import_id", "created_at", "updated_at")
_FRAME_ORDER = (
    "scenario_id", "source", "log_id", "map_name", "location", "start_time_s", "duration_s", "num_steps", "t0",
    "num_agents", "tags", "split", "path", "locator", "window_json", "maps_root", "meta_json", "import_id",
    "created_at", "updated_at",
)
_STORE_MANAGED = ("import_id", "created_at", "updated_at", "split")  # ignored in import rows (copied catalogs)
_TAG_SEP = "\x1f"  # unit separator: tags may not contain control characters


@dataclass(frozen=True)
class ImportMeta:
    """What an import was: recorded once per :meth:`Workspace.add_scenarios` call in the ``imports`` table.

    Attributes:
        source: the reader ('nuplan', 'av2', 'synthetic', ...); rows without a ``source`` get this one.
        path: the file or folder the importer read.
        params: importer parameters (window lengths, selection, seed); must be JSON-serialisable.
        started_at: UTC ISO time the import began (default: when ``add_scenarios`` was called).
        code_version: default :func:`worldengine_lab.artifacts.code_version`.
    """

    source: str
    path: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    code_version: str | None = None

    @classmethod
    def coerce(cls, value: "ImportMeta | Mapping[str, Any] | None", records: Sequence[Mapping[str, Any]]) -> "ImportMeta":
        """Accept an ImportMeta, a dict of its fields, or None (source taken from the rows)."""
        if isinstance(value, ImportMeta):
            return value
        if value is None:
            sources = sorted({str(r["source"]) for r in records if not _missing(r.get("source"))})
            return cls(source=sources[0] if len(sources) == 1 else ("mixed" if sources else "unknown"))
        if not isinstance(value, Mapping):
            raise WorkspaceError(f"import_meta: expected an ImportMeta or a dict, received {type(value).__name__}")
        allowed = {"source", "path", "params", "started_at", "code_version"}
        unknown = sorted(set(value) - allowed)
        if unknown or "source" not in value:
            raise WorkspaceError(
                f"import_meta: expected keys 'source' (required) and {sorted(allowed - {'source'})}, received "
                f"{sorted(value)}"
            )
        return cls(**{k: (str(v) if k == "path" else v) for k, v in value.items()})


def new_import_id() -> str:
    """A sortable unique id: ``imp-<UTC yyyymmddThhmmss>-<8 hex>``."""
    return f"imp-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


# -- validation -----------------------------------------------------------------------------------------------
def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def check_tags(tags: str | Iterable[str], where: str) -> list[str]:
    """Validate tags (non-empty str without control characters); a single str is one tag."""
    items = [tags] if isinstance(tags, str) else list(tags)
    for t in items:
        if not isinstance(t, str) or not t.strip() or any(ord(c) < 32 for c in t) or len(t) > 200:
            raise WorkspaceError(
                f"{where}: expected tags as non-empty strings of at most 200 printable characters, received {t!r}"
            )
    return list(dict.fromkeys(items))


def as_id_list(ids: Any, where: str) -> list[str]:
    """Scenario ids from a str, an iterable of str, a ScenarioSet (``.ids``) or a DataFrame/Series."""
    if isinstance(ids, str):
        return [ids]
    if isinstance(ids, pd.DataFrame):
        if "scenario_id" not in ids.columns:
            raise WorkspaceError(f"{where}: expected a DataFrame with a 'scenario_id' column, received {list(ids.columns)}")
        ids = ids["scenario_id"].tolist()
    elif hasattr(ids, "ids") and not isinstance(ids, Mapping):
        ids = ids.ids
    out = [_plain(i) for i in ids]
    bad = [i for i in out if not isinstance(i, str) or not i]
    if bad:
        raise WorkspaceError(f"{where}: expected scenario ids as non-empty strings, received {bad[:5]!r}")
    return list(dict.fromkeys(out))


def prepare_rows(
    records: Sequence[Mapping[str, Any]], default_source: str
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Validate and convert import rows into catalog column values.

    Accepts the keys of :data:`CATALOG_COLUMNS`, plus ``window`` (dict, stored as ``window_json``), ``meta``
    (dict) and ``tags`` (list). Columns the store sets (import_id, created_at, updated_at, split) are ignored, so
    a frame from ``Workspace.catalog()`` can be imported elsewhere. Any other key (e.g. ``num_lanes`` from
    ``Scenario.summary()``) goes into ``meta_json``. Returns ``(rows, tags by scenario id)``; raises
    WorkspaceError naming the row and field.
    """
    rows: list[dict[str, Any]] = []
    row_tags: dict[str, list[str]] = {}
    for i, rec in enumerate(records):
        rec = dict(rec)
        sid = _plain(rec.get("scenario_id"))
        where = _RowRef(i, sid)
        if not isinstance(sid, str) or not sid:
            raise WorkspaceError(f"{where}: expected a non-empty str scenario_id")
        rec["scenario_id"] = str(sid)
        tags = rec.pop("tags", None)
        if tags is not None and not _missing(tags):
            if isinstance(tags, str):
                tags = [t for t in tags.split(",") if t]
            row_tags.setdefault(sid, []).extend(check_tags(list(tags), str(where)))
        meta = dict(rec.pop("meta", None) or {})
        if "window" in rec:
            window = rec.pop("window")
            if "window_json" in rec:
                raise WorkspaceError(f"{where}: give either 'window' (dict) or 'window_json' (str), not both")
            rec["window_json"] = window
        out: dict[str, Any] = {}
        for key, value in rec.items():
            if key in _STORE_MANAGED:
                continue
            if key not in _COLUMN_SET:
                meta[key] = None if _missing(value) else _plain(value)
                continue
            out[key] = _convert(key, value, where)
        if meta:
            prior = json.loads(out.get("meta_json") or "{}")
            out["meta_json"] = _to_json({**prior, **meta}, "meta", where)
        if not out.get("source"):
            out["source"] = default_source
        rows.append(out)
    return rows, row_tags


class _RowRef:
    """Names a row in error messages (formatted only when an error is raised)."""

    __slots__ = ("index", "scenario_id")

    def __init__(self, index: int, scenario_id: Any) -> None:
        self.index, self.scenario_id = index, scenario_id

    def __str__(self) -> str:
        return f"add_scenarios: row {self.index} (scenario_id={self.scenario_id!r})"


_COLUMN_SET = frozenset(CATALOG_COLUMNS)
_TEXT_SET = frozenset(_TEXT + ("maps_root",))
_FLOAT_SET = frozenset(_FLOAT)
_INT_SET = frozenset(_INT)
_NULLABLE = frozenset(_FLOAT + _INT + ("maps_root",))


def _convert(key: str, value: Any, where: _RowRef) -> Any:
    """One catalog value in its column's SQLite type; raise WorkspaceError naming the row if it cannot be."""
    t = type(value)  # fast paths for the common plain-Python values
    if t is str and key in _TEXT_SET:
        return value
    if t is float and key in _FLOAT_SET:
        return value if value == value else None
    if t is int and key in _INT_SET:
        return value
    value = _plain(value)
    if key in _JSON:
        if _missing(value):
            return "{}"
        if isinstance(value, str):
            try:
                json.loads(value)
            except json.JSONDecodeError:
                raise WorkspaceError(f"{where}: {key} expected a JSON string or a dict, received {value[:80]!r}") from None
            return value
        return _to_json(value, key, where)
    if _missing(value):
        return None if key in _NULLABLE else ""
    if key in _TEXT_SET:
        return str(value)  # os.PathLike and ids given as other types
    try:
        if key in _FLOAT_SET:
            return float(value)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        kind = "a number" if key in _FLOAT_SET else "an integer"
        raise WorkspaceError(f"{where}: {key} expected {kind}, received {value!r}") from None


def _to_json(value: Any, key: str, where: object) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise WorkspaceError(f"{where}: {key} expected JSON-serialisable data: {exc}") from None


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if hasattr(v, "__fspath__"):
        return str(v)
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


# -- writes (inside a transaction) ------------------------------------------------------------------------------
def require_ids(conn: sqlite3.Connection, ids: Sequence[str], where: str) -> None:
    """Raise WorkspaceError if any id is not in the catalog."""
    missing = [r[0] for r in conn.execute(
        "SELECT value FROM json_each(?) WHERE NOT EXISTS (SELECT 1 FROM scenarios WHERE scenario_id = value)",
        (json.dumps(list(ids)),),
    )]
    if missing:
        raise WorkspaceError(
            f"{where}: {len(missing)} scenario id(s) are not in the catalog, e.g. {missing[:5]}; import them first "
            f"(Workspace.add_scenarios) or check the ids"
        )


def insert_import(conn: sqlite3.Connection, import_id: str, meta: ImportMeta, num_scenarios: int, now: str) -> None:
    """Record one import."""
    params = _to_json(dict(meta.params), "params", "import_meta")
    conn.execute(
        "INSERT INTO imports(import_id, source, path, started_at, finished_at, num_scenarios, code_version, "
        "params_json, user) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (import_id, meta.source, meta.path, meta.started_at or now, now, num_scenarios,
         meta.code_version or code_version(), params, current_user()),
    )


def upsert_scenarios(conn: sqlite3.Connection, rows: Sequence[Mapping[str, Any]], import_id: str, now: str) -> None:
    """Insert rows, or update the existing row of the same scenario_id (``created_at`` is kept)."""
    cols = list(CATALOG_COLUMNS)
    defaults = {c: (None if c in _FLOAT + _INT + ("maps_root",) else ("{}" if c in _JSON else "")) for c in cols}
    names = ", ".join(cols + ["import_id", "created_at", "updated_at"])
    marks = ", ".join("?" * (len(cols) + 3))
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols[1:] + ["import_id", "updated_at"])
    conn.executemany(
        f"INSERT INTO scenarios({names}) VALUES ({marks}) ON CONFLICT(scenario_id) DO UPDATE SET {updates}",
        [tuple(r.get(c, defaults[c]) for c in cols) + (import_id, now, now) for r in rows],
    )


def insert_tags(conn: sqlite3.Connection, pairs: Iterable[tuple[str, str]], now: str) -> int:
    """Add ``(scenario_id, tag)`` pairs (existing pairs are kept); return how many were new."""
    user = current_user()
    cur = conn.executemany(
        "INSERT INTO scenario_tags(scenario_id, tag, created_at, user) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(scenario_id, tag) DO NOTHING",
        ((sid, tag, now, user) for sid, tag in pairs),
    )
    return max(cur.rowcount, 0)


def delete_tags(conn: sqlite3.Connection, ids: Sequence[str], tags: Sequence[str]) -> int:
    """Remove every tag in ``tags`` from every id in ``ids``; return how many pairs were removed."""
    cur = conn.execute(
        "DELETE FROM scenario_tags WHERE scenario_id IN (SELECT value FROM json_each(?)) "
        "AND tag IN (SELECT value FROM json_each(?))",
        (json.dumps(list(ids)), json.dumps(list(tags))),
    )
    return max(cur.rowcount, 0)


def assign_split(conn: sqlite3.Connection, ids: Sequence[str], split: str | None, now: str) -> int:
    """Put ``ids`` in ``split`` (replacing any previous split), or out of every split if ``split`` is None."""
    if split is None:
        cur = conn.execute("DELETE FROM splits WHERE scenario_id IN (SELECT value FROM json_each(?))",
                           (json.dumps(list(ids)),))
        return max(cur.rowcount, 0)
    cur = conn.executemany(
        "INSERT INTO splits(scenario_id, split, created_at, user) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(scenario_id) DO UPDATE SET split = excluded.split, created_at = excluded.created_at, "
        "user = excluded.user",
        [(sid, split, now, current_user()) for sid in ids],
    )
    return max(cur.rowcount, 0)


# -- reads ----------------------------------------------------------------------------------------------------
def catalog_rows(
    conn: sqlite3.Connection, spec: ScenarioFilter, limit: int | None = None, offset: int = 0,
    ids_only: bool = False,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run the filtered catalog query; return ``(column names, row tuples)`` in the filter's order.

    ``tags`` comes back as one string joined by ``\\x1f`` (see :func:`rows_to_frame`); ``split`` as str or None.
    """
    from_sql, where_sql, params, order_sql = spec.to_sql("s")
    if ids_only:
        select = "s.scenario_id"
    else:
        select = ", ".join(f"s.{c}" for c in _READ_COLUMNS) + (
            ", (SELECT group_concat(_g.tag, char(31)) FROM scenario_tags AS _g WHERE _g.scenario_id = s.scenario_id)"
            " AS tags, (SELECT _sp.split FROM splits AS _sp WHERE _sp.scenario_id = s.scenario_id) AS split"
        )
    sql = f"SELECT {select} FROM {from_sql} WHERE {where_sql} ORDER BY {order_sql}"
    if limit is not None or offset:
        sql += " LIMIT ? OFFSET ?"
        params = params + [-1 if limit is None else int(limit), int(offset)]
    cur = conn.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return cols, cur.fetchall()


def split_tags(value: str | None) -> list[str]:
    """The sorted tag list of one catalog row's joined ``tags`` value."""
    return sorted(value.split(_TAG_SEP)) if value else []


def rows_to_frame(cols: list[str], rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Catalog rows as a DataFrame with stable dtypes and ``tags`` as sorted lists."""
    columns = {c: list(v) for c, v in zip(cols, zip(*rows))} if rows else {c: [] for c in cols}
    if "tags" in columns:
        columns["tags"] = [split_tags(v) for v in columns["tags"]]
    frame = pd.DataFrame({c: pd.Series(v, dtype=object if c not in _FLOAT + _INT else None) for c, v in columns.items()})
    for c in _FLOAT:
        if c in frame.columns:
            frame[c] = frame[c].astype("float64")
    for c in _INT:
        if c in frame.columns:
            frame[c] = frame[c].astype("Int64")
    return frame[[c for c in _FRAME_ORDER if c in frame.columns]]


def row_dict(cols: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    """One catalog row as the dict a scenario loader receives: every column, ``tags`` as a sorted list, and
    ``window`` / ``meta`` parsed from their JSON columns."""
    d = dict(zip(cols, row))
    d["tags"] = split_tags(d.get("tags"))
    d["window"] = json.loads(d.get("window_json") or "{}")
    d["meta"] = json.loads(d.get("meta_json") or "{}")
    return d


def catalog_stats(conn: sqlite3.Connection, spec: ScenarioFilter) -> dict[str, Any]:
    """Counts per source, location, map, tag and split, plus totals, over the rows ``spec`` keeps.

    Call inside a read transaction for a consistent snapshot.
    """
    from_sql, where_sql, params, _ = spec.to_sql("s")
    cte = (f"WITH sel AS (SELECT s.scenario_id, s.source, s.location, s.map_name, s.log_id, s.duration_s "
           f"FROM {from_sql} WHERE {where_sql}) ")

    def counts(select: str) -> dict[str, int]:
        q = cte + select + " GROUP BY 1 ORDER BY 2 DESC, 1"
        return {str(k): int(n) for k, n in conn.execute(q, params)}

    n, n_logs, total = conn.execute(cte + "SELECT COUNT(*), COUNT(DISTINCT log_id), TOTAL(duration_s) FROM sel",
                                    params).fetchone()
    return {
        "num_scenarios": int(n),
        "num_logs": int(n_logs),
        "total_duration_s": float(total),
        "by_source": counts("SELECT source, COUNT(*) FROM sel"),
        "by_location": counts("SELECT location, COUNT(*) FROM sel"),
        "by_map": counts("SELECT map_name, COUNT(*) FROM sel"),
        "by_tag": counts("SELECT t.tag, COUNT(*) FROM sel JOIN scenario_tags AS t ON t.scenario_id = sel.scenario_id"),
        "by_split": counts("SELECT p.split, COUNT(*) FROM sel JOIN splits AS p ON p.scenario_id = sel.scenario_id"),
    }
