"""ScenarioViewer, headless: the binary payload, time scrubbing as the front end does it, top-k candidates of a
real learned planner, and callback errors shown in the widget."""
from __future__ import annotations

import dataclasses
import importlib.util
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from worldengine_lab.datatypes import Scenario
from worldengine_lab.errors import ScenarioValidationError, ShapeError, WorldEngineLabError
from worldengine_lab.planners import ConstantVelocityPlanner, LogReplayPlanner
from worldengine_lab.sim import rollout
from worldengine_lab.widgets._arrays import from_bytes
from worldengine_lab.widgets.scenario_viewer import ScenarioViewer

_spec = importlib.util.spec_from_file_location(  # the scene builders shared with tests/plots
    "_bev_scenes", Path(__file__).resolve().parents[1] / "plots" / "_bev_scenes.py")
scenes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scenes)

JS = Path(__file__).resolve().parents[2] / "widgets" / "scenario_viewer.js"


def decode(viewer: ScenarioViewer) -> dict[str, np.ndarray]:
    """The payload as the front end reads it: typed views at the layout's offsets (little-endian)."""
    out = {}
    for name, spec in viewer._meta["arrays"].items():
        assert spec["offset"] % 4 == 0, name
        nbytes = 4 * int(np.prod(spec["shape"], dtype=np.int64))
        raw = memoryview(viewer._payload)[spec["offset"] : spec["offset"] + nbytes]
        out[name] = from_bytes(raw, spec["shape"], spec["dtype"])
    return out


@pytest.fixture(scope="module")
def crowd() -> Scenario:
    """120 agents: ego, parked car, 99 vehicles on three lanes, 15 pedestrians, 4 cones."""
    return scenes.road_scene(num_per_lane=33, num_pedestrians=15, num_cones=4)


@pytest.fixture(scope="module")
def rollouts(crowd: Scenario):
    return rollout(crowd, ConstantVelocityPlanner()), rollout(crowd, LogReplayPlanner())


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_payload_decodes_to_the_scenario_and_rollouts(crowd: Scenario, rollouts) -> None:
    viewer = ScenarioViewer(crowd, *rollouts, labels=["base", "replay"])
    meta, arrays = viewer._meta, decode(viewer)
    t, n = crowd.num_steps, crowd.agents.num_agents
    assert n == 120 and meta["num_steps"] == t and meta["num_agents"] == n and meta["t0"] == crowd.t0
    assert [p["label"] for p in meta["panels"]] == ["base", "replay"] and meta["track_ids"][1] == "parked"
    assert viewer.payload_nbytes == len(viewer._payload) == sum(
        a.nbytes for a in arrays.values())  # one buffer, nothing else
    for i, ro in enumerate(rollouts):
        boxes = arrays[f"p{i}/boxes"]
        assert boxes.shape == (t, n, 5)
        np.testing.assert_array_equal(boxes[..., :2], ro.agents.xy)
        np.testing.assert_array_equal(boxes[..., 2], ro.agents.yaw)
        np.testing.assert_array_equal(arrays[f"p{i}/valid"], ro.agents.valid)
        events = arrays[f"p{i}/events"]
        np.testing.assert_array_equal(events[:, 0], ro.info["sim/simulated"])
        np.testing.assert_array_equal(events[:, 1], ro.info["sim/collision"])
        np.testing.assert_array_equal(events[:, 2], ro.info["sim/offroad"])
        assert arrays[f"p{i}/plans"].shape == (len(ro.plan_steps), 41, 2)
        np.testing.assert_array_equal(arrays[f"p{i}/plan_steps"], ro.plan_steps)
    assert set(arrays["p0/events"][:, 3]) == {-1, 1}  # the base rollout hits the parked car, agent 1
    np.testing.assert_array_equal(arrays["logged_ego"][:, :2], crowd.agents.xy[:, 0])
    np.testing.assert_array_equal(arrays["agent_type"], crowd.agents.agent_type)
    f = viewer.frames
    np.testing.assert_array_equal(arrays["map_xy"], f.map_xy)
    np.testing.assert_array_equal(arrays["map_offsets"], f.map_offsets)
    np.testing.assert_array_equal(arrays["light_status"], crowd.traffic_lights.status)
    assert "p0/cand_xy" not in arrays and all(p["k"] == 0 for p in meta["panels"])


