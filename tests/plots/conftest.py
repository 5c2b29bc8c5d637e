"""Fixtures of the BEV tests."""
from __future__ import annotations

import pytest
import torch
from _bev_scenes import road_scene

from worldengine_lab.datatypes import Scenario


@pytest.fixture(scope="session")
def scene() -> Scenario:
    """The road scene of :func:`_bev_scenes.road_scene` (ego, parked car, 9 vehicles, 2 pedestrians, 2 cones)."""
    return road_scene()


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for the cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
