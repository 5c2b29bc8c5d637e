"""Fixtures of the variant tests (builders in _variant_scenes.py)."""
from __future__ import annotations

import pytest
from _variant_scenes import crossing_scenario, straight_road

from worldengine_lab.datatypes import Scenario


@pytest.fixture
def road() -> Scenario:
    """Straight two-lane road: ego and a lead 25 m ahead at 10 m/s in lane y = 0, a car 8 m ahead in y = 3.5."""
    return straight_road()


@pytest.fixture
def crossing() -> Scenario:
    """The ego drives east through a signalised crossing; a car waits on the crossing northbound lane."""
    return crossing_scenario()
