"""A small catalog of 12 scenarios over 4 logs and 3 locations, loaded through a registered 'test' loader."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import pytest

from worldengine_lab.datatypes import Scenario
from worldengine_lab.scenarios import register_loader, unregister_loader
from worldengine_lab.store import Workspace
from worldengine_lab.testing import make_scenario

LOCATIONS = {"log0": "boston", "log1": "boston", "log2": "pittsburgh", "log3": "las_vegas"}
TAGS = {
    "s00": ["rare", "near_miss"], "s01": ["rare"], "s04": ["cut_in"], "s05": ["near_miss"],
    "s07": ["rare", "cut_in"], "s10": ["night"],
}
SPLITS = {"s00": "pretrain", "s01": "pretrain", "s02": "pretrain", "s09": "test_rare", "s10": "test_rare"}


def test_loader(row: Mapping[str, Any]) -> Scenario:
    """Build the scenario from the row: ``locator`` is the make_scenario seed."""
    test_loader.calls.append(row["scenario_id"])
    base = make_scenario(seed=int(row["locator"]), num_agents=int(row["num_agents"]))
    return dataclasses.replace(base, scenario_id=row["scenario_id"], log_id=row["log_id"])


test_loader.calls = []  # type: ignore[attr-defined]
test_loader.__test__ = False  # type: ignore[attr-defined]  (not a pytest test)


def make_rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(12):
        log = f"log{i // 3}"
        rows.append({
            "scenario_id": f"s{i:02d}", "source": "test", "path": f"/logs/{log}.db", "locator": str(i),
            "log_id": log, "map_name": f"map-{LOCATIONS[log]}", "location": LOCATIONS[log],
            "start_time_s": 1000.0 * (i // 3) + 20.0 * (i % 3), "duration_s": 10.0 + i, "num_steps": 101,
            "t0": 20, "num_agents": 2 + i % 3, "window": {"history_s": 2.0, "future_s": 8.0, "dt": 0.1},
        })
    return rows


@pytest.fixture
def loader():
    test_loader.calls.clear()
    register_loader("test", test_loader)
    yield test_loader
    unregister_loader("test")


@pytest.fixture
def ws(tmp_path, loader) -> Workspace:
    w = Workspace.open(tmp_path / "ws")
    w.add_scenarios(make_rows(), tags=TAGS, import_meta={"source": "test", "path": "/logs"})
    for sid, split in SPLITS.items():
        w.set_split([sid], split)
    yield w
    w.close()
