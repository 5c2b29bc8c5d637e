"""Plotly figure builders shared by widgets and reports (plotly is imported only when a figure is built).

``bev_frames`` packs a scenario and its rollouts into numpy arrays (no plotly); ``bev_figure`` draws them.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "bev_figure": ".bev", "bev_frames": ".bev", "top_k_candidates": ".bev", "box_corners": ".bev",
    "BEVFrames": ".bev", "TrackFrames": ".bev", "CandidateFrames": ".bev", "MAP_KINDS": ".bev",
    "TYPE_COLORS": ".bev", "LIGHT_COLORS": ".bev", "PANEL_COLORS": ".bev", "SUBSCORE_LABELS": ".bev",
    "metric_scatter": ".scatter",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
