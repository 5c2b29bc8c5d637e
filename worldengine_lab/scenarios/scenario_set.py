"""ScenarioSet: a lazy, filterable view over the workspace catalog that loads Scenarios one at a time.

A ScenarioSet is a workspace plus a :class:`ScenarioFilter`. It holds no rows: ``len``, ``ids`` and iteration
query the catalog when called (so tags added meanwhile are seen), and each Scenario is read from its log only
when iteration reaches it, through the loader registered for its source.

Examples:
    >>> import tempfile
    >>> from worldengine_lab.store import Workspace
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> _ = ws.add_scenarios([{"scenario_id": f"s{i}", "source": "synthetic", "log_id": f"log{i % 2}"}
    ...                       for i in range(4)])
    >>> ws.scenarios().filter(log_id="log1").ids
    ['s1', 's3']
"""
from __future__ import annotations

import html
import logging
import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from ..datatypes import Scenario
from ..errors import ScenarioNotFoundError, WorkspaceError, WorldEngineLabError
from .filters import ScenarioFilter
from .loaders import load_scenario

if TYPE_CHECKING:
    from ..store.workspace import Workspace

__all__ = ["ScenarioSet"]

logger = logging.getLogger(__name__)

_HTML_COLUMNS = ["scenario_id", "source", "log_id", "location", "map_name", "start_time_s", "duration_s",
                 "num_agents", "tags", "split"]


