"""FailureBrowser: browse, filter, sort, tag and save views of mined failure cases, with a linked scatter plot.

The table is an anywidget (``failure_browser.js``); the scatter is a plotly ``FigureWidget`` (``Scattergl``) of
any numeric column against another; both sit in one ``ipywidgets.VBox`` (:attr:`FailureBrowser.view`), which is
what displaying the browser shows. A box/lasso selection on the scatter narrows the table; selecting table rows
highlights their points.

Everything the widget does is one library call:

* filtering, sorting, paging: :meth:`FailureFilter.apply` / :meth:`FailureFilter.order` on the failure table
  (:func:`~worldengine_lab.mining.failure_table.failure_table`);
* tag / untag: :func:`~worldengine_lab.store.add_tags` / :func:`~worldengine_lab.store.remove_tags`;
* save view: :func:`~worldengine_lab.store.save_view` (the filter as data, the columns shown, the runs read).

Synced traits stay small: the filter dict, the sort, the page, the selected scenario ids, at most ``page_size``
row records, counts, menu options and messages. Handlers run inside an ``ipywidgets.Output`` (:attr:`output`)
and show any exception in the widget's error area (the ``error`` trait).

Examples:
    >>> import tempfile
    >>> from worldengine_lab.store import Workspace
    >>> from worldengine_lab.mining.failure_table import write_synthetic_failures
    >>> ws = Workspace.open(tempfile.mkdtemp()); _ = write_synthetic_failures(ws)
    >>> browser = FailureBrowser(ws)                                     # doctest: +SKIP
    >>> browser.set_state({"filter_dict": {"failure_types": ["collision"]}})  # as the front end  # doctest: +SKIP
    >>> browser.selection                                                # a ScenarioSet  # doctest: +SKIP
"""
from __future__ import annotations

import functools
import logging
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import anywidget
import ipywidgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import traitlets

from worldengine_lab.errors import WorkspaceError, WorldEngineLabError
from worldengine_lab.mining.failure_filter import FailureFilter, FailureFilterError, FailureIndex
from worldengine_lab.mining.failure_table import catalog_tags, failure_table, table_records
from worldengine_lab.plots.scatter import metric_scatter
from worldengine_lab.scenarios.scenario_set import ScenarioSet
from worldengine_lab.store import curation
from worldengine_lab.store.workspace import Workspace

from ._assets import esm
from ._guard import GuardedView

