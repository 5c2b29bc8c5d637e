"""The loader registry: catalog row -> Scenario, looked up by the row's ``source``.

Each log reader registers one function ``fn(row: dict) -> Scenario`` that re-reads the window a catalog row
describes (``path``, ``locator``, ``window_json``, ``maps_root``, ...). The built-in readers are listed as
``"module:function"`` strings and imported on first use, so ``import worldengine_lab.scenarios`` stays light.

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> register_loader("doc", lambda row: make_scenario(seed=int(row["locator"])))
    >>> load_scenario({"scenario_id": "test-3", "source": "doc", "locator": "3"}).scenario_id
    'test-3'
    >>> unregister_loader("doc")
"""
from __future__ import annotations

import importlib
import logging
import threading
from typing import Any, Callable, Mapping, Union

from ..datatypes import Scenario
from ..errors import WorldEngineLabError

__all__ = [
    "DEFAULT_LOADERS",
    "Loader",
    "register_loader",
    "unregister_loader",
    "registered_sources",
    "get_loader",
    "load_scenario",
]

logger = logging.getLogger(__name__)

Loader = Callable[[Mapping[str, Any]], Scenario]
"""``fn(catalog_row) -> Scenario``; the row is a dict of the catalog columns (see ``Workspace.catalog``)."""

DEFAULT_LOADERS: dict[str, str] = {
    "nuplan": "worldengine_lab.logs.nuplan.loader:load_catalog_row",
    "synthetic": "worldengine_lab.logs.nuplan.loader:load_catalog_row",
    "av2": "worldengine_lab.logs.av2.loader:load_catalog_row",
    "av2_forecasting": "worldengine_lab.logs.av2.loader:load_catalog_row",
}
"""Built-in sources and the ``"module:function"`` that loads their catalog rows (imported on first use)."""

_lock = threading.Lock()
_registry: dict[str, Union[Loader, str]] = dict(DEFAULT_LOADERS)


def register_loader(source: str, fn: Union[Loader, str]) -> None:
    """Register (or replace) the loader of ``source``: a callable, or a ``"module:function"`` string that is
    imported when a row of that source is first loaded."""
    if not isinstance(source, str) or not source:
        raise WorldEngineLabError(f"register_loader: expected a non-empty source name, received {source!r}")
    if isinstance(fn, str):
        if fn.count(":") != 1 or not all(fn.split(":")):
            raise WorldEngineLabError(
                f"register_loader({source!r}): expected a 'package.module:function' string, received {fn!r}"
            )
    elif not callable(fn):
        raise WorldEngineLabError(
            f"register_loader({source!r}): expected a callable row -> Scenario, received {type(fn).__name__}"
        )
    with _lock:
        _registry[source] = fn
    logger.debug("registered scenario loader for source %r: %r", source, fn)


def unregister_loader(source: str) -> None:
    """Remove the loader of ``source``; built-in sources fall back to their default entry."""
    with _lock:
        _registry.pop(source, None)
        if source in DEFAULT_LOADERS:
            _registry[source] = DEFAULT_LOADERS[source]


def registered_sources() -> list[str]:
    """Sorted names of the sources that have a loader (imported or not yet)."""
    with _lock:
        return sorted(_registry)


def get_loader(source: str) -> Loader:
    """The loader callable of ``source``, importing it on first use.

    Raises WorldEngineLabError if no loader is registered for ``source`` or its module cannot be imported.
    """
    with _lock:
        entry = _registry.get(source)
    if entry is None:
        raise WorldEngineLabError(
            f"No scenario loader for source {source!r}; registered sources: {registered_sources()}. Import the "
            f"reader package that provides it (e.g. worldengine_lab.logs.<reader>) or call "
            f"worldengine_lab.scenarios.register_loader({source!r}, fn)."
        )
    if not isinstance(entry, str):
        return entry
    module_name, func_name = entry.split(":")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, func_name)
    except (ImportError, AttributeError) as exc:
        raise WorldEngineLabError(
            f"The scenario loader for source {source!r} is {entry!r}, which could not be imported ({exc}). Install "
            f"or fix the reader package, or register another loader with register_loader({source!r}, fn)."
        ) from exc
    with _lock:
        if _registry.get(source) == entry:  # not replaced meanwhile
            _registry[source] = fn
    return fn


def load_scenario(row: Mapping[str, Any]) -> Scenario:
    """Load the Scenario a catalog row describes, through the loader of ``row['source']``.

    The catalog's tags (a list in ``row['tags']``) are added to the scenario's own tags. Raises
    WorldEngineLabError if the loader returns something other than a Scenario or a Scenario with another id.
    """
    for key in ("scenario_id", "source"):
        if key not in row:
            raise WorldEngineLabError(
                f"load_scenario: expected a catalog row with {key!r}, received keys {sorted(row)}"
            )
    fn = get_loader(str(row["source"]))
    scenario = fn(row)
    if not isinstance(scenario, Scenario):
        raise WorldEngineLabError(
            f"The loader of source {row['source']!r} returned {type(scenario).__name__} for {row['scenario_id']!r}; "
            f"expected a Scenario. Fix the loader registered for that source."
        )
    if scenario.scenario_id != row["scenario_id"]:
        raise WorldEngineLabError(
            f"The loader of source {row['source']!r} returned scenario {scenario.scenario_id!r} for catalog row "
            f"{row['scenario_id']!r}; expected the same id. The catalog and the log disagree: re-import the log."
        )
    tags = row.get("tags") or ()
    if isinstance(tags, str):
        tags = [t for t in tags.split(",") if t]
    extra = set(tags) - scenario.tags
    return scenario.with_tags(*sorted(extra)) if extra else scenario
