"""Curation in the workspace: tags, notes, saved views and accept/reject decisions (schema migration 3).

* **Tags** are catalog tags (``scenario_tags``); a tag on a failure is a tag on its scenario. Tagged ids must be
  catalogued.
* **Notes**: free text on a scenario id (catalogued or not), with who wrote it and when, oldest first.
* **Saved views**: a unique name for a filter kept as JSON *data* (never a copy of rows), its sort, the columns
  shown, the evaluation runs it reads, and who saved it when. ``kind`` says what the filter applies to:
  ``'failures'`` (a :class:`~worldengine_lab.mining.failure_filter.FailureFilter` over the failure table) or
  ``'scenarios'`` (a :class:`~worldengine_lab.scenarios.ScenarioFilter` over the catalog).
* **Decisions**: an append-only log of ``accept`` / ``reject`` / ``defer`` on variants (or scenarios, cases);
  the latest row per ``(kind, subject_id)`` is the current decision.

Every write is one transaction, so it is all there or not at all, and it survives the process (a kernel restart).
Bad arguments raise :class:`CurationError` (a :class:`~worldengine_lab.errors.WorkspaceError`) naming the argument.

Examples:
    >>> import tempfile
    >>> from worldengine_lab.store import Workspace
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> _ = ws.add_scenarios([{"scenario_id": "a", "source": "synthetic", "log_id": "log0"}])
    >>> add_tags(ws, ["a"], "review")
    1
    >>> add_note(ws, "a", "ego brakes late")
    1
    >>> save_view(ws, "late brakes", {"tags": ["review"]}, kind="scenarios").name
    'late brakes'
    >>> load_view(ws, "late brakes").filter
    {'tags': ['review']}
"""
from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import pandas as pd

from ..artifacts import current_user, utc_now_iso
from ..errors import WorkspaceError
from . import catalog as _cat

if TYPE_CHECKING:
    from ..logs.navsim.scene_filter import SceneFilterSpec
    from .workspace import Workspace

__all__ = [
    "CurationError", "ViewExistsError", "ViewNotFoundError", "SavedView", "VIEW_KINDS", "DECISIONS",
    "add_tags", "remove_tags", "add_note", "notes", "delete_note", "save_view", "views", "load_view",
    "delete_view", "view_scenario_ids", "export_view_yaml", "record_decision", "decisions",
]

logger = logging.getLogger(__name__)

VIEW_KINDS: tuple[str, ...] = ("failures", "scenarios")
"""What a saved view's filter applies to."""

DECISIONS: tuple[str, ...] = ("accept", "reject", "defer")
"""Values of a curation decision."""

_VIEW_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9 _.,:+@=()\[\]-]{0,99}$")
_MAX_NOTE_CHARS = 20_000
_SORT_DIRECTIONS = ("asc", "desc")


class CurationError(WorkspaceError, ValueError):
    """A curation call received a bad argument; the message names it and says what was expected."""


class ViewExistsError(CurationError):
    """A saved view of that name exists and ``overwrite`` was not asked for."""


