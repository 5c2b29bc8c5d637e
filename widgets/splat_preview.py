"""SplatPreview: camera images of a Gaussian scene at the current step, with the ego's plan drawn on top.

Rendering happens in Python (:func:`worldengine_lab.scene.render`, the CPU renderer unless gsplat runs here) at a
small scale (``scale=1/6``: 320 x 180 for a nuPlan-sized rig). The picture travels as raw RGB bytes (``_image``,
uint8, ``[H, W, 3]`` in ``_image_shape``) and the plan overlay as float32 pixel coordinates (``_plan``, ``[M, 2]``,
NaN rows break the line, e.g. where a vehicle hides the path); the front end only draws them. The preview re-renders when its ``t``, ``camera``,
``show_depth`` or ``show_grid`` change, when a linked :class:`ScenarioViewer` moves to another step, and when
:meth:`SplatPreview.set_scenario` replaces the scenario by an edited one (actors are re-posed, nothing refitted).

Library equivalents: ``render(scene, rig.select([camera]), t)``, :func:`plan_points` and :func:`project_points`.

Examples:
    >>> from worldengine_lab.scene import build_scene
    >>> from worldengine_lab.testing import make_scenario
    >>> preview = SplatPreview(build_scene(make_scenario(num_steps=21, t0=5)), scale=1 / 24)
    >>> preview.t, preview.camera, preview._image_shape
    (5, 'CAM_F0', [45, 80, 3])
"""
from __future__ import annotations

import logging
import math
import pathlib
import struct
import time
import traceback
import zlib
from collections import OrderedDict
from typing import Any

import anywidget
import numpy as np
import traitlets

from worldengine_lab.datatypes import CameraRig, Rollout, Scenario
from worldengine_lab.errors import ScenarioValidationError, ShapeError
from worldengine_lab.scene import RenderResult, render
from worldengine_lab.scene.compose import ScenarioScene
from worldengine_lab.scene.rigs import default_rig

from ._assets import esm

from ._arrays import to_bytes, wire_shape

__all__ = ["SplatPreview", "plan_points", "project_points", "visible_points", "colorize_depth", "encode_png"]

log = logging.getLogger(__name__)

_HERE = pathlib.Path(__file__).parent
_CACHE_SIZE = 48
# inverse-depth colour map anchors (far -> near): dark blue, blue, cyan, yellow, orange, dark red
_DEPTH_ANCHORS = np.array([[0.05, 0.03, 0.25], [0.13, 0.35, 0.85], [0.10, 0.80, 0.85], [0.95, 0.90, 0.20],
                           [0.95, 0.45, 0.10], [0.55, 0.05, 0.05]])


# ------------------------------------------------------------------------------------------------ pure helpers
def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes (8-bit RGB, no filter, zlib level 6) of ``rgb [H, W, 3]`` uint8 (floats in [0, 1] are scaled)."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ShapeError(f"encode_png: expected an image [H, W, 3], received {a.shape}")
    if a.dtype != np.uint8:
        a = np.floor(255.0 * np.clip(a, 0.0, 1.0)).astype(np.uint8)
    h, w = a.shape[:2]
    rows = np.concatenate([np.zeros((h, 1), np.uint8), a.reshape(h, 3 * w)], 1)  # filter byte 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def colorize_depth(depth: np.ndarray, alpha: np.ndarray, min_alpha: float = 0.05) -> np.ndarray:
    """Colour-mapped depth ``[H, W, 3]`` uint8: inverse depth between the 1st and 99th percentile of the covered
    pixels (near = warm, far = dark blue); black where ``alpha < min_alpha``.

    Args:
        depth: ``[H, W]`` float32 camera z, m. alpha: ``[H, W]`` accumulated opacity.
    """
    d, a = np.asarray(depth, np.float64), np.asarray(alpha, np.float64)
    hit = (a >= min_alpha) & np.isfinite(d) & (d > 0)
    out = np.zeros(d.shape + (3,), np.uint8)
    if not hit.any():
        return out
    inv = 1.0 / d[hit]
    lo, hi = np.percentile(inv, [1.0, 99.0])
    x = np.clip((inv - lo) / max(hi - lo, 1e-9), 0.0, 1.0) * (len(_DEPTH_ANCHORS) - 1)
    grid = np.arange(len(_DEPTH_ANCHORS))
    rgb = np.stack([np.interp(x, grid, _DEPTH_ANCHORS[:, c]) for c in range(3)], -1)
    out[hit] = np.floor(255.0 * rgb).astype(np.uint8)
    return out


