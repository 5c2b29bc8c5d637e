"""FailureFilter: which rows of a failure table to keep and how to order them, as frozen, JSON-serialisable data.

A filter is data, not code: it is stored as a saved view (:func:`~worldengine_lab.store.save_view`), synced to a
widget as a small dict, and applied to a failure table (:func:`~worldengine_lab.mining.failure_table.failure_table`,
one row per failure case) with vectorised numpy/pandas operations. Fields left at their default constrain
nothing; the fields are ANDed.

:class:`FailureIndex` caches what filtering needs (category codes, a row x tag membership list, a lower-cased
search text, numeric columns, sort ranks) so that a table of 100,000 rows is filtered, sorted and paged in a few
tens of milliseconds; :meth:`FailureFilter.apply` builds one when none is passed.

Examples:
    >>> from worldengine_lab.mining.failure_table import synthetic_failure_table
    >>> table = synthetic_failure_table(1000, seed=0)
    >>> f = FailureFilter(failure_types=["collision"], metric_ranges={"ego_progress": (0.5, None)},
    ...                   sort_by="ego_progress", descending=True)
    >>> FailureFilter.from_json(f.to_json()) == f
    True
    >>> rows = f.select(table)
    >>> bool((rows["failure_type"] == "collision").all() and rows["ego_progress"].is_monotonic_decreasing)
    True
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import MissingColumnError, WorldEngineLabError

if TYPE_CHECKING:
    from ..scenarios.scenario_set import ScenarioSet
    from ..store.curation import SavedView
    from ..store.workspace import Workspace

__all__ = ["FailureFilter", "FailureFilterError", "FailureIndex", "VALUE_FIELDS", "SEARCH_COLUMNS", "view_ids"]

_SPEC_VERSION = 1

VALUE_FIELDS: dict[str, str] = {
    "failure_types": "failure_type", "rules": "rule", "modes": "mode", "map_names": "map_name", "splits": "split",
    "cluster_ids": "cluster_id",
}
"""Filter field -> the table column whose value must be one of the field's values."""

SEARCH_COLUMNS: tuple[str, ...] = (
    "scenario_id", "case_id", "rule", "failure_type", "collided_with", "case_tag", "map_name", "map_context",
    "log_id", "split", "reason",
)
"""Text columns :attr:`FailureFilter.search` looks in (with the tags), those present."""


class FailureFilterError(WorldEngineLabError, ValueError):
    """A FailureFilter field has a bad value; the message names the field."""


def _strings(name: str, value: Any) -> tuple[str, ...]:
    """A str or an iterable of str (ints are accepted as their text) as a sorted tuple without duplicates."""
    if value is None:
        return ()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise FailureFilterError(f"FailureFilter.{name}: expected a str or a list of str, received "
                                 f"{type(value).__name__}") from None
    out = []
    for v in items:
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            v = str(int(v))
        if not isinstance(v, str) or not v:
            raise FailureFilterError(f"FailureFilter.{name}: expected non-empty strings, received {v!r}")
        out.append(v)
    return tuple(sorted(set(out)))


