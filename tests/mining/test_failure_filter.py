"""FailureFilter (filters as data, vectorised apply/order) and the failure table loaded from the workspace."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from worldengine_lab.errors import MissingColumnError, ShapeError, WorkspaceError, WorldEngineLabError
from worldengine_lab.mining import save_eval_run
from worldengine_lab.mining.failure_filter import FailureFilter, FailureFilterError, FailureIndex
from worldengine_lab.mining.failure_table import (
    FAILURE_TABLE_COLUMNS, catalog_tags, failure_table, synthetic_failure_table, table_records,
    write_synthetic_failures,
)
from worldengine_lab.scenarios import ScenarioSet
from worldengine_lab.store import Workspace


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_failure_table(3000, seed=1)


@pytest.fixture
def ws(tmp_path):
    w = Workspace.open(tmp_path / "ws")
    yield w
    w.close()


def _reference(t: pd.DataFrame, f: FailureFilter) -> np.ndarray:
    """The same filter written row by row (slow and obvious)."""
    keep = []
    for _, r in t.iterrows():
        ok = (not f.failure_types or r.failure_type in f.failure_types) and (not f.rules or r.rule in f.rules)
        ok &= (not f.modes or r["mode"] in f.modes) and (not f.map_names or r.map_name in f.map_names)
        ok &= (not f.splits or r.split in f.splits) and (not f.cluster_ids or str(r.cluster_id) in f.cluster_ids)
        ok &= f.scenario_ids is None or r.scenario_id in f.scenario_ids
        ok &= all(tag in r.tags for tag in f.tags)
        for col, lo, hi in f.metric_ranges:
            v = r[col]
            ok &= not pd.isna(v) and (lo is None or v >= lo) and (hi is None or v <= hi)
        text = " ".join(str(r[c]) for c in ("scenario_id", "case_id", "rule", "failure_type", "collided_with",
                                            "case_tag", "map_name", "map_context", "log_id", "split", "reason"))
        text = (text + " " + " ".join(r.tags)).lower()
        ok &= all(term in text for term in f.search.lower().split())
        keep.append(bool(ok))
    return np.array(keep)


FILTERS = [
    FailureFilter(),
    FailureFilter(failure_types=["collision", "static_collision"]),
    FailureFilter(tags=["night", "review"]),
    FailureFilter(map_names="sg-one-north", splits=["mine"], modes=["closed_loop"]),
    FailureFilter(rules=["off_road"], metric_ranges={"ego_progress": (0.25, 0.75), "score": (None, 0.5)}),
    FailureFilter(cluster_ids=["collision-sc0000001", "off_road-sc0000007", "nope"]),
    FailureFilter(scenario_ids=["sc0000003", "sc0000010", "sc0002999"]),
    FailureFilter(search="PEDESTRIAN log0001"),
    FailureFilter(search="a.b"),  # regex characters are plain text
    FailureFilter(failure_types=["collision"], tags=["night"], metric_ranges={"first_violation_step": (5, 30)},
                  search="vehicle"),
]


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f.to_json())
def test_apply_matches_row_by_row_reference(table, flt) -> None:
    mask = flt.apply(table)
    assert mask.dtype == bool and mask.shape == (len(table),)
    np.testing.assert_array_equal(mask, _reference(table, flt))


def test_index_reuse_gives_the_same_answers(table) -> None:
    ix = FailureIndex(table).warm()
    for flt in FILTERS:
        np.testing.assert_array_equal(flt.apply(table, ix), flt.apply(table))
        np.testing.assert_array_equal(flt.order(table, index=ix), flt.order(table))
    with pytest.raises(FailureFilterError, match="same table"):
        FILTERS[1].apply(table.copy(), ix)


def test_json_round_trip_and_normalisation() -> None:
    f = FailureFilter(failure_types="collision", tags=("b", "a", "a"), cluster_ids=[3, "x"],
                      metric_ranges=[("score", 0, 0.5), ("ego_progress", None, None)], search="  two   words ",
                      sort_by="score", descending=True)
    assert f.failure_types == ("collision",) and f.tags == ("a", "b") and f.cluster_ids == ("3", "x")
    assert f.metric_ranges == (("score", 0.0, 0.5),) and f.search == "two words"
    assert FailureFilter.from_json(f.to_json()) == f and FailureFilter.from_dict(f.to_dict()) == f
    assert f.to_dict() == {"version": 1, "failure_types": ["collision"], "tags": ["a", "b"], "cluster_ids": ["3", "x"],
                           "metric_ranges": {"score": [0.0, 0.5]}, "search": "two words", "sort_by": "score",
                           "descending": True}
    assert FailureFilter.from_dict(None) == FailureFilter.from_dict({}) == FailureFilter()
    assert FailureFilter().is_everything and FailureFilter(sort_by="score").is_everything
    assert not f.is_everything and "failure_types=['collision']" in repr(f)
    assert f.replace(tags=[]).tags == ()


@pytest.mark.parametrize("kwargs, field", [
    ({"metric_ranges": {"score": (0.9, 0.1)}}, "metric_ranges"),
    ({"metric_ranges": {"score": (float("nan"), 1)}}, "metric_ranges"),
    ({"metric_ranges": {"score": 0.5}}, "metric_ranges"),
    ({"failure_types": [""]}, "failure_types"),
    ({"tags": 3.5}, "tags"),
    ({"descending": "yes"}, "descending"),
    ({"sort_by": 4}, "sort_by"),
    ({"search": 12}, "search"),
])
def test_bad_fields_raise_naming_the_field(kwargs, field) -> None:
    with pytest.raises(FailureFilterError, match=field):
        FailureFilter(**kwargs)


def test_bad_dicts_raise() -> None:
    with pytest.raises(FailureFilterError, match="unknown fields"):
        FailureFilter.from_dict({"failure_type": ["collision"]})
    with pytest.raises(FailureFilterError, match="version"):
        FailureFilter.from_dict({"version": 99})
    with pytest.raises(FailureFilterError, match="JSON"):
        FailureFilter.from_json("{nope")
    assert issubclass(FailureFilterError, WorldEngineLabError)


def test_missing_columns_raise(table) -> None:
    with pytest.raises(MissingColumnError, match="nope"):
        FailureFilter(metric_ranges={"nope": (0, 1)}).apply(table)
    with pytest.raises(FailureFilterError, match="numeric"):
        FailureFilter(metric_ranges={"map_name": (0, 1)}).apply(table)
    with pytest.raises(MissingColumnError, match="map_name"):
        FailureFilter(map_names=["x"]).apply(table[["scenario_id"]])
    with pytest.raises(MissingColumnError, match="scenario_id"):
        FailureFilter().apply(table.drop(columns=["scenario_id"]))


def test_order_sorts_with_missing_last_and_stable_ties() -> None:
    t = pd.DataFrame({"scenario_id": list("abcdef"), "score": [0.5, np.nan, 0.1, 0.5, 0.9, np.nan],
                      "tags": [["b"], [], ["a", "c"], ["a"], ["b"], []], "name": ["x", "y", None, "x", "a", "b"]})
    pick = lambda **kw: t["scenario_id"].to_numpy()[FailureFilter(**kw).order(t)].tolist()  # noqa: E731
    assert pick() == list("abcdef")
    assert pick(sort_by="score") == ["c", "a", "d", "e", "b", "f"]
    assert pick(sort_by="score", descending=True) == ["e", "a", "d", "c", "b", "f"]
    assert pick(sort_by="name") == ["e", "f", "a", "d", "b", "c"]
    assert pick(sort_by="tags")[:2] == ["b", "f"]  # empty lists sort first as ''
    mask = np.array([True, False, True, True, False, False])
    assert t["scenario_id"].to_numpy()[FailureFilter(sort_by="score").order(t, mask)].tolist() == ["c", "a", "d"]
    with pytest.raises(FailureFilterError, match="mask"):
        FailureFilter().order(t, mask[:3])
    with pytest.raises(MissingColumnError, match="nope"):
        FailureFilter(sort_by="nope").order(t)


def test_select_and_scenario_ids(table) -> None:
    f = FailureFilter(failure_types=["off_road"], sort_by="ego_progress", descending=True)
    rows = f.select(table)
    assert (rows["failure_type"] == "off_road").all() and rows["ego_progress"].is_monotonic_decreasing
    ids = f.scenario_id_list(table)
    assert ids == rows["scenario_id"].tolist()
    both = f.scenario_id_list(table, include_members=True)
    assert set(ids) <= set(both)


def test_failure_table_from_the_store(ws) -> None:
    run = write_synthetic_failures(ws, num_scenarios=40, seed=3)
    t = failure_table(ws)
    assert list(t.columns) == list(FAILURE_TABLE_COLUMNS) and len(t) > 0
    assert (t["run_id"] == run).all() and t["rank"].tolist() == list(range(1, len(t) + 1))
    assert t.attrs["run_ids"] == [run]
    cat = ws.catalog(ids=t["scenario_id"].tolist()).set_index("scenario_id")
    assert t["map_name"].tolist() == cat.loc[t["scenario_id"], "map_name"].tolist()
    assert t["split"].tolist() == cat.loc[t["scenario_id"], "split"].tolist()
    assert t["tags"].tolist() == cat.loc[t["scenario_id"], "tags"].tolist()
    assert (t["cluster_id"] == t["case_id"]).all()
    assert all(sid in m for sid, m in zip(t["scenario_id"], t["members"]))
    assert t["score"].dtype == np.float64 and t["success"].dtype == "boolean"
    assert (t.loc[t["rule"] == "collision", "no_at_fault_collisions"] == 0.0).all()
    # tags added after mining show on the next load, and catalog_tags refreshes a loaded table
    ws.tag(t["scenario_id"].iloc[0], "zzz_late")
    assert "zzz_late" in failure_table(ws)["tags"].iloc[0]
    assert "zzz_late" in catalog_tags(ws, t["scenario_id"]).iloc[0]


def test_failure_table_runs(ws) -> None:
    assert failure_table(ws).empty and list(failure_table(ws).columns) == list(FAILURE_TABLE_COLUMNS)
    first = write_synthetic_failures(ws, num_scenarios=16, seed=0)
    t1 = failure_table(ws, first)
    second = write_synthetic_failures(ws, num_scenarios=16, seed=1, planner_id="other")
    assert failure_table(ws)["run_id"].eq(second).all()  # default: the latest run with cases
    both = failure_table(ws, [first, second])
    assert both["run_id"].tolist() == [first] * len(t1) + [second] * (len(both) - len(t1))
    with pytest.raises(WorkspaceError, match="no evaluation run"):
        failure_table(ws, "run-missing")
    with pytest.raises(ShapeError, match="run_id"):
        failure_table(ws, [""])
    empty_run = save_eval_run(ws, failure_table(ws, first)[["scenario_id", "no_at_fault_collisions",
                              "drivable_area_compliance", "ego_progress", "time_to_collision_within_bound",
                              "comfort", "driving_direction_compliance", "score"]].head(0), "p", "open_loop")
    assert failure_table(ws, empty_run).empty


def test_filter_to_scenario_set(ws) -> None:
    write_synthetic_failures(ws, num_scenarios=40, seed=2)
    f = FailureFilter(failure_types=["collision"], sort_by="ego_progress")
    s = f.scenarios(ws)
    assert isinstance(s, ScenarioSet)
    assert s.ids == f.scenario_id_list(failure_table(ws)) and len(s) > 0


def test_synthetic_table_layout() -> None:
    t = synthetic_failure_table(50, seed=0)
    assert list(t.columns) == list(FAILURE_TABLE_COLUMNS) and len(t) == 50
    assert synthetic_failure_table(50, seed=0).equals(t)
    assert synthetic_failure_table(0).empty
    with pytest.raises(ShapeError, match="num_rows"):
        synthetic_failure_table(-1)


def test_table_records_are_json_ready() -> None:
    t = synthetic_failure_table(5, seed=0)
    t.loc[1, "score"] = np.nan
    t["first_violation_step"] = t["first_violation_step"].astype("Int64")
    t.loc[2, "first_violation_step"] = pd.NA
    recs = table_records(t, [3, 1, 2], ["rank", "score", "tags", "success", "first_violation_step"])
    assert [r["_row"] for r in recs] == [3, 1, 2] and [r["scenario_id"] for r in recs] == ["sc0000003", "sc0000001",
                                                                                          "sc0000002"]
    assert recs[1]["score"] is None and recs[2]["first_violation_step"] is None
    assert isinstance(recs[0]["rank"], int) and isinstance(recs[0]["success"], bool)
    assert isinstance(recs[0]["tags"], list)
    assert table_records(t, [], ["rank"]) == []


def test_index_choices_count_the_whole_table(table) -> None:
    menu = FailureIndex(table).choices()
    assert menu["failure_types"] == sorted(table["failure_type"].unique())
    assert menu["counts"]["failure_types"] == table["failure_type"].value_counts().to_dict()
    assert menu["counts"]["tags"] == table["tags"].explode().dropna().value_counts().to_dict()
    assert menu["tags"] == sorted(menu["counts"]["tags"]) and "score" in menu["numeric_columns"]
    assert FailureIndex(table[["scenario_id"]]).choices()["failure_types"] == []


def test_untagged_rows_get_empty_tag_lists():
    import pandas as pd

    from worldengine_lab.mining.failure_table import _split_tags

    out = _split_tags(pd.Series([None, "a|b", None], dtype=object).str.replace("|", "\x1f"))
    assert [list(v) for v in out] == [[], ["a", "b"], []]
    assert [list(v) for v in _split_tags(pd.Series([None, None], dtype=object))] == [[], []]