__all__ = ["FailureBrowser", "DEFAULT_COLUMNS"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_COLUMNS: tuple[str, ...] = (
    "rank", "scenario_id", "mode", "failure_type", "collided_with", "map_name", "split", "tags", "score",
    "ego_progress", "count", "reason",
)
"""Columns shown when none are given (those the table has)."""

_MAX_PAGE_SIZE = 500


def _guarded(method: F) -> F:
    """Run a handler inside the widget's Output; show any exception in the error area instead of losing it."""

    @functools.wraps(method)
    def wrapper(self: "FailureBrowser", *args: Any, **kwargs: Any) -> Any:
        outermost = self._depth == 0
        if outermost and not self._in_message:
            self.error = ""
        self._depth += 1
        try:
            with self.output:
                # caught inside the Output: in a kernel, Output.__exit__ would print and swallow the exception
                try:
                    return method(self, *args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - shown to the user, not swallowed
                    self._report(exc, method.__name__)
                    return None
        finally:
            self._depth -= 1

    return wrapper  # type: ignore[return-value]


class FailureBrowser(GuardedView, anywidget.AnyWidget):
    """A paged, sortable, filterable table of failure cases linked with a scatter plot.

    Args:
        source: a :class:`~worldengine_lab.store.Workspace` (its failure table is loaded with
            :func:`failure_table`) or a failure-table DataFrame (``scenario_id`` required).
        run_id: the evaluation run(s) to load from a workspace (None: the latest run with failure cases, or the
            saved view's runs).
        page_size: rows per page (1-500).
        workspace: the workspace to curate in when ``source`` is a DataFrame (tagging, saving views and
            :attr:`selection` need one).
        view: the name of a saved view to start from (its filter, sort, columns and runs).
        columns: the columns shown (default: :data:`DEFAULT_COLUMNS` present in the table).
        x, y: the scatter's columns (default: ``ego_progress`` and ``score`` when present).
    """

    _esm = esm("failure_browser.js")
    _css = Path(__file__).parent / "failure_browser.css"

    filter_dict = traitlets.Dict().tag(sync=True)
    """The filter controls as :meth:`FailureFilter.to_dict` (a plot selection is kept on the Python side;
    :attr:`filter` gives the whole :class:`FailureFilter`)."""
    sort = traitlets.Dict({"column": None, "descending": False}).tag(sync=True)
    """``{"column": str | None, "descending": bool}``; mirrors the filter's sort fields."""
    page = traitlets.Int(0).tag(sync=True)
    """Zero-based page index."""
    page_size = traitlets.Int(50).tag(sync=True)
    selected = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Selected scenario ids (table rows; highlighted in the scatter)."""
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    """The current page: at most ``page_size`` records of the shown columns plus ``scenario_id`` and ``_row``."""
    columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    """Rows matching the filter and the plot selection."""
    num_rows = traitlets.Int(0).tag(sync=True)
    """Rows in the table."""
    brushed = traitlets.Int(-1).tag(sync=True)
    """Rows in the scatter's box/lasso selection; -1 when there is none."""
    options = traitlets.Dict().tag(sync=True)
    """Menu choices: distinct failure types, tags, maps, splits (with counts), numeric columns."""
    x_column = traitlets.Unicode("").tag(sync=True)
    y_column = traitlets.Unicode("").tag(sync=True)
    request = traitlets.Dict().tag(sync=True)
    """A command from the front end: ``{"action": "tag" | "untag" | "save_view" | "clear_brush", "seq": n, ...}``."""
    status = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    has_workspace = traitlets.Bool(False).tag(sync=True)

    def __init__(self, source: Workspace | pd.DataFrame, run_id: str | Sequence[str] | None = None,
                 page_size: int = 50, *, workspace: Workspace | None = None, view: str | None = None,
                 columns: Sequence[str] | None = None, x: str | None = None, y: str | None = None) -> None:
        self._depth = 0
        self._in_message = False
        self.output = ipywidgets.Output()
        ws, table, run_ids, saved = _load(source, run_id, workspace, view)
        self.workspace: Workspace | None = ws
        self._run_ids = run_ids
        self._table = table
        self._index = FailureIndex(table).warm()
        self._controls = FailureFilter.from_dict(saved.filter) if saved else FailureFilter()
        if saved and self._controls.sort_by is None and saved.sort:
            column, direction = saved.sort[0]
            self._controls = self._controls.replace(sort_by=column, descending=direction == "desc")
        self._brush: tuple[str, ...] | None = None
        self._brush_mask: np.ndarray | None = None
        self._mask_controls = np.ones(len(table), dtype=bool)
        self._order = np.arange(len(table), dtype=np.int64)
        self._scatter_rows = np.arange(len(table), dtype=np.int64)
        shown = list(columns) if columns is not None else (list(saved.columns) if saved and saved.columns else
                                                           [c for c in DEFAULT_COLUMNS if c in table.columns])
        _check_page_size(page_size)
        numeric = self._index.numeric_columns()
        x = x or ("ego_progress" if "ego_progress" in numeric else (numeric[0] if numeric else ""))
        y = y or ("score" if "score" in numeric else (numeric[min(1, len(numeric) - 1)] if numeric else ""))
        super().__init__(page_size=page_size, has_workspace=ws is not None, num_rows=len(table),
                         options=self._index.choices(), x_column=x, y_column=y)
        self._check_columns(shown)
        self.columns = shown
        self.figure = go.FigureWidget(metric_scatter(np.zeros(0), np.zeros(0), x, y))
        self.figure.data[0].on_selection(self._on_scatter_selection)
        self.figure.data[0].on_deselect(self._on_scatter_deselect)
        self._x_picker = ipywidgets.Dropdown(options=numeric, value=x or None, description="x",
                                             layout=ipywidgets.Layout(width="260px"))
        self._y_picker = ipywidgets.Dropdown(options=numeric, value=y or None, description="y",
                                             layout=ipywidgets.Layout(width="260px"))
        self._x_picker.observe(self._on_picker, names=["value"])
        self._y_picker.observe(self._on_picker, names=["value"])
        self.view = ipywidgets.VBox([ipywidgets.HBox([self._x_picker, self._y_picker]), self.figure, self,
                                     self.output])
        self._recompute(controls_changed=True)
        self._sync_filter_traits()
        self.observe(self._on_filter, names=["filter_dict"])
        self.observe(self._on_sort, names=["sort"])
        self.observe(self._on_page, names=["page", "page_size"])
        self.observe(self._on_columns, names=["columns"])
        self.observe(self._on_selected, names=["selected"])
        self.observe(self._on_axes, names=["x_column", "y_column"])
        self.observe(self._on_request, names=["request"])

    # -- public state -------------------------------------------------------------------------------------
    @property
    def table(self) -> pd.DataFrame:
        """The whole failure table (one row per failure case)."""
        return self._table

    @property
    def filter(self) -> FailureFilter:
        """The current :class:`FailureFilter`: the controls, plus the plot selection as ``scenario_ids``."""
        if self._brush is None:
            return self._controls
        ids = self._brush if self._controls.scenario_ids is None else \
            tuple(set(self._brush) & set(self._controls.scenario_ids))
        return self._controls.replace(scenario_ids=ids)

    def set_filter(self, value: FailureFilter | Mapping[str, Any]) -> None:
        """Replace the filter controls (a FailureFilter or its dict form), as the front end does."""
        self.filter_dict = value.to_dict() if isinstance(value, FailureFilter) else dict(value)

    @property
    def filtered(self) -> pd.DataFrame:
        """The rows matching the filter and plot selection, in display order."""
        return self._table.iloc[self._order]

    @property
    def selected_ids(self) -> list[str]:
        """The selected scenario ids, or every matching one (display order) when nothing is selected."""
        if self.selected:
            return list(self.selected)
        return pd.unique(self._table["scenario_id"].to_numpy()[self._order].astype(str)).tolist()

    @property
    def selection(self) -> ScenarioSet:
        """The selected scenarios (or all matching ones when none is selected) as a ScenarioSet of the workspace
        catalog (ids not in the catalog drop out)."""
        return ScenarioSet(self._require_workspace("selection"), ids=self.selected_ids)

    # -- library calls behind the buttons ---------------------------------------------------------------------
    def tag(self, tag: str) -> int:
        """Tag the selected scenarios (``store.add_tags``); return how many pairs were new."""
        ids = self._require_selection("tag")
        added = curation.add_tags(self._require_workspace("tag"), ids, tag)
        self._refresh_tags()
        self.status = f"tagged {len(ids)} scenario(s) with {tag!r} ({added} new)"
        return added

    def untag(self, tag: str) -> int:
        """Remove ``tag`` from the selected scenarios (``store.remove_tags``); return how many pairs went."""
        ids = self._require_selection("untag")
        removed = curation.remove_tags(self._require_workspace("untag"), ids, tag)
        self._refresh_tags()
        self.status = f"removed {tag!r} from {removed} scenario(s)"
        return removed

    def save_view(self, name: str, overwrite: bool = False, description: str = "") -> curation.SavedView:
        """Save the current filter, sort, columns and runs as a view (``store.save_view``)."""
        saved = curation.save_view(self._require_workspace("save_view"), name, self.filter, columns=self.columns,
                                   run_ids=self._run_ids, description=description, overwrite=overwrite)
        self.status = f"saved view {name!r}"
        return saved

    def clear_brush(self) -> None:
        """Drop the scatter's box/lasso selection (and its outline on the plot)."""
        self._set_brush(None)
        self._clear_plot_selection()

    # -- handlers -------------------------------------------------------------------------------------------
    @_guarded
    def _on_filter(self, change: Mapping[str, Any]) -> None:
        try:
            controls = FailureFilter.from_dict(change["new"])
            for col, _, _ in controls.metric_ranges:
                self._index.numeric(col, f"filter_dict.metric_ranges[{col!r}]")  # fail before anything changes
            if controls.sort_by is not None:
                self._check_columns([controls.sort_by], "filter_dict.sort_by")
        except Exception:
            self._sync_filter_traits()  # the traits keep showing the filter in force
            raise
        if controls == self._controls:
            self._sync_filter_traits()
            return
        previous, self._controls = self._controls, controls
        try:
            self._recompute(controls_changed=_rows_differ(previous, controls))
        except Exception:
            self._controls = previous
            raise
        finally:
            self._sync_filter_traits()

    @_guarded
    def _on_sort(self, change: Mapping[str, Any]) -> None:
        new = dict(change["new"] or {})
        column, descending = new.get("column"), bool(new.get("descending", False))
        try:
            if column is not None:
                self._check_columns([column], "sort.column")
        except Exception:
            self._sync_filter_traits()
            raise
        if (column, descending) != (self._controls.sort_by, self._controls.descending):
            self.set_filter(self._controls.replace(sort_by=column, descending=descending))

    @_guarded
    def _on_page(self, change: Mapping[str, Any]) -> None:
        if change["name"] == "page_size":
            try:
                _check_page_size(change["new"])
            except Exception:
                self.page_size = change["old"]
                raise
        pages = max(1, -(-len(self._order) // self.page_size))
        page = min(max(self.page, 0), pages - 1)
        if page != self.page:
            self.page = page  # this handler runs again and sends the rows
            return
        self._send_rows()

    @_guarded
    def _on_columns(self, change: Mapping[str, Any]) -> None:
        try:
            self._check_columns(change["new"])
        except Exception:
            self.columns = change["old"]
            raise
        self._send_rows()

    @_guarded
    def _on_selected(self, change: Mapping[str, Any]) -> None:
        self._highlight()

    @_guarded
    def _on_axes(self, change: Mapping[str, Any]) -> None:
        try:
            self._index.numeric(change["new"], change["name"])
        except Exception:
            self.set_trait(change["name"], change["old"])
            raise
        picker = self._x_picker if change["name"] == "x_column" else self._y_picker
        if picker.value != change["new"]:
            picker.value = change["new"]
        self._set_brush(None)
        self._clear_plot_selection()
        self._update_scatter()

    def _on_picker(self, change: Mapping[str, Any]) -> None:
        name = "x_column" if change["owner"] is self._x_picker else "y_column"
        if change["new"] is not None and getattr(self, name) != change["new"]:
            setattr(self, name, change["new"])

    @_guarded
    def _on_request(self, change: Mapping[str, Any]) -> None:
        req = dict(change["new"] or {})
        action = req.get("action")
        if not req:
            return
        if action in ("tag", "untag"):
            getattr(self, action)(str(req.get("tag", "")).strip())
        elif action == "save_view":
            self.save_view(str(req.get("name", "")).strip(), overwrite=bool(req.get("overwrite", False)),
                           description=str(req.get("description", "")))
        elif action == "clear_brush":
            self.clear_brush()
        else:
            raise WorldEngineLabError(f"FailureBrowser.request: action: expected 'tag', 'untag', 'save_view' or "
                                      f"'clear_brush', received {action!r}")

    @_guarded
    def _on_scatter_selection(self, trace: Any, points: Any, selector: Any) -> None:
        picked = np.asarray(points.point_inds, dtype=np.int64)
        picked = picked[(picked >= 0) & (picked < len(self._scatter_rows))]
        if not len(picked):  # an empty box, a click, or the plot clearing its selection: no plot filter
            self._set_brush(None)
            self._force_highlight()
            return
        ids = self._table["scenario_id"].to_numpy()[self._scatter_rows[picked]].astype(str)
        self._set_brush(tuple(pd.unique(ids).tolist()))

    @_guarded
    def _on_scatter_deselect(self, trace: Any, points: Any) -> None:
        self._set_brush(None)
        self._force_highlight()

    # -- computation ------------------------------------------------------------------------------------------
    def _recompute(self, controls_changed: bool) -> None:
        """Apply the filter (vectorised), order the rows, reset the page and send it; redraw the scatter when the
        rows it shows changed."""
        ix = self._index
        if controls_changed:
            self._mask_controls = self._controls.apply(self._table, ix)
        mask = self._mask_controls if self._brush_mask is None else self._mask_controls & self._brush_mask
        self._order = self._controls.order(self._table, mask, ix)
        with self.hold_sync():
            self.total = int(len(self._order))
            self.brushed = -1 if self._brush is None else self.total
            if self.page != 0:
                self.page = 0  # the page handler sends the rows
            else:
                self._send_rows()
        if controls_changed:
            self._update_scatter()

    def _send_rows(self) -> None:
        start = self.page * self.page_size
        pos = self._order[start:start + self.page_size]
        self.rows = table_records(self._table, pos, list(self.columns))

    def _update_scatter(self) -> None:
        """Plot the rows matching the filter controls (not the plot selection itself), ``y`` against ``x``."""
        rows = np.flatnonzero(self._mask_controls)
        self._scatter_rows = rows
        if not self.x_column or not self.y_column:
            return
        x = self._index.numeric(self.x_column, "x_column")[rows].astype(np.float32)
        y = self._index.numeric(self.y_column, "y_column")[rows].astype(np.float32)
        trace = self.figure.data[0]
        with self.figure.batch_update():
            trace.x, trace.y = x, y
            trace.selectedpoints = self._highlight_points()
            trace.hovertemplate = f"{self.x_column}: %{{x:.3f}}<br>{self.y_column}: %{{y:.3f}}<extra></extra>"
            self.figure.layout.xaxis.title.text = self.x_column
            self.figure.layout.yaxis.title.text = self.y_column

    def _highlight_points(self) -> np.ndarray | None:
        """``[K] int32`` scatter indices of the selected scenario ids, or None when nothing is selected."""
        if not self.selected:
            return None
        hit = self._index.isin("scenario_id", self.selected)[self._scatter_rows]
        return np.flatnonzero(hit).astype(np.int32)

    def _highlight(self) -> None:
        self.figure.data[0].selectedpoints = self._highlight_points()

    def _set_brush(self, ids: tuple[str, ...] | None) -> None:
        if ids == self._brush:
            return
        self._brush = ids
        self._brush_mask = None if ids is None else self._index.isin("scenario_id", ids)
        self._recompute(controls_changed=False)

    def _clear_plot_selection(self) -> None:
        """Remove box/lasso outlines from the plot and show only the table selection as highlighted points.

        plotly.js keeps a mouse selection in its own ``layout.selections`` (never synced back to Python), and
        while it is there it overrides ``selectedpoints``; so the clearing relayout is sent unconditionally.
        """
        send = getattr(self.figure, "_send_relayout_msg", None)
        if callable(send):
            send({"selections": []})  # plotly.js answers with an empty plotly_selected event
        self._force_highlight()

    def _force_highlight(self) -> None:
        """Send the table selection as ``selectedpoints`` even when Python already holds that value (the plot's
        own selection may have replaced it in the front end)."""
        trace = self.figure.data[0]
        value = self._highlight_points()
        trace.selectedpoints = np.zeros(0, dtype=np.int32) if value is None else None
        trace.selectedpoints = value

    def _refresh_tags(self) -> None:
        """Re-read the catalog tags of the table's scenarios after a curation call."""
        tags = catalog_tags(self._require_workspace("refresh"), self._table["scenario_id"])
        self._table = self._table.assign(tags=tags)
        self._index = FailureIndex(self._table).warm()
        if self._brush is not None:
            self._brush_mask = self._index.isin("scenario_id", self._brush)
        self.options = self._index.choices()
        page = self.page
        self._recompute(controls_changed=True)
        if page != self.page:
            self.page = min(page, max(0, -(-self.total // self.page_size) - 1))

    def _sync_filter_traits(self) -> None:
        """Write the canonical filter dict and the sort mirror back to the traits (no-ops when equal)."""
        canonical = self._controls.to_dict()
        if self.filter_dict != canonical:
            self.filter_dict = canonical
        sort = {"column": self._controls.sort_by, "descending": self._controls.descending}
        if dict(self.sort) != sort:
            self.sort = sort

    # -- checks and errors ------------------------------------------------------------------------------------
    def _check_columns(self, columns: Sequence[str], where: str = "columns") -> None:
        missing = [c for c in columns if c not in self._table.columns]
        if missing:
            raise FailureFilterError(f"FailureBrowser.{where}: the table has no column(s) {missing}; expected some "
                                     f"of {list(self._table.columns)}")

    def _require_workspace(self, what: str) -> Workspace:
        if self.workspace is None:
            raise WorkspaceError(f"FailureBrowser.{what}: this browser was built from a DataFrame without a "
                                 f"workspace; pass workspace=Workspace.open(...) to curate and select scenarios")
        return self.workspace

    def _require_selection(self, what: str) -> list[str]:
        if not self.selected:
            raise WorldEngineLabError(f"FailureBrowser.{what}: expected selected rows, received none; tick rows in "
                                      f"the table (or set .selected) first")
        return list(self.selected)

    def _report(self, exc: BaseException, where: str) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.output.append_stderr(text)
        logger.debug("FailureBrowser.%s failed:\n%s", where, text)


# -- helpers ----------------------------------------------------------------------------------------------------
def _load(source: Any, run_id: Any, workspace: Workspace | None,
          view: str | None) -> tuple[Workspace | None, pd.DataFrame, list[str], curation.SavedView | None]:
    """The workspace, the failure table (own copy, 0..R-1 index), the run ids it came from, and the saved view."""
    if isinstance(source, Workspace):
        ws = source
    elif isinstance(source, pd.DataFrame):
        ws = workspace
    else:
        raise WorldEngineLabError(f"FailureBrowser.source: expected a Workspace or a failure-table DataFrame "
                                  f"(mining.failure_table), received {type(source).__name__}")
    if ws is not None and not isinstance(ws, Workspace):
        raise WorldEngineLabError(f"FailureBrowser.workspace: expected a Workspace or None, received "
                                  f"{type(ws).__name__}")
    saved = None
    if view is not None:
        if ws is None:
            raise WorkspaceError("FailureBrowser.view: a saved view needs a workspace; pass the Workspace")
        saved = curation.load_view(ws, view)
        if saved.kind != "failures":
            raise WorldEngineLabError(f"FailureBrowser.view: expected a 'failures' view, {view!r} is a "
                                      f"{saved.kind!r} view; open it with workspace.scenarios(...)")
    if isinstance(source, Workspace):
        runs = run_id if run_id is not None else (list(saved.run_ids) if saved and saved.run_ids else None)
        table = failure_table(source, runs)
        run_ids = list(table.attrs.get("run_ids", []))
    else:
        if "scenario_id" not in source.columns:
            raise FailureFilterError(f"FailureBrowser.source: expected a 'scenario_id' column (mining.failure_table), "
                                     f"received columns {list(source.columns)[:20]}")
        table = source.reset_index(drop=True).copy(deep=False)
        table["scenario_id"] = table["scenario_id"].astype(str)
        run_ids = sorted(table["run_id"].astype(str).unique().tolist()) if "run_id" in table.columns else []
    return ws, table, run_ids, saved


def _check_page_size(page_size: int) -> None:
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= _MAX_PAGE_SIZE:
        raise WorldEngineLabError(f"FailureBrowser.page_size: expected an int in [1, {_MAX_PAGE_SIZE}], received "
                                  f"{page_size!r}")


def _rows_differ(a: FailureFilter, b: FailureFilter) -> bool:
    """Whether two filters may keep different rows (they differ in more than their sort)."""
    return a.replace(sort_by=None, descending=False) != b.replace(sort_by=None, descending=False)
