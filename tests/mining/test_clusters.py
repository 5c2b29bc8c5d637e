"""Failure cases: overlapping windows collapse into one case; ranking order."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from worldengine_lab.errors import MissingColumnError, ShapeError
from worldengine_lab.mining import CASE_COLUMNS, cluster_failures, rank_cases, window_now_s


def catalog(windows: dict[str, tuple[str, float]]) -> pd.DataFrame:
    """Windows of 10 s at 0.1 s (101 steps) with "now" at step 20, i.e. now = start + 2 s."""
    return pd.DataFrame({
        "scenario_id": list(windows), "log_id": [v[0] for v in windows.values()],
        "start_time_s": [v[1] for v in windows.values()], "duration_s": 10.0,
        "num_steps": pd.array([101] * len(windows), dtype="Int64"), "t0": pd.array([20] * len(windows), dtype="Int64"),
    })


def failures(rows: list[tuple[str, str, float]], planner: str = "p", mode: str = "closed_loop") -> pd.DataFrame:
    """(scenario_id, rule, score) rows with the classify_failures fields clusters carry."""
    return pd.DataFrame({
        "scenario_id": [r[0] for r in rows], "planner_id": planner, "mode": mode, "rule": [r[1] for r in rows],
        "score": [r[2] for r in rows], "failure_type": [r[1] if r[1] != "low_progress" else "none" for r in rows],
        "collided_with": "", "tag": "rare_cut_in", "map_name": "town", "map_context": "road",
        "reason": [f"reason of {r[0]}" for r in rows],
    })


def test_window_now_time() -> None:
    now = window_now_s(catalog({"a": ("L", 100.0)}))
    assert now.tolist() == [pytest.approx(102.0)]
    single = pd.DataFrame({"start_time_s": [5.0], "duration_s": [0.0], "num_steps": [1], "t0": [0]})
    assert np.isnan(window_now_s(single).iloc[0])


def test_three_overlapping_windows_collapse_into_one_case() -> None:
    cat = catalog({"w0": ("L", 0.0), "w1": ("L", 1.0), "w2": ("L", 2.0)})
    cases = cluster_failures(failures([("w1", "collision", 0.0), ("w0", "collision", 0.2), ("w2", "collision", 0.1)]), cat)
    assert list(cases.columns) == list(CASE_COLUMNS)
    assert len(cases) == 1
    case = cases.iloc[0]
    assert case["count"] == 3 and case["members"] == ["w0", "w1", "w2"]
    assert case["scenario_id"] == "w1" and case["case_id"] == "collision-w1" and case["score"] == 0.0
    assert case["reason"] == "reason of w1" and case["tag"] == "rare_cut_in" and case["log_id"] == "L"
    assert (case["first_now_s"], case["last_now_s"]) == (pytest.approx(2.0), pytest.approx(4.0))


def test_two_logs_stay_separate() -> None:
    cat = catalog({"a0": ("L1", 0.0), "a1": ("L1", 1.0), "b0": ("L2", 0.0), "b1": ("L2", 1.0)})
    cases = cluster_failures(failures([(s, "collision", 0.0) for s in ("a0", "a1", "b0", "b1")]), cat)
    assert cases[["log_id", "count"]].values.tolist() == [["L1", 2], ["L2", 2]]
    assert cases["case_id"].tolist() == ["collision-a0", "collision-b0"]  # ties: the earliest window


def test_gap_splits_and_chains() -> None:
    cat = catalog({"w0": ("L", 0.0), "w1": ("L", 3.0), "w2": ("L", 6.0), "w3": ("L", 9.0), "w4": ("L", 20.0)})
    rows = [(s, "off_road", 0.0) for s in cat["scenario_id"]]
    cases = cluster_failures(failures(rows), cat, gap_s=4.0)
    assert cases["members"].tolist() == [["w0", "w1", "w2", "w3"], ["w4"]]  # 3 s steps chain; 11 s does not
    assert cluster_failures(failures(rows), cat, gap_s=2.0)["count"].tolist() == [1, 1, 1, 1, 1]
    assert cluster_failures(failures(rows), cat, gap_s=3.0)["count"].tolist() == [4, 1]  # the bound is inclusive


def test_rules_planners_and_modes_do_not_merge() -> None:
    cat = catalog({"w0": ("L", 0.0), "w1": ("L", 1.0)})
    f = pd.concat([failures([("w0", "collision", 0.0), ("w1", "off_road", 0.0)]),
                   failures([("w1", "collision", 0.0)], planner="q"),
                   failures([("w0", "collision", 0.0)], mode="open_loop")])
    cases = cluster_failures(f, cat)
    assert cases[["planner_id", "mode", "case_id"]].values.tolist() == [
        ["p", "closed_loop", "collision-w0"], ["p", "closed_loop", "off_road-w1"],
        ["p", "open_loop", "collision-w0"], ["q", "closed_loop", "collision-w1"]]


def test_uncatalogued_or_logless_windows_stay_alone() -> None:
    cat = catalog({"w0": ("L", 0.0), "w1": ("", 0.5)})
    cases = cluster_failures(failures([("w0", "collision", 0.0), ("w1", "collision", 0.0),
                                       ("zz", "collision", 0.0)]), cat)
    assert sorted(cases["case_id"]) == ["collision-w0", "collision-w1", "collision-zz"]
    assert cases["count"].tolist() == [1, 1, 1]


def test_empty_and_bad_inputs() -> None:
    empty = cluster_failures(failures([]), catalog({}))
    assert len(empty) == 0 and list(empty.columns) == list(CASE_COLUMNS)
    with pytest.raises(ShapeError, match="gap_s"):
        cluster_failures(failures([]), catalog({}), gap_s=-1)
    with pytest.raises(MissingColumnError, match="rule"):
        cluster_failures(failures([("a", "collision", 0.0)]).drop(columns=["rule"]), catalog({"a": ("L", 0.0)}))
    with pytest.raises(MissingColumnError, match="log_id"):
        cluster_failures(failures([("a", "collision", 0.0)]), catalog({"a": ("L", 0.0)}).drop(columns=["log_id"]))


def test_rank_order() -> None:
    cases = pd.DataFrame({
        "case_id": ["low_progress-a", "off_road-b", "collision-c", "collision-d", "collision-e", "off_road-f"],
        "rule": ["low_progress", "off_road", "collision", "collision", "collision", "off_road"],
        "score": [0.5, 0.0, 0.0, 0.0, 0.3, 0.0],
        "count": [9, 1, 1, 4, 7, 2],
    })
    ranked = rank_cases(cases)
    assert ranked.columns[0] == "rank" and ranked["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    # collisions first (score asc, then count desc), then off-road, then low progress
    assert ranked["case_id"].tolist() == ["collision-d", "collision-c", "collision-e", "off_road-f", "off_road-b",
                                          "low_progress-a"]
    assert rank_cases(ranked)["case_id"].tolist() == ranked["case_id"].tolist()  # idempotent


def test_rank_restarts_per_planner_and_mode() -> None:
    cat = catalog({"w0": ("L", 0.0), "w1": ("L", 30.0)})
    f = pd.concat([failures([("w0", "off_road", 0.0), ("w1", "collision", 0.0)]),
                   failures([("w0", "collision", 0.0)], planner="q")])
    ranked = rank_cases(cluster_failures(f, cat))
    assert ranked[["planner_id", "rank", "case_id"]].values.tolist() == [
        ["p", 1, "collision-w1"], ["p", 2, "off_road-w0"], ["q", 1, "collision-w0"]]
    with pytest.raises(MissingColumnError):
        rank_cases(pd.DataFrame({"case_id": ["x"]}))
