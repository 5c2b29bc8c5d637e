"""ScenarioFilter as data: normalisation, JSON round-trip, combination, and the ids each filter keeps."""
from __future__ import annotations

import json

import pytest

from worldengine_lab.errors import WorldEngineLabError
from worldengine_lab.scenarios import ScenarioFilter, ScenarioSet


@pytest.mark.parametrize("spec", [
    ScenarioFilter(),
    ScenarioFilter(tags="rare"),
    ScenarioFilter(tags=["b", "a", "a"], any_tags=[["x", "y"], ["z"]], exclude_tags=["night"]),
    ScenarioFilter(location=["boston", "pittsburgh"], map_name="m", log_id=("log0",), source="nuplan",
                   split=["test_rare"], import_id="imp-1"),
    ScenarioFilter(time_range=(10, None), duration_min=5, duration_max=20.5),
    ScenarioFilter(ids=["s3", "s1", "s3"], sql=[("s.num_agents >= ?", [3])]),
])
def test_filter_spec_json_round_trip(spec):
    text = spec.to_json()
    again = ScenarioFilter.from_json(text)
    assert again == spec and again.to_json() == text
    assert json.loads(text)["version"] == 1


def test_normalisation():
    f = ScenarioFilter(tags="rare", any_tags=["x", "y"], location="boston", ids=["b", "a", "b"])
    assert f.tags == ("rare",) and f.any_tags == (("x", "y"),) and f.location == ("boston",)
    assert f.ids == ("b", "a")
    assert ScenarioFilter().is_everything and not f.is_everything


def test_combination_is_intersection():
    a = ScenarioFilter(location=["boston", "pittsburgh"], tags="rare", time_range=(0, 100), ids=["s1", "s2", "s3"])
    b = ScenarioFilter(location=["boston", "las_vegas"], tags="cut_in", time_range=(50, None), ids=["s3", "s1"],
                       duration_min=3)
    c = a & b
    assert c.location == ("boston",) and c.tags == ("cut_in", "rare") and c.time_range == (50.0, 100.0)
    assert c.ids == ("s1", "s3") and c.duration_min == 3.0


@pytest.mark.parametrize("bad", [
    {"locaton": "boston"}, {"tags": [1]}, {"time_range": (1, 2, 3)}, {"duration_min": "long"},
    {"sql": "1; DROP TABLE scenarios"},
])
def test_invalid_filters_raise(bad):
    with pytest.raises(WorldEngineLabError):
        ScenarioFilter.from_kwargs(**bad)


def test_unknown_spec_version_raises():
    with pytest.raises(WorldEngineLabError, match="version"):
        ScenarioFilter.from_json('{"version": 99}')


def test_filters_return_the_right_ids(ws):
    s = ws.scenarios()
    assert len(s) == 12
    assert s.filter(tags="rare").ids == ["s00", "s01", "s07"]
    assert s.filter(tags=["rare", "near_miss"]).ids == ["s00"]
    assert s.filter(any_tags=["cut_in", "near_miss"]).ids == ["s00", "s04", "s05", "s07"]
    assert s.filter(any_tags=["cut_in", "near_miss"]).filter(any_tags=["rare"]).ids == ["s00", "s07"]
    assert s.filter(exclude_tags=["rare", "near_miss", "cut_in"]).ids == ["s02", "s03", "s06", "s08", "s09", "s10", "s11"]
    assert s.filter(location="pittsburgh").ids == ["s06", "s07", "s08"]
    assert s.filter(location=["pittsburgh", "las_vegas"]).ids == ["s06", "s07", "s08", "s09", "s10", "s11"]
    assert s.filter(log_id="log1").ids == ["s03", "s04", "s05"]
    assert s.filter(map_name="map-las_vegas").ids == ["s09", "s10", "s11"]
    assert s.filter(time_range=(1000, 2020)).ids == ["s03", "s04", "s05", "s06", "s07"]
    assert s.filter(time_range=(None, 20)).ids == ["s00", "s01"]
    assert s.filter(split="pretrain").ids == ["s00", "s01", "s02"]
    assert s.filter(split=["test_rare", "pretrain"], tags="rare").ids == ["s00", "s01"]
    assert s.filter(duration_min=20).ids == ["s10", "s11"]
    assert s.filter(source="test").ids == s.ids and s.filter(source="nuplan").ids == []
    assert s.filter(where="s.num_agents = 4").ids == ["s02", "s05", "s08", "s11"]
    assert s.filter(location="boston").filter(location="pittsburgh").ids == []
    assert ws.catalog(tags="rare", location="pittsburgh")["scenario_id"].tolist() == ["s07"]


def test_saved_view_round_trip_is_reapplied(ws):
    view = ws.scenarios(location="boston").filter(any_tags=["rare", "cut_in"], time_range=(0, 1500))
    text = view.to_json()
    again = ScenarioSet.from_json(ws, text)
    assert again.ids == view.ids == ["s00", "s01", "s04"]
    ws.tag(["s02"], "cut_in")  # the view is a filter, so it sees new tags
    assert ScenarioSet.from_json(ws.root, text).ids == ["s00", "s01", "s02", "s04"]
