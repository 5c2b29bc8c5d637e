"""Camera rigs: nuPlan's camera table, Argoverse 2 calibration, and a default 8-camera roof rig.

Every rig is a :class:`CameraRig` in the nuPlan ego frame (x forward, y left, z up, origin at the rear-axle
centre) with OpenCV cameras (x right, y down, z forward); ``ego_from_cam`` maps camera points into the ego
frame. AV2's ego frame has the same axes and origin (rear axle), so its calibration is used as is.

Examples:
    >>> rig = default_rig(width=320, height=180)
    >>> rig.names.tolist()[:3], rig.width, rig.height
    (['CAM_F0', 'CAM_L0', 'CAM_L1'], 320, 180)
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..datatypes import CameraRig
from ..errors import DataFormatError, EmptyLogError, MissingFileError
from .compose import quat_to_matrix

__all__ = ["nuplan_rig", "av2_rig", "default_rig", "NUPLAN_CHANNELS", "DEFAULT_YAW_DEG", "AV2_RING_CAMERAS",
           "cam_axes_from_yaw"]

log = logging.getLogger(__name__)

NUPLAN_CHANNELS = ("CAM_F0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2", "CAM_B0")
"""nuPlan's eight camera channels, in the order the rigs list them."""
DEFAULT_YAW_DEG = {"CAM_F0": 0.0, "CAM_L0": 55.0, "CAM_L1": 90.0, "CAM_L2": 125.0,
                   "CAM_R0": -55.0, "CAM_R1": -90.0, "CAM_R2": -125.0, "CAM_B0": 180.0}
"""Yaw (deg, CCW from the ego's +x, left positive) of each default camera; the embedded world uses the same."""
AV2_RING_CAMERAS = ("ring_front_center", "ring_front_left", "ring_side_left", "ring_rear_left",
                    "ring_front_right", "ring_side_right", "ring_rear_right")
"""AV2's seven ring cameras, ordered front, left side front to back, right side front to back."""


def cam_axes_from_yaw(yaw_rad: np.ndarray | float, pitch_rad: float = 0.0) -> np.ndarray:
    """Rotations ego_from_cam ``[..., 3, 3]`` of OpenCV cameras looking along ``yaw`` (CCW, rad), tilted down by
    ``pitch_rad``: columns are the camera's x (right), y (down), z (forward) axes in the ego frame."""
    a = np.asarray(yaw_rad, np.float64)
    cp, sp = np.cos(pitch_rad), np.sin(pitch_rad)
    fwd = np.stack([np.cos(a) * cp, np.sin(a) * cp, np.full_like(a, -sp)], -1)
    right = np.stack([np.sin(a), -np.cos(a), np.zeros_like(a)], -1)
    down = np.cross(fwd, right)
    return np.stack([right, down, fwd], -1)


def default_rig(width: int = 1920, height: int = 1080, *, fov_deg: float = 64.0, height_m: float = 1.6,
                names: Sequence[str] = NUPLAN_CHANNELS) -> CameraRig:
    """Eight nuPlan-like roof cameras for scenarios without calibration.

    Cameras look level along :data:`DEFAULT_YAW_DEG` (front 0°, L0/R0 ±55°, L1/R1 ±90°, L2/R2 ±125°, back
    180°), mounted ``height_m`` above the ground on a 0.6 x 1.2 m ellipse centred 1.5 m ahead of the rear axle.
    Pinhole with horizontal field of view ``fov_deg`` (nuPlan's f = 1545 px at 1920 px is about 64°), square
    pixels, principal point at the image centre, no distortion.

    Args:
        width, height: image size, px. fov_deg: horizontal field of view, deg. height_m: camera height, m.
        names: subset/order of :data:`NUPLAN_CHANNELS`.
    """
    yaw = np.deg2rad([DEFAULT_YAW_DEG[n] for n in names])
    pose = np.tile(np.eye(4), (len(names), 1, 1))
    pose[:, :3, :3] = cam_axes_from_yaw(yaw)
    pose[:, :3, 3] = np.stack([1.5 + 1.2 * np.cos(yaw), 0.6 * np.sin(yaw), np.full_like(yaw, height_m)], -1)
    f = 0.5 * width / np.tan(0.5 * np.deg2rad(fov_deg))
    k = np.array([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]], np.float32)
    return CameraRig(np.array(list(names)), pose, np.tile(k, (len(names), 1, 1)), int(width), int(height))


def _channel_order(names: Sequence[str]) -> list[int]:
    rank = {n: i for i, n in enumerate(NUPLAN_CHANNELS)}
    return sorted(range(len(names)), key=lambda i: (rank.get(names[i], len(rank)), names[i]))


