"""Reports: parameterised notebooks executed with papermill and exported to standalone HTML with provenance,
and the tables they show (World Engine's results table with bootstrap intervals).

``run``/``inspect`` need papermill and nbconvert (the ``notebook`` extra); names load on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "run": ".runner", "inspect": ".runner", "list_reports": ".runner", "template_path": ".runner", "templates_root": ".runner",
    "record_provenance": ".runner", "ReportError": ".runner", "ReportResult": ".runner", "PROVENANCE_MIME": ".runner",
    "Estimate": ".stats", "bootstrap_mean": ".stats", "paired_difference": ".stats",
    "COLUMNS": ".tables", "latest_results": ".tables", "results_table": ".tables", "before_after": ".tables",
    "format_table": ".tables",
    "RECIPE_KEYS": ".summary", "RECIPE_OF_KEY": ".summary", "build_summary": ".summary", "write_summary": ".summary",
    "check_summary": ".summary",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
