"""Lidar-seeded backgrounds from Argoverse 2 sweeps (spec ``data-formats.md`` §2.4, §2.6, §2.7.2).

``build_lidar_background(log_dir, scenario)`` reads ``sensors/lidar/<timestamp_ns>.feather`` (points in the
ego frame of their sweep, float16), drops points inside annotated cuboids (actors are modelled separately) and
on the ego itself, moves them into the scenario frame with the ego poses (``city_SE3_egovehicle.feather``;
scenario xy = city xy − ``scenario.origin_xy``, z = city elevation), voxel-downsamples them, and makes one
isotropic Gaussian per voxel: σ from the mean distance to its nearest neighbours, colour from intensity near
the ground (paint is bright in lidar) and from height above the ground elsewhere. The ground itself becomes a
layer of flat Gaussians on a grid that fills the gaps between the sweep rings. No images are needed.

``build_av2_scene`` wraps it into a :class:`ScenarioScene` with procedural actor models, the log's ground
raster (or one estimated from the points) and the logged ego poses (z, roll and pitch for the cameras).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..datatypes import GaussianScene, Scenario
from ..errors import EmptyLogError, MissingFileError, ScenarioValidationError
from .compose import GroundHeight, PoseLog, ScenarioScene, quat_to_matrix
from .ply import SH_C0

__all__ = ["build_lidar_background", "build_av2_scene", "read_lidar_sweeps", "av2_ground", "av2_ego_log",
           "lidar_sweep_times"]

log = logging.getLogger(__name__)

_HEIGHT_COLOURS = np.array([[0.35, 0.33, 0.30], [0.45, 0.40, 0.33], [0.30, 0.45, 0.25], [0.55, 0.55, 0.55],
                            [0.75, 0.72, 0.66], [0.85, 0.85, 0.88]])
"""Colour ramp over height above ground at 0, 0.5, 2, 5, 10, 20 m (ground, kerbs, vegetation, walls, roofs)."""
_HEIGHT_STOPS = np.array([0.0, 0.5, 2.0, 5.0, 10.0, 20.0])


def lidar_sweep_times(log_dir: str | Path) -> np.ndarray:
    """``[S]`` int64 ns timestamps of the sweeps in ``sensors/lidar`` (sorted; empty if there are none)."""
    d = Path(log_dir) / "sensors" / "lidar"
    stems = [p.stem for p in d.glob("*.feather")] if d.is_dir() else []
    return np.array(sorted(int(s) for s in stems if s.isdigit()), np.int64)


def read_lidar_sweeps(log_dir: str | Path, timestamps_ns: Sequence[int] | None = None, *,
                      remove_actors: bool = True, max_range_m: float = 80.0) -> tuple[np.ndarray, np.ndarray]:
    """Lidar points of a log in the **city** frame.

    Args:
        log_dir: AV2 sensor-log folder. timestamps_ns: sweeps to read (default: all).
        remove_actors: drop points inside annotated cuboids of the same sweep (boxes grown by 0.25 m) and
            inside the ego's footprint.
        max_range_m: drop points farther than this from the ego (m).
    Returns:
        ``(xyz [P, 3] float64 m city frame, intensity [P] float32 in [0, 1])``.
    Raises:
        EmptyLogError: the log has no sweeps. MissingFileError / CorruptFileError from the readers.
    """
    from ..logs.av2._io import column, read_feather
    from ..logs.av2.annotations import POSE_FILE, find_annotation_file, poses_at, read_annotations, read_poses

    log_dir = Path(log_dir)
    ts = lidar_sweep_times(log_dir) if timestamps_ns is None else np.asarray(timestamps_ns, np.int64)
    if not len(ts):
        raise EmptyLogError(f"{log_dir / 'sensors' / 'lidar'}: no lidar sweeps (<timestamp_ns>.feather); this log "
                            "cannot seed a lidar background — use scene.procedural.build_scene instead")
    q, t = poses_at(read_poses(log_dir / POSE_FILE), ts)
    rot = quat_to_matrix(q)
    ann = None
    if remove_actors:
        try:
            ann = read_annotations(find_annotation_file(log_dir))
        except MissingFileError:
            log.info("%s: no annotations; lidar points on actors are kept", log_dir)
    xyz_all, inten_all = [], []
    for i, stamp in enumerate(ts):  # one file per sweep; every per-point step below is vectorised
        tab = read_feather(log_dir / "sensors" / "lidar" / f"{int(stamp)}.feather", ["x", "y", "z", "intensity"],
                           what="lidar sweep")
        p = np.stack([column(tab, c).astype(np.float64) for c in ("x", "y", "z")], 1)
        inten = column(tab, "intensity").astype(np.float32) / 255.0
        keep = np.isfinite(p).all(1) & (np.linalg.norm(p[:, :2], axis=1) < max_range_m)
        keep &= ~((np.abs(p[:, 0] - 1.4) < 3.0) & (np.abs(p[:, 1]) < 1.3))  # the ego's own body
        if ann is not None:
            rows = np.flatnonzero(ann.timestamp_ns == stamp)
            keep &= ~_in_boxes(p, ann.t[rows], quat_to_matrix(ann.q[rows]), ann.size_lwh[rows] + 0.5)
        xyz_all.append(p[keep] @ rot[i].T + t[i])
        inten_all.append(inten[keep])
    return np.concatenate(xyz_all), np.concatenate(inten_all)


def _in_boxes(p: np.ndarray, centre: np.ndarray, rot: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``[N]`` bool: points ``p [N, 3]`` inside any box (centre ``[B, 3]``, rotation ``[B, 3, 3]``, size ``[B, 3]``).

    Candidate (point, box) pairs come from a KD-tree ball query (radius = half the box diagonal); only
    those pairs are transformed into the box frames.
    """
    from scipy.spatial import cKDTree

    inside = np.zeros(len(p), bool)
    if not len(centre) or not len(p):
        return inside
    hits = cKDTree(p).query_ball_point(centre, 0.5 * np.linalg.norm(size, axis=1))
    counts = np.array([len(h) for h in hits], np.int64)
    if not counts.sum():
        return inside
    pt = np.concatenate([np.asarray(h, np.int64) for h in hits])
    box = np.repeat(np.arange(len(centre)), counts)
    local = np.einsum("nji,nj->ni", rot[box], p[pt] - centre[box])
    inside[pt[(np.abs(local) <= 0.5 * size[box]).all(1)]] = True
    return inside


