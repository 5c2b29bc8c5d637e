"""Curation in the workspace (schema migration 3): tags, notes, saved views, decisions, YAML export, persistence."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from worldengine_lab.errors import WorkspaceError, WorldEngineLabError
from worldengine_lab.logs.navsim import read_scene_filter
from worldengine_lab.mining.failure_filter import FailureFilter
from worldengine_lab.mining.failure_table import failure_table, write_synthetic_failures
from worldengine_lab.scenarios import ScenarioFilter
from worldengine_lab.store import (
    SCHEMA_VERSION, CurationError, ViewExistsError, ViewNotFoundError, Workspace, add_note, add_tags, decisions,
    delete_note, delete_view, export_view_yaml, load_view, notes, record_decision, remove_tags, save_view,
    view_scenario_ids, views,
)


@pytest.fixture
def failures_ws(tmp_path):
    """A workspace with 40 catalogued windows, one evaluation run and its failure cases."""
    ws = Workspace.open(tmp_path / "ws")
    run = write_synthetic_failures(ws, num_scenarios=40, seed=0)
    yield ws, run
    ws.close()


def test_migration_3_tables(ws) -> None:
    assert SCHEMA_VERSION >= 3 and ws.schema_version == SCHEMA_VERSION
    tables = set(ws.query("SELECT name FROM sqlite_master WHERE type = 'table'")["name"])
    assert {"notes", "saved_views", "decisions"} <= tables
    assert 3 in ws.migrations()["version"].tolist()
    cols = set(ws.query("SELECT name FROM pragma_table_info('saved_views')")["name"])
    assert {"name", "kind", "filter_json", "sort_json", "columns_json", "created_by", "created_at"} <= cols


def test_tags_add_remove(ws, rows) -> None:
    ws.add_scenarios(rows)
    assert add_tags(ws, ["sc000", "sc001"], ["review", "night"]) == 4
    assert add_tags(ws, "sc000", "review") == 0  # already there
    assert ws.catalog(ids=["sc000"])["tags"].iloc[0] == ["night", "review"]
    assert remove_tags(ws, ["sc000", "sc001"], "review") == 2
    assert ws.catalog(ids=["sc001"])["tags"].iloc[0] == ["night"]
    with pytest.raises(WorkspaceError, match="not in the catalog"):
        add_tags(ws, ["sc002", "nope"], "x")
    assert ws.catalog(ids=["sc002"])["tags"].iloc[0] == []  # nothing written
    with pytest.raises(WorkspaceError, match="tags"):
        add_tags(ws, ["sc002"], "")


def test_notes(ws) -> None:
    first = add_note(ws, "sc000", "ego brakes late", user="ana")
    second = add_note(ws, "token-not-catalogued", "check the lidar", user="bo")
    third = add_note(ws, "sc000", "second look: cut-in")
    assert first < second < third
    got = notes(ws, "sc000")
    assert got["text"].tolist() == ["ego brakes late", "second look: cut-in"]
    assert got["user"].iloc[0] == "ana" and got["user"].iloc[1] and got["created_at"].str.len().gt(0).all()
    assert len(notes(ws)) == 3
    assert delete_note(ws, second) is True and delete_note(ws, second) is False
    with pytest.raises(CurationError, match="text"):
        add_note(ws, "sc000", "   ")
    with pytest.raises(CurationError, match="scenario_id"):
        add_note(ws, "", "text")
    with pytest.raises(WorldEngineLabError, match="note_id"):
        delete_note(ws, "1")


def test_saved_view_round_trip(ws) -> None:
    flt = FailureFilter(failure_types=["collision"], tags=["night"], metric_ranges={"score": (None, 0.5)},
                        search="pedestrian", sort_by="ego_progress", descending=True)
    view = save_view(ws, "night collisions", flt, columns=["rank", "scenario_id", "score"], run_ids=["run-a"],
                     description="for the weekly review", user="ana")
    assert view.kind == "failures" and view.sort == (("ego_progress", "desc"),)
    back = load_view(ws, "night collisions")
    assert back == view
    assert FailureFilter.from_dict(back.filter) == flt
    assert back.columns == ("rank", "scenario_id", "score") and back.run_ids == ("run-a",)
    assert back.created_by == back.updated_by == "ana" and back.created_at == back.updated_at

    scen = save_view(ws, "rare", ScenarioFilter(tags=["rare_cut_in"], split="test_rare"))
    assert scen.kind == "scenarios" and ScenarioFilter.from_dict(load_view(ws, "rare").filter) == \
        ScenarioFilter(tags=["rare_cut_in"], split="test_rare")
    listing = views(ws)
    assert listing["name"].tolist() == ["night collisions", "rare"]
    assert listing["filter"].iloc[0] == flt.to_dict() and listing["sort"].iloc[0] == [["ego_progress", "desc"]]
    assert views(ws, kind="scenarios")["name"].tolist() == ["rare"]


def test_saved_view_overwrite_only_when_asked(ws) -> None:
    first = save_view(ws, "v1", {"failure_types": ["collision"]}, user="ana")
    with pytest.raises(ViewExistsError, match="overwrite=True"):
        save_view(ws, "v1", {"failure_types": ["off_road"]})
    assert load_view(ws, "v1").filter == {"failure_types": ["collision"]}
    second = save_view(ws, "v1", {"failure_types": ["off_road"]}, overwrite=True, user="bo")
    assert second.filter == {"failure_types": ["off_road"]}
    assert (second.created_by, second.created_at) == (first.created_by, first.created_at)
    assert second.updated_by == "bo" and second.updated_at >= first.updated_at
    delete_view(ws, "v1")
    with pytest.raises(ViewNotFoundError, match="no saved view 'v1'"):
        load_view(ws, "v1")
    with pytest.raises(KeyError):
        delete_view(ws, "v1")


@pytest.mark.parametrize("name", ["", " lead", "trail ", "a/b", "x" * 101, ".hidden", "-dash", "tab\there", None, 7])
def test_bad_view_names_raise(ws, name) -> None:
    with pytest.raises(CurationError, match="name"):
        save_view(ws, name, {})
    with pytest.raises(CurationError, match="name"):
        load_view(ws, name)
    assert views(ws).empty


def test_bad_view_arguments_raise(ws) -> None:
    with pytest.raises(CurationError, match="kind"):
        save_view(ws, "v", ScenarioFilter(), kind="failures")
    with pytest.raises(CurationError, match="kind"):
        save_view(ws, "v", {}, kind="rows")
    with pytest.raises(CurationError, match="filter"):
        save_view(ws, "v", {"x": float("nan")})
    with pytest.raises(CurationError, match="filter"):
        save_view(ws, "v", ["not", "a", "dict"])
    with pytest.raises(CurationError, match="sort"):
        save_view(ws, "v", {}, sort=[("score", "sideways")])
    with pytest.raises(CurationError, match="columns"):
        save_view(ws, "v", {}, columns=["ok", ""])
    assert views(ws).empty


def test_view_write_is_transactional(ws) -> None:
    with pytest.raises(RuntimeError):
        with ws.transaction():
            save_view(ws, "inside", {})
            add_note(ws, "sc000", "also inside")
            raise RuntimeError("abort")
    assert views(ws).empty and notes(ws).empty


def test_decisions(ws) -> None:
    record_decision(ws, "sc000~abcd1234", "accept", note="plausible", user="ana")
    record_decision(ws, "sc000~abcd1234", "reject", note="second thoughts", user="bo")
    record_decision(ws, "sc001~00000000", "defer")
    record_decision(ws, "sc001", "accept", kind="scenario")
    latest = decisions(ws, kind="variant")
    assert latest["subject_id"].tolist() == ["sc000~abcd1234", "sc001~00000000"]
    assert latest["decision"].tolist() == ["reject", "defer"]
    assert len(decisions(ws, latest=False)) == 4
    assert decisions(ws, subject_ids=["sc001"])["kind"].tolist() == ["scenario"]
    with pytest.raises(CurationError, match="decision"):
        record_decision(ws, "x", "maybe")
    with pytest.raises(CurationError, match="subject_id"):
        record_decision(ws, "", "accept")


def test_export_failure_view_yaml_round_trip(failures_ws, tmp_path) -> None:
    ws, run = failures_ws
    flt = FailureFilter(failure_types=["collision"], sort_by="ego_progress", descending=True)
    save_view(ws, "collisions", flt, run_ids=[run])
    expected = flt.scenario_id_list(failure_table(ws, run))
    assert expected and view_scenario_ids(ws, "collisions") == expected
    spec = export_view_yaml(ws, "collisions", tmp_path / "navsim" / "collisions.yaml")
    back = read_scene_filter(tmp_path / "navsim" / "collisions.yaml")
    assert back == spec
    assert list(back.tokens) == expected and back.name == "collisions"
    logs = ws.catalog(ids=expected)["log_id"]
    assert list(back.log_names) == sorted(set(logs))

    members = view_scenario_ids(ws, "collisions", include_members=True)
    assert set(expected) <= set(members)
    spec = export_view_yaml(ws, "collisions", tmp_path / "m.yaml", include_members=True, num_future_frames=8)
    assert list(read_scene_filter(tmp_path / "m.yaml").tokens) == members and spec.num_future_frames == 8


def test_export_scenario_view_yaml(failures_ws, tmp_path) -> None:
    ws, _ = failures_ws
    save_view(ws, "rare split", ScenarioFilter(split="test_rare", any_tags=["on_intersection"]))
    ids = ws.scenario_ids(split="test_rare", any_tags=["on_intersection"])
    assert ids
    export_view_yaml(ws, "rare split", tmp_path / "rare.yaml")
    assert list(read_scene_filter(tmp_path / "rare.yaml").tokens) == ids
    with pytest.raises(ViewNotFoundError):
        export_view_yaml(ws, "missing", tmp_path / "x.yaml")
    assert not (tmp_path / "x.yaml").exists()


def test_curation_survives_a_new_process(failures_ws) -> None:
    """Everything written here is read back by a fresh interpreter (a kernel restart)."""
    ws, run = failures_ws
    add_tags(ws, ["syn0000", "syn0001"], "review")
    add_note(ws, "syn0001", "ego drifts right", user="ana")
    save_view(ws, "reviewed", FailureFilter(tags=["review"], sort_by="score"), columns=["rank", "scenario_id"],
              run_ids=[run])
    record_decision(ws, "syn0000~deadbeef", "accept", note="keep")
    expected_ids = view_scenario_ids(ws, "reviewed")
    ws.close()
    script = textwrap.dedent(f"""
        import json, sys
        from worldengine_lab.store import Workspace, decisions, load_view, notes, view_scenario_ids
        ws = Workspace.open({str(ws.root)!r}, create=False)
        view = load_view(ws, "reviewed")
        out = {{
            "tags": ws.catalog(ids=["syn0000", "syn0001"])["tags"].tolist(),
            "notes": notes(ws)[["scenario_id", "text", "user"]].values.tolist(),
            "view": [view.kind, view.filter, [list(s) for s in view.sort], list(view.columns), list(view.run_ids)],
            "view_ids": view_scenario_ids(ws, "reviewed"),
            "decisions": decisions(ws)[["subject_id", "decision", "note"]].values.tolist(),
        }}
        json.dump(out, sys.stdout)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert all("review" in t for t in got["tags"])
    assert got["notes"] == [["syn0001", "ego drifts right", "ana"]]
    assert got["view"] == ["failures", FailureFilter(tags=["review"], sort_by="score").to_dict(),
                           [["score", "asc"]], ["rank", "scenario_id"], [run]]
    assert got["view_ids"] == expected_ids
    assert got["decisions"] == [["syn0000~deadbeef", "accept", "keep"]]