class ScenarioSet:
    """The scenarios of ``workspace`` that ``where`` keeps (and, if given, whose id is in ``ids``).

    Args:
        workspace: a :class:`~worldengine_lab.store.Workspace`, or the path of an existing one.
        ids: restrict to these scenario ids, in this order.
        where: a :class:`ScenarioFilter`, its dict form, or one SQL predicate over the catalog aliased ``s``.
    """

    def __init__(
        self,
        workspace: "Workspace | str | os.PathLike[str]",
        ids: Iterable[str] | None = None,
        where: ScenarioFilter | Mapping[str, Any] | str | None = None,
    ) -> None:
        if isinstance(workspace, (str, os.PathLike)):
            from ..store.workspace import Workspace

            workspace = Workspace.open(workspace, create=False)
        spec = ScenarioFilter.coerce(where)
        if ids is not None:
            spec = spec & ScenarioFilter(ids=tuple(ids))
        self._ws = workspace
        self._spec = spec

    # -- the view -----------------------------------------------------------------------------------------
    @property
    def workspace(self) -> "Workspace":
        return self._ws

    @property
    def spec(self) -> ScenarioFilter:
        """The frozen filter this set applies (serialise it with ``to_json`` to save the view)."""
        return self._spec

    def to_json(self) -> str:
        """The filter as JSON; ``ScenarioSet.from_json(workspace, text)`` rebuilds the view."""
        return self._spec.to_json()

    @classmethod
    def from_json(cls, workspace: "Workspace | str | os.PathLike[str]", text: str) -> "ScenarioSet":
        """Re-apply a saved view to ``workspace``."""
        return cls(workspace, where=ScenarioFilter.from_json(text))

    def _with(self, extra: ScenarioFilter) -> "ScenarioSet":
        return ScenarioSet(self._ws, where=self._spec & extra)

    def filter(
        self,
        tags: str | Iterable[str] | None = None,
        any_tags: str | Iterable[str] | None = None,
        location: str | Iterable[str] | None = None,
        map_name: str | Iterable[str] | None = None,
        log_id: str | Iterable[str] | None = None,
        source: str | Iterable[str] | None = None,
        split: str | Iterable[str] | None = None,
        time_range: tuple[float | None, float | None] | None = None,
        duration_min: float | None = None,
        **more: Any,
    ) -> "ScenarioSet":
        """A narrower set: every argument given must hold (AND).

        Args:
            tags: keep scenarios carrying all of these tags.
            any_tags: keep scenarios carrying at least one of these tags.
            location, map_name, log_id, source, split: keep rows whose value is one of these.
            time_range: ``(t_min, t_max)``, s; keep ``t_min <= start_time_s <= t_max`` (None = open end).
            duration_min: keep ``duration_s >= duration_min``, s.
            **more: other :class:`ScenarioFilter` fields (``exclude_tags``, ``duration_max``, ``import_id``,
                ``ids``, ``where`` = an SQL predicate).
        """
        extra = ScenarioFilter.from_kwargs(
            tags=tags, any_tags=any_tags, location=location, map_name=map_name, log_id=log_id, source=source,
            split=split, time_range=time_range, duration_min=duration_min, **more,
        )
        return self._with(extra)

    # -- contents -----------------------------------------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        """The scenario ids in the set, in order (queried now)."""
        return self._ws.scenario_ids(self._spec)

    def __len__(self) -> int:
        return self._ws.count(self._spec)

    def __contains__(self, scenario_id: object) -> bool:
        if not isinstance(scenario_id, str):
            return False
        return self._ws.count(self._spec & ScenarioFilter(ids=(scenario_id,))) > 0

    def rows(self) -> list[dict[str, Any]]:
        """The catalog rows of the set as the dicts loaders receive."""
        return self._ws.catalog_rows(self._spec)

    def __iter__(self) -> Iterator[Scenario]:
        """Yield Scenarios in order, each loaded from its log only when reached."""
        for row in self._ws.catalog_rows(self._spec):
            yield load_scenario(row)

    def __getitem__(self, key: int | str | slice) -> "Scenario | ScenarioSet":
        """``s[i]`` (position, negative allowed) or ``s["id"]`` loads one Scenario; ``s[a:b]`` is a ScenarioSet."""
        if isinstance(key, slice):
            return self._with(ScenarioFilter(ids=tuple(self.ids[key])))
        if isinstance(key, str):
            rows = self._ws.catalog_rows(self._spec & ScenarioFilter(ids=(key,)))
            if not rows:
                raise ScenarioNotFoundError(
                    f"Scenario {key!r} is not in this ScenarioSet ({self._spec!r}); check the id with `in` or "
                    f"look it up with workspace.catalog(ids=[...])"
                )
            return load_scenario(rows[0])
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            i = int(key)
            if i < 0:
                i += len(self)
            rows = self._ws.catalog_rows(self._spec, limit=1, offset=i) if i >= 0 else []
            if not rows:
                raise IndexError(f"ScenarioSet index {int(key)} out of range for {len(self)} scenarios")
            return load_scenario(rows[0])
        raise WorldEngineLabError(
            f"ScenarioSet[...]: expected an int position, a scenario id str or a slice, received {type(key).__name__}"
        )

    def to_frame(self) -> pd.DataFrame:
        """The catalog rows of the set (with ``tags`` and ``split``), in order."""
        return self._ws.catalog(self._spec)

    def head(self, n: int = 5) -> "ScenarioSet":
        """The first ``n`` scenarios (fixed by id)."""
        if n < 0:
            raise WorldEngineLabError(f"ScenarioSet.head: expected n >= 0, received {n}")
        return self._with(ScenarioFilter(ids=tuple(self.ids[:n])))

    def sample(self, n: int, seed: int = 0) -> "ScenarioSet":
        """``min(n, len(self))`` scenarios drawn without replacement with ``numpy.random.default_rng(seed)``,
        kept in the set's order (fixed by id)."""
        if n < 0:
            raise WorldEngineLabError(f"ScenarioSet.sample: expected n >= 0, received {n}")
        ids = self.ids
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(len(ids), size=min(n, len(ids)), replace=False))
        return self._with(ScenarioFilter(ids=tuple(ids[i] for i in picked)))

    def stats(self) -> dict[str, Any]:
        """Counts per source, location, map, tag and split over the set (see ``Workspace.stats``)."""
        return self._ws.stats(self._spec)

    # -- curation -----------------------------------------------------------------------------------------
    def tag(self, tag: str | Iterable[str]) -> int:
        """Add ``tag`` to every scenario in the set; return how many pairs were new."""
        return self._ws.tag(self.ids, tag if isinstance(tag, str) else list(tag))

    def untag(self, tag: str | Iterable[str]) -> int:
        """Remove ``tag`` from every scenario in the set; return how many pairs were removed."""
        return self._ws.untag(self.ids, tag if isinstance(tag, str) else list(tag))

    def set_split(self, split: str | None) -> int:
        """Assign every scenario in the set to ``split`` (None: no split)."""
        return self._ws.set_split(self.ids, split)

    # -- display ------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"ScenarioSet({len(self)} scenarios, workspace={str(self._ws.root)!r}, {self._spec!r})"

    def _repr_html_(self) -> str:
        n = len(self)
        frame = self._ws.catalog(self._spec, limit=10)
        frame = frame[[c for c in _HTML_COLUMNS if c in frame.columns]].copy()
        frame["tags"] = [", ".join(t) for t in frame["tags"]]
        more = f"<p>… and {n - len(frame)} more</p>" if n > len(frame) else ""
        return (
            f"<div><b>ScenarioSet</b>: {n} scenarios in {html.escape(str(self._ws.root))}<br>"
            f"<code>{html.escape(self._spec.to_json())}</code>{frame.to_html(index=False, escape=True)}{more}</div>"
        )