def _bound(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise FailureFilterError(f"FailureFilter.metric_ranges[{name!r}]: expected numbers or None as bounds, "
                                 f"received {value!r}") from None
    if math.isnan(x):
        raise FailureFilterError(f"FailureFilter.metric_ranges[{name!r}]: expected a number or None (open end), "
                                 f"received NaN")
    return x


def _ranges(value: Any) -> tuple[tuple[str, float | None, float | None], ...]:
    """``{column: (lo, hi)}`` or ``[(column, lo, hi), ...]`` as sorted ``(column, lo, hi)`` triples."""
    if value is None:
        return ()
    try:
        items = list(value.items()) if isinstance(value, Mapping) else [(t[0], tuple(t[1:])) for t in value]
    except (TypeError, IndexError):
        raise FailureFilterError(f"FailureFilter.metric_ranges: expected {{column: (lo, hi)}} or (column, lo, hi) "
                                 f"triples, received {value!r:.80}") from None
    out = {}
    for col, bounds in items:
        if not isinstance(col, str) or not col:
            raise FailureFilterError(f"FailureFilter.metric_ranges: expected column names as keys, received {col!r}")
        if not isinstance(bounds, (list, tuple, np.ndarray)) or len(bounds) != 2:
            raise FailureFilterError(f"FailureFilter.metric_ranges[{col!r}]: expected (lo, hi), either None for an "
                                     f"open end, received {bounds!r}")
        lo, hi = (_bound(col, b) for b in bounds)
        if lo is not None and hi is not None and lo > hi:
            raise FailureFilterError(f"FailureFilter.metric_ranges[{col!r}]: expected lo <= hi, received "
                                     f"({lo}, {hi}); swap the bounds")
        if lo is None and hi is None:
            continue  # no constraint
        out[col] = (lo, hi)
    return tuple((c, *out[c]) for c in sorted(out))


@dataclass(frozen=True)
class FailureFilter:
    """Which failure-table rows to keep, and their order. Lists may be given where tuples are stored.

    Attributes:
        failure_types: keep rows whose ``failure_type`` is one of these ('collision', 'off_road', ...); () any.
        rules: keep rows whose mining ``rule`` is one of these ('collision', 'off_road', 'low_progress'); () any.
        modes: keep rows whose ``mode`` is one of these ('open_loop', 'closed_loop'); () any.
        tags: keep rows whose ``tags`` list holds **all** of these; () any.
        map_names: keep rows whose ``map_name`` is one of these; () any.
        splits: keep rows whose ``split`` is one of these; () any.
        cluster_ids: keep rows whose ``cluster_id`` (compared as text) is one of these; () any.
        scenario_ids: keep rows whose ``scenario_id`` is one of these (e.g. a lasso selection); None any.
        metric_ranges: ``{column: (lo, hi)}``: keep ``lo <= value <= hi`` (None = open end; NaN never passes).
            Stored as sorted ``(column, lo, hi)`` triples.
        search: whitespace-separated terms that must **all** occur (case-insensitive) in one of
            :data:`SEARCH_COLUMNS` or a tag.
        sort_by: the column to order by (None: the table's own order, i.e. rank).
        descending: sort largest first. Missing values go last either way; ties keep the table's order.
    """

    failure_types: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    map_names: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    cluster_ids: tuple[str, ...] = ()
    scenario_ids: tuple[str, ...] | None = None
    metric_ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    search: str = ""
    sort_by: str | None = None
    descending: bool = False

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass normalisation)
        for name in (*VALUE_FIELDS, "tags"):
            put(name, _strings(name, getattr(self, name)))
        if self.scenario_ids is not None:
            put("scenario_ids", _strings("scenario_ids", self.scenario_ids))
        put("metric_ranges", _ranges(self.metric_ranges))
        if self.search is None:
            put("search", "")
        if not isinstance(self.search, str) or len(self.search) > 500:
            raise FailureFilterError(f"FailureFilter.search: expected a str of at most 500 characters, received "
                                     f"{self.search!r:.80}")
        put("search", " ".join(self.search.split()))
        if self.sort_by == "":
            put("sort_by", None)
        if self.sort_by is not None and not isinstance(self.sort_by, str):
            raise FailureFilterError(f"FailureFilter.sort_by: expected a column name or None, received "
                                     f"{self.sort_by!r}")
        if not isinstance(self.descending, (bool, np.bool_)):
            raise FailureFilterError(f"FailureFilter.descending: expected True or False, received {self.descending!r}")
        put("descending", bool(self.descending))

    # -- serialisation ------------------------------------------------------------------------------------
    @property
    def ranges(self) -> dict[str, tuple[float | None, float | None]]:
        """``metric_ranges`` as ``{column: (lo, hi)}``."""
        return {c: (lo, hi) for c, lo, hi in self.metric_ranges}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data with the fields that constrain or order something, plus a spec version."""
        out: dict[str, Any] = {"version": _SPEC_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == () or value == "" or (f.name == "descending" and not value):
                continue
            if f.name == "metric_ranges":
                value = {c: [lo, hi] for c, (lo, hi) in self.ranges.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def to_json(self) -> str:
        """A canonical JSON string (sorted keys) of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "FailureFilter":
        """Inverse of :meth:`to_dict` (``None`` and ``{}`` keep everything); unknown keys raise."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise FailureFilterError(f"FailureFilter.from_dict: expected a dict of filter fields, received "
                                     f"{type(data).__name__}")
        data = dict(data)
        version = data.pop("version", _SPEC_VERSION)
        if version != _SPEC_VERSION:
            raise FailureFilterError(f"FailureFilter.from_dict: version: expected {_SPEC_VERSION}, received "
                                     f"{version!r}; it was saved by another worldengine_lab version")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FailureFilterError(f"FailureFilter.from_dict: unknown fields {unknown}; expected some of "
                                     f"{sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "FailureFilter":
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise FailureFilterError(f"FailureFilter.from_json: expected a JSON object, received {text!r:.80}: "
                                     f"{exc}") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "FailureFilter":
        """A copy with some fields changed (validated like the constructor)."""
        return dataclasses.replace(self, **changes)

    @property
    def is_everything(self) -> bool:
        """True if the filter keeps every row (its sort may still order them)."""
        d = self.to_dict()
        d.pop("sort_by", None)
        d.pop("descending", None)
        return d == {"version": _SPEC_VERSION}

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "version")
        return f"FailureFilter({body})"

    # -- application --------------------------------------------------------------------------------------
    def apply(self, table: pd.DataFrame, index: "FailureIndex | None" = None) -> np.ndarray:
        """``[R] bool``: which rows of ``table`` the filter keeps (vectorised; the sort is not applied).

        ``index`` is a :class:`FailureIndex` of this same table (build one with ``FailureIndex(table)`` to reuse
        its caches across calls). Raises MissingColumnError for a filter on a column the table lacks.
        """
        ix = _index_for(table, index)
        mask = np.ones(ix.num_rows, dtype=bool)
        for name, column in VALUE_FIELDS.items():
            wanted = getattr(self, name)
            if wanted:
                mask &= ix.isin(column, wanted, f"FailureFilter.{name}")
        if self.scenario_ids is not None:
            mask &= ix.isin("scenario_id", self.scenario_ids, "FailureFilter.scenario_ids")
        for tag in self.tags:
            mask &= ix.has_tag(tag)
        for col, lo, hi in self.metric_ranges:
            values = ix.numeric(col, f"FailureFilter.metric_ranges[{col!r}]")
            with np.errstate(invalid="ignore"):
                if lo is not None:
                    mask &= values >= lo
                if hi is not None:
                    mask &= values <= hi
        for term in self.search.lower().split():
            if not mask.any():
                break
            mask &= ix.contains(term)
        return mask

    def order(self, table: pd.DataFrame, mask: np.ndarray | None = None,
              index: "FailureIndex | None" = None) -> np.ndarray:
        """``[M] int64``: positions of the kept rows (``mask``, default :meth:`apply`) in display order."""
        ix = _index_for(table, index)
        keep = self.apply(table, ix) if mask is None else np.asarray(mask, dtype=bool)
        if keep.shape != (ix.num_rows,):
            raise FailureFilterError(f"FailureFilter.order: mask: expected shape ({ix.num_rows},), received "
                                     f"{keep.shape}")
        rows = np.flatnonzero(keep)
        if self.sort_by is None:
            return rows
        key = ix.sort_key(self.sort_by, self.descending)[rows]
        return rows[np.argsort(key, kind="stable")]

    def select(self, table: pd.DataFrame, index: "FailureIndex | None" = None) -> pd.DataFrame:
        """The kept rows of ``table`` in display order."""
        return table.iloc[self.order(table, index=index)]

    def scenario_id_list(self, table: pd.DataFrame, index: "FailureIndex | None" = None,
                         include_members: bool = False) -> list[str]:
        """The kept rows' scenario ids in display order, each once (``include_members``: every window of each
        case, from the ``members`` lists)."""
        rows = table.iloc[self.order(table, index=index)]
        ids = rows["members"].explode().dropna() if include_members and "members" in rows.columns \
            else rows["scenario_id"]
        return pd.unique(ids.astype(str).to_numpy()).tolist()

    def scenarios(self, workspace: "Workspace", table: pd.DataFrame | None = None,
                  index: "FailureIndex | None" = None) -> "ScenarioSet":
        """The kept rows' scenarios as a :class:`~worldengine_lab.scenarios.ScenarioSet` over ``workspace``'s
        catalog (uncatalogued ids drop out), in display order; ``table`` defaults to ``failure_table(workspace)``."""
        from ..scenarios.scenario_set import ScenarioSet
        from .failure_table import failure_table

        t = failure_table(workspace) if table is None else table
        return ScenarioSet(workspace, ids=self.scenario_id_list(t, index=index))


def _index_for(table: pd.DataFrame, index: "FailureIndex | None") -> "FailureIndex":
    if index is None:
        return FailureIndex(table)
    if index.table is not table:
        raise FailureFilterError("FailureFilter.apply: index: expected a FailureIndex built from this same table; "
                                 "build it with FailureIndex(table)")
    return index


class FailureIndex:
    """Per-table caches for fast filtering: built lazily, column by column, on first use.

    Args:
        table: a failure table (``scenario_id`` required; other columns as :func:`failure_table` names them).
    The table must not change while the index is used; build a new index after editing it.
    """

    def __init__(self, table: pd.DataFrame) -> None:
        if not isinstance(table, pd.DataFrame):
            raise FailureFilterError(f"FailureIndex.table: expected a pandas DataFrame (mining.failure_table), "
                                     f"received {type(table).__name__}")
        if "scenario_id" not in table.columns:
            raise MissingColumnError(f"FailureIndex.table: expected a 'scenario_id' column (mining.failure_table), "
                                     f"received columns {list(table.columns)[:20]}")
        self.table = table
        self.num_rows = len(table)
        self._codes: dict[str, tuple[np.ndarray, pd.Index]] = {}
        self._numeric: dict[str, np.ndarray] = {}
        self._sort: dict[str, np.ndarray] = {}
        self._tags: tuple[np.ndarray, np.ndarray, pd.Index] | None = None
        self._haystack: pd.Series | None = None

    def warm(self) -> "FailureIndex":
        """Build every cache now (value codes, tags, search text, numeric columns) so that no later filter call
        pays for a first use; returns self."""
        for column in (*VALUE_FIELDS.values(), "scenario_id"):
            if column in self.table.columns:
                self.codes(column)
        if "tags" in self.table.columns:
            self._tag_pairs()
        self.contains("")
        for column in self.numeric_columns():
            self.numeric(column)
        return self

    def _column(self, column: str, where: str) -> pd.Series:
        if column not in self.table.columns:
            raise MissingColumnError(f"{where}: the table has no column {column!r}; expected one of "
                                     f"{list(self.table.columns)[:30]}")
        return self.table[column]

    def codes(self, column: str, where: str = "FailureIndex.codes") -> tuple[np.ndarray, pd.Index]:
        """``([R] int64 codes, distinct values as text)``; code -1 marks a missing value."""
        if column not in self._codes:
            codes, uniques = pd.factorize(self._column(column, where), use_na_sentinel=True)
            self._codes[column] = (np.asarray(codes, dtype=np.int64), pd.Index(np.asarray(uniques).astype(str)))
        return self._codes[column]

    def values(self, column: str) -> list[str]:
        """Sorted distinct non-empty values of a text column (for filter menus); [] if the column is absent."""
        if column not in self.table.columns:
            return []
        return sorted(v for v in self.codes(column)[1].tolist() if v)

    def isin(self, column: str, wanted: Sequence[str], where: str = "FailureIndex.isin") -> np.ndarray:
        """``[R] bool``: the row's value (as text) is one of ``wanted``."""
        codes, uniques = self.codes(column, where)
        lut = np.zeros(len(uniques) + 1, dtype=bool)  # the last slot answers code -1 (missing)
        hit = uniques.get_indexer(list(wanted))
        lut[hit[hit >= 0]] = True
        return lut[codes]

    def _tag_pairs(self) -> tuple[np.ndarray, np.ndarray, pd.Index]:
        """``([P] row positions, [P] tag codes, distinct tags)`` of every (row, tag) pair."""
        if self._tags is None:
            tags = self._column("tags", "FailureFilter.tags")
            lengths = tags.map(len, na_action="ignore").fillna(0).to_numpy(dtype=np.int64)
            flat = tags.explode().dropna()
            rows = np.repeat(np.arange(self.num_rows, dtype=np.int64), lengths)
            codes, uniques = pd.factorize(flat.astype(str).to_numpy())
            if len(rows) != len(codes):  # empty lists explode to one NaN each; lengths count real tags only
                raise FailureFilterError("FailureFilter.tags: expected each 'tags' cell to be a list of str")
            self._tags = (rows, np.asarray(codes, dtype=np.int64), pd.Index(uniques))
        return self._tags

    def has_tag(self, tag: str) -> np.ndarray:
        """``[R] bool``: the row's ``tags`` list holds ``tag``."""
        rows, codes, uniques = self._tag_pairs()
        mask = np.zeros(self.num_rows, dtype=bool)
        code = uniques.get_indexer([tag])[0]
        if code >= 0:
            mask[rows[codes == code]] = True
        return mask

    def choices(self) -> dict[str, Any]:
        """Menu data for filter controls: for each value field (``failure_types``, ``rules``, ``modes``,
        ``map_names``, ``splits``) and ``tags``, the sorted distinct non-empty values, and under ``counts`` their row
        counts over the whole table; ``numeric_columns`` and ``columns`` of the table."""
        out: dict[str, Any] = {"counts": {}}
        for field in ("failure_types", "rules", "modes", "map_names", "splits"):
            column = VALUE_FIELDS[field]
            if column not in self.table.columns:
                out[field] = []
                continue
            codes, uniques = self.codes(column)
            n = np.bincount(codes[codes >= 0], minlength=len(uniques))
            counts = {v: int(c) for v, c in zip(uniques.tolist(), n.tolist()) if v}
            out[field] = sorted(counts)
            out["counts"][field] = counts
        if "tags" in self.table.columns:
            _, codes, uniques = self._tag_pairs()
            n = np.bincount(codes, minlength=len(uniques))
            out["counts"]["tags"] = {v: int(c) for v, c in zip(uniques.tolist(), n.tolist())}
        out["tags"] = self.tag_values()
        out["numeric_columns"] = self.numeric_columns()
        out["columns"] = [str(c) for c in self.table.columns]
        return out

    def tag_values(self) -> list[str]:
        """Sorted distinct tags of the table; [] without a ``tags`` column."""
        return sorted(self._tag_pairs()[2].tolist()) if "tags" in self.table.columns else []

    def numeric(self, column: str, where: str = "FailureIndex.numeric") -> np.ndarray:
        """``[R] float64`` of a numeric or boolean column (NaN where missing)."""
        if column not in self._numeric:
            col = self._column(column, where)
            if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
                raise FailureFilterError(f"{where}: expected a numeric column, {column!r} holds {col.dtype}; "
                                         f"filter text columns with the value fields instead")
            self._numeric[column] = col.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        return self._numeric[column]

    def numeric_columns(self) -> list[str]:
        """Numeric and boolean columns of the table, in table order."""
        return [c for c in self.table.columns
                if pd.api.types.is_numeric_dtype(self.table[c]) or pd.api.types.is_bool_dtype(self.table[c])]

    def contains(self, term: str) -> np.ndarray:
        """``[R] bool``: ``term`` (lower case) occurs in the row's search text."""
        if self._haystack is None:
            parts = [self.table[c].fillna("").astype(str) for c in SEARCH_COLUMNS if c in self.table.columns]
            if "tags" in self.table.columns:
                parts.append(self.table["tags"].map(" ".join, na_action="ignore").fillna("").astype(str))
            text = parts[0]
            for p in parts[1:]:
                text = text + "\x1f" + p
            self._haystack = text.str.lower().astype("str")
        # an escaped pattern: pyarrow's regex matcher is faster than its plain substring search
        return self._haystack.str.contains(re.escape(term), regex=True).to_numpy(dtype=bool, na_value=False)

    def sort_key(self, column: str, descending: bool = False) -> np.ndarray:
        """``[R] int64``: ascending order of ``column`` (dense ranks; missing values last in both directions)."""
        if column not in self._sort:
            col = self._column(column, "FailureFilter.sort_by")
            present = col.dropna()
            if col.dtype == object and len(present) and isinstance(present.iloc[0], (list, tuple)):
                col = col.map(", ".join, na_action="ignore")  # list cells (tags, members) sort by their text
            codes, _ = pd.factorize(col, sort=True, use_na_sentinel=True)
            self._sort[column] = np.asarray(codes, dtype=np.int64)
        codes = self._sort[column]
        top = int(codes.max()) + 1 if len(codes) else 0
        key = (top - 1 - codes) if descending else codes.copy()
        key[codes < 0] = top
        return key


def view_ids(ws: "Workspace", view: "SavedView", include_members: bool = False) -> list[str]:
    """The scenario ids a saved ``'failures'`` view selects now (its runs' failure table, its filter and sort)."""
    from .failure_table import failure_table

    flt = FailureFilter.from_dict(view.filter)
    if flt.sort_by is None and view.sort:
        column, direction = view.sort[0]
        flt = flt.replace(sort_by=column, descending=direction == "desc")
    table = failure_table(ws, list(view.run_ids) or None)
    return flt.scenario_id_list(table, include_members=include_members)