def test_scrubbing_changes_only_t(crowd: Scenario, rollouts) -> None:
    viewer = ScenarioViewer(crowd, *rollouts)
    assert viewer.t == crowd.t0 and viewer.selection is crowd and viewer.rollouts == rollouts
    seen: list[int] = []
    viewer.on_step(seen.append)
    payload, meta = viewer._payload, viewer._meta
    viewer.set_state({"t": 30})  # what the front end sends on a scrub step
    assert viewer.t == 30 and seen == [30] and viewer.get_state("t") == {"t": 30}
    viewer.t = 10  # Python moves the front end through the same trait
    assert seen == [30, 10] and viewer.get_state("t") == {"t": 10}
    viewer.set_state({"t": 10_000})
    assert viewer.t == viewer.num_steps - 1  # clamped to the timeline
    viewer.set_state({"t": -3})
    assert viewer.t == 0
    assert viewer._payload is payload and viewer._meta is meta  # the arrays are never rebuilt
    viewer.on_step(seen.append, remove=True)
    viewer.set_state({"t": 5})
    assert seen[-1] == 0
    start = time.perf_counter()
    for step in range(200):
        viewer.set_state({"t": step % viewer.num_steps})
    assert (time.perf_counter() - start) / 200 < 0.01  # a scrub step costs far less than 100 ms in Python
    viewer.t = 40
    fig = viewer.figure()  # the same view as a static plotly figure
    assert "step 40" in fig.layout.title.text and "constant_velocity: ego" in [tr.name for tr in fig.data]


def test_top_k_candidates_of_a_learned_planner(crowd: Scenario, rollouts, one_thread) -> None:
    planner = scenes.tiny_learned_planner()
    viewer = ScenarioViewer(crowd, *rollouts, planner=planner, top_k=3)
    arrays = decode(viewer)
    for i, ro in enumerate(rollouts):
        p = len(ro.plan_steps)
        assert viewer._meta["panels"][i]["k"] == 3
        assert arrays[f"p{i}/cand_xy"].shape == (p, 3, 41, 2)  # k lines per planning step
        np.testing.assert_array_equal(arrays[f"p{i}/cand_steps"], ro.plan_steps)
        values = arrays[f"p{i}/cand_values"]
        assert values.shape == (p, 3, 7)  # selection score, policy, then 5 sub-scores per line
        assert ((values[..., 2:] >= 0) & (values[..., 2:] <= 1)).all() and (np.diff(values[..., 0], axis=1) <= 0).all()
        idx = arrays[f"p{i}/cand_index"]
        assert idx.shape == (p, 3) and ((idx >= 0) & (idx < len(planner.vocabulary))).all()
        # each line starts at the ego box at its planning step
        np.testing.assert_allclose(arrays[f"p{i}/cand_xy"][:, :, 0], np.broadcast_to(
            ro.agents.xy[ro.plan_steps, 0][:, None], (p, 3, 2)), atol=1e-3)
    assert viewer._meta["subscore_names"] == ["NC", "DAC", "TTC", "C", "EP"]
    solo = ScenarioViewer(crowd, planner=planner, top_k=2)  # no rollouts: candidates along the log
    assert decode(solo)["p0/cand_values"].shape[1:] == (2, 7) and solo._meta["panels"][0]["label"] == "log"


def test_callback_errors_reach_the_error_area(crowd: Scenario) -> None:
    viewer = ScenarioViewer(crowd)
    seen: list[int] = []

    def broken(t: int) -> None:
        raise ValueError(f"no data at step {t}")

    viewer.on_step(broken)
    viewer.on_step(seen.append)
    viewer.set_state({"t": 7})
    assert "ValueError in broken at t=7: no data at step 7" in viewer.error
    assert viewer.get_state("error")["error"] == viewer.error and seen == [7]  # synced; later callbacks still run
    viewer.set_state({"error": ""})  # the front end's close button
    assert viewer.error == ""


def test_constructor_errors_name_the_fix(crowd: Scenario, rollouts) -> None:
    with pytest.raises(ScenarioValidationError, match="expected a Scenario"):
        ScenarioViewer(rollouts[0])
    with pytest.raises(ShapeError, match="top_k"):
        ScenarioViewer(crowd, top_k=0)
    with pytest.raises(WorldEngineLabError, match="LearnedPlanner"):
        ScenarioViewer(crowd, *rollouts, planner=ConstantVelocityPlanner())
    with pytest.raises(ScenarioValidationError, match="simulated on"):
        ScenarioViewer(dataclasses.replace(crowd, scenario_id="other"), *rollouts)


def test_front_end_keeps_the_dom_contract() -> None:
    js = JS.read_text()
    for needle in ('"wel-scenario-viewer"', "dataset.t =", "dataset.drawMs =", '"wel-scrubber"', 'type = "range"',
                   '"wel-play"', '"wel-bev"', 'change:t', "export default"):
        assert needle in js, needle
    assert not re.search(r"https?://", js)  # self-contained: nothing fetched from a CDN
