"""AV2 sensor-log tables: ego poses (``city_SE3_egovehicle.feather``) and cuboid annotations, and the
move of annotation boxes from the ego frame of their sweep into the city frame (spec §2.3, §2.4).

``city_SE3_object = city_SE3_ego(timestamp_ns) o ego_SE3_object``: the box centre is rotated by the ego
pose's full 3-D rotation and translated by its translation; the box yaw is the yaw of the composed
rotation. The pose at an annotation timestamp is the exact pose row when there is one (always, in real
logs); otherwise it is interpolated between the bracketing rows (translation linear, rotation slerp).

What is rejected, and how:

* pose table: no rows -> EmptyLogError; NaN/inf or a zero quaternion -> InvalidPoseError; timestamps
  not strictly increasing **in row order** (out-of-order or repeated rows) -> NonMonotonicTimestampsError.
* annotations: no rows other than ``EGO_VEHICLE`` -> EmptyLogError; NaN/inf box pose or size ->
  InvalidPoseError; the same ``track_uuid`` twice at one ``timestamp_ns`` (a track whose timestamps do not
  strictly increase) -> NonMonotonicTimestampsError. Row order itself is free: sweeps are the distinct
  sorted timestamps.
* an annotation timestamp outside the pose table's time span -> InvalidPoseError (no extrapolation).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DataFormatError, EmptyLogError, InvalidPoseError, NonMonotonicTimestampsError
from ._geometry import bracket, quat_multiply, quat_normalize, quat_slerp, quat_to_matrix, quat_yaw
from ._io import column, read_feather, require_file
from .categories import EGO_CATEGORY

__all__ = [
    "POSE_FILE",
    "ANNOTATION_FILES",
    "Poses",
    "Annotations",
    "read_poses",
    "read_annotations",
    "find_annotation_file",
    "poses_at",
    "boxes_to_city",
    "read_sensor_boxes",
]

log = logging.getLogger(__name__)

POSE_FILE = "city_SE3_egovehicle.feather"
ANNOTATION_FILES = ("annotations.feather", "annotations_with_ego.feather")

_QUAT = ["qw", "qx", "qy", "qz"]
_TRANS = ["tx_m", "ty_m", "tz_m"]
_SIZE = ["length_m", "width_m", "height_m"]
POSE_COLUMNS = ["timestamp_ns", *_QUAT, *_TRANS]
ANNOTATION_COLUMNS = ["timestamp_ns", "track_uuid", "category", *_SIZE, *_QUAT, *_TRANS]


@dataclass(frozen=True, eq=False)
class Poses:
    """``city_SE3_ego`` samples, sorted by time.

    Attributes:
        timestamp_ns: ``[P]`` int64, strictly increasing.
        q: ``[P, 4]`` float64 unit quaternions (w, x, y, z), ego -> city rotation.
        t: ``[P, 3]`` float64, m, rear-axle position in the city frame.
    """

    path: Path
    timestamp_ns: np.ndarray  # [P] int64
    q: np.ndarray  # [P, 4] float64
    t: np.ndarray  # [P, 3] float64, m, city


@dataclass(frozen=True, eq=False)
class Annotations:
    """Cuboid rows of one log (EGO_VEHICLE rows removed), in file order, still in the ego frame.

    Attributes:
        timestamp_ns: ``[R]`` int64 sweep time.
        track_uuid, category: ``[R]`` str.
        size_lwh: ``[R, 3]`` float64, m.
        q: ``[R, 4]`` float64 unit quaternions, ``ego_SE3_object`` rotation.
        t: ``[R, 3]`` float64, m, box centre in the ego frame of its sweep.
    """

    path: Path
    timestamp_ns: np.ndarray  # [R] int64
    track_uuid: np.ndarray  # [R] str
    category: np.ndarray  # [R] str
    size_lwh: np.ndarray  # [R, 3] float64, m
    q: np.ndarray  # [R, 4] float64
    t: np.ndarray  # [R, 3] float64, m, ego frame


def _int_timestamps(path: Path, table, name: str = "timestamp_ns") -> np.ndarray:
    ts = column(table, name)
    if ts.dtype.kind not in "iu":
        raise DataFormatError(
            f"{path}: column '{name}' must be int64 nanoseconds, received {ts.dtype}; re-export with integer ns"
        )
    return ts.astype(np.int64)


def _finite_rows(path: Path, values: np.ndarray, columns: list[str], ts: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        cols = [c for c, b in zip(columns, ~np.isfinite(values[first])) if b]
        raise InvalidPoseError(
            f"{path}: {int(bad.sum())} {what} row(s) hold NaN/inf in {columns}; first at row {first} "
            f"(timestamp_ns {int(ts[first])}, column(s) {cols}); repair or drop those rows"
        )


def _unit_quaternions(path: Path, q: np.ndarray, ts: np.ndarray, what: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        norm = np.linalg.norm(q, axis=1)
    bad = (norm < 1e-6) | ~np.isfinite(norm)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidPoseError(
            f"{path}: {int(bad.sum())} {what} row(s) have a zero or overflowing quaternion (qw, qx, qy, qz); "
            f"first at row {first} (timestamp_ns {int(ts[first])}, norm {norm[first]:g}); a rotation needs a unit "
            "quaternion"
        )
    return quat_normalize(q)


def read_poses(path: str | Path) -> Poses:
    """Read and check ``city_SE3_egovehicle.feather`` (see the module doc for what is rejected)."""
    path = require_file(
        Path(path), f"the ego pose table {POSE_FILE}",
        "an AV2 sensor log needs its ego poses to place the boxes in the city frame",
    )
    table = read_feather(path, POSE_COLUMNS, what="ego pose")
    ts = _int_timestamps(path, table)
    if len(ts) == 0:
        raise EmptyLogError(f"{path}: the ego pose table has no rows; the log is unusable without poses")
    q = np.stack([column(table, c, np.float64) for c in _QUAT], axis=1)
    t = np.stack([column(table, c, np.float64) for c in _TRANS], axis=1)
    _finite_rows(path, np.concatenate([q, t], axis=1), _QUAT + _TRANS, ts, "ego pose")
    steps = np.diff(ts)
    if (steps <= 0).any():
        row = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise NonMonotonicTimestampsError(
            f"{path}: column 'timestamp_ns' must strictly increase row by row, but row {row} "
            f"({int(ts[row])}) is not after row {row - 1} ({int(ts[row - 1])}); "
            f"{int((steps <= 0).sum())} such row(s); sort the table and drop duplicate timestamps"
        )
    return Poses(path=path, timestamp_ns=ts, q=_unit_quaternions(path, q, ts, "ego pose"), t=t)


def find_annotation_file(log_dir: Path) -> Path:
    """The log's annotation file: ``annotations.feather``, else ``annotations_with_ego.feather``."""
    for name in ANNOTATION_FILES:
        if (log_dir / name).is_file():
            return log_dir / name
    return require_file(
        log_dir / ANNOTATION_FILES[0], f"cuboid annotations ({' or '.join(ANNOTATION_FILES)})",
        "AV2 test-split logs carry no annotations; use a train/val log",
    )