def av2_ground(log_dir: str | Path, scenario: Scenario, points_xyz: np.ndarray | None = None) -> GroundHeight:
    """Ground height in the scenario frame: the log's raster ``map/*_ground_height_surface____*.npy`` with its
    Sim(2) file when both exist (identity rotation), else the lowest lidar point per 2 m cell of ``points_xyz``
    (scenario frame). The fallback height is the median of the known cells."""
    from ..logs.av2._io import read_json

    map_dir = Path(log_dir) / "map"
    rasters = sorted(map_dir.glob("*_ground_height_surface____*.npy")) if map_dir.is_dir() else []
    sims = sorted(map_dir.glob("*___img_Sim2_city.json")) if map_dir.is_dir() else []
    origin = np.asarray(scenario.origin_xy, np.float64)
    if rasters and sims:
        sim = read_json(sims[0], "Sim(2) transform")
        r, tr, s = np.asarray(sim["R"], float).reshape(2, 2), np.asarray(sim["t"], float), float(sim["s"])
        if np.allclose(r, np.eye(2)) and s > 0:
            h = np.load(rasters[0]).astype(np.float32)
            finite = h[np.isfinite(h)]
            return GroundHeight(default_z=float(np.median(finite)) if finite.size else 0.0,
                                origin_xy=-tr - origin, cell_m=1.0 / s, heights=h)
        log.info("%s: Sim(2) with rotation; estimating the ground from lidar instead", sims[0])
    if points_xyz is None or not len(points_xyz):
        return GroundHeight()
    cell = 2.0
    lo = points_xyz[:, :2].min(0)
    ij = np.floor((points_xyz[:, :2] - lo) / cell).astype(np.int64)
    shape = ij.max(0) + 1
    h = np.full(shape[1] * shape[0], np.inf)
    np.minimum.at(h, ij[:, 1] * shape[0] + ij[:, 0], points_xyz[:, 2])
    h = np.where(np.isfinite(h), h, np.nan).reshape(shape[1], shape[0]).astype(np.float32)
    return GroundHeight(default_z=float(np.nanmedian(h)), origin_xy=lo, cell_m=cell, heights=h)


