"""A generated evaluation report opened as a standalone HTML file in real chromium: the results table and the
plotly figures render offline (plotly.js is embedded), and the provenance table is there."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from worldengine_lab.mining import save_eval_run
from worldengine_lab.store import Workspace

try:
    from playwright.sync_api import expect
except ImportError:  # the tests are skipped (see conftest.py); the module must still import
    expect = None

pytestmark = pytest.mark.browser


def _store(ws: Workspace, planner: str, success: np.ndarray) -> None:
    for split in ("test_common", "test_rare"):
        ids = [f"{split}-{i}" for i in range(len(success))]
        for mode in ("open_loop", "closed_loop"):
            rows = pd.DataFrame({"scenario_id": ids, "planner_id": planner, "mode": mode, "success": success,
                                 "score": 0.9 * success, "no_at_fault_collisions": success.astype(float),
                                 "drivable_area_compliance": 1.0, "ego_progress": 1.0,
                                 "time_to_collision_within_bound": 1.0, "comfort": 1.0,
                                 "driving_direction_compliance": 1.0,
                                 "failure_type": np.where(success, "none", "collision")})
            save_eval_run(ws, rows, planner, mode, description=f"split={split}, {len(ids)} scenarios")


def test_generated_report_shows_the_table_and_plotly_figures(page, tmp_path: Path) -> None:
    pytest.importorskip("papermill")
    from worldengine_lab.reports import run

    ws = Workspace.open(tmp_path / "ws")
    base = np.arange(30) % 3 != 0
    post = base.copy()
    post[:6] = True
    _store(ws, "learned:base", base)
    _store(ws, "learned:worldengine", post)
    res = run("evaluation", {"planners": {"base model": "learned:base", "World Engine": "learned:worldengine"},
                             "resamples": 200, "thumbnails": 0}, tmp_path / "reports" / "evaluation.html",
              workspace=ws.root)

    page.goto(res.html.resolve().as_uri())
    table = page.locator("table", has_text="CL success rare").first
    expect(table).to_be_visible()
    expect(table).to_contain_text("base model")
    expect(table).to_contain_text("World Engine")
    expect(page.locator("table", has_text="Report provenance").or_(page.get_by_text("Report provenance")).first
           ).to_be_visible()
    figure = page.locator(".plotly-graph-div").first
    expect(figure).to_be_visible()
    expect(figure.locator("svg.main-svg").first).to_be_attached()  # plotly.js drew it (offline: embedded)
    assert page.locator(".plotly-graph-div .bars path, .plotly-graph-div .point").count() > 0
