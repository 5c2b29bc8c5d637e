"""CameraRig: cameras mounted on the ego (extrinsics in the ego frame, pinhole intrinsics)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ScenarioValidationError
from ._checks import check_array, freeze

__all__ = ["CameraRig", "cam_from_world"]


def cam_from_world(world_from_cam: np.ndarray) -> np.ndarray:
    """Invert rigid poses analytically: ``[..., 4, 4]`` world_from_cam -> cam_from_world (gsplat's viewmat).

    Computed in float64 ([R | t] -> [Rᵀ | −Rᵀ t]); never a general matrix inverse.
    """
    pose = np.asarray(world_from_cam, np.float64)
    r, t = pose[..., :3, :3], pose[..., :3, 3]
    out = np.zeros(pose.shape, np.float64)
    rt = np.swapaxes(r, -1, -2)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rt, t)
    out[..., 3, 3] = 1.0
    return out


@dataclass(frozen=True, eq=False)
class CameraRig:
    """C pinhole cameras rigidly mounted on the ego.

    Frames: the ego frame is nuPlan's (x forward, y left, z up, origin at the rear-axle centre on the ground);
    cameras follow OpenCV (x right, y down, z forward). Images are ``width`` x ``height`` pixels, pixel (0, 0)'s
    top-left corner at (0, 0) so its centre is at (0.5, 0.5) (gsplat's convention).

    Attributes:
        names: ``[C]`` str, channel names (``CAM_F0`` ...).
        ego_from_cam: ``[C, 4, 4]`` float64, rigid transforms camera -> ego.
        Ks: ``[C, 3, 3]`` float32, pinhole intrinsics in pixels for ``width`` x ``height``.
        width: image width, pixels.
        height: image height, pixels.
        distortion: ``[C, 5]`` float32, OpenCV (k1, k2, p1, p2, k3); informative, renders are undistorted.
    """

    names: np.ndarray  # [C] str
    ego_from_cam: np.ndarray  # [C, 4, 4] float64
    Ks: np.ndarray  # [C, 3, 3] float32
    width: int
    height: int
    distortion: np.ndarray | None = None  # [C, 5] float32

    def __post_init__(self) -> None:
        if self.distortion is None:
            object.__setattr__(self, "distortion", np.zeros((self.names.shape[0], 5), np.float32))
        self.validate()
        freeze(self.names, self.ego_from_cam, self.Ks, self.distortion)

    @property
    def num_cameras(self) -> int:
        """C."""
        return int(self.names.shape[0])

    def validate(self) -> None:
        """Check shapes, finiteness, rigid extrinsics and positive image size."""
        o = "CameraRig"
        d: dict[str, int] = {}
        check_array(o, "names", self.names, ("C",), "UO", d)
        check_array(o, "ego_from_cam", self.ego_from_cam, ("C", 4, 4), "f", d, finite=True)
        check_array(o, "Ks", self.Ks, ("C", 3, 3), "f", d, finite=True)
        check_array(o, "distortion", self.distortion, ("C", 5), "f", d, finite=True)
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ScenarioValidationError(f"{o}: expected a positive image size, received {self.width}x{self.height}")
        r = self.ego_from_cam[:, :3, :3]
        err = np.abs(np.einsum("cji,cjk->cik", r, r) - np.eye(3)).max() if len(r) else 0.0
        if err > 1e-4:
            raise ScenarioValidationError(f"{o}.ego_from_cam: expected rotations (RᵀR = I), received an error of "
                                          f"{err:.2g}; orthonormalise the calibration")
        if (self.Ks[:, 0, 0] <= 0).any() or (self.Ks[:, 1, 1] <= 0).any():
            raise ScenarioValidationError(f"{o}.Ks: expected positive focal lengths fx, fy")

    def viewmats(self, world_from_ego: np.ndarray) -> np.ndarray:
        """Return gsplat viewmats ``[C, 4, 4]`` float32 (cam_from_world) for one ego pose ``[4, 4]`` (float64)."""
        world_from_cam = np.asarray(world_from_ego, np.float64)[None] @ self.ego_from_cam
        return cam_from_world(world_from_cam).astype(np.float32)

    def select(self, names: "list[str] | tuple[str, ...]") -> "CameraRig":
        """Return the cameras named in ``names``, in that order; unknown names raise with the valid ones."""
        index = {str(n): i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ScenarioValidationError(f"CameraRig.select: unknown camera(s) {missing}; this rig has "
                                          f"{list(index)}")
        idx = np.array([index[n] for n in names], int)
        return CameraRig(self.names[idx].copy(), self.ego_from_cam[idx].copy(), self.Ks[idx].copy(),
                         self.width, self.height, self.distortion[idx].copy())

    def scaled(self, factor: float) -> "CameraRig":
        """Return the rig at ``factor`` times the resolution (fx, fy, cx, cy and the size scaled alike)."""
        if factor <= 0:
            raise ScenarioValidationError(f"CameraRig.scaled: expected factor > 0, received {factor}")
        ks = self.Ks.astype(np.float64).copy()
        ks[:, :2, :] *= factor
        return CameraRig(self.names.copy(), self.ego_from_cam.copy(), ks.astype(np.float32),
                         max(1, int(round(self.width * factor))), max(1, int(round(self.height * factor))),
                         self.distortion.copy())
