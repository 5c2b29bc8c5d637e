"""ScenarioFilter: a small, frozen, JSON-serialisable description of which catalog rows to keep.

A filter is data, not code: it can be stored (a saved view), sent to another process, combined with ``&`` and
turned into one SQL query over the workspace catalog. Every field left at its default means "no constraint";
the fields are ANDed.

Examples:
    >>> f = ScenarioFilter(tags="near_miss", location=["boston", "pittsburgh"], time_range=(0, 60))
    >>> ScenarioFilter.from_json(f.to_json()) == f
    True
    >>> (f & ScenarioFilter(location="boston")).location
    ('boston',)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping

from ..errors import WorldEngineLabError

__all__ = ["ScenarioFilter", "FILTER_FIELDS"]

_SPEC_VERSION = 1
_VALUE_FIELDS = ("source", "location", "map_name", "log_id", "split", "import_id")


def _strings(name: str, value: Any, allow_empty_str: bool = True) -> tuple[str, ...]:
    """Normalise a str or an iterable of str into a tuple of str."""
    if isinstance(value, str):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise WorldEngineLabError(
            f"ScenarioFilter.{name}: expected a str or a list of str, received {type(value).__name__}"
        ) from None
    for v in items:
        if not isinstance(v, str) or (not allow_empty_str and not v):
            raise WorldEngineLabError(
                f"ScenarioFilter.{name}: expected {'non-empty ' if not allow_empty_str else ''}strings, "
                f"received {v!r}"
            )
    return items


def _number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise WorldEngineLabError(f"ScenarioFilter.{name}: expected a number of seconds or None, received {value!r}") from None
    if math.isnan(x):
        raise WorldEngineLabError(f"ScenarioFilter.{name}: expected a number of seconds or None, received NaN")
    return x


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class ScenarioFilter:
    """Which scenarios to keep. Strings may be given where tuples are stored; they are normalised.

    Attributes:
        ids: keep only these scenario ids, in this order (None: any id; duplicates dropped).
        tags: keep scenarios that carry **all** of these tags.
        any_tags: groups of tags; keep scenarios that carry **at least one** tag of **every** group. A flat list
            of str is one group.
        exclude_tags: drop scenarios that carry any of these tags.
        source: keep these sources ('nuplan', 'av2', 'synthetic', ...); None: any.
        location: keep these locations; None: any.
        map_name: keep these maps; None: any.
        log_id: keep these logs; None: any.
        split: keep scenarios assigned to one of these splits; None: any (including unassigned).
        import_id: keep scenarios written by these imports; None: any.
        time_range: ``(t_min, t_max)``, s on the dataset clock; keep ``t_min <= start_time_s <= t_max``.
            Either end may be None (open).
        duration_min: keep ``duration_s >= duration_min``, s.
        duration_max: keep ``duration_s <= duration_max``, s.
        sql: extra SQL predicates over the catalog table (aliased ``s``), each ``(predicate, params)``,
            e.g. ``("s.num_agents >= ?", (10,))``.
    """

    ids: tuple[str, ...] | None = None
    tags: tuple[str, ...] = ()
    any_tags: tuple[tuple[str, ...], ...] = ()
    exclude_tags: tuple[str, ...] = ()
    source: tuple[str, ...] | None = None
    location: tuple[str, ...] | None = None
    map_name: tuple[str, ...] | None = None
    log_id: tuple[str, ...] | None = None
    split: tuple[str, ...] | None = None
    import_id: tuple[str, ...] | None = None
    time_range: tuple[float | None, float | None] | None = None
    duration_min: float | None = None
    duration_max: float | None = None
    sql: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass normalisation)
        if self.ids is not None:
            put("ids", _dedupe(_strings("ids", self.ids, allow_empty_str=False)))
        put("tags", tuple(sorted(set(_strings("tags", self.tags, allow_empty_str=False)))))
        put("exclude_tags", tuple(sorted(set(_strings("exclude_tags", self.exclude_tags, allow_empty_str=False)))))
        groups = self.any_tags
        if isinstance(groups, str) or (isinstance(groups, (tuple, list)) and any(isinstance(g, str) for g in groups)):
            groups = (groups,)
        norm = [tuple(sorted(set(_strings("any_tags", g, allow_empty_str=False)))) for g in groups]
        put("any_tags", _dedupe_groups(norm))
        for name in _VALUE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                put(name, tuple(sorted(set(_strings(name, value)))))
        if self.time_range is not None:
            tr = tuple(self.time_range)
            if len(tr) != 2:
                raise WorldEngineLabError(f"ScenarioFilter.time_range: expected (t_min, t_max), received {self.time_range!r}")
            put("time_range", (_number("time_range", tr[0]), _number("time_range", tr[1])))
        put("duration_min", _number("duration_min", self.duration_min))
        put("duration_max", _number("duration_max", self.duration_max))
        clauses = []
        raw = self.sql
        if isinstance(raw, str) or (isinstance(raw, (tuple, list)) and len(raw) == 2 and isinstance(raw[0], str)
                                    and not isinstance(raw[1], str)):
            raw = [raw]  # one predicate, or one (predicate, params) pair
        for clause in raw:
            pred, params = (clause, ()) if isinstance(clause, str) else clause
            if not isinstance(pred, str) or not pred.strip() or ";" in pred:
                raise WorldEngineLabError(
                    f"ScenarioFilter.sql: expected one SQL predicate without ';', received {pred!r}"
                )
            clauses.append((pred.strip(), tuple(params)))
        put("sql", tuple(clauses))

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def coerce(cls, value: "ScenarioFilter | Mapping[str, Any] | str | None") -> "ScenarioFilter":
        """Accept a ScenarioFilter, its dict form (:meth:`to_dict`), one SQL predicate str or ``(predicate,
        params)`` pair, or None (everything)."""
        if value is None:
            return cls()
        if isinstance(value, ScenarioFilter):
            return value
        if isinstance(value, str) or (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str)):
            return cls(sql=value)  # a predicate, or a (predicate, params) pair
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise WorldEngineLabError(
            f"ScenarioFilter.coerce: expected a ScenarioFilter, a filter dict or an SQL predicate str, received "
            f"{type(value).__name__}"
        )

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "ScenarioFilter":
        """Build from keyword arguments (``where=`` is an alias of ``sql=``); unknown names raise."""
        if "where" in kwargs:
            kwargs["sql"] = kwargs.pop("where")
        _check_keys(kwargs)
        return cls(**{k: v for k, v in kwargs.items() if v is not None})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScenarioFilter":
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        version = data.pop("version", _SPEC_VERSION)
        if version != _SPEC_VERSION:
            raise WorldEngineLabError(
                f"ScenarioFilter: expected spec version {_SPEC_VERSION}, received {version!r}; it was saved by "
                f"another worldengine_lab version"
            )
        _check_keys(data)
        if "sql" in data:
            data["sql"] = tuple((p, tuple(a)) for p, a in data["sql"])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "ScenarioFilter":
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorldEngineLabError(f"ScenarioFilter.from_json: expected a JSON object, received {text[:80]!r}: {exc}") from None
        if not isinstance(data, dict):
            raise WorldEngineLabError(f"ScenarioFilter.from_json: expected a JSON object, received {type(data).__name__}")
        return cls.from_dict(data)

    # -- serialisation ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data holding only the fields that constrain something, plus a spec version."""
        out: dict[str, Any] = {"version": _SPEC_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            if f.name == "any_tags":
                value = [list(g) for g in value]
            elif f.name == "sql":
                value = [[p, list(a)] for p, a in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def to_json(self) -> str:
        """A canonical JSON string (sorted keys) of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def is_everything(self) -> bool:
        """True if the filter keeps every scenario."""
        return self.to_dict() == {"version": _SPEC_VERSION}

    # -- combination --------------------------------------------------------------------------------------
    def __and__(self, other: "ScenarioFilter") -> "ScenarioFilter":
        """Both filters at once (intersection)."""
        if not isinstance(other, ScenarioFilter):
            return NotImplemented
        ids = self.ids if other.ids is None else (
            other.ids if self.ids is None else tuple(i for i in self.ids if i in set(other.ids))
        )
        values = {}
        for name in _VALUE_FIELDS:
            a, b = getattr(self, name), getattr(other, name)
            values[name] = b if a is None else (a if b is None else tuple(sorted(set(a) & set(b))))
        time_range = self.time_range
        if other.time_range is not None:
            if time_range is None:
                time_range = other.time_range
            else:
                lo = [x for x in (time_range[0], other.time_range[0]) if x is not None]
                hi = [x for x in (time_range[1], other.time_range[1]) if x is not None]
                time_range = (max(lo) if lo else None, min(hi) if hi else None)
        dmin = [x for x in (self.duration_min, other.duration_min) if x is not None]
        dmax = [x for x in (self.duration_max, other.duration_max) if x is not None]
        return ScenarioFilter(
            ids=ids,
            tags=self.tags + other.tags,
            any_tags=self.any_tags + other.any_tags,
            exclude_tags=self.exclude_tags + other.exclude_tags,
            time_range=time_range,
            duration_min=max(dmin) if dmin else None,
            duration_max=min(dmax) if dmax else None,
            sql=self.sql + tuple(c for c in other.sql if c not in self.sql),
            **values,
        )

    # -- SQL ----------------------------------------------------------------------------------------------
    def to_sql(self, alias: str = "s") -> tuple[str, str, list[Any], str]:
        """Translate into ``(from_sql, where_sql, params, order_sql)`` over the ``scenarios`` table as ``alias``.

        Use as ``f"SELECT ... FROM {from_sql} WHERE {where_sql} ORDER BY {order_sql}"`` with ``params``.
        List-valued parameters travel as one JSON array each (``json_each``), so any number of ids fits.
        Rows come ordered by the ``ids`` order if given, else by log, start time and id.
        """
        a = alias
        params: list[Any] = []
        if self.ids is not None:
            # CROSS JOIN makes SQLite walk the id list and look each one up by primary key.
            from_sql = f"json_each(?) AS _ids CROSS JOIN scenarios AS {a} ON {a}.scenario_id = _ids.value"
            params.append(json.dumps(list(self.ids)))
            order_sql = "_ids.key"
        else:
            from_sql = f"scenarios AS {a}"
            order_sql = f"{a}.log_id, {a}.start_time_s, {a}.scenario_id"
        where: list[str] = []
        for tag in self.tags:
            where.append(f"EXISTS (SELECT 1 FROM scenario_tags AS _t WHERE _t.scenario_id = {a}.scenario_id AND _t.tag = ?)")
            params.append(tag)
        for group in self.any_tags:
            where.append(
                f"EXISTS (SELECT 1 FROM scenario_tags AS _t WHERE _t.scenario_id = {a}.scenario_id "
                f"AND _t.tag IN (SELECT value FROM json_each(?)))"
            )
            params.append(json.dumps(list(group)))
        if self.exclude_tags:
            where.append(
                f"NOT EXISTS (SELECT 1 FROM scenario_tags AS _t WHERE _t.scenario_id = {a}.scenario_id "
                f"AND _t.tag IN (SELECT value FROM json_each(?)))"
            )
            params.append(json.dumps(list(self.exclude_tags)))
        for name in _VALUE_FIELDS:
            values = getattr(self, name)
            if values is None:
                continue
            if name == "split":
                where.append(
                    f"EXISTS (SELECT 1 FROM splits AS _p WHERE _p.scenario_id = {a}.scenario_id "
                    f"AND _p.split IN (SELECT value FROM json_each(?)))"
                )
            else:
                where.append(f"{a}.{name} IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(values)))
        if self.time_range is not None:
            lo, hi = self.time_range
            if lo is not None:
                where.append(f"{a}.start_time_s >= ?")
                params.append(lo)
            if hi is not None:
                where.append(f"{a}.start_time_s <= ?")
                params.append(hi)
        if self.duration_min is not None:
            where.append(f"{a}.duration_s >= ?")
            params.append(self.duration_min)
        if self.duration_max is not None:
            where.append(f"{a}.duration_s <= ?")
            params.append(self.duration_max)
        for pred, args in self.sql:
            where.append(f"({pred})")
            params.extend(args)
        return from_sql, " AND ".join(where) if where else "1", params, order_sql

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "version")
        return f"ScenarioFilter({body})"


FILTER_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ScenarioFilter))
"""Names accepted by :class:`ScenarioFilter` (and by ``filter(...)`` / ``catalog(...)``)."""


def _dedupe_groups(groups: list[tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    return tuple(dict.fromkeys(groups))


def _check_keys(data: Mapping[str, Any]) -> None:
    unknown = sorted(set(data) - set(FILTER_FIELDS))
    if unknown:
        raise WorldEngineLabError(
            f"ScenarioFilter: unknown field(s) {unknown}; expected some of {list(FILTER_FIELDS)}"
        )
