"""Job kinds by name: each kind is a function ``fn(ctx: JobContext) -> dict | None`` looked up in a registry.

Built in: ``pretrain`` (imitation pre-training, resumes from ``last.pt``), ``mine`` (evaluate + mine failures),
``evaluate`` (sharded evaluation of a planner), ``posttrain`` (RL post-training), ``generate_variants`` (variants
of mined failures) and the diagnostic ``selftest``. A kind listed in :data:`PENDING_KINDS` is one whose package
registers it with :func:`register_kind`; asking for it before that raises an error that says so.

A job runs in another process, so the registry stores where the function lives (``"module:function"``): the job
process imports that module. Register module-level functions (not lambdas or nested functions) for kinds that
run detached.

Examples:
    >>> "selftest" in available_kinds()
    True
    >>> entry_point("selftest")
    'worldengine_lab.jobs.selftest:selftest_job'
"""
from __future__ import annotations

import importlib
import logging
import re
from typing import Any, Callable, Mapping

from ..errors import WorldEngineLabError

__all__ = ["KindFn", "register_kind", "unregister_kind", "available_kinds", "entry_point", "resolve_kind",
           "PENDING_KINDS"]

logger = logging.getLogger(__name__)

KindFn = Callable[[Any], "Mapping[str, Any] | None"]
"""A kind's function: takes the :class:`~worldengine_lab.jobs.JobContext`, returns a JSON-able result dict."""

_ENTRY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

_KINDS: dict[str, str | KindFn] = {
    "pretrain": "worldengine_lab.jobs.kinds:pretrain_job",
    "mine": "worldengine_lab.jobs.kinds:mine_job",
    "evaluate": "worldengine_lab.jobs.kinds:evaluate_job",
    "posttrain": "worldengine_lab.jobs.kinds:posttrain_job",
    "generate_variants": "worldengine_lab.jobs.kinds:generate_variants_job",
    "selftest": "worldengine_lab.jobs.selftest:selftest_job",
}

PENDING_KINDS: dict[str, str] = {}
"""Kinds of the loop whose packages register them; asking for one before that raises a clear error."""


def _entry_of(fn: KindFn) -> str:
    module, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qual:
        return ""
    return f"{module}:{qual}"


def register_kind(name: str, fn: KindFn | str, replace: bool = False) -> None:
    """Register ``fn`` (a function, or its ``"module:function"`` path) as job kind ``name``.

    Registering the same function again (e.g. when its module is reloaded) is allowed.

    Raises WorldEngineLabError if ``name`` is taken and ``replace`` is False, or ``fn`` is neither.
    """
    if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]{0,63}$", name):
        raise WorldEngineLabError(f"register_kind(name): expected a lower-case name like 'posttrain', received "
                                  f"{name!r}")
    if isinstance(fn, str):
        if not _ENTRY_RE.match(fn):
            raise WorldEngineLabError(f"register_kind({name!r}): expected 'module:function', received {fn!r}")
    elif not callable(fn):
        raise WorldEngineLabError(f"register_kind({name!r}): expected a function or 'module:function', received "
                                  f"{type(fn).__name__}")
    old = _KINDS.get(name)
    same = old is fn or (bool(_entry_of_any(fn)) and old is not None and _entry_of_any(old) == _entry_of_any(fn))
    if old is not None and not replace and not same:
        raise WorldEngineLabError(f"register_kind({name!r}): the kind is registered already ({_KINDS[name]!r}); pass "
                                  f"replace=True to override it")
    _KINDS[name] = fn
    logger.debug("registered job kind %r -> %r", name, fn)


def _entry_of_any(fn: KindFn | str) -> str:
    return fn if isinstance(fn, str) else _entry_of(fn)


def unregister_kind(name: str) -> None:
    """Remove kind ``name`` (no error if it is not registered)."""
    _KINDS.pop(name, None)


def available_kinds() -> list[str]:
    """Registered kind names, sorted."""
    return sorted(_KINDS)


def _not_available(name: str) -> WorldEngineLabError:
    have = ", ".join(available_kinds())
    if name in PENDING_KINDS:
        return WorldEngineLabError(
            f"kind {name!r} is not available yet: no function is registered for it ({PENDING_KINDS[name]}); "
            f"expected worldengine_lab.jobs.register_kind({name!r}, fn) to have run. Available kinds: {have}")
    return WorldEngineLabError(f"Unknown job kind {name!r}: expected one of {have}, or register one with "
                               f"worldengine_lab.jobs.register_kind({name!r}, fn)")


def entry_point(name: str) -> str:
    """Where kind ``name``'s function lives (``"module:function"``), as recorded with a job; ``""`` for a
    function registered in a way another process cannot import (a lambda, a nested or ``__main__`` function)."""
    fn = _KINDS.get(name)
    if fn is None:
        raise _not_available(name)
    return _entry_of_any(fn)


def _import_entry(entry: str) -> KindFn:
    if not _ENTRY_RE.match(entry):
        raise WorldEngineLabError(f"Job entry point {entry!r}: expected 'module:function'")
    module_name, qual = entry.split(":", 1)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorldEngineLabError(f"Job entry point {entry!r}: cannot import {module_name!r} ({exc}); install the "
                                  f"package that provides it in this environment") from exc
    for part in qual.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise WorldEngineLabError(f"Job entry point {entry!r}: {module_name} has no {qual!r}; was it renamed?")
    if not callable(obj):
        raise WorldEngineLabError(f"Job entry point {entry!r}: expected a function, found {type(obj).__name__}")
    return obj


def resolve_kind(name: str, entry: str = "") -> KindFn:
    """The function of kind ``name``: imported from ``entry`` (``"module:function"``, as recorded with the job)
    when given, else from the registry. Raises WorldEngineLabError for a kind nobody registered."""
    if entry:
        return _import_entry(entry)
    fn = _KINDS.get(name)
    if fn is None:
        raise _not_available(name)
    return _import_entry(fn) if isinstance(fn, str) else fn