def nuplan_rig(db: Any, *, channels: Sequence[str] | None = None) -> CameraRig:
    """The camera rig of a nuPlan log from its ``camera`` table (spec data-formats §1.3, gaussian-splatting §2).

    ``translation`` (m, ego frame) and ``rotation`` (w, x, y, z) are camera->ego in the OpenCV convention,
    used without axis flips; ``intrinsic`` is K; ``distortion`` is (k1, k2, p1, p2, k3).

    Args:
        db: a ``.db`` path, a :class:`~worldengine_lab.logs.nuplan.db.NuPlanDB`, or a ``NuPlanLog`` (its ``.db``).
        channels: keep these channels, in this order (default: every channel, nuPlan order).
    Raises:
        EmptyLogError: the table has no rows. DataFormatError: malformed values or different image sizes.
    """
    from ..logs.nuplan.db import NuPlanDB

    src = db.db if hasattr(db, "db") and isinstance(db.db, NuPlanDB) else db
    src = src if isinstance(src, NuPlanDB) else NuPlanDB(Path(src))
    df = src.cameras()
    where = f"{src.path}: camera table"
    if df.empty:
        raise EmptyLogError(f"{where} is empty; the log has no camera calibration — use default_rig() instead")
    names = [str(c) for c in df["channel"]]
    order = _channel_order(names)
    if channels is not None:
        missing = [c for c in channels if c not in names]
        if missing:
            raise DataFormatError(f"{where}: channels {missing} not found; the log has {sorted(names)}")
        order = [names.index(c) for c in channels]
    try:
        t = np.stack([np.asarray(df["translation"].iat[i], np.float64).reshape(3) for i in order])
        q = np.stack([np.asarray(df["rotation"].iat[i], np.float64).reshape(4) for i in order])
        k = np.stack([np.asarray(df["intrinsic"].iat[i], np.float64).reshape(3, 3) for i in order])
        dist = np.zeros((len(order), 5))
        for row, i in enumerate(order):  # ragged lists (length 5 in nuPlan); at most 8 rows
            d = np.asarray(df["distortion"].iat[i], np.float64).reshape(-1)[:5]
            dist[row, :len(d)] = d
    except ValueError as exc:
        raise DataFormatError(f"{where}: expected translation [3], rotation [4] (w, x, y, z), intrinsic 3x3 and a "
                              f"distortion list per row ({exc})") from exc
    sizes = {(int(df["width"].iat[i]), int(df["height"].iat[i])) for i in order}
    if len(sizes) != 1:
        raise DataFormatError(f"{where}: cameras have different image sizes {sorted(sizes)}; pass channels= with one size")
    (w, h), = sizes
    pose = np.tile(np.eye(4), (len(order), 1, 1))
    pose[:, :3, :3] = quat_to_matrix(q)
    pose[:, :3, 3] = t
    return CameraRig(np.array([names[i] for i in order]), pose, k.astype(np.float32), w, h, dist.astype(np.float32))


def av2_rig(log_dir: str | Path, *, cameras: Sequence[str] = AV2_RING_CAMERAS,
            size: tuple[int, int] | None = None) -> CameraRig:
    """The camera rig of an AV2 sensor log from ``calibration/egovehicle_SE3_sensor.feather`` (ego_SE3_sensor:
    camera->ego, OpenCV axes) and ``calibration/intrinsics.feather`` (spec data-formats §2.5).

    A CameraRig has one image size; cameras calibrated at another size (the portrait 1550 x 2048 front centre
    camera among 2048 x 1550 ones) keep their focal length and are re-centred onto the common size: the
    principal point moves by half the size difference (the field of view changes, the geometry does not).
    Distortion is (k1, k2, 0, 0, k3).

    Args:
        log_dir: the log folder. cameras: sensor names, in rig order (default: the seven ring cameras).
        size: ``(width, height)`` px of the rig; default the most common calibrated size.
    Raises:
        MissingFileError: no calibration files. DataFormatError: a camera is missing from a table.
    """
    from ..logs.av2._io import column, read_feather

    cal = Path(log_dir) / "calibration"
    ext_path, int_path = cal / "egovehicle_SE3_sensor.feather", cal / "intrinsics.feather"
    for p in (ext_path, int_path):
        if not p.is_file():
            raise MissingFileError(f"{p}: AV2 calibration file not found; this log has no camera calibration "
                                   "(use default_rig() instead)")
    ext = read_feather(ext_path, ["sensor_name", "qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m"], what="extrinsics")
    intr = read_feather(int_path, ["sensor_name", "fx_px", "fy_px", "cx_px", "cy_px", "k1", "k2", "k3", "width_px",
                                   "height_px"], what="intrinsics")
    e_names, i_names = column(ext, "sensor_name").astype(str).tolist(), column(intr, "sensor_name").astype(str).tolist()
    for table, have in (("egovehicle_SE3_sensor", e_names), ("intrinsics", i_names)):
        missing = [c for c in cameras if c not in have]
        if missing:
            raise DataFormatError(f"{cal}: cameras {missing} are not in {table}.feather (has {have}); pass cameras=")
    ei = np.array([e_names.index(c) for c in cameras])
    ii = np.array([i_names.index(c) for c in cameras])
    q = np.stack([column(ext, c, np.float64)[ei] for c in ("qw", "qx", "qy", "qz")], -1)
    t = np.stack([column(ext, c, np.float64)[ei] for c in ("tx_m", "ty_m", "tz_m")], -1)
    g = {c: column(intr, c, np.float64)[ii] for c in ("fx_px", "fy_px", "cx_px", "cy_px", "k1", "k2", "k3",
                                                      "width_px", "height_px")}
    wh = list(zip(g["width_px"].astype(int).tolist(), g["height_px"].astype(int).tolist()))
    w, h = size if size is not None else Counter(wh).most_common(1)[0][0]
    k = np.zeros((len(cameras), 3, 3))
    k[:, 0, 0], k[:, 1, 1], k[:, 2, 2] = g["fx_px"], g["fy_px"], 1.0
    k[:, 0, 2] = g["cx_px"] + 0.5 * (w - g["width_px"])
    k[:, 1, 2] = g["cy_px"] + 0.5 * (h - g["height_px"])
    moved = [c for c, s in zip(cameras, wh) if s != (w, h)]
    if moved:
        log.info("av2_rig: cameras %s re-centred from their calibrated size onto %dx%d", moved, w, h)
    pose = np.tile(np.eye(4), (len(cameras), 1, 1))
    pose[:, :3, :3] = quat_to_matrix(q)
    pose[:, :3, 3] = t
    dist = np.stack([g["k1"], g["k2"], np.zeros(len(cameras)), np.zeros(len(cameras)), g["k3"]], -1)
    return CameraRig(np.array(list(cameras)), pose, k.astype(np.float32), int(w), int(h), dist.astype(np.float32))
