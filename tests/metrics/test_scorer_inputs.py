"""Bad inputs raise WorldEngineLabError subclasses naming the argument, the expectation and what was received."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from worldengine_lab.errors import ScenarioValidationError, ShapeError, WorldEngineLabError
from worldengine_lab.metrics import CLOSED_LOOP, ScorerConfig, closed_loop_pdms, score_proposals, success_rate
from worldengine_lab.mining import mine_rare_cases

from _scoring_cases import box, const, ego, huge_map, objects


@pytest.fixture(scope="module")
def case() -> tuple:
    return ego(x=lambda t: 5 * t, v=const(5.0)), objects(box(x=const(30.0))), huge_map()


def test_nan_and_inf_states_are_rejected(case: tuple) -> None:
    states, objs, smap = case
    bad = states.clone()
    bad[0, 7, 3] = float("nan")
    with pytest.raises(ScenarioValidationError, match="states: expected finite values.*state 7, field 3"):
        score_proposals(bad, objs, smap)
    bad[0, 7, 3] = float("inf")
    with pytest.raises(WorldEngineLabError):
        score_proposals(bad, objs, smap)


def test_wrong_shapes_and_time_steps(case: tuple) -> None:
    states, objs, smap = case
    with pytest.raises(ShapeError, match="expected shape \\[P, S, 10\\].*received \\[1, 41, 9\\]"):
        score_proposals(states[..., :9], objs, smap)
    with pytest.raises(ShapeError, match="expected 41 states per proposal.*received 40"):
        score_proposals(states[:, :40], objs, smap)
    with pytest.raises(ShapeError, match="at least 41 frames.*received 30"):
        score_proposals(states, objects(box(x=const(30.0)), num_frames=30), smap)
    with pytest.raises(ShapeError, match="torch.Tensor"):
        score_proposals(states.numpy(), objs, smap)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="floating-point"):
        score_proposals(states.long(), objs, smap)
    with pytest.raises(ScenarioValidationError, match="objects.dt: expected 0.5"):
        score_proposals(states[:, :9], objs, smap, CLOSED_LOOP)


def test_closed_loop_and_table_inputs(case: tuple) -> None:
    states, objs, smap = case
    with pytest.raises(ShapeError, match="expert_poses: expected \\[9, 3\\]"):
        closed_loop_pdms(states[0, :9], objects(box(x=const(30.0)), num_frames=9, dt=0.5), smap, np.zeros((8, 3)))
    with pytest.raises(ShapeError, match="nc and dac of the same shape"):
        success_rate([1, 1], [1])
    import pandas as pd
    with pytest.raises(ShapeError, match="column 'ego_progress'"):
        mine_rare_cases(pd.DataFrame({"token": ["a"], "nc": [1.0], "dac": [1.0]}), "x")


def test_empty_batches_and_no_objects_never_produce_nan() -> None:
    states = ego(x=lambda t: 5 * t, v=const(5.0))
    far = objects(box(x=const(900.0)))
    r = score_proposals(states, far, huge_map(), ScorerConfig())
    assert torch.isfinite(r.score).all() and r.nc.item() == 1.0 and r.ttc.item() == 1.0
    empty = score_proposals(states[:0], far, huge_map())
    assert len(empty) == 0
    still = ego(x=const(0.0), v=const(0.0))
    r = score_proposals(still, far, huge_map())  # no progress at all: EP falls back to 1 (M <= 5 m)
    assert r.ep.item() == 1.0 and torch.isfinite(r.score).all()
