"""Failure taxonomy: §4 rules per planner x mode, scenario context from the catalog, reasons, counts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from worldengine_lab.errors import MissingColumnError, ShapeError
from worldengine_lab.mining import (
    FAILURE_COLUMNS, METRIC_COLUMNS, classify_failures, scenario_context, taxonomy_counts,
)
from worldengine_lab.mining.taxonomy import ordinal
from worldengine_lab.store import Workspace

# spec/metrics.md §7 T16 (token: NC, DAC, EP)
T16 = {"a": (1, 1, 0.95), "b": (1, 1, 0.10), "c": (0, 1, 0.0), "d": (1, 0, 0.0), "e": (0.5, 1, 0.4),
       "f": (1, 1, 0.0), "g": (1, 1, 0.60), "h": (1, 1, 0.30)}


def results(rows: dict[str, tuple[float, float, float]], planner: str = "p", mode: str = "closed_loop",
            **extra: object) -> pd.DataFrame:
    """A result table as mining.evaluate returns it (TTC = C = DDC = 1, score from the §2.13 formula)."""
    ids = list(rows)
    nc, dac, ep = (np.array([rows[k][i] for k in ids], float) for i in range(3))
    t = pd.DataFrame({"scenario_id": ids, "planner_id": planner, "mode": mode, "no_at_fault_collisions": nc,
                      "drivable_area_compliance": dac, "ego_progress": ep, "time_to_collision_within_bound": 1.0,
                      "comfort": 1.0, "driving_direction_compliance": 1.0,
                      "score": nc * dac * (5 * ep + 5 + 2) / 12})
    t["success"] = (nc == 1) & (dac == 1)
    t["failure_type"] = np.select([nc == 0, dac == 0, nc == 0.5], ["collision", "off_road", "static_collision"], "none")
    t["collided_with"] = np.where(nc < 1, "vehicle", "")
    t["first_violation_step"] = -1
    t["raw_progress_m"] = 20.0 * ep
    for k, v in extra.items():
        t[k] = v
    return t


def catalog(ids, tags=None, map_name="map-a") -> pd.DataFrame:
    tags = tags or {}
    return pd.DataFrame({"scenario_id": list(ids), "map_name": map_name, "log_id": "log0",
                         "tags": [tags.get(i, []) for i in ids]})


def test_t16_rules_one_row_per_hit() -> None:
    out = classify_failures(results(T16), catalog(T16))
    assert list(out.columns) == list(FAILURE_COLUMNS)
    assert out[["scenario_id", "rule"]].values.tolist() == [["c", "collision"], ["d", "off_road"], ["b", "low_progress"]]
    assert "e" not in set(out["scenario_id"])  # NC = 0.5 is not mined
    assert out.loc[out["rule"] == "low_progress", "ep_threshold"].iloc[0] == pytest.approx(0.106)
    p50 = classify_failures(results(T16), catalog(T16), percentile=50, rules=["low_progress"])
    assert p50["scenario_id"].tolist() == ["b", "h"]


def test_scenario_in_two_sets_gets_two_rows() -> None:
    rows = {"x": (0, 0, 0.0), "y": (1, 1, 0.5), "z": (1, 1, 0.9)}
    out = classify_failures(results(rows), catalog(rows))
    assert out.loc[out["scenario_id"] == "x", "rule"].tolist() == ["collision", "off_road"]
    assert "and left the drivable area" in out["reason"].iloc[0]


def test_groups_are_mined_separately() -> None:
    a = results(T16, planner="A")
    # B: no collision on c, and b makes progress: pool {.95, .5, .7, .6, .3}, threshold .3 + .04 * .2 = .308 → {h}
    b = results({**T16, "b": (1, 1, 0.5), "c": (1, 1, 0.7)}, planner="B", mode="open_loop")
    out = classify_failures(pd.concat([b, a]), catalog(T16))
    assert out[["planner_id", "scenario_id", "rule"]].values.tolist() == [
        ["A", "c", "collision"], ["A", "d", "off_road"], ["A", "b", "low_progress"],
        ["B", "d", "off_road"], ["B", "h", "low_progress"]]
    got_b = out[out["planner_id"] == "B"]
    assert got_b["ep_threshold"].iloc[-1] == pytest.approx(0.308)
    assert "of the reference planner's" in got_b["reason"].iloc[-1]


def test_reasons_read_like_sentences() -> None:
    rows = {"c1": (0, 1, 0.0), "o1": (1, 0, 0.0), "ok": (1, 1, 0.9), "lo": (1, 1, 0.12), "k2": (1, 1, 0.95)}
    t = results(rows)
    t.loc[t["scenario_id"] == "c1", ["collided_with", "first_violation_step"]] = ["pedestrian", 8]
    t.loc[t["scenario_id"] == "o1", "first_violation_step"] = 7
    out = classify_failures(t, catalog(rows)).set_index("scenario_id")
    assert out.loc["c1", "reason"] == "at-fault collision with a pedestrian at step 8 (~2.5 s after now) (NC 0, PDMS 0.00)"
    assert out.loc["o1", "reason"] == "left the drivable area at step 7 (~2.0 s after now) (DAC 0, PDMS 0.00)"
    thr = out.loc["lo", "ep_threshold"]
    assert out.loc["lo", "reason"] == (f"progress 0.12 of the expert's (2.4 m), below the 1st percentile {thr:.2f} "
                                       "of safe scenarios")


def test_reason_prefers_collision_time_and_articles() -> None:
    rows = {"c1": (0, 1, 0.0), "ok": (1, 1, 0.9)}
    t = results(rows, mode="open_loop", first_collision_time_s=[1.4, np.nan])
    t["collided_with"] = ["unknown_object", ""]
    out = classify_failures(t, catalog(rows))
    assert out["reason"].iloc[0] == "at-fault collision with an unknown object at 1.4 s (NC 0, PDMS 0.00)"


def test_ordinals() -> None:
    assert [ordinal(p) for p in (1, 2, 3, 11, 12, 13, 21, 50, 0.5)] == [
        "1st", "2nd", "3rd", "11th", "12th", "13th", "21st", "50th", "0.5th"]


def test_context_from_tags() -> None:
    ids = ["r", "i", "x", "w", "n", "q"]
    tags = {"r": ["near_multiple_vehicles", "rare_cut_in", "starting_left_turn"], "i": ["on_intersection"],
            "x": ["on_stopline_crosswalk"], "w": ["following_lane_with_lead"], "q": ["on_pickup_dropoff"]}
    ctx = scenario_context(catalog(ids, tags)).set_index("scenario_id")
    assert ctx["tag"].to_dict() == {"r": "rare_cut_in", "i": "on_intersection", "x": "on_stopline_crosswalk",
                                    "w": "following_lane_with_lead", "n": "untagged", "q": "on_pickup_dropoff"}
    assert ctx["map_context"].to_dict() == {"r": "intersection", "i": "intersection", "x": "crosswalk", "w": "road",
                                            "n": "road", "q": "carpark"}


def test_scenarios_missing_from_the_catalog_are_kept_as_unknown() -> None:
    out = classify_failures(results(T16), catalog(["a", "b"]))
    row = out[out["scenario_id"] == "c"].iloc[0]
    assert (row["tag"], row["map_name"], row["map_context"]) == ("untagged", "", "unknown")
    assert len(classify_failures(results(T16), None)) == 3


def test_workspace_catalog_tags(tmp_path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    ws.add_scenarios([{"scenario_id": k, "source": "synthetic", "log_id": "log0", "map_name": "town"} for k in T16],
                     tags={"c": ["rare_pedestrian_dart_out", "on_intersection"], "d": ["changing_lane"]})
    out = classify_failures(results(T16), ws.catalog()).set_index("scenario_id")
    ws.close()
    assert out.loc["c", ["tag", "map_context", "map_name"]].tolist() == ["rare_pedestrian_dart_out", "intersection", "town"]
    assert out.loc["d", ["tag", "map_context"]].tolist() == ["changing_lane", "road"]
    assert out.loc["b", "tag"] == "untagged"


def test_invalid_rows_are_skipped() -> None:
    t = results(T16)
    t.loc[t["scenario_id"] == "c", "no_at_fault_collisions"] = np.nan
    out = classify_failures(t, catalog(T16))
    assert "c" not in set(out["scenario_id"])
    t2 = results(T16, valid=[k != "d" for k in T16])
    assert "d" not in set(classify_failures(t2, catalog(T16))["scenario_id"])


def test_minimal_table_fills_optional_columns() -> None:
    t = results(T16)[["scenario_id", "planner_id", "mode", *METRIC_COLUMNS]]
    out = classify_failures(t, catalog(T16)).set_index("scenario_id")
    assert out.loc["c", "failure_type"] == "collision" and out.loc["c", "collided_with"] == ""
    assert out.loc["c", "reason"] == "at-fault collision (NC 0, PDMS 0.00)"
    assert not bool(out.loc["c", "success"]) and out.loc["b", "first_violation_step"] == -1
    t["failure_type"] = None  # as load_eval_results returns a run saved without failure types
    assert classify_failures(t, catalog(T16)).set_index("scenario_id").loc["d", "failure_type"] == "off_road"


def test_empty_when_nothing_fails() -> None:
    out = classify_failures(results({"a": (1, 1, 0.5), "b": (1, 1, 0.5)}), catalog("ab"))
    assert len(out) == 0 and list(out.columns) == list(FAILURE_COLUMNS)
    assert len(taxonomy_counts(out)) == 0


def test_bad_inputs() -> None:
    t = results(T16)
    with pytest.raises(MissingColumnError, match="missing \\['score'\\]"):
        classify_failures(t.drop(columns=["score"]), catalog(T16))
    with pytest.raises(ShapeError, match="mode"):
        classify_failures(t.assign(mode="sideways"), catalog(T16))
    with pytest.raises(ShapeError, match="more than once"):
        classify_failures(pd.concat([t, t]), catalog(T16))
    with pytest.raises(ShapeError, match="rules"):
        classify_failures(t, catalog(T16), rules=["crash"])
    with pytest.raises(ShapeError, match="percentile"):
        classify_failures(t, catalog(T16), percentile=101)
    with pytest.raises(MissingColumnError, match="scenario_id"):
        classify_failures(t, pd.DataFrame({"id": ["a"]}))


def test_taxonomy_counts() -> None:
    rows = {"c1": (0, 1, 0.0), "c2": (0, 1, 0.0), "c3": (0, 0, 0.0), "ok": (1, 1, 0.9), "k2": (1, 1, 0.9)}
    tags = {"c1": ["rare_cut_in"], "c2": ["rare_cut_in"], "c3": ["on_intersection"]}
    counts = taxonomy_counts(classify_failures(results(rows), catalog(rows, tags)))
    assert counts.to_dict("records") == [
        {"rule": "collision", "failure_type": "collision", "tag": "rare_cut_in", "map_context": "road", "count": 2},
        {"rule": "collision", "failure_type": "collision", "tag": "on_intersection", "map_context": "intersection",
         "count": 1},
        {"rule": "off_road", "failure_type": "collision", "tag": "on_intersection", "map_context": "intersection",
         "count": 1},
    ]
    with pytest.raises(MissingColumnError):
        taxonomy_counts(pd.DataFrame({"rule": ["x"]}))
