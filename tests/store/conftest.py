"""Fixtures for the workspace store tests: a fresh workspace and catalog rows as an importer writes them."""
from __future__ import annotations

from typing import Any

import pytest

from worldengine_lab.store import Workspace


def catalog_row(i: int, log_id: str = "log0", location: str = "boston", start_time_s: float = 0.0,
                source: str = "synthetic") -> dict[str, Any]:
    """One importer row for scenario ``sc<i>``."""
    return {
        "scenario_id": f"sc{i:03d}",
        "source": source,
        "path": f"/data/{log_id}.db",
        "locator": f"{i:032x}",
        "log_id": log_id,
        "map_name": f"map-{location}",
        "location": location,
        "start_time_s": start_time_s,
        "duration_s": 10.0,
        "num_steps": 101,
        "t0": 20,
        "num_agents": 3 + i,
        "window": {"history_s": 2.0, "future_s": 8.0, "dt": 0.1},
        "maps_root": "/maps",
    }


@pytest.fixture
def make_row():
    """The :func:`catalog_row` builder."""
    return catalog_row


@pytest.fixture
def ws(tmp_path) -> Workspace:
    w = Workspace.open(tmp_path / "ws")
    yield w
    w.close()


@pytest.fixture
def rows() -> list[dict[str, Any]]:
    """Six rows over three logs and two locations."""
    return [catalog_row(i, log_id=f"log{i // 2}", location="boston" if i < 4 else "pittsburgh",
                        start_time_s=100.0 * i) for i in range(6)]
