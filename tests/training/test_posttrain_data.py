"""Post-training data selection from a real small workspace: hand-made scenarios catalogued, mined with the
constant-velocity planner (which rear-ends a stopped car), a saved view and a stored variant."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import pytest

from worldengine_lab.datatypes import Scenario
from worldengine_lab.errors import WorkspaceError
from worldengine_lab.mining import eval_runs, load_failure_cases, mine
from worldengine_lab.planners import load_planner
from worldengine_lab.scenarios import register_loader, unregister_loader
from worldengine_lab.store import Workspace, curation
from worldengine_lab.testing import make_scenario
from worldengine_lab.training.posttrain_data import (PostTrainSelection, latest_failure_runs, posttrain_data,
                                                     select_posttrain_data, selection_frame)
from worldengine_lab.variants import RemoveAgent, make_variant, save_variant

SOURCE = "posttrain-data-test"
BLOCKED = [f"blocked{i}" for i in range(3)]
CLEAN = [f"clean{i}" for i in range(6)]


def _blocked(scenario_id: str) -> Scenario:
    """Ego at 10 m/s, a vehicle stopped 25 m ahead in its lane: constant velocity rear-ends it."""
    s = make_scenario(num_agents=2, seed=0)
    xy, vel = s.agents.xy.copy(), s.agents.vel_xy.copy()
    xy[:, 1, 0] = xy[s.t0, 0, 0] + 25.0
    vel[:, 1] = 0.0
    return dataclasses.replace(s, scenario_id=scenario_id, agents=dataclasses.replace(s.agents, xy=xy, vel_xy=vel))


def _clean(scenario_id: str) -> Scenario:
    return dataclasses.replace(make_scenario(num_agents=2, seed=1), scenario_id=scenario_id)


def _load(row: Mapping[str, Any]) -> Scenario:
    return (_blocked if row["locator"].startswith("blocked") else _clean)(row["scenario_id"])


def _rows(ids: list[str]) -> list[dict[str, Any]]:
    return [{"scenario_id": sid, "source": SOURCE, "path": "/handmade", "locator": sid, "log_id": f"log-{sid}",
             "map_name": "test-straight", "start_time_s": 0.0, "duration_s": 10.0, "num_steps": 101, "t0": 20,
             "num_agents": 2, "window": {"history_s": 2.0, "future_s": 8.0, "dt": 0.1}} for sid in ids]


@pytest.fixture(scope="module")
def mined(tmp_path_factory) -> Workspace:
    """Split 'mine' = 3 blocked + 4 clean windows (each its own log), 'pretrain' = 2 more clean ones; the
    constant-velocity planner mined on 'mine' in both modes; a view of the collisions; a variant of blocked0."""
    register_loader(SOURCE, _load)
    ws = Workspace.open(tmp_path_factory.mktemp("posttrain-data") / "ws")
    ws.add_scenarios(_rows(BLOCKED + CLEAN), import_meta={"source": SOURCE, "path": "/handmade"})
    ws.set_split(BLOCKED + CLEAN[:4], "mine")
    ws.set_split(CLEAN[4:], "pretrain")
    mine(ws, load_planner("constant_velocity"), split="mine", modes=["open_loop", "closed_loop"])
    from worldengine_lab.mining import FailureFilter

    curation.save_view(ws, "first collision", FailureFilter(scenario_ids=("blocked0",)))
    curation.save_view(ws, "clean pair", {"ids": ["clean4", "clean5"]}, kind="scenarios")
    save_variant(ws, make_variant(_blocked("blocked0"), [RemoveAgent(agent="veh1")], objective="clear lane"))
    yield ws
    ws.close()
    unregister_loader(SOURCE)


def test_nothing_mined_says_which_command_to_run(tmp_path) -> None:
    ws = Workspace.open(tmp_path / "empty")
    with pytest.raises(WorkspaceError, match="no mined failure cases.*worldengine-lab mine --planner"):
        posttrain_data(ws)
    with pytest.raises(WorkspaceError, match="saved view name.*none saved"):
        posttrain_data(ws, failures="no such thing")


def test_latest_failures_common_and_variants(mined: Workspace) -> None:
    runs = latest_failure_runs(mined)
    assert sorted(eval_runs(mined)["mode"]) == ["closed_loop", "open_loop"] and len(runs) == 2
    sel = select_posttrain_data(mined, common_limit=3, seed=0)
    assert sorted(sel.rare_ids) == BLOCKED and set(sel.run_ids) == set(runs)
    cases = load_failure_cases(mined, runs[0])
    assert list(sel.rare_ids) == list(dict.fromkeys(cases["scenario_id"]))  # rank order
    assert len(sel.common_ids) == 3 and set(sel.common_ids) <= set(CLEAN[:4])  # of 'mine', not failures
    assert sel.common_ids == select_posttrain_data(mined, common_limit=3, seed=0).common_ids  # seeded
    assert len(sel.variant_ids) == 1 and sel.variant_ids[0].startswith("blocked0~")
    data = sel.load(mined)
    assert [s.scenario_id for s in data.rare] == list(sel.rare_ids)
    assert [s.scenario_id for s in data.common] == list(sel.common_ids)
    assert [s.scenario_id for s in data.variants] == list(sel.variant_ids)
    assert data.variants[0].agents.valid[data.variants[0].t0 + 1:, 1].sum() == 0  # the edited scenario

    whole = posttrain_data(mined, common_split="pretrain", common_limit=None, variants=False)
    assert sorted(s.scenario_id for s in whole.common) == CLEAN[4:] and whole.variants == ()
    assert posttrain_data(mined, common_split=None).common == ()
    assert selection_frame(sel)["role"].value_counts().to_dict() == {"rare": 3, "common": 3, "variant": 1}
    assert PostTrainSelection.from_dict(sel.to_dict()) == sel


def test_run_id_and_saved_views(mined: Workspace) -> None:
    closed = eval_runs(mined, mode="closed_loop")["run_id"].iloc[0]
    sel = select_posttrain_data(mined, failures=closed, common_limit=None)
    assert sorted(sel.rare_ids) == BLOCKED and sel.run_ids == (closed,) and sel.view == ""
    assert sorted(sel.common_ids) == CLEAN[:4]

    view = select_posttrain_data(mined, failures="first collision", common_limit=None)
    assert view.rare_ids == ("blocked0",) and view.view == "first collision"
    assert not set(view.common_ids) & set(BLOCKED)  # the other failures of the run stay out of 'common'

    pair = select_posttrain_data(mined, failures="clean pair", common_limit=None, variants=False)
    assert pair.rare_ids == ("clean4", "clean5") and pair.run_ids == ()
    assert "clean4" not in pair.common_ids

    with pytest.raises(WorkspaceError, match=r"saved view name .*\['clean pair', 'first collision'\]"):
        select_posttrain_data(mined, failures="run-does-not-exist")
    with pytest.raises(WorkspaceError, match="common_limit"):
        select_posttrain_data(mined, common_limit=-1)
