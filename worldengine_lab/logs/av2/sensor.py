"""AV2 sensor-dataset log -> :class:`Scenario` (spec §2.1-§2.4, §2.7).

Pipeline (all vectorised over agents and steps):

1. Boxes move from the ego frame of their sweep into the city frame (:mod:`.annotations`).
2. Sweeps = the distinct annotation timestamps (about 10 Hz, 96-103 ms apart). Rows scatter into
   ``[S, N]`` arrays (S sweeps, N tracks); velocities are central differences of the city-frame centres
   over the neighbouring sweeps of the same track (one-sided at a track's ends, 0 for a single sighting).
3. A uniform grid ``t_k = first_sweep + k * dt`` (integer ns, up to the last sweep) replaces the uneven
   sweeps: positions and velocities interpolate linearly, yaw along the shorter arc, between the two
   sweeps that bracket ``t_k``. An agent is valid at ``t_k`` only if observed on both bracketing sweeps
   (on that one sweep when ``t_k`` falls exactly on it, as the first step always does).
4. The ego (agent 0, track id ``"ego"``) comes from the pose table sampled at ``t_k`` (exact rows where
   they exist, else interpolated). Its box is the AV2 ego box, 4.877 x 2.0 x 1.473 m, centred
   ``EGO_REAR_AXLE_TO_CENTER_M`` = 1.35 m ahead of the rear axle along the heading; its velocity is the
   central difference (``np.gradient``) of that centre on the grid.

Windows: ``t0`` is a grid index; the scenario covers ``[t0 - history, t0 + future]``. Agents never valid
inside the window are left out. Local frame origin = ego rear-axle city xy at t0, rounded to 1 m.
AV2 has no route: ``Route.goal_xy`` / ``goal_yaw`` = the ego box centre / heading at the last step.
AV2 has no scenario tags: ``tags = frozenset()``. The map is the log's whole local map (already a crop).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...datatypes import AgentTracks, AgentType, MapData, Provenance, Route, Scenario
from ...errors import MissingFileError, NonMonotonicTimestampsError, ScenarioValidationError, WindowOutOfRangeError
from ._geometry import bracket, interp_angle, quat_yaw
from .annotations import (
    POSE_FILE, boxes_to_city, find_annotation_file, poses_at, read_annotations, read_poses,
)
from .categories import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_LWH, sensor_agent_types
from .map import CityMap, parse_map

__all__ = ["SensorLog", "load_sensor_log", "read_sensor_log", "read_sensor_windows", "find_map_file"]

log = logging.getLogger(__name__)

MAX_LOG_SPAN_NS = 24 * 3600 * 10**9
"""A sensor log longer than a day means a damaged timestamp (real logs last about 15-20 s)."""


def find_map_file(log_dir: Path) -> Path:
    """The vector map ``map/log_map_archive_*.json`` of a sensor log (MissingFileError if absent)."""
    map_dir = log_dir / "map"
    found = sorted(map_dir.glob("log_map_archive_*.json")) if map_dir.is_dir() else []
    if not found:
        raise MissingFileError(
            f"{map_dir / 'log_map_archive_*.json'}: expected the log's vector map, but "
            f"{'the map folder holds none' if map_dir.is_dir() else 'the map folder does not exist'}; "
            "copy the log's map/ folder, or pass require_map=False to read the log without a map"
        )
    if len(found) > 1:
        log.warning("%s: %d vector maps, using %s", map_dir, len(found), found[0].name)
    return found[0]


@dataclass(frozen=True, eq=False)
class SensorLog:
    """A whole AV2 sensor log on a uniform time grid, before windowing.

    Attributes:
        log_dir: the log folder; log_id its name; city the city code from the map file name ('' if no map).
        dt: grid step, s.
        annotation_file: name of the annotation file read (``annotations.feather`` or the ``_with_ego`` variant).
        grid_ns: ``[K]`` int64, grid times on the log clock (ns), ``grid_ns[0]`` = first annotated sweep.
        sweeps_ns: ``[S]`` int64, distinct annotation timestamps.
        track_ids: ``[N]`` str, ``"ego"`` then track UUIDs by first appearance.
        agent_type: ``[N]`` int8 AgentType; size_lwh ``[N, 3]`` float32 m (median of each track's extents).
        xy: ``[K, N, 2]`` float64, m, city frame, box centres (0 where invalid).
        yaw: ``[K, N]`` float64, rad, city frame.
        vel_xy: ``[K, N, 2]`` float64, m/s, city axes.
        valid: ``[K, N]`` bool.
        ego_rear_axle_xy: ``[K, 2]`` float64, m, city frame.
        city_map: the parsed vector map, or None when read with ``require_map=False`` and none exists.
    """

    log_dir: Path
    log_id: str
    city: str
    dt: float
    annotation_file: str
    grid_ns: np.ndarray  # [K] int64, ns
    sweeps_ns: np.ndarray  # [S] int64, ns
    track_ids: np.ndarray  # [N] str
    agent_type: np.ndarray  # [N] int8
    size_lwh: np.ndarray  # [N, 3] float32, m
    xy: np.ndarray  # [K, N, 2] float64, m, city frame
    yaw: np.ndarray  # [K, N] float64, rad
    vel_xy: np.ndarray  # [K, N, 2] float64, m/s
    valid: np.ndarray  # [K, N] bool
    ego_rear_axle_xy: np.ndarray  # [K, 2] float64, m, city frame
    city_map: CityMap | None

    @property
    def num_steps(self) -> int:
        """K, grid steps in the whole log."""
        return int(len(self.grid_ns))

    def scenario(self, t0: int, start: int, stop: int) -> Scenario:
        """The grid steps ``[start, stop)`` as a Scenario with "now" at grid index ``t0``."""
        k = self.num_steps
        if not (0 <= start <= t0 < stop <= k):
            raise WindowOutOfRangeError(
                f"{self.log_dir}: expected grid steps 0 <= start <= t0 < stop <= {k} "
                f"({(k - 1) * self.dt:.1f} s of log at dt = {self.dt} s), received start={start}, t0={t0}, stop={stop}"
            )
        valid = self.valid[start:stop]
        keep = valid.any(axis=0)
        keep[0] = True
        valid = valid[:, keep]
        origin = np.round(self.ego_rear_axle_xy[t0]).astype(np.float64)
        mask = valid[..., None]
        agents = AgentTracks(
            xy=np.where(mask, self.xy[start:stop, keep] - origin, 0.0).astype(np.float32),
            yaw=np.where(valid, self.yaw[start:stop, keep], 0.0).astype(np.float32),
            vel_xy=np.where(mask, self.vel_xy[start:stop, keep], 0.0).astype(np.float32),
            size_lwh=self.size_lwh[keep].copy(),
            agent_type=self.agent_type[keep].copy(),
            valid=valid.copy(),
            track_ids=self.track_ids[keep].copy(),
        )
        t0_ns = int(self.grid_ns[t0])
        local_map = self.city_map.to_local(origin) if self.city_map is not None else MapData.empty()
        route = Route(goal_xy=agents.xy[-1, 0].copy(), goal_yaw=float(agents.yaw[-1, 0]))
        return Scenario(
            scenario_id=f"{self.log_id}:{t0_ns}",
            log_id=self.log_id,
            dt=float(self.dt),
            t0=int(t0 - start),
            timestamps_s=self.grid_ns[start:stop].astype(np.float64) / 1e9,
            origin_xy=origin,
            agents=agents,
            map=local_map,
            route=route,
            tags=frozenset(),
            provenance=Provenance(source="av2", path=str(self.log_dir), log_id=self.log_id,
                                  map_name=self.city, location=self.city),
            ego_rear_axle_to_center_m=EGO_REAR_AXLE_TO_CENTER_M,
            meta={
                "t0_timestamp_ns": t0_ns,
                "first_timestamp_ns": int(self.grid_ns[start]),
                "annotation_file": self.annotation_file,
                "num_sweeps": int(len(self.sweeps_ns)),
            },
        )


def _velocity_on_sweeps(t_s: np.ndarray, pos: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Central differences of ``pos [S, N, 2]`` over neighbouring sweeps of the same track.

    ``t_s [S]`` s; ``obs [S, N]`` bool. One-sided where only one neighbour is observed, 0 where none.
    """
    pad_b = np.zeros((1,) + obs.shape[1:], bool)
    obs_prev = np.concatenate([pad_b, obs[:-1]])
    obs_next = np.concatenate([obs[1:], pad_b])
    pos_prev = np.concatenate([pos[:1], pos[:-1]])
    pos_next = np.concatenate([pos[1:], pos[-1:]])
    t_prev = np.concatenate([t_s[:1], t_s[:-1]])[:, None]
    t_next = np.concatenate([t_s[1:], t_s[-1:]])[:, None]
    ta = np.where(obs_prev, t_prev, t_s[:, None])  # [S, N]
    tb = np.where(obs_next, t_next, t_s[:, None])
    a = np.where(obs_prev[..., None], pos_prev, pos)
    b = np.where(obs_next[..., None], pos_next, pos)
    span = tb - ta
    vel = (b - a) / np.where(span > 0, span, 1.0)[..., None]
    return np.where((obs & (span > 0))[..., None], vel, 0.0)


def _resample(sweeps_ns: np.ndarray, grid_ns: np.ndarray, obs: np.ndarray, pos: np.ndarray, yaw: np.ndarray,
              vel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Interpolate sweep arrays (``[S, N, ...]``) onto ``grid_ns [K]``; see step 3 of the module doc.

    Returns xy ``[K, N, 2]``, yaw ``[K, N]``, vel ``[K, N, 2]`` (float64, 0 where invalid) and valid ``[K, N]``.
    """
    if len(sweeps_ns) == 1:  # a single sweep: bracket it with itself
        sweeps_ns = np.array([sweeps_ns[0], sweeps_ns[0] + 1], np.int64)
        obs, pos, yaw, vel = (np.concatenate([a, a]) for a in (obs, pos, yaw, vel))
    i0, w = bracket(sweeps_ns, grid_ns)
    i1 = i0 + 1
    valid = (obs[i0] | (w == 1)[:, None]) & (obs[i1] | (w == 0)[:, None])  # [K, N]
    w2 = w[:, None]
    xy = pos[i0] * (1.0 - w2[..., None]) + pos[i1] * w2[..., None]
    v = vel[i0] * (1.0 - w2[..., None]) + vel[i1] * w2[..., None]
    th = np.where(w2 == 0, yaw[i0], np.where(w2 == 1, yaw[i1], interp_angle(yaw[i0], yaw[i1], w2)))
    m = valid[..., None]
    return np.where(m, xy, 0.0), np.where(valid, th, 0.0), np.where(m, v, 0.0), valid


def _grid(sweeps_ns: np.ndarray, dt: float) -> np.ndarray:
    """``[K]`` int64 grid times from the first sweep up to the last, ``dt`` apart (integer ns)."""
    dt_ns = int(round(dt * 1e9))
    span_ns = int(sweeps_ns[-1]) - int(sweeps_ns[0])
    if span_ns > MAX_LOG_SPAN_NS:
        raise NonMonotonicTimestampsError(
            f"annotation timestamps span {span_ns / 3.6e12:.1f} h (first {int(sweeps_ns[0])}, last "
            f"{int(sweeps_ns[-1])} ns); an AV2 sensor log lasts seconds to minutes, so a timestamp_ns value is "
            "damaged; repair or drop the rows with impossible timestamps"
        )
    num = int(span_ns // dt_ns) + 1
    return sweeps_ns[0] + np.arange(num, dtype=np.int64) * dt_ns


def load_sensor_log(log_dir: str | Path, dt: float = 0.1, require_map: bool = True) -> SensorLog:
    """Read a whole AV2 sensor log onto a uniform ``dt`` grid (see the module doc).

    Args:
        log_dir: ``<split>/<log_id>/`` folder with ``city_SE3_egovehicle.feather``, ``annotations.feather``
            (or ``annotations_with_ego.feather``) and ``map/log_map_archive_*.json``.
        dt: grid step, s.
        require_map: if False, a missing map gives an empty MapData instead of MissingFileError.
    Raises:
        MissingFileError, CorruptFileError, MissingColumnError, InvalidPoseError,
        NonMonotonicTimestampsError, EmptyLogError (see :mod:`.annotations` for the exact checks).
    """
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise MissingFileError(f"{log_dir}: expected an AV2 sensor log folder, but it does not exist")
    if not (isinstance(dt, (int, float)) and np.isfinite(dt) and dt > 0):
        raise ScenarioValidationError(f"dt: expected a positive number of seconds, received {dt!r}")
    poses = read_poses(log_dir / POSE_FILE)
    ann_path = find_annotation_file(log_dir)
    try:
        map_path: Path | None = find_map_file(log_dir)
    except MissingFileError:
        if require_map:
            raise
        map_path = None
    ann = read_annotations(ann_path)

    # boxes into the city frame
    q_pose, t_pose = poses_at(poses, ann.timestamp_ns)
    xyz, box_yaw = boxes_to_city(ann.q, ann.t, q_pose, t_pose)

    # scatter rows into [S, N] arrays; agents ordered by first sweep, then UUID
    sweeps_ns, s_idx = np.unique(ann.timestamp_ns, return_inverse=True)
    uuids, a_idx = np.unique(ann.track_uuid, return_inverse=True)
    s_idx, a_idx = s_idx.reshape(-1), a_idx.reshape(-1)
    num_s, num_a = len(sweeps_ns), len(uuids)
    first = np.full(num_a, num_s, np.int64)
    np.minimum.at(first, a_idx, s_idx)
    order = np.lexsort((np.arange(num_a), first))
    rank = np.empty(num_a, np.int64)
    rank[order] = np.arange(num_a)
    a_idx, uuids = rank[a_idx], uuids[order]
    _, first_row = np.unique(a_idx, return_index=True)  # first file row of each agent, agents in order

    obs = np.zeros((num_s, num_a), bool)
    pos = np.zeros((num_s, num_a, 2), np.float64)
    yaw = np.zeros((num_s, num_a), np.float64)
    obs[s_idx, a_idx] = True
    pos[s_idx, a_idx] = xyz[:, :2]
    yaw[s_idx, a_idx] = box_yaw
    t_s = (sweeps_ns - sweeps_ns[0]).astype(np.float64) / 1e9
    vel = _velocity_on_sweeps(t_s, pos, obs)
    sizes = pd.DataFrame(ann.size_lwh).groupby(a_idx).median().to_numpy(np.float32)  # [N, 3], rows in agent order

    grid_ns = _grid(sweeps_ns, dt)
    g_xy, g_yaw, g_vel, g_valid = _resample(sweeps_ns, grid_ns, obs, pos, yaw, vel)

    # the ego from the pose table at the grid times
    q_ego, t_ego = poses_at(poses, grid_ns)
    ego_yaw = quat_yaw(q_ego)
    ego_centre = t_ego[:, :2] + EGO_REAR_AXLE_TO_CENTER_M * np.stack([np.cos(ego_yaw), np.sin(ego_yaw)], axis=1)
    grid_s = (grid_ns - grid_ns[0]).astype(np.float64) / 1e9
    ego_vel = np.gradient(ego_centre, grid_s, axis=0) if len(grid_ns) > 1 else np.zeros_like(ego_centre)

    city_map = parse_map(map_path) if map_path is not None else None
    city = city_map.city if city_map is not None else ""
    num_k = len(grid_ns)
    log.info("%s: %d sweeps, %d tracks, %d grid steps at dt=%g s, city %r",
             log_dir.name, num_s, num_a, num_k, dt, city or "?")
    return SensorLog(
        log_dir=log_dir,
        log_id=log_dir.name,
        city=city,
        dt=float(dt),
        annotation_file=ann_path.name,
        grid_ns=grid_ns,
        sweeps_ns=sweeps_ns,
        track_ids=np.array(["ego", *uuids.tolist()]),
        agent_type=np.concatenate([[int(AgentType.EGO)], sensor_agent_types(ann.category[first_row])]).astype(np.int8),
        size_lwh=np.concatenate([np.asarray([EGO_SIZE_LWH], np.float32), sizes.reshape(-1, 3)]),
        xy=np.concatenate([ego_centre[:, None], g_xy], axis=1),
        yaw=np.concatenate([ego_yaw[:, None], g_yaw], axis=1),
        vel_xy=np.concatenate([ego_vel[:, None], g_vel], axis=1),
        valid=np.concatenate([np.ones((num_k, 1), bool), g_valid], axis=1),
        ego_rear_axle_xy=t_ego[:, :2].copy(),
        city_map=city_map,
    )


def _steps(value_s: float, dt: float, name: str) -> int:
    if not (isinstance(value_s, (int, float)) and np.isfinite(value_s) and value_s >= 0):
        raise WindowOutOfRangeError(f"{name}: expected a finite number of seconds >= 0, received {value_s!r}")
    return int(round(value_s / dt))


def read_sensor_log(
    log_dir: str | Path,
    t0_s: float | None = None,
    history_s: float = 2.0,
    future_s: float | None = None,
    dt: float = 0.1,
    require_map: bool = True,
) -> Scenario:
    """Read one AV2 sensor log as a Scenario on a uniform ``dt`` grid.

    Args:
        log_dir: the log folder (``<split>/<log_id>/``).
        t0_s: "now", in seconds after the first annotated sweep (snapped to the nearest grid step);
            default ``history_s``.
        history_s: seconds of history before t0 (the scenario starts at ``t0_s - history_s``).
        future_s: seconds after t0; None = to the end of the log.
        dt: grid step, s.
        require_map: see :func:`load_sensor_log`.
    Returns:
        Scenario with ``scenario_id = f"{log_id}:{t0 timestamp_ns}"``, ego = agent 0 (see the module doc).
    Raises:
        WindowOutOfRangeError if the window starts before the first sweep or ends after the last one,
        and the errors of :func:`load_sensor_log`.
    """
    sensor_log = load_sensor_log(log_dir, dt=dt, require_map=require_map)
    n_hist = _steps(history_s, dt, "history_s")
    t0 = n_hist if t0_s is None else _steps(t0_s, dt, "t0_s")
    stop = sensor_log.num_steps if future_s is None else t0 + _steps(future_s, dt, "future_s") + 1
    if t0 - n_hist < 0 or t0 >= sensor_log.num_steps or stop > sensor_log.num_steps:
        length_s = (sensor_log.num_steps - 1) * dt
        raise WindowOutOfRangeError(
            f"{sensor_log.log_dir}: the window t0_s={t0 * dt:.2f} s, history_s={history_s}, future_s={future_s} "
            f"spans [{(t0 - n_hist) * dt:.2f}, {(stop - 1) * dt:.2f}] s, but the log covers [0, {length_s:.2f}] s "
            "after its first sweep; choose t0_s in [history_s, log length - future_s]"
        )
    return sensor_log.scenario(t0, t0 - n_hist, stop)


def read_sensor_windows(
    log_dir: str | Path,
    history_s: float = 2.0,
    future_s: float = 8.0,
    stride_s: float = 1.0,
    dt: float = 0.1,
    require_map: bool = True,
) -> list[Scenario]:
    """Sliding windows over one AV2 sensor log: t0 = history_s, history_s + stride_s, ... while the
    window ``[t0 - history_s, t0 + future_s]`` fits in the log. The log and its map are read once.

    Returns an empty list (with a warning) if the log is shorter than one window.
    """
    sensor_log = load_sensor_log(log_dir, dt=dt, require_map=require_map)
    n_hist, n_fut = _steps(history_s, dt, "history_s"), _steps(future_s, dt, "future_s")
    stride = _steps(stride_s, dt, "stride_s")
    if stride < 1:
        raise WindowOutOfRangeError(f"stride_s: expected at least one step ({dt} s), received {stride_s!r}")
    t0s = range(n_hist, sensor_log.num_steps - n_fut, stride)
    if not t0s:
        log.warning("%s: %.1f s of log is shorter than one window (%.1f s); no scenarios",
                    sensor_log.log_dir, (sensor_log.num_steps - 1) * dt, (n_hist + n_fut) * dt)
    return [sensor_log.scenario(t0, t0 - n_hist, t0 + n_fut + 1) for t0 in t0s]

