"""FailureBrowser, headless: driven through set_state as the front end would, asserted on traits and .selection."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from worldengine_lab.errors import WorkspaceError
from worldengine_lab.mining.failure_filter import FailureFilter
from worldengine_lab.mining.failure_table import failure_table, synthetic_failure_table, write_synthetic_failures
from worldengine_lab.scenarios import ScenarioSet
from worldengine_lab.store import Workspace, load_view, save_view
from worldengine_lab.widgets.failure_browser import FailureBrowser

WIDGETS = Path(__file__).resolve().parents[2] / "widgets"


@pytest.fixture
def ws(tmp_path):
    w = Workspace.open(tmp_path / "ws")
    write_synthetic_failures(w, num_scenarios=80, seed=0)
    yield w
    w.close()


@pytest.fixture
def browser(ws) -> FailureBrowser:
    return FailureBrowser(ws, page_size=5)


def _page_ids(b: FailureBrowser) -> list[str]:
    return [r["scenario_id"] for r in b.rows]


def _select(b: FailureBrowser, points: list[int], event: str = "plotly_selected") -> None:
    """Send a scatter selection the way the plotly front end does."""
    b.figure._js2py_pointsCallback = {
        "event_type": event,
        "points": {"xs": [0.0] * len(points), "ys": [0.0] * len(points), "point_indexes": points,
                   "trace_indexes": [0] * len(points)},
        "selector": {"type": "lasso", "selector_state": {"xs": [0, 1, 1], "ys": [0, 0, 1]}}
        if event == "plotly_selected" else None,
    }


def test_initial_state(ws, browser) -> None:
    table = failure_table(ws)
    assert browser.num_rows == browser.total == len(table) > 5
    assert len(browser.rows) == 5 and browser.page == 0 and browser.error == ""
    assert _page_ids(browser) == table["scenario_id"].head(5).tolist()
    assert {"scenario_id", "_row", "rank", "failure_type", "tags", "score"} <= set(browser.rows[0])
    assert browser.options["failure_types"] == sorted(set(table["failure_type"]))
    assert browser.options["counts"]["failure_types"]["collision"] == int((table["failure_type"] == "collision").sum())
    assert browser.filter == FailureFilter() and browser.filter_dict == {"version": 1}
    assert browser.has_workspace and len(browser.figure.data[0].x) == len(table)
    assert browser.view.children[2] is browser


def test_filter_sort_and_page(ws, browser) -> None:
    table = failure_table(ws)
    browser.set_state({"filter_dict": {"failure_types": ["collision"], "metric_ranges": {"ego_progress": [0.2, None]}}})
    flt = FailureFilter(failure_types=["collision"], metric_ranges={"ego_progress": (0.2, None)})
    expected = table.iloc[flt.order(table)]
    assert browser.error == "" and browser.total == len(expected) > 0 and browser.filter == flt
    assert all(r["failure_type"] == "collision" and r["ego_progress"] >= 0.2 for r in browser.rows)
    assert len(browser.figure.data[0].x) == len(expected)  # the scatter shows the filtered rows

    browser.set_state({"sort": {"column": "ego_progress", "descending": True}})
    assert browser.filter_dict["sort_by"] == "ego_progress" and browser.filter_dict["descending"] is True
    ordered = expected.sort_values("ego_progress", ascending=False, kind="stable")
    assert _page_ids(browser) == ordered["scenario_id"].head(5).tolist()

    browser.set_state({"page": 1})
    assert browser.page == 1 and _page_ids(browser) == ordered["scenario_id"].iloc[5:10].tolist()
    browser.set_state({"page": 999})
    last = (len(ordered) - 1) // 5
    assert browser.page == last and _page_ids(browser) == ordered["scenario_id"].iloc[5 * last:].tolist()

    browser.set_state({"filter_dict": {**browser.filter_dict, "search": "pedestrian"}})
    assert browser.page == 0 and browser.total == int(expected["reason"].str.contains("pedestrian").sum())
    browser.set_state({"page_size": 2})
    assert len(browser.rows) == min(2, browser.total)


def test_selection_and_highlight(ws, browser) -> None:
    browser.set_state({"filter_dict": {"failure_types": ["collision"]}})
    everything = browser.selection
    assert isinstance(everything, ScenarioSet)
    assert everything.ids == FailureFilter(failure_types=["collision"]).scenario_id_list(failure_table(ws))
    picked = _page_ids(browser)[1:3]
    browser.set_state({"selected": picked})
    assert browser.selection.ids == picked and browser.selected_ids == picked
    xs = np.asarray(browser.figure.data[0].x)
    points = np.asarray(browser.figure.data[0].selectedpoints)
    assert len(points) == 2 and len(xs) == browser.total
    shown = browser.table["scenario_id"].to_numpy()[browser._scatter_rows]
    assert sorted(shown[points].tolist()) == sorted(picked)
    browser.set_state({"selected": []})
    assert browser.figure.data[0].selectedpoints is None


def test_scatter_selection_filters_the_table(browser) -> None:
    ids = browser.table["scenario_id"].to_numpy()
    _select(browser, [0, 2, 3])
    assert browser.brushed == browser.total == 3 and browser.error == ""
    assert sorted(browser.filter.scenario_ids) == sorted(ids[[0, 2, 3]].tolist())
    assert sorted(_page_ids(browser)) == sorted(ids[[0, 2, 3]].tolist())
    assert len(browser.figure.data[0].x) == browser.num_rows  # the plot keeps showing every filtered point
    browser.set_state({"request": {"action": "clear_brush", "seq": 1}})
    assert browser.brushed == -1 and browser.total == browser.num_rows and browser.filter.scenario_ids is None
    _select(browser, [1])
    _select(browser, [], event="plotly_deselect")
    assert browser.brushed == -1 and browser.total == browser.num_rows
    _select(browser, [1, 4])
    browser.set_state({"page": 0})
    _select(browser, [])  # an empty box (or plotly clearing its selection) drops the plot filter
    assert browser.brushed == -1 and browser.total == browser.num_rows and browser.error == ""


def test_tag_and_untag_buttons(ws, browser) -> None:
    picked = _page_ids(browser)[:2]
    browser.set_state({"selected": picked})
    browser.set_state({"request": {"action": "tag", "tag": "needs_review", "seq": 1}})
    assert browser.error == "" and "needs_review" in browser.status
    assert all("needs_review" in t for t in ws.catalog(ids=picked)["tags"])
    assert "needs_review" in browser.options["tags"]
    browser.set_state({"filter_dict": {"tags": ["needs_review"]}})
    assert browser.total == 2 and sorted(_page_ids(browser)) == sorted(picked)
    browser.set_state({"request": {"action": "untag", "tag": "needs_review", "seq": 2}})
    assert browser.total == 0 and browser.rows == []
    assert not any("needs_review" in t for t in ws.catalog(ids=picked)["tags"])


def test_save_view_button(ws, browser) -> None:
    browser.set_state({"filter_dict": {"failure_types": ["off_road"], "sort_by": "score"}, "columns": ["rank", "score"]})
    browser.set_state({"request": {"action": "save_view", "name": "off road", "seq": 1}})
    assert browser.error == "" and "off road" in browser.status
    view = load_view(ws, "off road")
    assert FailureFilter.from_dict(view.filter) == browser.filter and view.columns == ("rank", "score")
    reopened = FailureBrowser(ws, view="off road", page_size=5)
    assert reopened.total == browser.total and reopened.columns == ["rank", "score"]
    assert _page_ids(reopened) == _page_ids(browser)
    browser.set_state({"request": {"action": "save_view", "name": "off road", "seq": 2}})
    assert "exists" in browser.error  # overwrite only when asked
    browser.set_state({"request": {"action": "save_view", "name": "off road", "overwrite": True, "seq": 3}})
    assert browser.error == ""


def test_callback_errors_reach_the_error_area(browser) -> None:
    before = (browser.total, dict(browser.filter_dict))
    browser.set_state({"request": {"action": "save_view", "name": "bad/name", "seq": 1}})
    assert browser.error.startswith("CurationError") and "name" in browser.error
    assert any("Traceback" in o.get("text", "") for o in browser.output.outputs)
    browser.set_state({"filter_dict": {"metric_ranges": {"no_such_metric": [0, 1]}}})
    assert "no_such_metric" in browser.error
    assert (browser.total, dict(browser.filter_dict)) == before  # the filter in force is kept
    browser.set_state({"request": {"action": "tag", "tag": "x", "seq": 2}})
    assert "selected rows" in browser.error
    browser.set_state({"sort": {"column": "nope", "descending": False}})
    assert "nope" in browser.error and browser.sort["column"] is None
    browser.set_state({"columns": ["rank", "nope"]})
    assert "nope" in browser.error and "nope" not in browser.columns
    browser.set_state({"request": {"action": "explode", "seq": 3}})
    assert "explode" in browser.error
    browser.set_state({"page": 0})  # the next message starts with a clean error area
    assert browser.error == ""


def test_axes(browser) -> None:
    browser.set_state({"x_column": "raw_progress_m", "y_column": "first_violation_step"})
    assert browser.error == "" and browser.figure.layout.xaxis.title.text == "raw_progress_m"
    np.testing.assert_allclose(browser.figure.data[0].x, browser.table["raw_progress_m"].to_numpy(), rtol=1e-6)
    assert browser._x_picker.value == "raw_progress_m"
    browser.set_state({"y_column": "reason"})
    assert "numeric" in browser.error and browser.y_column == "first_violation_step"
    browser._x_picker.value = "score"
    assert browser.x_column == "score"


def test_dataframe_source_without_workspace() -> None:
    table = synthetic_failure_table(500, seed=0)
    b = FailureBrowser(table, page_size=10)
    assert b.total == 500 and not b.has_workspace and len(b.rows) == 10
    b.set_state({"filter_dict": {"map_names": ["sg-one-north"], "tags": ["night"]}})
    assert b.total == int(FailureFilter(map_names=["sg-one-north"], tags=["night"]).apply(table).sum())
    b.set_state({"selected": _page_ids(b)[:1]})
    b.set_state({"request": {"action": "tag", "tag": "x", "seq": 1}})
    assert "workspace" in b.error
    with pytest.raises(WorkspaceError, match="workspace"):
        b.selection
    assert b.selected_ids == _page_ids(b)[:1]


def test_display_shows_the_whole_view(browser) -> None:
    bundle = browser._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == browser.view.model_id


def test_constructor_arguments(ws) -> None:
    with pytest.raises(Exception, match="page_size"):
        FailureBrowser(ws, page_size=0)
    with pytest.raises(Exception, match="source"):
        FailureBrowser([1, 2, 3])
    save_view(ws, "scen", {"tags": ["x"]}, kind="scenarios")
    with pytest.raises(Exception, match="failures"):
        FailureBrowser(ws, view="scen")


def test_front_end_assets_keep_the_dom_contract() -> None:
    js = (WIDGETS / "failure_browser.js").read_text()
    css = (WIDGETS / "failure_browser.css").read_text()
    for needle in ("wel-failure-browser", "wel-filter-failure-type", "wel-count", "data-count", "wel-row",
                   "data-scenario-id", "wel-search", "export default"):
        assert needle in js, needle
    assert not re.search(r"^\s*import\s", js, flags=re.M) and "http" not in js  # self-contained, offline
    assert ".wel-failure-browser" in css and "@import" not in css
