"""Catalog writes and reads: imports, tags, splits, atomic failure, idempotent re-import, stats."""
from __future__ import annotations

import json
import pickle

import pandas as pd
import pytest

from worldengine_lab.artifacts import code_version
from worldengine_lab.errors import WorkspaceError
from worldengine_lab.store import ImportMeta, Workspace
from worldengine_lab.testing import make_scenario


def test_add_scenarios_and_catalog_round_trip_with_tags(ws, rows):
    import_id = ws.add_scenarios(
        pd.DataFrame(rows), tags={"sc000": ["rare", "near_miss"], "sc003": ["rare"]},
        import_meta=ImportMeta(source="synthetic", path="/data", params={"seed": 7}),
    )
    cat = ws.catalog()
    assert cat["scenario_id"].tolist() == [r["scenario_id"] for r in rows]
    first = cat.iloc[0]
    assert first["tags"] == ["near_miss", "rare"]
    assert cat.iloc[1]["tags"] == []
    assert first["import_id"] == import_id
    assert first["locator"] == rows[0]["locator"] and first["maps_root"] == "/maps"
    assert json.loads(first["window_json"]) == rows[0]["window"]
    assert cat["num_agents"].tolist() == [r["num_agents"] for r in rows]
    assert cat["start_time_s"].dtype == "float64"
    imp = ws.imports().iloc[0]
    assert imp["import_id"] == import_id and imp["num_scenarios"] == 6 and imp["source"] == "synthetic"
    assert json.loads(imp["params_json"]) == {"seed": 7} and imp["code_version"] == code_version()
    assert imp["user"] and imp["started_at"] <= imp["finished_at"]
    assert pd.Timestamp(first["created_at"]).tzinfo is not None


def test_scenario_summary_rows_are_accepted(ws):
    summaries = [make_scenario(seed=i).summary() for i in range(3)]
    ws.add_scenarios(summaries)
    cat = ws.catalog()
    assert cat["scenario_id"].tolist() == ["test-0", "test-1", "test-2"]
    assert cat.iloc[0]["tags"] == ["following_lane_with_lead"]
    assert json.loads(cat.iloc[0]["meta_json"]) == {"num_lanes": 2}  # unknown keys are kept, not dropped
    assert ws.imports().iloc[0]["source"] == "test"


def test_exception_inside_transaction_writes_nothing(ws, rows):
    ws.add_scenarios(rows[:2])
    before = ws.catalog()
    with pytest.raises(RuntimeError, match="midway"):
        with ws.transaction():
            ws.add_scenarios(rows[2:4], tags={"sc002": ["x"]})
            ws.tag(["sc000"], "added-in-failed-transaction")
            ws.set_split(["sc000"], "test_rare")
            raise RuntimeError("importer crashed midway")
    pd.testing.assert_frame_equal(ws.catalog(), before)
    assert len(ws.imports()) == 1
    assert ws.stats()["by_tag"] == {} and ws.stats()["by_split"] == {}


def test_bad_row_midway_writes_nothing(ws, rows):
    bad = rows[:3] + [{**rows[3], "num_steps": "many"}] + rows[4:]
    with pytest.raises(WorkspaceError, match=r"row 3 .*num_steps"):
        ws.add_scenarios(bad)
    with pytest.raises(WorkspaceError, match="not in the catalog"):
        ws.add_scenarios(rows, tags={"unknown-id": ["x"]})
    assert ws.count() == 0 and ws.imports().empty


def test_reimport_updates_instead_of_duplicating(ws, rows):
    ws.add_scenarios(rows, tags={"sc000": ["a"]})
    created = ws.catalog().set_index("scenario_id")["created_at"]
    ws.tag("sc001", "user-tag")
    ws.set_split(["sc001"], "mine")
    changed = [{**r, "num_agents": 99} for r in rows]
    second = ws.add_scenarios(changed, tags={"sc000": ["b"]})
    cat = ws.catalog().set_index("scenario_id")
    assert len(cat) == len(rows)
    assert (cat["num_agents"] == 99).all() and (cat["import_id"] == second).all()
    assert (cat["created_at"] == created).all()
    assert cat.loc["sc000", "tags"] == ["a", "b"] and cat.loc["sc001", "tags"] == ["user-tag"]
    assert cat.loc["sc001", "split"] == "mine"
    assert len(ws.imports()) == 2


def test_tag_untag_and_unknown_ids(ws, rows):
    ws.add_scenarios(rows)
    assert ws.tag(["sc000", "sc001"], "rare") == 2
    assert ws.tag(["sc000", "sc001"], "rare") == 0
    assert ws.tag("sc002", ["rare", "cut_in"]) == 2
    assert ws.catalog(tags="rare")["scenario_id"].tolist() == ["sc000", "sc001", "sc002"]
    assert ws.untag(["sc000", "sc002"], "rare") == 2
    assert ws.catalog(tags="rare")["scenario_id"].tolist() == ["sc001"]
    with pytest.raises(WorkspaceError, match="not in the catalog"):
        ws.tag(["sc000", "ghost"], "x")
    assert ws.catalog(tags="x").empty
    with pytest.raises(WorkspaceError, match="tags as non-empty"):
        ws.tag("sc000", "")


