"""Evaluation runs, results and failure cases in the workspace (schema migration 2)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from worldengine_lab.errors import MissingColumnError, ShapeError, WorkspaceError
from worldengine_lab.mining import (
    METRIC_COLUMNS, classify_failures, cluster_failures, eval_runs, load_eval_results, load_failure_cases, rank_cases,
    save_eval_run, save_failure_cases,
)
from worldengine_lab.store import SCHEMA_VERSION, Workspace


@pytest.fixture
def ws(tmp_path):
    w = Workspace.open(tmp_path / "ws")
    yield w
    w.close()


def results(planner: str = "cv", mode: str = "closed_loop", n: int = 4) -> pd.DataFrame:
    """Closed-loop rows of windows w0..w{n-1}: w0 collides with a pedestrian, w1 leaves the road, the rest are safe."""
    nc = np.ones(n)
    dac = np.ones(n)
    nc[0], dac[1] = 0.0, 0.0
    ep = np.linspace(0.2, 0.9, n)
    return pd.DataFrame({
        "scenario_id": [f"w{i}" for i in range(n)], "planner_id": planner, "mode": mode,
        "no_at_fault_collisions": nc, "drivable_area_compliance": dac, "ego_progress": ep,
        "time_to_collision_within_bound": 1.0, "comfort": 1.0, "driving_direction_compliance": 1.0,
        "score": nc * dac * (5 * ep + 7) / 12, "success": (nc == 1) & (dac == 1),
        "failure_type": ["collision", "off_road"] + ["none"] * (n - 2),
        "collided_with": ["pedestrian"] + [""] * (n - 1), "first_violation_step": [8, 7] + [-1] * (n - 2),
        "raw_progress_m": 20.0 * ep, "any_contact": [True] + [False] * (n - 1), "expert_progress_m": 20.0,
    })


def add_windows(ws: Workspace, n: int) -> None:
    ws.add_scenarios([{"scenario_id": f"w{i}", "source": "synthetic", "log_id": "log0", "map_name": "town",
                       "start_time_s": float(i), "duration_s": 10.0, "num_steps": 101, "t0": 20} for i in range(n)],
                     tags={"w0": ["rare_pedestrian_dart_out"]})


def test_migration_2_tables(ws) -> None:
    assert SCHEMA_VERSION >= 2 and ws.schema_version == SCHEMA_VERSION
    tables = set(ws.query("SELECT name FROM sqlite_master WHERE type = 'table'")["name"])
    assert {"eval_runs", "eval_results", "failure_cases"} <= tables
    cols = set(ws.query("SELECT name FROM pragma_table_info('eval_results')")["name"])
    assert set(METRIC_COLUMNS) | {"run_id", "scenario_id", "extra_json", "first_violation_step"} <= cols


def test_results_round_trip(ws) -> None:
    res = results()
    run = save_eval_run(ws, res, "cv", "closed_loop", "split=mine", {"horizon_s": 4.0, "agents": "log_replay"}, seed=7)
    assert run.startswith("run-")
    back = load_eval_results(ws, run)
    assert back["run_id"].eq(run).all()
    pd.testing.assert_frame_equal(back.drop(columns=["run_id"]), res, check_dtype=False)
    assert back["success"].dtype == bool and back["first_violation_step"].dtype == np.int64
    assert back["any_contact"].tolist() == [True, False, False, False]
    info = back.attrs["run"]
    assert (info["planner_id"], info["mode"], info["description"], info["seed"], info["num_scenarios"]) == (
        "cv", "closed_loop", "split=mine", 7, 4)
    assert info["config"] == {"agents": "log_replay", "horizon_s": 4.0} and info["code_version"] and info["user"]


def test_nan_metrics_and_minimal_tables(ws) -> None:
    res = results()[["scenario_id", *METRIC_COLUMNS]]
    res.loc[2, "score"] = np.nan
    run = save_eval_run(ws, res.rename(columns={"scenario_id": "token"}).assign(valid=[True, True, False, True]),
                        "navsim_agent", "open_loop", seed=None)
    back = load_eval_results(ws, run)
    assert np.isnan(back.loc[2, "score"]) and back["valid"].tolist() == [True, True, False, True]
    assert back["failure_type"].isna().all() and back["success"].isna().all()
    assert back.attrs["run"]["seed"] is None


def test_latest_run_and_filters(ws) -> None:
    first = save_eval_run(ws, results("cv"), "cv", "closed_loop", "a", {}, 0)
    second = save_eval_run(ws, results("idm"), "idm", "closed_loop", "b", {}, 0)
    third = save_eval_run(ws, results("cv", "open_loop"), "cv", "open_loop", "c", {}, 0)
    assert load_eval_results(ws).attrs["run"]["run_id"] == third
    assert load_eval_results(ws, planner_id="idm").attrs["run"]["run_id"] == second
    assert load_eval_results(ws, planner_id="cv", mode="closed_loop").attrs["run"]["run_id"] == first
    assert eval_runs(ws)["run_id"].tolist() == [third, second, first]
    with pytest.raises(WorkspaceError, match="no evaluation run 'run-nope'"):
        load_eval_results(ws, "run-nope")
    with pytest.raises(WorkspaceError, match="no evaluation run"):
        load_eval_results(ws, planner_id="pdm")


def test_no_runs_raises(ws) -> None:
    with pytest.raises(WorkspaceError, match="save_eval_run"):
        load_eval_results(ws)


def test_results_outlive_catalog_scenarios(ws) -> None:
    add_windows(ws, 4)
    run = save_eval_run(ws, results(n=5), "cv", "closed_loop")  # w4 is not catalogued: no foreign key
    ws.delete_scenarios(["w0"])
    assert load_eval_results(ws, run)["scenario_id"].tolist() == ["w0", "w1", "w2", "w3", "w4"]


def test_bad_tables_write_nothing(ws) -> None:
    res = results()
    with pytest.raises(ShapeError, match="planner_id"):
        save_eval_run(ws, res, "other", "closed_loop")
    with pytest.raises(ShapeError, match="mode"):
        save_eval_run(ws, res, "cv", "somewhere")
    with pytest.raises(ShapeError, match="more than once"):
        save_eval_run(ws, pd.concat([res, res]), "cv", "closed_loop")
    with pytest.raises(MissingColumnError, match="comfort"):
        save_eval_run(ws, res.drop(columns=["comfort"]), "cv", "closed_loop")
    with pytest.raises(WorkspaceError, match="JSON"):
        save_eval_run(ws, res, "cv", "closed_loop", config={"fn": object()})
    with pytest.raises(WorkspaceError, match="JSON"):
        save_eval_run(ws, res.assign(blob=[object()] * 4), "cv", "closed_loop")
    assert ws.query("SELECT COUNT(*) AS n FROM eval_runs")["n"].iloc[0] == 0
    assert ws.query("SELECT COUNT(*) AS n FROM eval_results")["n"].iloc[0] == 0


def test_failure_cases_round_trip(ws) -> None:
    add_windows(ws, 6)
    res = results(n=6)
    res.loc[2, "no_at_fault_collisions"] = 0.0  # w0 and w2 (2 s apart on log0) collide: one case
    res.loc[2, "score"] = 0.0
    run = save_eval_run(ws, res, "cv", "closed_loop", "split=mine", {}, 0)
    loaded = load_eval_results(ws, run)
    cases = rank_cases(cluster_failures(classify_failures(loaded, ws.catalog()), ws.catalog()))
    assert save_failure_cases(ws, run, cases) == len(cases)
    back = load_failure_cases(ws)
    assert back["run_id"].eq(run).all() and back["rank"].tolist() == list(range(1, len(cases) + 1))
    first = back.iloc[0]
    assert (first["case_id"], first["count"], first["members"]) == ("collision-w0", 2, ["w0", "w2"])
    assert first["tag"] == "rare_pedestrian_dart_out" and first["map_name"] == "town"
    assert first["reason"].startswith("at-fault collision with a pedestrian at step 8")
    assert back["rule"].tolist() == ["collision", "off_road", "low_progress"]
    cols = ["case_id", "rank", "rule", "scenario_id", "count", "members", "reason", "score", "tag"]
    pd.testing.assert_frame_equal(back[cols], cases[cols], check_dtype=False)
    # saving again replaces
    assert save_failure_cases(ws, run, cases.iloc[:1]) == 1
    assert load_failure_cases(ws, run)["case_id"].tolist() == ["collision-w0"]


def test_failure_cases_errors_and_empty(ws) -> None:
    assert len(load_failure_cases(ws)) == 0
    run = save_eval_run(ws, results(), "cv", "closed_loop")
    assert len(load_failure_cases(ws, run)) == 0
    cases = pd.DataFrame({"case_id": ["collision-w0"], "planner_id": "idm", "rule": "collision",
                          "scenario_id": "w0", "count": 1, "members": [["w0"]], "score": 0.0})
    with pytest.raises(ShapeError, match="planner_id"):
        save_failure_cases(ws, run, cases)
    with pytest.raises(WorkspaceError, match="no evaluation run"):
        save_failure_cases(ws, "run-nope", cases.drop(columns=["planner_id"]))
    with pytest.raises(WorkspaceError, match="no evaluation run"):
        load_failure_cases(ws, "run-nope")
    with pytest.raises(MissingColumnError, match="members"):
        save_failure_cases(ws, run, cases.drop(columns=["members"]))
    save_failure_cases(ws, run, cases.drop(columns=["planner_id"]))  # unranked: ranked on the way in
    got = load_failure_cases(ws)
    assert got["rank"].tolist() == [1] and json.dumps(got["members"].iloc[0]) == '["w0"]'
