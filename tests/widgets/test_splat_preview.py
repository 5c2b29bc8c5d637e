"""SplatPreview, headless: renders follow the linked viewer's t and edited scenarios, the plan lands in the picture,
controls as the front end sets them, errors shown in the widget, and the binary image contract."""
from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import traitlets

from worldengine_lab.datatypes import Scenario
from worldengine_lab.errors import ScenarioValidationError
from worldengine_lab.scene import RenderResult, build_scene
from worldengine_lab.testing import make_scenario
from worldengine_lab.widgets.scenario_viewer import ScenarioViewer
from worldengine_lab.widgets.splat_preview import (SplatPreview, colorize_depth, encode_png, plan_points,
                                                   project_points)

JS = Path(__file__).resolve().parents[2] / "widgets" / "splat_preview.js"
SCALE = 1 / 24  # 80 x 45 px per camera: fast on a CPU


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    """Ego and two vehicles driving straight along +x in one lane (20 m apart) for 3 s."""
    return make_scenario(num_agents=3, num_steps=31, t0=5)


@pytest.fixture(scope="module")
def scene(scenario):
    return build_scene(scenario)


def _image(p: SplatPreview) -> np.ndarray:
    """The picture exactly as the front end receives it."""
    h, w, c = p._image_shape
    assert len(p._image) == h * w * c
    return np.frombuffer(p._image, np.uint8).reshape(h, w, c)


def test_construct_renders_the_front_camera(scene) -> None:
    p = SplatPreview(scene, scale=SCALE)
    assert p.t == scene.scenario.t0 and p.camera == "CAM_F0" and len(p.cameras) == 8
    assert p._image_shape == [45, 80, 3] and isinstance(p._image, bytes)
    img = _image(p)
    assert img.std() > 5  # a picture, not a blank
    assert isinstance(p.selection, RenderResult) and p.selection.camera_names == ("CAM_F0",)
    assert p.render_ms > 0 and p.error == "" and p._meta["t"] == p.t
    np.testing.assert_array_equal(p.image, img)


def test_follows_the_linked_viewer(scenario, scene) -> None:
    viewer = ScenarioViewer(scenario)
    p = SplatPreview(scene, viewer=viewer, scale=SCALE)
    before = p._image
    viewer.t = 15  # the scrubber moves
    assert p.t == 15 and p._meta["t"] == 15 and p._image != before
    viewer.set_state({"t": 20})  # as the front end sends it
    assert p.t == 20
    p.set_state({"t": 8})  # and the other way round
    assert viewer.t == 8
    viewer.t = 15  # back to a step seen before: served from the cache
    assert p.render_ms == 0.0 and p._meta["t"] == 15


def test_an_edited_scenario_moves_the_actor_in_the_picture(scenario, scene) -> None:
    p = SplatPreview(scene, scale=1 / 12)
    before = _image(p).astype(int)
    xy = scenario.agents.xy.copy()
    xy[:, 1, 1] += 3.0  # the lead vehicle (20 m ahead) moves 3 m to the left
    edited = scenario.with_agents(scenario.agents.with_arrays(xy=xy))
    p.set_scenario(edited)
    after = _image(p).astype(int)
    changed = np.abs(after - before).sum(-1) > 30
    assert p.scenario is edited and 0 < changed.mean() < 0.2  # only around the vehicle
    cols = np.flatnonzero(changed.any(0))
    assert cols.min() < 0.5 * after.shape[1] - 3  # pixels left of the centre line changed: it moved left
    p.set_scenario(scenario)
    np.testing.assert_array_equal(_image(p), before)  # same Gaussians, re-posed


def test_straight_ahead_plan_lands_inside_the_image(scene) -> None:
    p = SplatPreview(scene, scale=SCALE)
    uv = p.plan_pixels
    ok = np.isfinite(uv).all(1)
    h, w, _ = p._image_shape
    assert ok.sum() >= 5
    assert ((uv[ok, 0] >= 0) & (uv[ok, 0] <= w) & (uv[ok, 1] >= 0) & (uv[ok, 1] <= h)).all()
    assert np.allclose(uv[ok, 0], w / 2, atol=0.5)  # the ego drives along the camera's centre line
    assert (np.diff(uv[ok, 1]) < 0).all()  # farther points sit higher in the image
    assert (uv[ok, 1] > h / 2).all()  # on the ground: below the horizon
    assert not ok[-2]  # the far end runs under the lead vehicle (20 m ahead): hidden, the line breaks
    raw = np.frombuffer(p._plan, "<f4").reshape(p._plan_shape)
    np.testing.assert_array_equal(raw, uv)
    p.show_plan = False
    assert p._plan_shape == [0, 2]