def test_splits_and_cascading_delete(ws, rows):
    ws.add_scenarios(rows)
    ws.set_split(["sc000", "sc001"], "pretrain")
    ws.set_split(["sc001"], "test_common")  # moves, does not duplicate
    ws.tag(["sc000", "sc001"], "t")
    cat = ws.catalog().set_index("scenario_id")
    assert cat.loc["sc000", "split"] == "pretrain" and cat.loc["sc001", "split"] == "test_common"
    assert cat.loc["sc002", "split"] is None
    ws.set_split(["sc000"], None)
    assert ws.catalog(split="pretrain").empty
    assert ws.delete_scenarios(["sc001"]) == 1
    assert ws.query("SELECT COUNT(*) AS n FROM scenario_tags WHERE scenario_id = 'sc001'")["n"][0] == 0
    assert ws.query("SELECT COUNT(*) AS n FROM splits")["n"][0] == 0


def test_stats(ws, rows):
    ws.add_scenarios(rows, tags={"sc000": ["rare"], "sc004": ["rare", "cut_in"]})
    ws.set_split(["sc000", "sc001"], "pretrain")
    ws.set_split(["sc004"], "test_rare")
    s = ws.stats()
    assert s["num_scenarios"] == 6 and s["num_logs"] == 3 and s["total_duration_s"] == pytest.approx(60.0)
    assert s["by_source"] == {"synthetic": 6}
    assert s["by_location"] == {"boston": 4, "pittsburgh": 2}
    assert s["by_map"] == {"map-boston": 4, "map-pittsburgh": 2}
    assert s["by_tag"] == {"rare": 2, "cut_in": 1}
    assert s["by_split"] == {"pretrain": 2, "test_rare": 1}
    assert s["num_imports"] == 1
    assert ws.stats(location="pittsburgh")["by_tag"] == {"cut_in": 1, "rare": 1}


def test_query_returns_a_dataframe(ws, rows):
    ws.add_scenarios(rows)
    df = ws.query("SELECT log_id, COUNT(*) AS n FROM scenarios GROUP BY log_id ORDER BY log_id")
    assert isinstance(df, pd.DataFrame) and df["n"].tolist() == [2, 2, 2]
    df = ws.query("SELECT scenario_id FROM scenarios WHERE location = ?", ("pittsburgh",))
    assert df["scenario_id"].tolist() == ["sc004", "sc005"]


def test_workspace_pickles_to_its_path_and_reconnects(ws, rows):
    ws.add_scenarios(rows[:1])
    clone = pickle.loads(pickle.dumps(ws))
    assert isinstance(clone, Workspace) and clone.root == ws.root
    assert clone.count() == 1
    clone.close()


def test_threads_share_a_workspace_object(ws, rows):
    from concurrent.futures import ThreadPoolExecutor

    ws.add_scenarios(rows)

    def work(k: int) -> int:
        return sum(ws.tag(rows[i % 6]["scenario_id"], f"thread{k}-{i}") for i in range(50))

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(work, range(4))) == 200
    assert ws.query("SELECT COUNT(*) AS n FROM scenario_tags")["n"][0] == 200


def test_empty_catalog_frame_has_columns(ws):
    cat = ws.catalog()
    assert cat.empty and {"scenario_id", "tags", "split", "start_time_s"} <= set(cat.columns)


def test_import_meta_as_dict_and_validation(ws, make_row):
    ws.add_scenarios([make_row(0)], import_meta={"source": "nuplan", "path": "/logs"})
    assert ws.imports().iloc[0]["path"] == "/logs"
    with pytest.raises(WorkspaceError, match="import_meta"):
        ws.add_scenarios([make_row(1)], import_meta={"path": "/logs"})
    with pytest.raises(WorkspaceError, match="scenario_id"):
        ws.add_scenarios([{"source": "x"}])


def test_a_catalog_frame_imports_into_another_workspace(ws, rows, tmp_path):
    ws.add_scenarios(rows, tags={"sc001": ["rare"]})
    ws.set_split(["sc001"], "mine")
    other = Workspace.open(tmp_path / "other")
    other.add_scenarios(ws.catalog())
    a, b = ws.catalog(), other.catalog()
    same = ["scenario_id", "source", "path", "locator", "log_id", "start_time_s", "num_agents", "tags",
            "window_json", "meta_json", "maps_root"]
    pd.testing.assert_frame_equal(a[same], b[same])
    assert b["split"].isna().all()  # splits are decisions of a workspace, not part of an import
    other.close()


def test_catalog_accepts_sql_predicates(ws, rows):
    ws.add_scenarios(rows)
    assert ws.catalog(where="s.num_agents > 6")["scenario_id"].tolist() == ["sc004", "sc005"]
    assert ws.catalog(where=("s.num_agents > ?", [7]))["scenario_id"].tolist() == ["sc005"]
    assert ws.count(location="boston") == 4 and ws.scenario_ids(log_id="log2") == ["sc004", "sc005"]


def test_a_missing_database_is_not_silently_recreated(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    ws.close()
    (tmp_path / "ws" / "workspace.sqlite").unlink()
    with pytest.raises(WorkspaceError, match="schema version 0"):
        ws.count()