def read_annotations(path: str | Path) -> Annotations:
    """Read and check an AV2 annotation file; ``EGO_VEHICLE`` rows are dropped (the ego comes from the
    pose table). ``num_interior_pts`` is not needed and may be absent."""
    path = require_file(Path(path), "an AV2 annotation file", "pass annotations.feather of a train/val log")
    table = read_feather(path, ANNOTATION_COLUMNS, optional=["num_interior_pts"], what="annotation")
    ts = _int_timestamps(path, table)
    uuid = column(table, "track_uuid")
    category = column(table, "category")
    if pd.isna(uuid).any() or pd.isna(category).any():
        raise DataFormatError(f"{path}: columns 'track_uuid' and 'category' must not be null; repair the file")
    uuid = uuid.astype(str)
    category = category.astype(str)
    keep = category != EGO_CATEGORY
    if not keep.all():
        log.debug("%s: dropped %d EGO_VEHICLE rows", path.name, int((~keep).sum()))
    if not keep.any():
        raise EmptyLogError(
            f"{path}: the annotation table has no object rows (received {len(ts)} rows, all EGO_VEHICLE or none); "
            "a scenario needs annotated objects"
        )
    ts, uuid, category = ts[keep], uuid[keep], category[keep]
    size = np.stack([column(table, c, np.float64)[keep] for c in _SIZE], axis=1)
    q = np.stack([column(table, c, np.float64)[keep] for c in _QUAT], axis=1)
    t = np.stack([column(table, c, np.float64)[keep] for c in _TRANS], axis=1)
    _finite_rows(path, np.concatenate([q, t, size], axis=1), _QUAT + _TRANS + _SIZE, ts, "annotation")
    if (size < 0).any():
        raise DataFormatError(f"{path}: columns {_SIZE} must be >= 0 m, received a negative extent")
    # a track seen twice at one sweep: its timestamps do not strictly increase
    _, codes = np.unique(uuid, return_inverse=True)
    order = np.lexsort((ts, codes))
    same = (np.diff(codes[order]) == 0) & (np.diff(ts[order]) == 0)
    if same.any():
        row = int(order[np.flatnonzero(same)[0]])
        raise NonMonotonicTimestampsError(
            f"{path}: each track's 'timestamp_ns' must strictly increase, but track_uuid {uuid[row]} appears "
            f"more than once at timestamp_ns {int(ts[row])} ({int(same.sum())} duplicate row(s) in all); drop the "
            "duplicated (track_uuid, timestamp_ns) rows"
        )
    return Annotations(path=path, timestamp_ns=ts, track_uuid=uuid, category=category, size_lwh=size,
                       q=_unit_quaternions(path, q, ts, "annotation"), t=t)


