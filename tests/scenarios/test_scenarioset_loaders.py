"""The loader registry: defaults, lazy 'module:function' entries, clear errors."""
from __future__ import annotations

import dataclasses

import pytest

from worldengine_lab.errors import WorldEngineLabError
from worldengine_lab.scenarios import (
    DEFAULT_LOADERS,
    get_loader,
    load_scenario,
    register_loader,
    registered_sources,
    unregister_loader,
)
from worldengine_lab.testing import make_scenario


def test_default_table_names_the_readers():
    assert {"nuplan", "synthetic", "av2", "av2_forecasting"} <= set(DEFAULT_LOADERS)
    assert all(":" in v and v.startswith("worldengine_lab.logs.") for v in DEFAULT_LOADERS.values())
    assert {"nuplan", "av2"} <= set(registered_sources())


def test_unknown_source_names_registered_sources():
    with pytest.raises(WorldEngineLabError, match=r"No scenario loader for source 'carla'.*nuplan.*[Ii]mport"):
        load_scenario({"scenario_id": "x", "source": "carla"})


def test_string_entries_are_imported_on_first_use():
    register_loader("lazy", "json:dumps")
    try:
        import json

        assert get_loader("lazy") is json.dumps
        with pytest.raises(WorldEngineLabError, match="returned str .* expected a Scenario"):
            load_scenario({"scenario_id": "x", "source": "lazy"})
        register_loader("lazy", "no_such_module_xyz:fn")
        with pytest.raises(WorldEngineLabError, match="could not be imported"):
            get_loader("lazy")
    finally:
        unregister_loader("lazy")
    assert "lazy" not in registered_sources()


def test_register_override_and_restore_default():
    fn = lambda row: make_scenario()  # noqa: E731
    register_loader("nuplan", fn)
    try:
        assert get_loader("nuplan") is fn
    finally:
        unregister_loader("nuplan")
    assert "nuplan" in registered_sources()


def test_bad_registrations_raise():
    with pytest.raises(WorldEngineLabError):
        register_loader("", lambda row: None)
    with pytest.raises(WorldEngineLabError):
        register_loader("x", "not-a-module-function")
    with pytest.raises(WorldEngineLabError):
        register_loader("x", 42)  # type: ignore[arg-type]


def test_loader_must_return_the_catalogued_id(loader):
    register_loader("wrong_id", lambda row: make_scenario(seed=1))
    try:
        with pytest.raises(WorldEngineLabError, match="expected the same id"):
            load_scenario({"scenario_id": "s00", "source": "wrong_id"})
    finally:
        unregister_loader("wrong_id")


def test_catalog_tags_are_added(loader):
    register_loader("plain", lambda row: dataclasses.replace(make_scenario(), scenario_id=row["scenario_id"]))
    try:
        s = load_scenario({"scenario_id": "a", "source": "plain", "tags": ["rare", "cut_in"]})
        assert s.tags == {"rare", "cut_in", "following_lane_with_lead"}
    finally:
        unregister_loader("plain")
