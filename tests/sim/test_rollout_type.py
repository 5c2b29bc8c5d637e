"""The Rollout seam type validates itself."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from worldengine_lab.datatypes import Rollout
from worldengine_lab.errors import ScenarioValidationError, ShapeError
from worldengine_lab.planners import ConstantVelocityPlanner
from worldengine_lab.sim import rollout
from worldengine_lab.testing import make_scenario


@pytest.fixture(scope="module")
def good() -> Rollout:
    return rollout(make_scenario(num_agents=2), ConstantVelocityPlanner())


def test_frozen_and_read_only(good):
    with pytest.raises(dataclasses.FrozenInstanceError):
        good.seed = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        good.ego_states[0, 0] = 1.0


@pytest.mark.parametrize("change, error, fragment", [
    (dict(planner_id=""), ScenarioValidationError, "planner_id"),
    (dict(ego_states=np.zeros((5, 10))), ShapeError, "Rollout.ego_states"),
    (dict(ego_states=np.zeros((101, 10), np.float32)), ScenarioValidationError, "float64"),
    (dict(plans=np.zeros((8, 8, 3))), ShapeError, "Rollout.plans"),
    (dict(info={"sim/collision": np.zeros(3, bool)}), ScenarioValidationError, "sim/collision"),
    (dict(num_sim_steps=200), ScenarioValidationError, "num_sim_steps"),
    (dict(actions=np.full((101, 2), np.nan)), ScenarioValidationError, "Rollout.actions"),
])
def test_validate_names_the_field(good, change, error, fragment):
    with pytest.raises(error) as exc:
        dataclasses.replace(good, **change)
    assert fragment in str(exc.value)