def build_lidar_background(log_dir: str | Path, scenario: Scenario, *, voxel_m: float = 0.2,
                           max_range_m: float = 80.0, timestamps_ns: Sequence[int] | None = None,
                           color_by: str = "auto", opacity: float = 0.85, remove_actors: bool = True,
                           ground: GroundHeight | None = None, neighbours: int = 4,
                           ground_fill_m: float | None = 0.5) -> GaussianScene:
    """A static background of isotropic Gaussians from the log's lidar sweeps, in the scenario frame.

    Args:
        log_dir: AV2 sensor-log folder (``sensors/lidar``, ``city_SE3_egovehicle.feather``, annotations).
        scenario: gives the frame (``origin_xy``); a scenario read from the same log.
        voxel_m: voxel edge (m); one Gaussian per occupied voxel at the mean of its points.
        max_range_m: ignore points farther than this from the sensor (m).
        timestamps_ns: sweeps to use (default: every sweep of the log).
        color_by: "auto" (intensity within 0.3 m of the ground, height ramp above), "height" or "intensity".
        opacity: opacity of every Gaussian.
        remove_actors: drop points inside annotated cuboids (actors get their own models).
        ground: ground height (default: :func:`av2_ground`).
        neighbours: σ = 0.5 x the mean distance to this many nearest voxels, clipped to [voxel/2, 3 voxel].
        ground_fill_m: replace the ground voxels (within 0.3 m of the ground) by flat Gaussians on a grid of
            this spacing (m) wherever a ground voxel is within 1.5 m, so the sweep rings leave no holes;
            None keeps the voxels.
    Returns:
        GaussianScene ``[G]`` (actor_ids -1), SH degree 0.
    """
    from scipy.spatial import cKDTree

    if color_by not in ("auto", "height", "intensity"):
        raise ScenarioValidationError(f"build_lidar_background: color_by must be 'auto', 'height' or 'intensity', "
                                      f"received {color_by!r}")
    if not voxel_m > 0:
        raise ScenarioValidationError(f"build_lidar_background: voxel_m must be > 0, received {voxel_m}")
    xyz, inten = read_lidar_sweeps(log_dir, timestamps_ns, remove_actors=remove_actors, max_range_m=max_range_m)
    xyz[:, :2] -= np.asarray(scenario.origin_xy, np.float64)
    key = np.floor(xyz / voxel_m).astype(np.int64)
    key -= key.min(0)
    span = key.max(0) + 1
    _, inv, counts = np.unique((key[:, 0] * span[1] + key[:, 1]) * span[2] + key[:, 2], return_inverse=True,
                               return_counts=True)
    mean = np.stack([np.bincount(inv, xyz[:, i]) for i in range(3)], 1) / counts[:, None]
    inten_v = np.bincount(inv, inten) / counts
    g = len(mean)
    k = min(neighbours + 1, g)
    dist, _ = cKDTree(mean).query(mean, k=k) if g > 1 else (np.zeros((g, 1)), None)
    sigma = np.clip(0.5 * dist[:, 1:].mean(1) if k > 1 else voxel_m, 0.5 * voxel_m, 3.0 * voxel_m)
    ground = ground if ground is not None else av2_ground(log_dir, scenario, mean)
    above = mean[:, 2] - ground.at(mean[:, :2])
    ramp = np.stack([np.interp(above, _HEIGHT_STOPS, _HEIGHT_COLOURS[:, c]) for c in range(3)], 1)
    grey = _grey(inten_v)
    if color_by == "height":
        rgb = ramp
    elif color_by == "intensity":
        rgb = grey
    else:
        rgb = np.where((above < 0.3)[:, None], grey, ramp * (0.75 + 0.5 * np.clip(inten_v, 0, 0.5))[:, None])
    f = np.float32
    quat = np.array([1, 0, 0, 0], f)
    parts = [(mean, np.repeat(sigma[:, None], 3, 1), rgb, np.tile(quat, (g, 1)))]
    is_ground = above < 0.3
    if ground_fill_m and is_ground.sum() > 1:
        fill = _ground_fill(mean[is_ground], inten_v[is_ground], ground, ground_fill_m, color_by != "height")
        parts = [(mean[~is_ground], parts[0][1][~is_ground], rgb[~is_ground], parts[0][3][~is_ground]), fill]
    means, scales, rgb, quats = (np.concatenate([pp[i] for pp in parts]) for i in range(4))
    return GaussianScene(means.astype(f), quats.astype(f), scales.astype(f), np.full(len(means), opacity, f),
                         ((np.clip(rgb, 0, 1) - 0.5) / SH_C0)[:, None, :].astype(f))


