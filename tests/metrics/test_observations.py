"""ObjectTracks: building from scenarios, the stopped quirk, the 2 Hz parity path and keyframe interpolation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldengine_lab.datatypes import AgentType
from worldengine_lab.errors import ScenarioValidationError, ShapeError
from worldengine_lab.metrics import ObjectTracks, interpolate_keyframes
from worldengine_lab.testing import make_scenario


def test_from_scenario_excludes_ego_and_starts_at_t0() -> None:
    s = make_scenario(num_agents=4, num_steps=60, t0=20)
    o = ObjectTracks.from_scenario(s)
    assert o.num_objects == 3 and o.num_frames == 51 and o.track_ids == ("veh1", "veh2", "veh3")
    np.testing.assert_allclose(o.xy[0].numpy(), s.agents.xy[20, 1:], rtol=0, atol=1e-6)
    assert o.valid[:40].all() and not o.valid[40:].any()  # the scenario ends at step 59 = frame 39
    assert (o.xy[40:] == 0).all()  # invalid frames carry no garbage
    assert not o.is_static.any() and not o.stopped_first.any()
    torch.testing.assert_close(o.size_lw, torch.tensor(s.agents.size_lwh[1:, :2], dtype=torch.float64))


def test_stopped_first_uses_the_first_appearance_velocity() -> None:
    s = make_scenario(num_agents=4, num_steps=80, t0=10)
    a = s.agents
    vel = a.vel_xy.copy()
    vel[:, 1] = 0.0  # agent 1 starts stopped ...
    vel[15:, 1, 0] = 5.0  # ... and drives off later: still "stopped" by the first-appearance rule
    valid = a.valid.copy()
    valid[:14, 2] = False  # agent 2 first appears at step 14 (frame 4) with speed 10
    kinds = a.agent_type.copy()
    kinds[3] = int(AgentType.BARRIER)
    s2 = s.with_agents(a.with_arrays(vel_xy=vel, valid=valid, agent_type=kinds))
    o = ObjectTracks.from_scenario(s2)
    assert o.stopped_first.tolist() == [True, False, True]
    assert o.is_static.tolist() == [False, False, True]


def test_parity_2hz_path_interpolates_between_keyframes() -> None:
    s = make_scenario(num_agents=3, num_steps=80, t0=10)
    a = s.agents
    xy = a.xy.copy()
    xy[:, 1, 1] = np.arange(80) ** 2 * 0.01  # curved in y: 2 Hz interpolation differs from 10 Hz
    valid = a.valid.copy()
    valid[:, 2] = False
    valid[25, 2] = True  # agent 2 seen only at frame 15 (a 2 Hz keyframe): kept everywhere
    s2 = s.with_agents(a.with_arrays(xy=xy, valid=valid))
    native = ObjectTracks.from_scenario(s2)
    parity = ObjectTracks.from_scenario(s2, parity_2hz_observations=True)
    np.testing.assert_allclose(parity.xy[::5, 0].numpy(), native.xy[::5, 0].numpy())  # keyframes unchanged
    lin = native.xy[0, 0, 1] + (native.xy[5, 0, 1] - native.xy[0, 0, 1]) * 0.4
    assert parity.xy[2, 0, 1].item() == pytest.approx(lin.item(), abs=1e-5)
    assert native.valid[:, 1].sum() == 1 and parity.valid[:, 1].all()  # the single observation quirk
    np.testing.assert_allclose(parity.xy[:, 1].numpy(), np.broadcast_to(native.xy[15, 1].numpy(), (51, 2)))
    with pytest.raises(ShapeError, match="5·m \\+ 1"):
        ObjectTracks.from_scenario(s2, num_frames=40, parity_2hz_observations=True)


def test_interpolate_keyframes_rules_and_heading_unwrap() -> None:
    # object 0: observed at keyframes 0, 1, 3 (gap at 2); object 1: only keyframes 1, 2; heading crosses ±pi
    m, n = 4, 2
    valid = torch.tensor([[True, False], [True, True], [False, True], [True, False]])
    xy = torch.zeros(m, n, 2, dtype=torch.float64)
    xy[:, 0, 0] = torch.tensor([0.0, 10.0, 0.0, 30.0])
    xy[:, 1, 0] = torch.tensor([0.0, 5.0, 10.0, 0.0])
    yaw = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 0.0], [-3.0, 0.0]], dtype=torch.float64)
    vel = torch.zeros_like(xy)
    out_xy, out_yaw, _, ok = interpolate_keyframes(xy, yaw, vel, valid, 5, "navsim")
    assert ok[:, 0].all()  # first..last observation, the gap is bridged
    assert out_xy[10, 0, 0].item() == pytest.approx(20.0)  # halfway between keyframes 1 (10) and 3 (30)
    assert ok[:, 1].tolist() == [False] * 5 + [True] * 6 + [False] * 5  # no extrapolation
    # 3.0 → -3.0 the short way round (through pi), re-wrapped
    assert out_yaw[2, 0].item() == pytest.approx(3.0 + 0.4 * (2 * math.pi - 6.0), abs=1e-9)
    assert out_yaw[4, 0].item() == pytest.approx(3.0 + 0.8 * (2 * math.pi - 6.0) - 2 * math.pi, abs=1e-9)
    hold_xy, _, _, hold_ok = interpolate_keyframes(xy, yaw, vel, valid, 5, "hold")
    assert hold_ok[:5, 1].tolist() == [False] * 5 and hold_ok[5, 1]  # appears only at its keyframe
    assert hold_ok[11:15, 1].all() and hold_xy[12, 1, 0].item() == 10.0  # held after its last observation
    assert not hold_ok[15, 1]


def test_object_tracks_validation_errors() -> None:
    xy = np.zeros((5, 2, 2))
    with pytest.raises(ScenarioValidationError, match="size_lw.*object 'b'"):
        ObjectTracks.from_arrays(xy=xy, yaw=np.zeros((5, 2)), size_lw=np.array([[4.0, 2.0], [0.0, 2.0]]),
                                 track_ids=["a", "b"])
    bad = xy.copy()
    bad[2, 0, 0] = np.nan
    with pytest.raises(ScenarioValidationError, match="xy: expected finite"):
        ObjectTracks.from_arrays(xy=bad, yaw=np.zeros((5, 2)), size_lw=np.ones((2, 2)))
    with pytest.raises(ShapeError, match="yaw: expected shape \\[5, 2\\]"):
        ObjectTracks.from_arrays(xy=xy, yaw=np.zeros((4, 2)), size_lw=np.ones((2, 2)))
    # NaN where invalid is fine; tracks named "ego" are dropped
    bad_valid = np.ones((5, 2), bool)
    bad_valid[2, 0] = False
    o = ObjectTracks.from_arrays(xy=bad, yaw=np.zeros((5, 2)), size_lw=np.ones((2, 2)), valid=bad_valid,
                                 track_ids=["ego", "x"])
    assert o.track_ids == ("x",) and o.num_objects == 1


def test_from_scenario_rejects_other_time_steps() -> None:
    s = make_scenario(dt=0.05)
    with pytest.raises(ScenarioValidationError, match="scenario.dt = 0.1"):
        ObjectTracks.from_scenario(s)