def test_rollout_plans_and_explicit_paths(scenario, scene) -> None:
    from worldengine_lab.planners import ConstantVelocityPlanner
    from worldengine_lab.sim import rollout

    ro = rollout(scenario, ConstantVelocityPlanner())
    pts = plan_points(scene, scenario.t0 + 2, ro)
    assert pts.shape[1] == 3 and len(pts) > 10 and np.abs(pts[:, 1]).max() < 0.5  # straight ahead, y ~ 0
    assert (np.diff(pts[:, 0]) >= -1e-6).all()
    p = SplatPreview(scene, scale=SCALE, plan=ro)
    assert np.isfinite(p.plan_pixels).all(1).sum() >= 5
    rig = p._rig.select(["CAM_F0"])
    uv, depth, valid = project_points(rig, scene.world_from_ego(p.t), np.array([[60.0, 0, 0], [-50.0, 0, 0]]))
    assert valid.tolist() == [[True, False]]  # ahead is seen, behind is not
    assert depth[0, 0] == pytest.approx(60.0 - scene.world_from_ego(p.t)[0, 3] - 2.7, abs=1e-6)  # camera 2.7 m ahead
    p.set_plan(np.array([[25.0, 3.5], [30.0, 3.5]]))  # in the free left lane
    assert np.isfinite(p.plan_pixels).all(1).sum() == 2


def test_controls_as_the_front_end_sets_them(scene) -> None:
    p = SplatPreview(scene, scale=SCALE)
    front = _image(p).copy()
    p.set_state({"camera": "CAM_L1"})
    assert p.selection.camera_names == ("CAM_L1",) and not np.array_equal(_image(p), front)
    p.set_state({"camera": "CAM_F0", "show_depth": True})
    depth = _image(p)
    assert depth.shape == front.shape and not np.array_equal(depth, front)
    p.set_state({"show_depth": False, "show_grid": True})
    assert p._image_shape == [2 * 22, 4 * 40, 3]  # 8 cameras at half scale (1920 x 1080 / 48), 4 per row
    assert [t["name"] for t in p._meta["tiles"]] == list(p.cameras)
    assert np.isfinite(p.plan_pixels).all(1).sum() >= 3  # drawn in the front camera's tile
    with pytest.raises(traitlets.TraitError, match="unknown camera"):
        p.camera = "CAM_X"


def test_errors_are_shown_in_the_widget(scene) -> None:
    p = SplatPreview(scene, scale=SCALE)
    p.set_plan(np.zeros((4, 3)))  # not [K, 2]
    assert "ShapeError" in p.error and "[K, 2]" in p.error
    p.set_plan(None)
    assert p.error == ""
    with pytest.raises(ScenarioValidationError, match="ScenarioScene"):
        SplatPreview(scene.scenario)
    with pytest.raises(ScenarioValidationError, match="unknown camera"):
        SplatPreview(scene, camera="CAM_X", scale=SCALE)


def test_png_and_depth_colours() -> None:
    img = np.zeros((3, 5, 3), np.uint8)
    img[1, 2] = (255, 128, 7)
    data = encode_png(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (5, 3)
    idat = data[data.index(b"IDAT") + 4: data.index(b"IEND") - 8]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(3, 1 + 15)
    np.testing.assert_array_equal(rows[:, 1:].reshape(3, 5, 3), img)
    depth = np.array([[2.0, 50.0, 5.0]], np.float32)
    rgb = colorize_depth(depth, np.array([[1.0, 1.0, 0.0]]))
    assert rgb[0, 0, 0] > rgb[0, 1, 0] and rgb[0, 1, 2] > rgb[0, 0, 2]  # near warm, far blue
    assert rgb[0, 2].tolist() == [0, 0, 0]  # nothing hit


def test_front_end_keeps_the_dom_contract() -> None:
    js = JS.read_text()
    for needle in ('"wel-splat-preview"', "dataset.t =", '"wel-camera"', '"wel-depth"', '"wel-grid"', '"wel-plan"',
                   '"wel-image"', '"wel-error"', "change:_image", "export default"):
        assert needle in js, needle
    assert not re.search(r"https?://", js)  # self-contained: nothing fetched from a CDN
