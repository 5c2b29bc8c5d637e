"""Gaussian scenes: io, composition of actors per frame, and rendering (gsplat on CUDA, torch on CPU).

Names are imported lazily, so ``import worldengine_lab.scene`` stays light (no torch until a renderer is used).
"""
from __future__ import annotations

import importlib
from typing import Any

# ``render`` is both a submodule and a function: bind the function eagerly (render.py imports only numpy and
# the datatypes at module level; torch is imported inside the call).
from .render import RenderResult, render

# public name -> submodule that defines it (the fitting function is exported as ``fit_gaussians``: ``fit`` is the
# submodule's name)
_LAZY: dict[str, str] = {
    "FitConfig": "fit", "FitResult": "fit", "ssim": "fit", "psnr": "fit", "render_views": "fit", "views_of": "fit",
    "params_from_points": "fit", "params_from_scene": "fit", "params_to_scene": "fit", "scene_scale_of": "fit",
    "fit_demo": "fit_demo", "FitDemoResult": "fit_demo",
    "rasterize": "render_torch",
    "available_backends": "backends",
    "resolve_backend": "backends",
    "gsplat_available": "backends",
    "sh_to_color": "sh",
    "eval_sh": "sh",
    "ScenarioScene": "compose",
    "GroundHeight": "compose",
    "PoseLog": "compose",
    "actor_to_world": "compose",
    "mirror_gaussians": "compose",
    "interpolate_log_poses": "compose",
    "quat_multiply": "compose",
    "quat_slerp": "compose",
    "quat_to_matrix": "compose",
    "quat_from_matrix": "compose",
    "quat_from_yaw": "compose",
    "quat_yaw": "compose",
    "MIRROR_SH_BASES": "compose",
    "SENTINEL_Z_M": "compose",
    "read_ply": "ply",
    "read_ply_raw": "ply",
    "write_ply": "ply",
    "PlyGaussians": "ply",
    "load_mtgs_asset": "mtgs",
    "write_mtgs_asset": "mtgs",
    "MTGSAsset": "mtgs",
    "MTGSSubAsset": "mtgs",
    "build_scene": "procedural",
    "build_actor_models": "procedural",
    "ProceduralConfig": "procedural",
    "build_lidar_background": "lidar",
    "build_av2_scene": "lidar",
    "read_lidar_sweeps": "lidar",
    "av2_ground": "lidar",
    "av2_ego_log": "lidar",
    "nuplan_rig": "rigs",
    "av2_rig": "rigs",
    "default_rig": "rigs",
}

__all__ = sorted([*_LAZY, "render", "RenderResult", "fit_gaussians"])


def __getattr__(name: str) -> Any:
    if name == "fit_gaussians":
        value = importlib.import_module(".fit", __name__).fit
        globals()[name] = value
        return value
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
