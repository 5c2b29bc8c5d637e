"""``bench render``: frames per second of :func:`worldengine_lab.scene.render` (RGB + expected depth, no grad).

The scene (:func:`street_scene`, seeded) is a synthetic street seen from a car: 100k Gaussians, of which 60 %
lie on a road / pavement band 40 m wide from 2 m to 100 m ahead of the ego (flat discs, σ 0.05–0.5 m along the
ground and 0.02 m thick), 25 % on two building façades 12 m left and right of the centre line (up to 8 m high)
and 15 % on the surfaces of 12 vehicle-sized boxes (4.5 × 1.9 × 1.6 m) parked and driving ahead; opacities are
uniform in [0.1, 1], rotations are random about the surface normal, colours are degree-3 SH. The camera is a
forward camera 1.6 m above the ground, 1.5 m ahead of the rear axle, with nuPlan's CAM_F0 intrinsics
(fx = 1545 px at 1920 × 1080, a 64° horizontal field of view) scaled to each resolution; most Gaussians project
into the image, the upper third of the frame is sky (no Gaussians).

Figures: ``cpu_fps_320x180_100k`` and ``cpu_fps_960x540_100k`` (torch_ref on the CPU, antialiased), and, when
CUDA and gsplat are available, ``gpu_fps_1920x1080_1m`` (gsplat, the same street with 1M Gaussians).
Each figure is the best of a few timed repeats after one warm-up frame (wall clock, one whole ``render`` call:
numpy -> torch, SH colours, rasterization, background blend, numpy out). ``cpu_fps_320x180_100k_1thread`` is
the same frame with torch limited to one thread, and ``load_avg_1m`` the machine's load when the run started:
on a shared machine, several intra-op threads can be much slower than one.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

__all__ = ["bench_render", "street_scene", "street_rig"]

log = logging.getLogger(__name__)


def _surface(rng: np.random.Generator, n: int, centre: np.ndarray, axes: np.ndarray, half: np.ndarray,
             normal_axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n flat Gaussians on a box face: means [n,3] m, quats [n,4] wxyz, scales [n,3] m (thin along the normal)."""
    uv = rng.uniform(-1.0, 1.0, (n, 3)) * half
    uv[:, normal_axis] = half[normal_axis]
    means = centre + uv @ axes.T
    scales = rng.uniform(0.05, 0.5, (n, 3))
    scales[:, normal_axis] = 0.02
    # random in-plane rotation: about the surface normal (a world axis here)
    angle = rng.uniform(-np.pi, np.pi, n) / 2
    quats = np.zeros((n, 4))
    quats[:, 0] = np.cos(angle)
    quats[:, 1 + normal_axis] = np.sin(angle)
    return means, quats, scales


def street_scene(num_gaussians: int = 100_000, seed: int = 0):
    """The benchmark street (module docstring) as a :class:`~worldengine_lab.datatypes.GaussianScene`."""
    from ..datatypes import GaussianScene

    rng = np.random.default_rng(seed)
    n_ground, n_facade = int(0.60 * num_gaussians), int(0.25 * num_gaussians)
    n_boxes = num_gaussians - n_ground - n_facade
    eye = np.eye(3)
    parts = [_surface(rng, n_ground, np.array([51.0, 0.0, -0.02]), eye, np.array([49.0, 20.0, 0.02]), 2)]
    half = n_facade // 2
    for side, count in ((1.0, half), (-1.0, n_facade - half)):
        parts.append(_surface(rng, count, np.array([51.0, side * 12.0, 4.0]), eye, np.array([49.0, 0.0, 4.0]), 1))
    boxes = [(rng.uniform(6.0, 60.0), rng.choice([-7.5, -3.5, 0.0, 3.5, 7.5])) for _ in range(12)]
    per_box = np.diff(np.linspace(0, n_boxes, len(boxes) + 1).astype(int))
    for (bx, by), count in zip(boxes, per_box):
        size = np.array([2.25, 0.95, 0.8])
        faces = rng.integers(0, 5, count)  # 4 sides + roof
        for face in range(5):
            k = int((faces == face).sum())
            axis, sign = [(0, -1.0), (0, 1.0), (1, -1.0), (1, 1.0), (2, 1.0)][face]
            flip = np.diag([sign if i == axis else 1.0 for i in range(3)])
            m, q, s = _surface(rng, k, np.array([bx, by, 0.8]), flip, size, axis)
            parts.append((m, q, s))
    means = np.concatenate([p[0] for p in parts]).astype(np.float32)
    quats = np.concatenate([p[1] for p in parts]).astype(np.float32)
    scales = np.concatenate([p[2] for p in parts]).astype(np.float32)
    g = means.shape[0]
    opac = rng.uniform(0.1, 1.0, g).astype(np.float32)
    sh = np.zeros((g, 16, 3), np.float32)
    sh[:, 0] = rng.uniform(-1.5, 1.5, (g, 3))  # base colour
    sh[:, 1:] = 0.05 * rng.standard_normal((g, 15, 3))  # mild view dependence
    return GaussianScene(means, quats, scales, opac, sh)


def street_rig(width: int = 1920, height: int = 1080):
    """One forward camera (CAM_F0-like) 1.6 m above the ground, scaled from 1920 x 1080 to ``width`` x ``height``."""
    from ..datatypes import CameraRig

    ego_from_cam = np.eye(4)
    ego_from_cam[:3, :3] = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # OpenCV -> ego axes
    ego_from_cam[:3, 3] = (1.5, 0.0, 1.6)
    K = np.array([[1545.0, 0.0, 960.0], [0.0, 1545.0, 560.0], [0.0, 0.0, 1.0]], np.float32)
    rig = CameraRig(np.array(["CAM_F0"]), ego_from_cam[None], K[None], 1920, 1080)
    return rig if (width, height) == (1920, 1080) else rig.scaled(width / 1920.0)


def _fps(scene, rig, backend: str, repeats: int) -> float:
    from ..scene import render

    pose = np.eye(4)
    render(scene, rig, world_from_ego=pose, backend=backend)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        render(scene, rig, world_from_ego=pose, backend=backend)
        if backend == "gsplat":
            import torch

            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 1.0 / best


def bench_render(quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Render the street scene; returns frames per second per resolution and backend."""
    import torch

    from ..scene.backends import gsplat_available

    reps = repeats or (2 if quick else 5)
    scene = street_scene(100_000, seed=0)
    out: dict[str, Any] = {"num_gaussians": scene.num_gaussians, "rasterize_mode": "antialiased",
                           "render_mode": "RGB+ED", "load_avg_1m": round(os.getloadavg()[0], 2)}
    for width, height in ((320, 180), (960, 540)):
        fps = _fps(scene, street_rig(width, height), "torch_ref", reps if width == 320 else max(1, reps // 2))
        out[f"cpu_fps_{width}x{height}_100k"] = round(fps, 2)
        log.info("torch_ref %dx%d: %.2f frames/s", width, height, fps)
    threads = torch.get_num_threads()
    if threads > 1:  # the same frame on one intra-op thread (robust to other load on the machine)
        torch.set_num_threads(1)
        try:
            out["cpu_fps_320x180_100k_1thread"] = round(_fps(scene, street_rig(320, 180), "torch_ref", reps), 2)
        finally:
            torch.set_num_threads(threads)
    if gsplat_available():
        big = street_scene(1_000_000, seed=0)
        out["gpu_fps_1920x1080_1m"] = round(_fps(big, street_rig(), "gsplat", reps), 2)
    return out