class ViewNotFoundError(CurationError, KeyError):
    """No saved view has that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class SavedView:
    """One saved view, as :func:`load_view` returns it.

    Attributes:
        name: the unique name.
        kind: ``'failures'`` or ``'scenarios'`` (:data:`VIEW_KINDS`).
        filter: the filter as JSON data (rebuild it with ``FailureFilter.from_dict`` / ``ScenarioFilter.from_dict``).
        sort: ``((column, 'asc' | 'desc'), ...)``, first key first; empty = the table's own order.
        columns: columns shown, in order; empty = the viewer's default.
        run_ids: evaluation runs the view reads; empty = the latest run with failure cases.
        description: free text.
        created_by, created_at: who saved the name first, and when (UTC ISO-8601).
        updated_by, updated_at: who saved it last, and when (UTC ISO-8601).
    """

    name: str
    kind: str
    filter: dict[str, Any]
    sort: tuple[tuple[str, str], ...] = ()
    columns: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    description: str = ""
    created_by: str = ""
    created_at: str = ""
    updated_by: str = ""
    updated_at: str = ""


# -- argument checks ----------------------------------------------------------------------------------------
def _check_view_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _VIEW_NAME_RE.match(name) or name != name.strip():
        raise CurationError(
            f"{where}: name: expected 1-100 characters of letters, digits, spaces and _.,:+@=()[]- (not starting with "
            f"a space, '.' or '-', no trailing space), received {name!r}; choose a plain name such as "
            f"'collisions at intersections'"
        )
    return name


def _check_text(value: Any, where: str, what: str, max_chars: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()) or len(value) > max_chars:
        raise CurationError(f"{where}: {what}: expected a{'' if allow_empty else ' non-empty'} str of at most "
                            f"{max_chars} characters, received {_short(value)}")
    return value


def _check_user(user: str | None, where: str) -> str:
    if user is None:
        return current_user()
    return _check_text(user, where, "user", 200).strip()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _to_filter_data(value: Any, where: str) -> tuple[dict[str, Any], str | None]:
    """A filter object or dict as JSON-able data; also the kind its type implies (None for a plain dict)."""
    kind = None
    if hasattr(value, "to_dict") and callable(value.to_dict) and not isinstance(value, Mapping):
        name = type(value).__name__
        kind = "failures" if name == "FailureFilter" else ("scenarios" if name == "ScenarioFilter" else None)
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise CurationError(f"{where}: filter: expected a FailureFilter, a ScenarioFilter or a dict of filter "
                            f"fields, received {type(value).__name__}")
    try:
        data = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise CurationError(f"{where}: filter: expected JSON data (str, numbers, lists, dicts; no NaN), received "
                            f"{_short(value)} ({exc})") from exc
    return data, kind


def _check_sort(sort: Any, where: str) -> list[list[str]]:
    if sort is None:
        return []
    items = [sort] if isinstance(sort, str) else list(sort)
    if len(items) == 2 and isinstance(items[0], str) and items[1] in _SORT_DIRECTIONS:
        items = [tuple(items)]  # one (column, direction) pair
    out: list[list[str]] = []
    for item in items:
        col, direction = (item, "asc") if isinstance(item, str) else tuple(item)
        if not isinstance(col, str) or not col or direction not in _SORT_DIRECTIONS:
            raise CurationError(f"{where}: sort: expected column names or (column, 'asc' | 'desc') pairs, "
                                f"received {_short(sort)}")
        out.append([col, direction])
    return out


def _check_strings(values: Any, where: str, what: str) -> list[str]:
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    bad = [v for v in items if not isinstance(v, str) or not v]
    if bad:
        raise CurationError(f"{where}: {what}: expected non-empty strings, received {_short(bad[:5])}")
    return list(dict.fromkeys(items))


# -- tags -----------------------------------------------------------------------------------------------------
def add_tags(ws: "Workspace", scenario_ids: Any, tags: str | Sequence[str]) -> int:
    """Add ``tags`` (one str or several) to catalogued scenarios; return how many (scenario, tag) pairs were new.

    ``scenario_ids``: an id, a list of ids, a ScenarioSet or a DataFrame with ``scenario_id``. Raises
    WorkspaceError, writing nothing, if a tag is empty or an id is not in the catalog.
    """
    return ws.tag(scenario_ids, tags if isinstance(tags, str) else list(tags))


def remove_tags(ws: "Workspace", scenario_ids: Any, tags: str | Sequence[str]) -> int:
    """Remove ``tags`` (one str or several) from scenarios; return how many pairs were removed."""
    return ws.untag(scenario_ids, tags if isinstance(tags, str) else list(tags))


# -- notes ----------------------------------------------------------------------------------------------------
def add_note(ws: "Workspace", scenario_id: str, text: str, user: str | None = None) -> int:
    """Attach a note to ``scenario_id`` (catalogued or not); return its ``note_id``.

    Args:
        scenario_id: the scenario (or NAVSIM token, variant id) the note is about.
        text: the note, 1 to 20,000 characters.
        user: who wrote it (default: the login name of this process).
    """
    sid = _check_text(scenario_id, "add_note", "scenario_id", 500)
    body = _check_text(text, "add_note", "text", _MAX_NOTE_CHARS)
    who = _check_user(user, "add_note")
    with ws.transaction() as conn:
        cur = conn.execute("INSERT INTO notes(scenario_id, text, user, created_at) VALUES (?, ?, ?, ?)",
                           (sid, body, who, utc_now_iso()))
        return int(cur.lastrowid)


def notes(ws: "Workspace", scenario_ids: Any = None) -> pd.DataFrame:
    """Notes, oldest first: ``note_id``, ``scenario_id``, ``text``, ``user``, ``created_at``.

    ``scenario_ids``: None for every note, else an id / ids / ScenarioSet / DataFrame whose notes to return.
    """
    if scenario_ids is None:
        return ws.query("SELECT note_id, scenario_id, text, user, created_at FROM notes ORDER BY note_id")
    ids = _cat.as_id_list(scenario_ids, "notes")
    return ws.query("SELECT note_id, scenario_id, text, user, created_at FROM notes WHERE scenario_id IN "
                    "(SELECT value FROM json_each(?)) ORDER BY note_id", (json.dumps(ids),))


def delete_note(ws: "Workspace", note_id: int) -> bool:
    """Delete one note; return whether it existed."""
    if isinstance(note_id, bool) or not isinstance(note_id, int):
        raise CurationError(f"delete_note: note_id: expected an int (notes(ws)['note_id']), received {_short(note_id)}")
    with ws.transaction() as conn:
        return conn.execute("DELETE FROM notes WHERE note_id = ?", (note_id,)).rowcount > 0


# -- saved views ----------------------------------------------------------------------------------------------
def save_view(ws: "Workspace", name: str, filter: Any, sort: Any = None, columns: Sequence[str] | None = None,
              run_ids: str | Sequence[str] | None = None, kind: str | None = None, description: str = "",
              overwrite: bool = False, user: str | None = None) -> SavedView:
    """Save a filter under a unique ``name``; return the stored view.

    Args:
        name: 1-100 characters (letters, digits, spaces, ``_.,:+@=()[]-``).
        filter: a ``FailureFilter`` (kind ``'failures'``), a ``ScenarioFilter`` (kind ``'scenarios'``) or a dict
            of filter fields (give ``kind``; default ``'failures'``). Stored as JSON data.
        sort: column names or ``(column, 'asc' | 'desc')`` pairs; default: the FailureFilter's own sort.
        columns: the columns shown, in order (default: the viewer's).
        run_ids: the evaluation runs the view reads (default: the latest run with failure cases when loaded).
        kind: ``'failures'`` or ``'scenarios'``; must agree with the filter's type when both are given.
        description: free text.
        overwrite: replace an existing view of that name (its ``created_*`` fields are kept).
        user: who saves it (default: the login name of this process).
    Raises:
        CurationError: a bad argument. ViewExistsError: ``name`` is taken and ``overwrite`` is False.
    """
    where = "save_view"
    _check_view_name(name, where)
    data, implied = _to_filter_data(filter, where)
    if kind is not None and kind not in VIEW_KINDS:
        raise CurationError(f"{where}: kind: expected one of {list(VIEW_KINDS)}, received {kind!r}")
    if kind is not None and implied is not None and kind != implied:
        raise CurationError(f"{where}: kind: the filter is a {type(filter).__name__} (kind {implied!r}), received "
                            f"kind={kind!r}; drop the kind argument")
    kind = kind or implied or "failures"
    if sort is None and kind == "failures" and data.get("sort_by"):
        sort = [(data["sort_by"], "desc" if data.get("descending") else "asc")]
    sort_list = _check_sort(sort, where)
    cols = _check_strings(columns, where, "columns")
    runs = _check_strings(run_ids, where, "run_ids")
    _check_text(description, where, "description", 2000, allow_empty=True)
    if not isinstance(overwrite, bool):
        raise CurationError(f"{where}: overwrite: expected True or False, received {_short(overwrite)}")
    who = _check_user(user, where)
    now = utc_now_iso()
    row = (name, kind, json.dumps(data, sort_keys=True), json.dumps(sort_list), json.dumps(cols), json.dumps(runs),
           description, who, now, who, now)
    with ws.transaction() as conn:
        exists = conn.execute("SELECT 1 FROM saved_views WHERE name = ?", (name,)).fetchone() is not None
        if exists and not overwrite:
            raise ViewExistsError(f"{where}: name: a saved view {name!r} exists in workspace {ws.root}; pass "
                                  f"overwrite=True to replace it, or choose another name")
        conn.execute(
            "INSERT INTO saved_views(name, kind, filter_json, sort_json, columns_json, run_ids_json, description, "
            "created_by, created_at, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, filter_json = excluded.filter_json, "
            "sort_json = excluded.sort_json, columns_json = excluded.columns_json, "
            "run_ids_json = excluded.run_ids_json, description = excluded.description, "
            "updated_by = excluded.updated_by, updated_at = excluded.updated_at", row)
        view = _read_view(conn, name)
    logger.info("workspace %s: %s view %r (%s)", ws.root, "replaced" if exists else "saved", name, kind)
    assert view is not None
    return view


def _read_view(conn: sqlite3.Connection, name: str) -> SavedView | None:
    r = conn.execute("SELECT name, kind, filter_json, sort_json, columns_json, run_ids_json, description, "
                     "created_by, created_at, updated_by, updated_at FROM saved_views WHERE name = ?",
                     (name,)).fetchone()
    if r is None:
        return None
    return SavedView(name=r[0], kind=r[1], filter=json.loads(r[2]),
                     sort=tuple((str(c), str(d)) for c, d in json.loads(r[3])), columns=tuple(json.loads(r[4])),
                     run_ids=tuple(json.loads(r[5])), description=r[6], created_by=r[7], created_at=r[8],
                     updated_by=r[9], updated_at=r[10])


def load_view(ws: "Workspace", name: str) -> SavedView:
    """The saved view ``name``. Raises ViewNotFoundError (listing the saved names) if there is none."""
    _check_view_name(name, "load_view")
    view = ws._read(lambda conn: _read_view(conn, name))
    if view is None:
        have = views(ws)["name"].tolist()
        raise ViewNotFoundError(f"load_view: name: no saved view {name!r} in workspace {ws.root}; saved views: "
                                f"{have[:20] if have else 'none'}; save one with save_view(ws, name, filter)")
    return view


def views(ws: "Workspace", kind: str | None = None) -> pd.DataFrame:
    """Saved views by name: ``name``, ``kind``, ``filter`` / ``sort`` / ``columns`` / ``run_ids`` (parsed),
    ``description``, ``created_by``, ``created_at``, ``updated_by``, ``updated_at``."""
    if kind is not None and kind not in VIEW_KINDS:
        raise CurationError(f"views: kind: expected None or one of {list(VIEW_KINDS)}, received {kind!r}")
    frame = ws.query("SELECT * FROM saved_views" + (" WHERE kind = ?" if kind else "") + " ORDER BY name",
                     (kind,) if kind else ())
    for col in ("filter", "sort", "columns", "run_ids"):
        frame.insert(frame.columns.get_loc(f"{col}_json"), col,
                     pd.Series([json.loads(v) for v in frame[f"{col}_json"]], index=frame.index, dtype=object))
        frame = frame.drop(columns=[f"{col}_json"])
    return frame


def delete_view(ws: "Workspace", name: str) -> None:
    """Delete the saved view ``name``. Raises ViewNotFoundError if there is none."""
    _check_view_name(name, "delete_view")
    with ws.transaction() as conn:
        gone = conn.execute("DELETE FROM saved_views WHERE name = ?", (name,)).rowcount
    if not gone:
        raise ViewNotFoundError(f"delete_view: name: no saved view {name!r} in workspace {ws.root}; list them "
                                f"with views(ws)")
    logger.info("workspace %s: deleted view %r", ws.root, name)


def view_scenario_ids(ws: "Workspace", name: str, include_members: bool = False) -> list[str]:
    """The scenario ids the saved view ``name`` selects now, in the view's order, each once.

    A ``'failures'`` view is applied to the failure table of its runs (each failure case gives its representative
    window; ``include_members`` adds every window of the case); a ``'scenarios'`` view to the catalog.
    """
    view = load_view(ws, name)
    if view.kind == "scenarios":
        from ..scenarios.filters import ScenarioFilter

        return ws.scenario_ids(ScenarioFilter.from_dict(view.filter))
    from ..mining.failure_filter import view_ids  # the failure table lives in mining, which builds on the store

    return view_ids(ws, view, include_members=include_members)


def export_view_yaml(ws: "Workspace", name: str, path: str | os.PathLike[str], include_members: bool = False,
                     **scene_filter: Any) -> "SceneFilterSpec":
    """Write the saved view's scenario ids as a NAVSIM scene-filter YAML; return what was written.

    Args:
        name: the saved view.
        path: the ``.yaml`` file (see :func:`~worldengine_lab.logs.navsim.write_scene_filter`).
        include_members: for a failures view, every window of each case, not only its representative.
        **scene_filter: NAVSIM SceneFilter fields passed to the writer (``num_history_frames``, ...).
    ``tokens`` are the ids of :func:`view_scenario_ids`; ``log_names`` are their catalog logs when every id is
    catalogued with a log id (else None: NAVSIM reads every log). The YAML's name is the view's name.
    """
    from ..logs.navsim.scene_filter import write_scene_filter

    ids = view_scenario_ids(ws, name, include_members=include_members)
    if not ids:
        logger.warning("export_view_yaml: view %r selects no scenarios; writing an empty token list", name)
    logs = ws.query("SELECT scenario_id, log_id FROM scenarios WHERE scenario_id IN (SELECT value FROM json_each(?))",
                    (json.dumps(ids),))
    log_of = dict(zip(logs["scenario_id"], logs["log_id"]))
    known = [log_of.get(i) for i in ids]
    log_names = sorted(set(known)) if ids and all(known) else None
    spec = write_scene_filter(Path(path), ids, log_names=log_names, name=name, **scene_filter)
    logger.info("export_view_yaml: wrote %d tokens of view %r to %s", len(ids), name, path)
    return spec


# -- decisions ------------------------------------------------------------------------------------------------
def record_decision(ws: "Workspace", subject_id: str, decision: str, kind: str = "variant", note: str = "",
                    user: str | None = None) -> int:
    """Append a decision on ``subject_id`` (a variant id by default); return its ``decision_id``.

    ``decision`` is one of :data:`DECISIONS`; the latest decision per ``(kind, subject_id)`` is the current one.
    """
    where = "record_decision"
    sid = _check_text(subject_id, where, "subject_id", 500)
    if decision not in DECISIONS:
        raise CurationError(f"{where}: decision: expected one of {list(DECISIONS)}, received {_short(decision)}")
    _check_text(kind, where, "kind", 100)
    _check_text(note, where, "note", _MAX_NOTE_CHARS, allow_empty=True)
    who = _check_user(user, where)
    with ws.transaction() as conn:
        cur = conn.execute("INSERT INTO decisions(subject_id, kind, decision, note, user, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (sid, kind, decision, note, who, utc_now_iso()))
        return int(cur.lastrowid)


def decisions(ws: "Workspace", kind: str | None = None, subject_ids: Iterable[str] | str | None = None,
              latest: bool = True) -> pd.DataFrame:
    """Decisions (``decision_id``, ``subject_id``, ``kind``, ``decision``, ``note``, ``user``, ``created_at``),
    oldest first; with ``latest`` only the current one per ``(kind, subject_id)``."""
    conds, params = [], []
    if kind is not None:
        conds.append("d.kind = ?")
        params.append(kind)
    if subject_ids is not None:
        conds.append("d.subject_id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(_check_strings(subject_ids, "decisions", "subject_ids")))
    if latest:
        conds.append("d.decision_id = (SELECT MAX(e.decision_id) FROM decisions AS e WHERE e.kind = d.kind AND "
                     "e.subject_id = d.subject_id)")
    where = ("WHERE " + " AND ".join(conds)) if conds else ""
    return ws.query(f"SELECT d.decision_id, d.subject_id, d.kind, d.decision, d.note, d.user, d.created_at "
                    f"FROM decisions AS d {where} ORDER BY d.decision_id", params)
