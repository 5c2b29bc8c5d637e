"""ScenarioSet: lazy loading, indexing, frames, head/sample, curation through the set, display."""
from __future__ import annotations

import pandas as pd
import pytest

from worldengine_lab.datatypes import Scenario
from worldengine_lab.errors import WorkspaceError
from worldengine_lab.scenarios import ScenarioSet


def test_iteration_loads_lazily_one_by_one(ws, loader):
    s = ws.scenarios(location="boston")
    assert len(s) == 6 and loader.calls == []
    it = iter(s)
    first = next(it)
    assert isinstance(first, Scenario) and first.scenario_id == "s00" and loader.calls == ["s00"]
    assert first.tags >= {"rare", "near_miss", "following_lane_with_lead"}  # catalog tags merged in
    rest = list(it)
    assert [x.scenario_id for x in rest] == ["s01", "s02", "s03", "s04", "s05"]
    assert [x.agents.num_agents for x in [first, *rest]] == [2, 3, 4, 2, 3, 4]


def test_getitem_by_position_id_and_slice(ws):
    s = ws.scenarios(tags="rare")
    assert s[0].scenario_id == "s00" and s[-1].scenario_id == "s07"
    assert s["s07"].log_id == "log2"
    assert isinstance(s[1:], ScenarioSet) and s[1:].ids == ["s01", "s07"]
    with pytest.raises(IndexError):
        s[3]
    with pytest.raises(IndexError):
        s[-4]
    with pytest.raises(WorkspaceError, match="not in this ScenarioSet"):
        s["s02"]
    assert "s01" in s and "s02" not in s


def test_constructor_with_ids_and_where(ws):
    s = ScenarioSet(ws, ids=["s05", "s01", "s99"], where={"tags": ["rare"]})
    assert s.ids == ["s01"]
    assert ScenarioSet(ws, ids=["s05", "s01", "s03"]).ids == ["s05", "s01", "s03"]  # given order kept
    assert ScenarioSet(ws, where="s.duration_s > 20").ids == ["s11"]
    assert ScenarioSet(str(ws.root)).ids == ws.scenarios().ids


def test_to_frame(ws):
    frame = ws.scenarios(log_id="log0").to_frame()
    assert isinstance(frame, pd.DataFrame) and frame["scenario_id"].tolist() == ["s00", "s01", "s02"]
    assert frame["tags"].tolist() == [["near_miss", "rare"], ["rare"], []]
    assert frame["split"].tolist() == ["pretrain"] * 3


def test_head_and_sample_are_deterministic(ws):
    s = ws.scenarios()
    assert s.head(3).ids == ["s00", "s01", "s02"] and s.head(0).ids == []
    a, b = s.sample(5, seed=1), s.sample(5, seed=1)
    assert a.ids == b.ids and len(a) == 5 and set(a.ids) <= set(s.ids)
    assert a.ids == sorted(a.ids)  # keeps the set's order
    assert s.sample(5, seed=2).ids != a.ids or s.sample(5, seed=3).ids != a.ids
    assert len(s.filter(location="pittsburgh").sample(10, seed=0)) == 3
    assert a.filter(split="pretrain").ids == [i for i in a.ids if i in {"s00", "s01", "s02"}]


def test_curation_through_the_set(ws):
    rare = ws.scenarios(tags="rare")
    assert rare.tag("review") == 3 and rare.tag("review") == 0
    assert ws.scenarios(tags="review").ids == rare.ids
    assert rare.set_split("test_rare") == 3
    assert ws.scenarios(split="test_rare").ids == ["s00", "s01", "s07", "s09", "s10"]
    assert rare.untag("review") == 3
    assert rare.stats()["num_scenarios"] == 3


def test_repr_and_html(ws):
    s = ws.scenarios(location="boston")
    assert "6 scenarios" in repr(s)
    page = s._repr_html_()
    assert "ScenarioSet" in page and "6 scenarios" in page and "s05" in page and "&quot;boston&quot;" in page
    assert "more" in ws.scenarios()._repr_html_()  # 12 rows, 10 shown
    assert "Workspace" in ws._repr_html_()
