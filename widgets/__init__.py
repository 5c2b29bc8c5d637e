"""worldengine_lab.widgets: thin notebook views over library objects (installed from the top-level widgets/ folder).

The library never imports this package. Widgets load lazily, so ``import worldengine_lab.widgets`` is cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ScenarioViewer": ".scenario_viewer",
    "SplatPreview": ".splat_preview",
    "FailureBrowser": ".failure_browser",
    "JobLauncher": ".job_launcher",
    "JobMonitor": ".job_monitor",
    "VariantEditor": ".variant_editor",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
