"""A small, reproducible reconstruction experiment: refit a region of a procedural scene from rendered views.

``fit_demo(scene)`` takes the Gaussians of a :class:`~worldengine_lab.scene.compose.ScenarioScene` at step ``t``
within a box in front of the ego (ego frame: ``ahead_m`` along x, ``|y| <= half_width_m``), subsampled to at most
``max_gaussians``: that is the ground truth. It renders training and held-out views with the front camera of a
default rig at ``width`` x ``height`` from ego poses jittered around the pose at ``t`` (moved back, sideways and
yawed; the two sets are drawn independently, so the held-out poses are new), seeds a point set from the
ground-truth means (a random fraction, each jittered by N(0, jitter_m²)), colours the points from the training
images (the mean of the pixels they project to: an SfM-like colour) or grey, and runs :func:`~worldengine_lab.
scene.fit.fit`. PSNR is reported before and after, on the training and on the held-out views.

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> from worldengine_lab.scene import build_scene
    >>> out = fit_demo(build_scene(make_scenario(num_steps=31, t0=5)), steps=2, max_gaussians=300,
    ...                num_train=2, num_heldout=1, width=32, height=18)
    >>> out.num_train, out.num_heldout, out.fit.history["loss"].shape
    (2, 1, (2,))
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..datatypes import GaussianScene
from ..errors import ScenarioValidationError
from .fit import FitConfig, FitResult, fit, params_from_points, params_to_scene, psnr, render_views, views_of
from .rigs import default_rig

__all__ = ["FitDemoResult", "fit_demo", "jittered_poses", "colors_from_views"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class FitDemoResult:
    """Numbers and images of :func:`fit_demo`.

    Attributes:
        fit: the :class:`~worldengine_lab.scene.fit.FitResult`.
        target: the ground-truth Gaussians (scenario frame).
        train_psnr_init, train_psnr: dB over all pixels of the training views, before / after fitting.
        heldout_psnr_init, heldout_psnr: dB over all pixels of the held-out views, before / after fitting.
        heldout_images: ``[V, H, W, 3]`` float32 held-out targets; heldout_renders: the fitted scene's renders.
        num_train, num_heldout: views; width, height: px; num_target, num_init: Gaussians.
        seconds_fit: optimisation wall time; seconds_total: including views and evaluation.
    """

    fit: FitResult
    target: GaussianScene
    train_psnr_init: float
    train_psnr: float
    heldout_psnr_init: float
    heldout_psnr: float
    heldout_images: np.ndarray  # [V, H, W, 3] float32
    heldout_renders: np.ndarray  # [V, H, W, 3] float32
    num_train: int
    num_heldout: int
    width: int
    height: int
    num_target: int
    num_init: int
    seconds_fit: float
    seconds_total: float

    def summary(self) -> dict[str, Any]:
        """The figures as a flat dict (for logs and notebooks)."""
        return {"steps": int(len(self.fit.history["loss"])), "views": f"{self.num_train} train / "
                f"{self.num_heldout} held-out at {self.width}x{self.height}",
                "gaussians": f"{self.num_target} target, {self.num_init} init, {self.fit.num_gaussians} fitted",
                "train_psnr_db": f"{self.train_psnr_init:.2f} -> {self.train_psnr:.2f}",
                "heldout_psnr_db": f"{self.heldout_psnr_init:.2f} -> {self.heldout_psnr:.2f}",
                "seconds_fit": round(self.seconds_fit, 1), "seconds_total": round(self.seconds_total, 1)}


def jittered_poses(world_from_ego: np.ndarray, num: int, rng: np.random.Generator, *, back_m: float = 6.0,
                   side_m: float = 1.5, yaw_deg: float = 15.0) -> np.ndarray:
    """``[num, 4, 4]`` float64 ego poses around ``world_from_ego [4, 4]``: moved back by U(0, back_m) along the
    heading, sideways by U(−side_m, side_m), yawed by U(−yaw_deg, yaw_deg) (scenario frame)."""
    back = rng.uniform(0.0, back_m, num)
    side = rng.uniform(-side_m, side_m, num)
    yaw = np.deg2rad(rng.uniform(-yaw_deg, yaw_deg, num))
    local = np.tile(np.eye(4), (num, 1, 1))
    c, s = np.cos(yaw), np.sin(yaw)
    local[:, 0, 0], local[:, 0, 1], local[:, 1, 0], local[:, 1, 1] = c, -s, s, c
    local[:, 0, 3], local[:, 1, 3] = -back, side
    return np.asarray(world_from_ego, np.float64)[None] @ local


def colors_from_views(points: np.ndarray, images: np.ndarray, viewmats: np.ndarray, Ks: np.ndarray,
                      default: float = 0.5) -> np.ndarray:
    """Colour of each point: the mean of the pixels it projects to (in front of the camera, inside the image)
    over all views, ``default`` grey where no view sees it. Occlusion is ignored.

    Args:
        points: ``[P, 3]`` m, world. images: ``[V, H, W, 3]`` in [0, 1]. viewmats: ``[V, 4, 4]`` cam_from_world.
        Ks: ``[V, 3, 3]`` px.
    Returns:
        ``[P, 3]`` float64 RGB.
    """
    pts = np.asarray(points, np.float64)
    v, h, w = images.shape[:3]
    cam = np.einsum("vij,pj->vpi", viewmats[:, :3, :3].astype(np.float64), pts) + viewmats[:, None, :3, 3]
    z = cam[..., 2]
    zs = np.where(z > 0.1, z, 1.0)
    u = Ks[:, None, 0, 0] * cam[..., 0] / zs + Ks[:, None, 0, 2]
    vv = Ks[:, None, 1, 1] * cam[..., 1] / zs + Ks[:, None, 1, 2]
    col, row = np.floor(u).astype(np.int64), np.floor(vv).astype(np.int64)
    seen = (z > 0.1) & (col >= 0) & (col < w) & (row >= 0) & (row < h)  # [V, P]
    view = np.broadcast_to(np.arange(v)[:, None], seen.shape)
    rgb = images[view, np.clip(row, 0, h - 1), np.clip(col, 0, w - 1)].astype(np.float64)  # [V, P, 3]
    total = (rgb * seen[..., None]).sum(0)
    count = seen.sum(0)[:, None]
    return np.where(count > 0, total / np.maximum(count, 1), default)


def _region(scene: Any, t: int, ahead_m: tuple[float, float], half_width_m: float, max_gaussians: int,
            rng: np.random.Generator) -> tuple[GaussianScene, np.ndarray]:
    gs, pose = scene.frame(t)
    ego = (gs.means.astype(np.float64) - pose[:3, 3]) @ pose[:3, :3]  # ego frame: x forward, y left
    keep = (ego[:, 0] >= ahead_m[0]) & (ego[:, 0] <= ahead_m[1]) & (np.abs(ego[:, 1]) <= half_width_m)
    idx = np.flatnonzero(keep)
    if len(idx) < 10:
        raise ScenarioValidationError(f"fit_demo: expected Gaussians {ahead_m} m ahead of the ego at t={t}, found "
                                      f"{len(idx)}; pick another t or widen ahead_m / half_width_m")
    if len(idx) > max_gaussians:
        idx = np.sort(rng.choice(idx, max_gaussians, replace=False))
    mask = np.zeros(gs.num_gaussians, bool)
    mask[idx] = True
    sub = gs.select(mask)
    return GaussianScene(sub.means, sub.quats, sub.scales, sub.opacities, sub.sh), pose


def fit_demo(scene: Any, *, t: int | None = None, ahead_m: tuple[float, float] = (2.0, 30.0),
             half_width_m: float = 15.0, max_gaussians: int = 20_000, num_train: int = 10, num_heldout: int = 4,
             width: int = 160, height: int = 90, steps: int = 300, init_fraction: float = 0.5,
             jitter_m: float = 0.05, init_colors: str = "views", config: FitConfig | None = None,
             seed: int = 0) -> FitDemoResult:
    """Refit the region ahead of the ego from rendered views; see the module doc.

    Args:
        scene: a ScenarioScene (``build_scene(scenario)``) or anything with ``.frame(t)``.
        t: step whose frame is used (default: the scenario's t0).
        ahead_m, half_width_m: the box in the ego frame, m. max_gaussians: ground-truth size cap.
        num_train, num_heldout: views; width, height: image size, px (front camera, 64° horizontal FOV).
        steps: optimisation steps (overrides ``config.steps``).
        init_fraction: share of the ground-truth means used as seed points. jitter_m: their position noise, m.
        init_colors: "views" (projected pixel colours of the training images) or "grey".
        config: fitting hyper-parameters; default: :class:`FitConfig` (SH degree 0) with densification every
            50 steps from step 50 until 40 steps before the end.
        seed: seeds the region subsample, the poses, the seed points and the fit.
    """
    if init_colors not in ("views", "grey"):
        raise ScenarioValidationError(f"fit_demo: init_colors: expected 'views' or 'grey', received {init_colors!r}")
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    t = int(getattr(getattr(scene, "scenario", None), "t0", 0) if t is None else t)
    target, pose = _region(scene, t, ahead_m, half_width_m, max_gaussians, rng)
    rig = default_rig(width=width, height=height, names=("CAM_F0",))
    train_vm, train_k = views_of(rig, jittered_poses(pose, num_train, rng))
    held_vm, held_k = views_of(rig, jittered_poses(pose, num_heldout, rng))
    default = FitConfig(densify=True, refine_start=50, refine_every=50, refine_stop=max(steps - 40, 0),
                        log_every=max(steps // 6, 1))
    cfg = replace(config or default, steps=steps, seed=seed)
    train_img = render_views(target, train_vm, train_k, width, height, background=cfg.background,
                             rasterize_mode=cfg.rasterize_mode, backend=cfg.backend)
    held_img = render_views(target, held_vm, held_k, width, height, background=cfg.background,
                            rasterize_mode=cfg.rasterize_mode, backend=cfg.backend)
    n_init = max(2, int(round(init_fraction * target.num_gaussians)))
    pick = np.sort(rng.choice(target.num_gaussians, n_init, replace=False))
    points = target.means[pick].astype(np.float64) + rng.normal(0.0, jitter_m, (n_init, 3))
    rgb = colors_from_views(points, train_img, train_vm, train_k) if init_colors == "views" else None
    init = params_from_points(points, rgb, sh_degree=cfg.sh_degree, opacity=cfg.init_opacity,
                              num_neighbors=cfg.init_neighbors)
    init_scene = params_to_scene(init)

    def score(s: GaussianScene) -> tuple[float, float, np.ndarray]:
        kw = dict(background=cfg.background, rasterize_mode=cfg.rasterize_mode, backend=cfg.backend)
        held = render_views(s, held_vm, held_k, width, height, **kw)
        return psnr(render_views(s, train_vm, train_k, width, height, **kw), train_img), psnr(held, held_img), held

    tr0, he0, _ = score(init_scene)
    result = fit(train_img, train_vm, train_k, init, cfg)
    tr1, he1, held_render = score(result.scene)
    out = FitDemoResult(fit=result, target=target, train_psnr_init=tr0, train_psnr=tr1, heldout_psnr_init=he0,
                        heldout_psnr=he1, heldout_images=held_img, heldout_renders=held_render, num_train=num_train,
                        num_heldout=num_heldout, width=width, height=height, num_target=target.num_gaussians,
                        num_init=n_init, seconds_fit=result.seconds, seconds_total=time.perf_counter() - start)
    log.info("fit_demo: %s", out.summary())
    return out