def _grey(intensity: np.ndarray) -> np.ndarray:
    """Ground colour ``[N, 3]`` from lidar intensity in [0, 1] (asphalt dark, paint bright)."""
    return (0.18 + 0.8 * np.clip(intensity, 0, 1) ** 0.5)[:, None] * np.ones(3)


def _ground_fill(pts: np.ndarray, inten: np.ndarray, ground: GroundHeight, spacing: float,
                 by_intensity: bool) -> tuple[np.ndarray, ...]:
    """Flat ground Gaussians on a ``spacing`` grid within 1.5 m of ground voxels ``pts [N, 3]``: z from the
    ground raster (else the nearest voxel), colour from the intensity of the 4 nearest voxels.
    Returns ``(means [M, 3], scales [M, 3], rgb [M, 3], quats [M, 4])``."""
    from scipy.spatial import cKDTree

    lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
    gx, gy = np.meshgrid(np.arange(lo[0], hi[0], spacing), np.arange(lo[1], hi[1], spacing))
    grid = np.stack([gx.ravel(), gy.ravel()], 1)
    k = min(4, len(pts))
    dist, idx = cKDTree(pts[:, :2]).query(grid, k=k, distance_upper_bound=1.5)
    dist, idx = dist.reshape(len(grid), k), idx.reshape(len(grid), k)
    ok = np.isfinite(dist[:, 0])
    grid, dist, idx = grid[ok], dist[ok], idx[ok]
    found = np.isfinite(dist)
    w = np.where(found, 1.0 / (dist + 0.1), 0.0)
    safe = np.where(found, idx, 0)
    inten_g = (w * inten[safe]).sum(1) / w.sum(1)
    raster = ground.at(grid)
    z = np.where(np.abs(raster - pts[safe[:, 0], 2]) < 1.0, raster, pts[safe[:, 0], 2])
    m = len(grid)
    rgb = _grey(inten_g) if by_intensity else np.tile(_HEIGHT_COLOURS[0], (m, 1))
    scales = np.tile([0.6 * spacing, 0.6 * spacing, 0.02], (m, 1))
    return np.concatenate([grid, z[:, None]], 1), scales, rgb, np.tile([1.0, 0, 0, 0], (m, 1))


def av2_ego_log(log_dir: str | Path, scenario: Scenario) -> PoseLog:
    """Logged ego rear-axle poses (A = 1) in the scenario frame, sampled at the scenario's grid times
    (``scenario.timestamps_s`` on the AV2 clock, ns / 1e9), for the cameras' z, roll and pitch."""
    from ..logs.av2.annotations import POSE_FILE, poses_at, read_poses

    poses = read_poses(Path(log_dir) / POSE_FILE)
    ts = np.clip(np.round(np.asarray(scenario.timestamps_s) * 1e9).astype(np.int64), poses.timestamp_ns[0],
                 poses.timestamp_ns[-1])
    q, t = poses_at(poses, ts)
    t = t.copy()
    t[:, :2] -= np.asarray(scenario.origin_xy, np.float64)
    return PoseLog(t[None], q[None], np.ones((1, len(ts)), bool))


def build_av2_scene(log_dir: str | Path, scenario: Scenario, *, seed: int = 0, density: float = 1.0,
                    **lidar_kwargs) -> ScenarioScene:
    """Lidar background + procedural actor models + ground + logged ego poses for an AV2 sensor scenario.

    ``lidar_kwargs`` go to :func:`build_lidar_background`. Actors stand on the ground raster (box centre =
    ground + height / 2); the ego camera takes z, roll and pitch from the nearest logged pose.
    """
    from .procedural import build_actor_models

    t0 = time.perf_counter()
    ground = av2_ground(log_dir, scenario)
    if ground.heights is None:
        xyz, _ = read_lidar_sweeps(log_dir, lidar_kwargs.get("timestamps_ns"), remove_actors=False)
        xyz[:, :2] -= np.asarray(scenario.origin_xy, np.float64)
        ground = av2_ground(log_dir, scenario, xyz)
    background = build_lidar_background(log_dir, scenario, ground=ground, **lidar_kwargs)
    actors = build_actor_models(scenario, seed=seed, density=density)
    build_s = time.perf_counter() - t0
    log.info("build_av2_scene %s: %d lidar + %d actor Gaussians in %.2f s", scenario.scenario_id,
             background.num_gaussians, actors.num_gaussians, build_s)
    return ScenarioScene(background, actors, scenario, ground=ground, ego_log=av2_ego_log(log_dir, scenario),
                         meta={"source": "av2_lidar", "log_dir": str(log_dir), "build_s": build_s})