def plan_points(scene: ScenarioScene, t: int, plan: Rollout | np.ndarray | None = None, *,
                horizon_s: float = 8.0) -> np.ndarray:
    """The ego's planned rear-axle path from step ``t``, on the ground: ``[K, 3]`` float64, m, scenario frame.

    Args:
        scene: the scene (its scenario gives the logged future, its ground the height).
        t: the current step.
        plan: None: the scenario's logged ego future (``horizon_s`` seconds, valid steps only); a Rollout: its
            latest plan made at or before ``t`` (body frame at planning time, placed with the rollout's ego
            state), or its simulated ego future before the first plan; an array ``[K, 2]`` (rear-axle xy,
            scenario frame) used as is.
    """
    sc = scene.scenario
    r2c = float(sc.ego_rear_axle_to_center_m)
    if isinstance(plan, Rollout):
        steps = np.asarray(plan.plan_steps)
        k = int(np.searchsorted(steps, t, side="right")) - 1
        if k >= 0:
            x, y, yaw = np.asarray(plan.ego_states[steps[k], :3], np.float64)
            body = np.concatenate([np.zeros((1, 3)), np.asarray(plan.plans[k], np.float64)])
            c, s = math.cos(yaw), math.sin(yaw)
            xy = np.stack([x + c * body[:, 0] - s * body[:, 1], y + s * body[:, 0] + c * body[:, 1]], -1)
        else:
            xy = _future(plan.agents, t, horizon_s / plan.dt, r2c)
    elif plan is None:
        xy = _future(sc.agents, t, horizon_s / sc.dt, r2c)
    else:
        xy = np.asarray(plan, np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ShapeError(f"plan: expected a Rollout or rear-axle xy [K, 2] (m, scenario frame), received "
                             f"shape {xy.shape}")
    return np.concatenate([xy, scene.ground.at(xy)[:, None]], 1)


def _future(agents: Any, t: int, horizon_steps: float, r2c: float) -> np.ndarray:
    """Rear-axle xy ``[K, 2]`` of agent 0 from step t over ``horizon_steps`` steps (valid steps only)."""
    stop = min(agents.num_steps, t + int(round(horizon_steps)) + 1)
    sel = np.arange(t, stop)
    sel = sel[agents.valid[sel, 0]]
    yaw = agents.yaw[sel, 0].astype(np.float64)
    return agents.xy[sel, 0].astype(np.float64) - r2c * np.stack([np.cos(yaw), np.sin(yaw)], -1)


def project_points(rig: CameraRig, world_from_ego: np.ndarray, points: np.ndarray,
                   min_depth_m: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pinhole projection of world points into every camera of ``rig``.

    Args:
        rig: C cameras. world_from_ego: ``[4, 4]`` float64 ego pose (scenario frame). points: ``[K, 3]`` m, scenario
            frame. min_depth_m: points closer than this (or behind the camera) are invalid.
    Returns:
        ``uv [C, K, 2]`` float64 pixel coordinates (pixel centres at +0.5, gsplat's convention), ``depth [C, K]``
        camera z (m) and ``valid [C, K]`` bool (in front of the camera and inside the image).
    """
    vm = rig.viewmats(world_from_ego).astype(np.float64)  # [C, 4, 4]
    p = np.asarray(points, np.float64)
    cam = np.einsum("cij,kj->cki", vm[:, :3, :3], p) + vm[:, None, :3, 3]
    z = cam[..., 2]
    zs = np.where(z > min_depth_m, z, 1.0)
    ks = rig.Ks.astype(np.float64)
    u = ks[:, None, 0, 0] * cam[..., 0] / zs + ks[:, None, 0, 2]
    v = ks[:, None, 1, 1] * cam[..., 1] / zs + ks[:, None, 1, 2]
    valid = (z > min_depth_m) & (u >= 0) & (u <= rig.width) & (v >= 0) & (v <= rig.height)
    return np.stack([u, v], -1), z, valid


def visible_points(uv: np.ndarray, depth: np.ndarray, valid: np.ndarray, result: RenderResult,
                   tolerance_m: float = 1.0) -> np.ndarray:
    """``valid [C, K]`` minus the points hidden behind rendered surfaces: the render's depth at the point's pixel
    is more than ``tolerance_m`` in front of the point where the pixel is mostly opaque (alpha > 0.5)."""
    if result.depth is None:
        return valid
    c, k = valid.shape
    h, w = result.alpha.shape[1:]
    col = np.clip(np.floor(uv[..., 0]).astype(np.int64), 0, w - 1)
    row = np.clip(np.floor(uv[..., 1]).astype(np.int64), 0, h - 1)
    cam = np.broadcast_to(np.arange(c)[:, None], (c, k))
    front = (result.alpha[cam, row, col] > 0.5) & (result.depth[cam, row, col] < depth - tolerance_m)
    return valid & ~front


# ------------------------------------------------------------------------------------------------ the widget
class SplatPreview(anywidget.AnyWidget):
    """Camera images of ``scene`` at step ``t`` with the planned ego path projected on top.

    Args:
        scene: a ScenarioScene (``build_scene(scenario)``, an MTGS asset, ...).
        rig: cameras on the ego (default: ``default_rig()``, nuPlan-sized); rendered at ``scale`` x its size.
        viewer: a ScenarioViewer to follow: its ``t`` drives this preview (and this preview's ``t`` moves it).
        camera: the camera shown (``show_grid=False``).
        scale: image scale relative to the rig (1/6 of 1920 x 1080 is 320 x 180).
        plan: what to draw as the ego's plan (see :func:`plan_points`; default: the logged future).
        grid_scale: image scale of each tile when all cameras are shown (default: ``scale / 2``).
        backend: renderer backend ("auto", "torch_ref", "gsplat").

    Traits:
        t: step shown. camera: camera shown. cameras: the rig's camera names. show_depth: colour-mapped depth
        instead of RGB. show_grid: all cameras as a grid. show_plan: draw the plan. render_ms: duration of the
        last render (0 when it came from the cache). error: last error (shown in the widget).
    """

    _esm = esm("splat_preview.js")
    _css = _HERE / "splat_preview.css"

    t = traitlets.Int(0).tag(sync=True)
    camera = traitlets.Unicode("CAM_F0").tag(sync=True)
    cameras = traitlets.List(traitlets.Unicode()).tag(sync=True)
    show_depth = traitlets.Bool(False).tag(sync=True)
    show_grid = traitlets.Bool(False).tag(sync=True)
    show_plan = traitlets.Bool(True).tag(sync=True)
    render_ms = traitlets.Float(0.0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    _image = traitlets.Bytes(b"").tag(sync=True)  # [H, W, 3] uint8 RGB
    _image_shape = traitlets.List(traitlets.Int()).tag(sync=True)
    _plan = traitlets.Bytes(b"").tag(sync=True)  # [M, 2] float32 px, NaN rows = breaks
    _plan_shape = traitlets.List(traitlets.Int()).tag(sync=True)
    _meta = traitlets.Dict().tag(sync=True)

    def __init__(self, scene: ScenarioScene, rig: CameraRig | None = None, viewer: Any = None,
                 camera: str = "CAM_F0", scale: float = 1 / 6, plan: Rollout | np.ndarray | None = None, *,
                 grid_scale: float | None = None, backend: str = "auto", **kwargs: Any) -> None:
        if not isinstance(scene, ScenarioScene):
            raise ScenarioValidationError(f"SplatPreview(scene): expected a ScenarioScene, received "
                                          f"{type(scene).__name__}; build one with scene.build_scene(scenario)")
        if not (np.isfinite(scale) and scale > 0):
            raise ScenarioValidationError(f"SplatPreview(scale): expected > 0, received {scale}")
        base = rig if rig is not None else default_rig()
        names = [str(n) for n in base.names]
        if camera not in names:
            raise ScenarioValidationError(f"SplatPreview(camera): unknown camera {camera!r}; the rig has {names}")
        self._scene = scene
        self._rig = base.scaled(scale)
        self._grid_rig = base.scaled(grid_scale if grid_scale is not None else scale / 2)
        self._plan_source = plan
        self._backend = backend
        self._viewer = viewer
        self._version = 0
        self._cache: OrderedDict[tuple, tuple[RenderResult, float]] = OrderedDict()
        self._result: RenderResult | None = None
        self._plan_px = np.zeros((0, 2), np.float32)
        t0 = int(viewer.t) if viewer is not None else int(scene.scenario.t0)
        super().__init__(t=self._clamp(t0), camera=camera, cameras=names, **kwargs)
        self.observe(self._on_change, names=["t", "camera", "show_depth", "show_grid", "show_plan"])
        if viewer is not None:
            viewer.observe(self._on_viewer_t, names=["t"])
        self._refresh()

    # -- state ----------------------------------------------------------------------------------------------
    def _clamp(self, t: int) -> int:
        return int(min(max(int(t), 0), self._scene.scenario.num_steps - 1))

    @traitlets.validate("t")
    def _valid_t(self, proposal: dict[str, Any]) -> int:
        return self._clamp(proposal["value"])

    @traitlets.validate("camera")
    def _valid_camera(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in self.cameras:
            raise traitlets.TraitError(f"SplatPreview.camera: unknown camera {proposal['value']!r}; the rig has "
                                       f"{list(self.cameras)}")
        return proposal["value"]

    def _on_viewer_t(self, change: dict[str, Any]) -> None:
        self.t = int(change["new"])

    def _on_change(self, change: dict[str, Any]) -> None:
        if change["name"] == "t" and self._viewer is not None and int(self._viewer.t) != int(change["new"]):
            self._viewer.t = int(change["new"])
        self._refresh()

    def set_scenario(self, scenario: Scenario) -> None:
        """Pose the same Gaussians by ``scenario`` (an edited variant of the scene's scenario) and re-render."""
        if not isinstance(scenario, Scenario):
            raise ScenarioValidationError(f"SplatPreview.set_scenario: expected a Scenario, received "
                                          f"{type(scenario).__name__}")
        self._scene = self._scene.with_scenario(scenario)
        self._version += 1
        self._cache.clear()
        if self.t != self._clamp(self.t):
            self.t = self._clamp(self.t)  # re-renders
        else:
            self._refresh()

    def set_plan(self, plan: Rollout | np.ndarray | None) -> None:
        """Draw another plan (see :func:`plan_points`)."""
        self._plan_source = plan
        self._refresh()

    # -- rendering ------------------------------------------------------------------------------------------
    def _render(self, names: list[str], rig: CameraRig) -> tuple[RenderResult, float]:
        key = (self._version, self.t, tuple(names), rig.width, rig.height)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key][0], 0.0
        start = time.perf_counter()
        result = render(self._scene, rig.select(names), self.t, backend=self._backend, depth=True)
        seconds = time.perf_counter() - start
        self._cache[key] = (result, seconds)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return result, seconds

    def _refresh(self) -> None:
        try:
            grid = bool(self.show_grid)
            rig = self._grid_rig if grid else self._rig
            names = list(self.cameras) if grid else [self.camera]
            result, seconds = self._render(names, rig)
            tiles = [(result.rgb_uint8()[i] if not self.show_depth
                      else colorize_depth(result.depth[i], result.alpha[i])) for i in range(result.num_cameras)]
            cols = min(4, len(tiles)) if grid else 1
            nrows = -(-len(tiles) // cols)
            h, w = rig.height, rig.width
            image = np.zeros((nrows * h, cols * w, 3), np.uint8)
            layout = []
            for i, tile in enumerate(tiles):  # at most 8 cameras
                r, c = divmod(i, cols)
                image[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
                layout.append({"name": names[i], "x": c * w, "y": r * h, "w": w, "h": h})
            self._result = result
            plan_px = self._plan_pixels(rig.select(names), layout) if self.show_plan else np.zeros((0, 2), np.float32)
            self._plan_px = plan_px
            with self.hold_sync():
                self._image_shape = wire_shape(image)
                self._image = image.tobytes()
                self._plan_shape = wire_shape(plan_px)
                self._plan = to_bytes(plan_px)
                self.render_ms = round(1000.0 * seconds, 1)
                self._meta = {"t": int(self.t), "scenario_id": self._scene.scenario.scenario_id, "tiles": layout,
                              "depth": bool(self.show_depth), "backend": result.backend, "version": self._version}
            if self.error:
                self.error = ""
            log.debug("SplatPreview t=%d %s: %.1f ms", self.t, names, 1000.0 * seconds)
        except Exception as e:  # noqa: BLE001 - every rendering error is shown in the widget, never dropped
            log.exception("SplatPreview failed to render t=%s", self.t)
            self.error = f"{type(e).__name__} at t={self.t}: {e}\n" + "".join(
                traceback.format_exception(type(e), e, e.__traceback__)[-3:])

    def _plan_pixels(self, rig: CameraRig, layout: list[dict[str, Any]]) -> np.ndarray:
        """``[M, 2]`` float32 pixel coordinates of the plan in the composed image; NaN rows separate runs (other
        cameras, points outside the image or hidden behind rendered surfaces such as a vehicle ahead)."""
        pts = plan_points(self._scene, self.t, self._plan_source)
        if len(pts) < 2:
            return np.zeros((0, 2), np.float32)
        uv, depth, valid = project_points(rig, self._scene.world_from_ego(self.t), pts)
        valid = visible_points(uv, depth, valid, self._result)
        offset = np.array([[tile["x"], tile["y"]] for tile in layout], np.float64)[:, None, :]
        uv = np.where(valid[..., None], uv + offset, np.nan)  # [C, K, 2]
        gap = np.full((uv.shape[0], 1, 2), np.nan)
        return np.concatenate([uv, gap], 1).reshape(-1, 2).astype(np.float32)

    # -- library objects --------------------------------------------------------------------------------------
    @property
    def selection(self) -> RenderResult | None:
        """The RenderResult shown (RGB, depth and alpha of the shown camera(s) at ``t``)."""
        return self._result

    @property
    def scene(self) -> ScenarioScene:
        """The scene rendered (posed by the current scenario)."""
        return self._scene

    @property
    def scenario(self) -> Scenario:
        """The scenario that poses the actors."""
        return self._scene.scenario

    @property
    def plan_pixels(self) -> np.ndarray:
        """``[M, 2]`` float32 pixel coordinates of the drawn plan (NaN rows separate cameras / runs)."""
        return self._plan_px

    @property
    def image(self) -> np.ndarray:
        """The picture sent to the front end, ``[H, W, 3]`` uint8 (RGB or colour-mapped depth)."""
        return np.frombuffer(self._image, np.uint8).reshape(self._image_shape)

    def png(self) -> bytes:
        """The picture as PNG bytes (without the plan overlay, which the front end draws)."""
        return encode_png(self.image)
