"""AV2 geometry and resampling helpers on hand-made inputs (no fixture data needed)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from worldengine_lab.logs.av2._geometry import (
    bracket, interp_angle, quat_multiply, quat_slerp, quat_to_matrix, quat_yaw, resample_arc_length, wrap_angle,
)
from worldengine_lab.logs.av2.sensor import _resample, _velocity_on_sweeps


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


@settings(max_examples=50, deadline=None)
@given(st.floats(-3.1, 3.1), st.floats(-3.1, 3.1), st.floats(0.0, 1.0))
def test_slerp_of_yaw_rotations_is_angle_interpolation(a: float, b: float, w: float) -> None:
    q = quat_slerp(yaw_quat(a)[None], yaw_quat(b)[None], np.array([w]))
    assert abs(wrap_angle(quat_yaw(q)[0] - interp_angle(a, b, w))) < 1e-6


def test_quaternion_helpers_agree() -> None:
    qa, qb = yaw_quat(0.3), yaw_quat(-1.1)
    np.testing.assert_allclose(quat_to_matrix(quat_multiply(qa, qb)), quat_to_matrix(qa) @ quat_to_matrix(qb),
                               atol=1e-12)
    assert abs(quat_yaw(quat_multiply(qa, qb)) - (0.3 - 1.1)) < 1e-12
    np.testing.assert_allclose(quat_to_matrix(yaw_quat(np.pi / 2)) @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)


def test_interp_angle_takes_the_short_way() -> None:
    assert abs(interp_angle(np.pi - 0.1, -np.pi + 0.1, 0.5) - (-np.pi)) < 1e-12


def test_bracket_and_arc_length() -> None:
    times = np.array([0, 100, 210, 300], np.int64)
    i0, w = bracket(times, np.array([0, 50, 100, 265, 300], np.int64))
    np.testing.assert_array_equal(i0, [0, 0, 1, 2, 2])
    np.testing.assert_allclose(w, [0.0, 0.5, 0.0, 55 / 90, 1.0])
    line = np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 0.0], [3.0, 1.0]])
    np.testing.assert_allclose(resample_arc_length(line, 5), [[0, 0], [1, 0], [2, 0], [3, 0], [3, 1]])


def test_resample_needs_both_bracketing_sweeps() -> None:
    sweeps = np.array([0, 100, 200, 300], np.int64)  # ns
    obs = np.array([[1, 0], [1, 1], [1, 1], [0, 1]], bool)  # agent 0 on sweeps 0-2, agent 1 on 1-3
    pos = np.zeros((4, 2, 2))
    pos[:, :, 0] = np.arange(4)[:, None] * 10.0
    pos[~obs] = 0.0
    yaw = np.zeros((4, 2))
    t_s = sweeps / 1e9
    vel = _velocity_on_sweeps(t_s, pos, obs)
    np.testing.assert_allclose(vel[obs][:, 0], 10.0 / 1e-7)  # 10 m per 100 ns, one- or two-sided
    grid = np.array([0, 50, 100, 250, 300], np.int64)
    xy, _, _, valid = _resample(sweeps, grid, obs, pos, yaw, vel)
    np.testing.assert_array_equal(valid, [[1, 0], [1, 0], [1, 1], [0, 1], [0, 1]])
    np.testing.assert_allclose(xy[1, 0], [5.0, 0.0])
    np.testing.assert_allclose(xy[3, 1], [25.0, 0.0])