def poses_at(poses: Poses, query_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``city_SE3_ego`` at ``query_ns [Q]`` (int64 ns): exact rows where they exist, else interpolated.

    Returns:
        q: ``[Q, 4]`` float64 unit quaternions (slerp between the bracketing rows).
        t: ``[Q, 3]`` float64, m, city frame (linear between the bracketing rows).
    Raises InvalidPoseError if a query lies outside the pose table's time span.
    """
    query_ns = np.asarray(query_ns, np.int64)
    ts = poses.timestamp_ns
    outside = (query_ns < ts[0]) | (query_ns > ts[-1])
    if outside.any():
        raise InvalidPoseError(
            f"{poses.path}: no ego pose covers timestamp_ns {int(query_ns[outside][0])} ({int(outside.sum())} "
            f"timestamp(s) outside the pose table's span [{int(ts[0])}, {int(ts[-1])}]); the pose table is "
            "cut short, use the complete log"
        )
    if len(ts) == 1:
        return np.repeat(poses.q, len(query_ns), 0), np.repeat(poses.t, len(query_ns), 0)
    i0, w = bracket(ts, query_ns)
    q0, q1 = poses.q[i0], poses.q[i0 + 1]
    q = quat_slerp(q0, q1, w)
    q = np.where((w == 0)[:, None], q0, np.where((w == 1)[:, None], q1, q))  # exact rows stay bit-exact
    t = poses.t[i0] * (1.0 - w)[:, None] + poses.t[i0 + 1] * w[:, None]
    t = np.where((w == 0)[:, None], poses.t[i0], t)
    return q, t


def boxes_to_city(
    q_ego_obj: np.ndarray, t_ego_obj: np.ndarray, q_city_ego: np.ndarray, t_city_ego: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Move boxes from the ego frame into the city frame.

    Args:
        q_ego_obj: ``[R, 4]`` box rotations in the ego frame (w, x, y, z).
        t_ego_obj: ``[R, 3]`` m, box centres in the ego frame.
        q_city_ego, t_city_ego: ``[R, 4]``, ``[R, 3]`` m, the ego pose of each row's sweep.
    Returns:
        xyz: ``[R, 3]`` float64, m, box centres in the city frame.
        yaw: ``[R]`` float64, rad, box heading in the city frame (yaw of ``q_city_ego * q_ego_obj``).
    """
    rot = quat_to_matrix(q_city_ego)  # [R, 3, 3]
    xyz = np.einsum("rij,rj->ri", rot, t_ego_obj) + t_city_ego
    yaw = quat_yaw(quat_multiply(q_city_ego, q_ego_obj))
    return xyz, yaw


def read_sensor_boxes(log_dir: str | Path) -> pd.DataFrame:
    """All annotation rows of a sensor log, moved into the city frame (one row per box and sweep).

    Columns: ``timestamp_ns`` (int64), ``track_uuid``, ``category``, ``length_m``, ``width_m``, ``height_m``,
    ``x_m``, ``y_m``, ``z_m`` (box centre, city frame, m), ``yaw_rad`` (city frame, rad), in file order.
    """
    log_dir = Path(log_dir)
    poses = read_poses(log_dir / POSE_FILE)
    ann = read_annotations(find_annotation_file(log_dir))
    q_pose, t_pose = poses_at(poses, ann.timestamp_ns)
    xyz, yaw = boxes_to_city(ann.q, ann.t, q_pose, t_pose)
    return pd.DataFrame({
        "timestamp_ns": ann.timestamp_ns, "track_uuid": ann.track_uuid, "category": ann.category,
        "length_m": ann.size_lwh[:, 0], "width_m": ann.size_lwh[:, 1], "height_m": ann.size_lwh[:, 2],
        "x_m": xyz[:, 0], "y_m": xyz[:, 1], "z_m": xyz[:, 2], "yaw_rad": yaw,
    })
