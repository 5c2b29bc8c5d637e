"""Scatter plots of one table column against another (failure metrics, scores), as plain plotly figures.

Builders return ``plotly.graph_objects.Figure``; a widget wraps one in ``go.FigureWidget(fig)`` to get selection
callbacks, a report shows it as is. Points are drawn with ``Scattergl`` so 100,000 of them stay interactive.

Examples:
    >>> import numpy as np
    >>> fig = metric_scatter(np.array([0.1, 0.5]), np.array([0.9, 0.2]), "ego_progress", "score")
    >>> fig.data[0].type, fig.layout.xaxis.title.text
    ('scattergl', 'ego_progress')
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

__all__ = ["metric_scatter", "SELECTED_COLOR", "POINT_COLOR"]

POINT_COLOR = "#4c78a8"
"""Marker colour of ordinary points."""

SELECTED_COLOR = "#e45756"
"""Marker colour of selected (highlighted) points."""


def metric_scatter(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float], x_title: str, y_title: str,
                   title: str = "", selected: np.ndarray | Sequence[int] | None = None, height_px: int = 360,
                   name: str = "failures") -> go.Figure:
    """One Scattergl trace of ``y`` against ``x`` with box/lasso selection styling.

    Args:
        x: ``[P]`` values on the horizontal axis (float32 is enough; NaN points are not drawn).
        y: ``[P]`` values on the vertical axis.
        x_title, y_title: axis titles (the column names, with units where they have one).
        title: figure title.
        selected: indices of points to highlight (``selectedpoints``); None highlights nothing.
        height_px: figure height, px.
        name: trace name.
    """
    trace = go.Scattergl(
        x=np.asarray(x, dtype=np.float32), y=np.asarray(y, dtype=np.float32), mode="markers", name=name,
        marker={"size": 6, "color": POINT_COLOR, "opacity": 0.75},
        selected={"marker": {"color": SELECTED_COLOR, "size": 9, "opacity": 1.0}},
        unselected={"marker": {"opacity": 0.3}},
        hovertemplate=f"{x_title}: %{{x:.3f}}<br>{y_title}: %{{y:.3f}}<extra></extra>",
        selectedpoints=None if selected is None else np.asarray(selected, dtype=np.int32),
    )
    fig = go.Figure(data=[trace])
    fig.update_layout(
        title={"text": title} if title else None, height=height_px, margin={"l": 50, "r": 10, "t": 30 if title else 10,
                                                                            "b": 40},
        xaxis={"title": {"text": x_title}}, yaxis={"title": {"text": y_title}}, dragmode="select",
        template="plotly_white", showlegend=False,
    )
    return fig
