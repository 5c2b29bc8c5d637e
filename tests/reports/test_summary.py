"""summary.json: World Engine's table layout with bootstrap intervals and paired deltas, from stored runs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from worldengine_lab.errors import DataFormatError, WorkspaceError
from worldengine_lab.mining import save_eval_run
from worldengine_lab.reports.summary import METRICS, SPLITS, build_summary, check_summary, write_summary
from worldengine_lab.store import Workspace


def _store(ws: Workspace, planner: str, split: str, success: np.ndarray, score: np.ndarray) -> None:
    ids = [f"{split}-{i}" for i in range(len(success))]
    for mode in ("open_loop", "closed_loop"):
        rows = pd.DataFrame({"scenario_id": ids, "planner_id": planner, "mode": mode, "success": success,
                             "score": score if mode == "closed_loop" else np.clip(score + 0.1, 0, 1),
                             "no_at_fault_collisions": success.astype(float), "drivable_area_compliance": 1.0,
                             "ego_progress": 1.0, "time_to_collision_within_bound": 1.0, "comfort": 1.0,
                             "driving_direction_compliance": 1.0,
                             "failure_type": np.where(success, "none", "collision")})
        save_eval_run(ws, rows, planner, mode, description=f"split={split}, {len(ids)} scenarios")


@pytest.fixture()
def ws(tmp_path) -> Workspace:
    w = Workspace.open(tmp_path / "ws")
    common = np.arange(50) % 10 != 0  # 90 %
    rare = np.arange(20) % 2 == 0  # 50 %
    _store(w, "learned:base", "test_common", common, common * 0.8)
    _store(w, "learned:base", "test_rare", rare, rare * 0.7)
    fixed = rare.copy()
    fixed[[1, 3, 5, 7]] = True  # four rare failures fixed: 70 %
    _store(w, "learned:worldengine", "test_common", common, common * 0.8)
    _store(w, "learned:worldengine", "test_rare", fixed, fixed * 0.7)
    return w


def test_summary_layout_values_and_paired_deltas(ws: Workspace, tmp_path) -> None:
    s = build_summary(ws, {"base": "learned:base", "worldengine": "learned:worldengine"},
                      config={"seed": 0}, resamples=500)
    check_summary(s)
    assert set(s["recipes"]) == {"base", "worldengine"}
    for key in ("base", "worldengine"):
        assert set(s["recipes"][key]) == set(SPLITS)
        for split in SPLITS:
            assert set(s["recipes"][key][split]) == set(METRICS)
    cell = s["recipes"]["base"]["test_rare"]["cl_success"]
    assert cell["value"] == pytest.approx(50.0) and cell["n"] == 20
    assert cell["ci95"][0] < 50.0 < cell["ci95"][1]  # percent, with an interval
    assert s["recipes"]["worldengine"]["test_rare"]["cl_success"]["value"] == pytest.approx(70.0)
    d = s["deltas"]["worldengine_vs_base"]["test_rare"]["cl_success"]
    assert d["value"] == pytest.approx(20.0) and d["ci95"][0] > 0  # the paired gain excludes zero
    same = s["deltas"]["worldengine_vs_base"]["test_common"]["cl_success"]
    assert same["value"] == 0.0 and same["ci95"] == [0.0, 0.0]  # identical outcomes: no difference at all
    assert s["config"] == {"seed": 0} and len(s["provenance"]["run_ids"]) == 8
    path = write_summary(tmp_path / "run" / "summary.json", s)
    assert json.loads(path.read_text()) == s


def test_summary_rejects_unknown_rows_and_empty_workspaces(ws: Workspace, tmp_path) -> None:
    with pytest.raises(DataFormatError, match="keys must come from"):
        build_summary(ws, {"base": "learned:base", "mystery": "x"})
    with pytest.raises(DataFormatError, match="include 'base'"):
        build_summary(ws, {"worldengine": "learned:worldengine"})
    with pytest.raises(WorkspaceError, match="evaluate the planners"):
        build_summary(Workspace.open(tmp_path / "empty"), {"base": "nobody"})
    partial = build_summary(ws, {"base": "learned:base", "worldengine": "nobody"}, resamples=200)
    assert "worldengine/test_rare/cl_success" in partial["provenance"]["missing"]
    with pytest.raises(DataFormatError, match="missing recipe 'worldengine'"):
        check_summary(partial)
