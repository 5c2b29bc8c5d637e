"""``render(scene, rig, t)``: one call from a Gaussian scene and a camera rig to RGB, depth and alpha images.

The colour and render settings follow WorldEngine / MTGS (spec ``gaussian-splatting.md`` §7.5–7.6): per camera,
each Gaussian's colour is its SH evaluated along (mean − camera centre), plus 0.5, clamped to [0, 1]; the
rasterizer runs in ``"antialiased"`` mode with ``eps2d=0.3``, ``near_plane=0.01``, ``tile_size=16``, no
background; the background is blended afterwards (rgb = clamp(render + (1 − alpha)·bg, 0, 1)) and depth is the
expected camera z (``"RGB+ED"``), filled with the image's farthest depth where nothing was hit.

Examples:
    >>> import numpy as np
    >>> from worldengine_lab.datatypes import CameraRig, GaussianScene
    >>> scene = GaussianScene(np.array([[5.0, 0, 1.5]], np.float32), np.array([[1.0, 0, 0, 0]], np.float32),
    ...                       np.full((1, 3), 0.2, np.float32), np.array([0.9], np.float32),
    ...                       np.zeros((1, 1, 3), np.float32))
    >>> cam = np.eye(4); cam[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]; cam[2, 3] = 1.5
    >>> rig = CameraRig(np.array(["CAM_F0"]), cam[None], np.array([[[20.0, 0, 16], [0, 20, 12], [0, 0, 1]]],
    ...                 np.float32), 32, 24)
    >>> out = render(scene, rig, world_from_ego=np.eye(4), backend="torch_ref")
    >>> out.rgb.shape, round(float(out.depth[0, 12, 16]), 3)
    ((1, 24, 32, 3), 5.0)
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from ..datatypes import CameraRig, GaussianScene
from ..errors import BackendUnavailableError, ScenarioValidationError, ShapeError
from .backends import rasterizer, resolve_backend

__all__ = ["RenderResult", "render", "FrameSource"]

log = logging.getLogger(__name__)

_TORCH_TILE_SIZE = 8
"""Tile edge (px) used by the torch renderer here: smaller tiles waste fewer pixel tests per Gaussian."""


class FrameSource(Protocol):
    """Anything that poses a scene at a time index (e.g. ``ScenarioScene``)."""

    def frame(self, t: int) -> tuple[GaussianScene, np.ndarray]:
        """Return the Gaussians in the scenario frame at step t and world_from_ego ``[4, 4]`` float64."""
        ...


@dataclass(frozen=True, eq=False)
class RenderResult:
    """Images of one frame from every camera of a rig.

    Attributes:
        rgb: ``[C, H, W, 3]`` float32 in [0, 1], linear RGB with the background blended in.
        depth: ``[C, H, W]`` float32, m, expected camera z (Σ w·z / alpha); the image's farthest depth where
            alpha is 0; None when rendered with ``depth=False``.
        alpha: ``[C, H, W]`` float32 in [0, 1], accumulated opacity (1 − final transmittance).
        camera_names: ``[C]`` channel names, in the rig's order.
        backend: the rasterizer that ran: "gsplat" or "torch_ref".
        t: the time index that was rendered.
    """

    rgb: np.ndarray  # [C, H, W, 3] float32
    depth: np.ndarray | None  # [C, H, W] float32, m
    alpha: np.ndarray  # [C, H, W] float32
    camera_names: tuple[str, ...]
    backend: str
    t: int

    @property
    def num_cameras(self) -> int:
        """C."""
        return int(self.rgb.shape[0])

    def rgb_uint8(self) -> np.ndarray:
        """``[C, H, W, 3]`` uint8, floor(255·rgb) (WorldEngine's truncation; RGB order)."""
        return np.floor(255.0 * self.rgb).astype(np.uint8)

    def camera(self, name: str) -> int:
        """Index of camera ``name``; unknown names raise with the valid ones."""
        if name not in self.camera_names:
            raise ScenarioValidationError(f"RenderResult.camera: unknown camera {name!r}; rendered "
                                          f"{list(self.camera_names)}")
        return self.camera_names.index(name)


def _to_torch(a: np.ndarray, device: Any) -> Any:
    """numpy -> float32 torch tensor on ``device``, without copying read-only float32 arrays on the CPU."""
    import torch

    arr = np.ascontiguousarray(a, np.float32)
    with warnings.catch_warnings():  # frozen seam arrays are read-only; the renderer never writes its inputs
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(arr).to(device)


def _frame(scene: Any, t: int, world_from_ego: np.ndarray | None) -> tuple[GaussianScene, np.ndarray]:
    if isinstance(scene, GaussianScene):
        if world_from_ego is None:
            raise ScenarioValidationError(
                "render: a GaussianScene needs the ego pose; pass world_from_ego=[4, 4] (ego -> scenario frame), "
                "or pass an object with .frame(t) such as ScenarioScene")
        gs, pose = scene, world_from_ego
    elif hasattr(scene, "frame"):
        gs, pose = scene.frame(t)
        if world_from_ego is not None:  # explicit camera pose wins (free viewpoint)
            pose = world_from_ego
        if not isinstance(gs, GaussianScene):
            raise ScenarioValidationError(f"render: expected scene.frame(t) to return (GaussianScene, [4, 4]), "
                                          f"received {type(gs).__name__}")
    else:
        raise ScenarioValidationError(f"render: expected a GaussianScene or an object with .frame(t) (such as "
                                      f"ScenarioScene), received {type(scene).__name__}")
    pose = np.asarray(pose, np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise ShapeError(f"render: expected world_from_ego [4, 4] finite float64, received shape {pose.shape}")
    return gs, pose


def render(scene: GaussianScene | FrameSource, rig: CameraRig, t: int = 0, *, backend: str = "auto",
           background: Sequence[float] = (0.0, 0.0, 0.0), depth: bool = True,
           world_from_ego: np.ndarray | None = None, device: str | None = None,
           rasterize_mode: str = "antialiased", clamp_colors: bool = True) -> RenderResult:
    """Render every camera of ``rig`` at time index ``t``.

    Args:
        scene: an object with ``.frame(t) -> (GaussianScene, world_from_ego [4, 4])`` (``ScenarioScene``), or a
            ``GaussianScene`` already posed in the scenario frame (then ``world_from_ego`` is required).
        rig: cameras on the ego (extrinsics ego_from_cam, pinhole intrinsics, image size).
        t: time index passed to ``scene.frame``; recorded in the result.
        backend: "auto" (gsplat on CUDA when available, else torch_ref), "gsplat" or "torch_ref".
        background: RGB in [0, 1] blended where alpha < 1.
        depth: also render expected depth (camera z, m).
        world_from_ego: ``[4, 4]`` float64 ego (rear axle) pose in the scenario frame; overrides ``frame(t)``'s.
        device: torch device; default "cuda" for gsplat, "cpu" for torch_ref.
        rasterize_mode: "antialiased" (WorldEngine / MTGS) or "classic".
        clamp_colors: clamp SH colours to [0, 1] before rasterizing (WorldEngine); False keeps gsplat's max(0, ·).

    Returns:
        A :class:`RenderResult` with numpy arrays.

    Raises:
        BackendUnavailableError: ``backend="gsplat"`` without CUDA / gsplat.
        ScenarioValidationError, ShapeError: a scene without a pose, or inputs of the wrong shape.
    """
    import torch

    from .sh import sh_to_color

    gs, pose = _frame(scene, t, world_from_ego)
    name = resolve_backend(backend)
    dev = torch.device(device if device is not None else ("cuda" if name == "gsplat" else "cpu"))
    if name == "gsplat" and dev.type != "cuda":
        raise BackendUnavailableError(f"render: gsplat runs on CUDA tensors only, received device={device!r}; "
                                      "pass device='cuda' or backend='torch_ref'")
    bg = np.asarray(background, np.float32).reshape(-1)
    if bg.shape != (3,):
        raise ShapeError(f"render: expected background as 3 RGB values, received {np.shape(background)}")
    world_from_cam = pose[None] @ rig.ego_from_cam  # [C, 4, 4] float64
    means, quats, scales, opac, sh = (_to_torch(a, dev) for a in (gs.means, gs.quats, gs.scales, gs.opacities,
                                                                   gs.sh))
    viewmats, ks = _to_torch(rig.viewmats(pose), dev), _to_torch(rig.Ks, dev)
    campos = _to_torch(world_from_cam[:, :3, 3], dev)  # [C, 3] camera centres, scenario frame
    # tile size never changes the image (spec §3.6); 8 px tiles composite faster on a CPU
    extra = {"tile_size": 16} if name == "gsplat" else {"tile_size": _TORCH_TILE_SIZE, "isect_meta": False}
    with torch.no_grad():
        colors = sh_to_color(sh[None], means[None] - campos[:, None], clamp_max=1.0 if clamp_colors else None)
        out, alpha, _ = rasterizer(name)(
            means, quats, scales, opac, colors, viewmats, ks, int(rig.width), int(rig.height), near_plane=0.01,
            far_plane=1e10, radius_clip=0.0, eps2d=0.3, sh_degree=None, packed=False,
            render_mode="RGB+ED" if depth else "RGB", rasterize_mode=rasterize_mode, **extra)
        rgb = torch.clamp(out[..., :3] + (1.0 - alpha) * _to_torch(bg, dev), 0.0, 1.0)
        alpha = alpha[..., 0]
        dmap = None
        if depth:
            d = out[..., 3]
            far = d.reshape(d.shape[0], -1).amax(1)[:, None, None]
            dmap = torch.where(alpha > 0, d, far).cpu().numpy()
    return RenderResult(rgb=rgb.cpu().numpy(), depth=dmap, alpha=alpha.cpu().numpy(),
                        camera_names=tuple(str(n) for n in rig.names), backend=name, t=t)
