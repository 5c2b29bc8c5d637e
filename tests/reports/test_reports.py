"""Reports: bootstrap statistics, the results table from stored runs, and papermill reports with provenance."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from worldengine_lab.errors import ShapeError, WorkspaceError
from worldengine_lab.mining import save_eval_run, write_synthetic_failures
from worldengine_lab.reports.stats import bootstrap_mean, paired_difference
from worldengine_lab.reports.tables import before_after, format_table, results_table
from worldengine_lab.store import Workspace


def test_bootstrap_interval_brackets_the_mean_and_is_seeded():
    v = np.r_[np.ones(80), np.zeros(20)]
    e = bootstrap_mean(v, resamples=4000, seed=1)
    assert e.value == pytest.approx(0.8) and e.low < 0.8 < e.high
    assert e.high - e.low == pytest.approx(2 * 1.96 * np.sqrt(0.8 * 0.2 / 100), abs=0.03)  # normal approximation
    assert bootstrap_mean(v, seed=1) == bootstrap_mean(v, seed=1)
    assert bootstrap_mean(np.full(10, 0.5)).low == 0.5  # no spread, no interval
    with pytest.raises(ShapeError, match="non-empty"):
        bootstrap_mean(np.array([]))


def test_paired_difference_sees_a_consistent_gain_that_unpaired_noise_hides():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.0, 1.0, 200)
    after = base + 0.05  # every scenario gains 0.05
    d = paired_difference(after, base)
    assert d.value == pytest.approx(0.05) and d.excludes_zero() and d.high - d.low < 1e-9
    with pytest.raises(ShapeError, match="same scenarios"):
        paired_difference(after[:10], base)


def _store_runs(ws: Workspace, planner: str, success: np.ndarray, score: np.ndarray, ids: list[str]) -> None:
    for mode, split in (("closed_loop", "test_rare"), ("open_loop", "test_rare"), ("open_loop", "test_common")):
        rows = pd.DataFrame({"scenario_id": ids, "planner_id": planner, "mode": mode, "success": success,
                             "score": score, "no_at_fault_collisions": success.astype(float),
                             "drivable_area_compliance": 1.0, "ego_progress": 1.0,
                             "time_to_collision_within_bound": 1.0, "comfort": 1.0,
                             "driving_direction_compliance": 1.0,
                             "failure_type": np.where(success, "none", "collision")})
        save_eval_run(ws, rows, planner, mode, description=f"split={split}, {len(ids)} scenarios")


def test_results_table_and_before_after_from_stored_runs(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    ids = [f"s{i}" for i in range(40)]
    base_ok = np.arange(40) % 4 != 0  # 75 %
    post_ok = base_ok.copy()
    post_ok[:8] = True  # fixes 2 failures... and the first 8 include 2 failures (0 and 4)
    post_ok[39] = False  # breaks one
    _store_runs(ws, "base", base_ok, base_ok * 0.9, ids)
    _store_runs(ws, "post", post_ok, post_ok * 0.9, ids)
    table = results_table(ws, {"base model": "base", "RL": "post"}, resamples=500)
    assert table.loc["base model", "CL success rare"].value == pytest.approx(0.75)
    assert table.loc["RL", "CL success rare"].value == pytest.approx(post_ok.mean())
    assert table.loc["RL", "Δ CL success rare"].value == pytest.approx(post_ok.mean() - 0.75)
    assert len(table.attrs["run_ids"]) == 6
    assert format_table(table).loc["base model", "CL success rare"].startswith("75.00 [")
    changes = before_after(ws, "base", "post")
    counts = changes["change"].value_counts()
    assert counts["fixed"] == 2 and counts["broken"] == 1 and counts["still failing"] == 8
    with pytest.raises(WorkspaceError, match="evaluate"):
        results_table(ws, {"x": "nobody"})


@pytest.mark.slow
def test_report_runs_with_provenance_and_rejects_unknown_parameters(tmp_path):
    pytest.importorskip("papermill")
    from worldengine_lab.reports import ReportError, inspect, list_reports, run

    assert {"evaluation", "failure_review"} <= set(list_reports())
    assert {"workspace", "run_id", "top_n"} <= set(inspect("failure_review"))
    ws = Workspace.open(tmp_path / "ws")
    write_synthetic_failures(ws, num_scenarios=12, seed=0)
    with pytest.raises(ReportError, match="unknown parameter"):
        run("failure_review", {"top_nn": 2}, tmp_path / "out" / "r.html", workspace=ws.root)
    assert not (tmp_path / "out" / "r.html").exists()
    result = run("failure_review", {"top_n": 0},
                 tmp_path / "out" / "r.html", workspace=ws.root)
    html = result.html.read_text()
    assert "Report provenance" in html and "plotly" in html.lower()
    nb = json.loads(result.notebook.read_text())
    prov = nb["metadata"]["worldengine_lab"]
    assert prov["parameters"]["top_n"] == 0 and prov["workspace"] == str(ws.root.resolve())
    assert prov["run_ids"] and prov["code_version"]
