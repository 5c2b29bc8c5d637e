"""Write one nuPlan log (.db) from arrays: the 12 tables of ``schema.DB_TABLES`` (spec §1.3).

The writer knows nothing about traffic; it takes a ``LogContent`` (time-major arrays in the global UTM
frame) and turns it into rows: 8-byte tokens from a ``TokenStream`` keyed by the log name, the 20 Hz
lidar_pc time base with prev/next chains, ego poses with slightly different timestamps, one track per
continuous run of an object's boxes, scenes with routes and goals, scenario tags and signal states.
Everything is written in one transaction with ``journal_mode=DELETE``.
"""
from __future__ import annotations

import pickle
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..nuplan.schema import CATEGORY_NAMES, DB_TABLES, LIDAR_CHANNEL
from .tokens import TokenStream, fixed_token

__all__ = ["LogContent", "write_log", "CAMERA_CHANNELS", "STATUS_NAMES"]

CAMERA_CHANNELS = ("CAM_F0", "CAM_L0", "CAM_R0", "CAM_L1", "CAM_R1", "CAM_L2", "CAM_R2", "CAM_B0")
_CAMERA_YAW_DEG = (0.0, 55.0, -55.0, 90.0, -90.0, 125.0, -125.0, 180.0)
STATUS_NAMES = ("green", "yellow", "red", "unknown")
_CATEGORY_TEXT = {
    "vehicle": "Vehicles: cars, vans, trucks, buses.", "pedestrian": "Pedestrians.",
    "bicycle": "Bicycles with their riders.", "traffic_cone": "Traffic cones.", "barrier": "Temporary barriers.",
    "czone_sign": "Construction-zone signs.", "generic_object": "Other static objects.",
}
_INDEXES = (
    ("lidar_pc", "timestamp"), ("lidar_pc", "scene_token"), ("lidar_box", "lidar_pc_token"),
    ("lidar_box", "track_token"), ("scenario_tag", "lidar_pc_token"), ("traffic_light_status", "lidar_pc_token"),
)


@dataclass(frozen=True)
class LogContent:
    """Everything one log holds. Global frame = UTM metres of the map (spec §1.6); T lidar_pc frames at 20 Hz,
    A objects (agents and static objects; the ego is separate)."""

    log_name: str
    map_name: str  # written to log.map_version
    location: str
    vehicle_name: str
    date: str  # YYYY-MM-DD
    start_us: int  # log.timestamp, us since the Unix epoch
    epsg: int
    timestamps_us: np.ndarray  # [T] int64 lidar_pc timestamps, us
    ego_pose_offset_us: np.ndarray  # [T] int64 ego_pose.timestamp - lidar_pc.timestamp (never 0), us
    ego_xy: np.ndarray  # [T, 2] float64 rear-axle position, m, global
    ego_yaw: np.ndarray  # [T] float64 heading, rad, global
    ego_vel: np.ndarray  # [T, 2] float64 velocity in the ego frame (x forward, y left), m/s
    ego_acc: np.ndarray  # [T, 2] float64 acceleration in the ego frame, m/s^2
    ego_yaw_rate: np.ndarray  # [T] float64 angular rate about +z, rad/s
    agent_xy: np.ndarray  # [T, A, 2] float64 box centre, m, global
    agent_yaw: np.ndarray  # [T, A] float64 heading, rad
    agent_vel: np.ndarray  # [T, A, 2] float64 velocity, m/s, global frame
    agent_size: np.ndarray  # [A, 3] float64 length, width, height, m
    agent_category: np.ndarray  # [A] int64 index into schema.CATEGORY_NAMES
    agent_valid: np.ndarray  # [T, A] bool a box is written (object observed) at this frame
    agent_confidence: np.ndarray  # [T, A] float64 in 0..1
    scene_starts: np.ndarray  # [S] int64 first frame of each scene (ascending, first = 0)
    scene_roadblocks: tuple[str, ...]  # [S] space-separated route roadblock ids per scene
    scene_goal_frame: np.ndarray  # [S] int64 frame whose ego pose is the scene's mission goal
    tag_frame: np.ndarray  # [G] int64 frame of each scenario tag
    tag_type: tuple[str, ...]  # [G] scenario type of each tag
    tag_agent: np.ndarray  # [G] int64 interacting object index, -1 none
    light_fids: np.ndarray  # [M] int64 lane connector fids with signal status
    light_status: np.ndarray  # [T, M] int8 0 green, 1 yellow, 2 red, -1 = no row at this frame


def _pk(x) -> bytes:
    return pickle.dumps(x, protocol=4)


def _quat_from_matrix(r: np.ndarray) -> list[float]:
    """Rotation matrix ``[3, 3]`` -> quaternion ``[w, x, y, z]`` (w >= 0)."""
    w = np.sqrt(max(0.0, 1.0 + r[0, 0] + r[1, 1] + r[2, 2])) / 2.0
    x = np.copysign(np.sqrt(max(0.0, 1.0 + r[0, 0] - r[1, 1] - r[2, 2])) / 2.0, r[2, 1] - r[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1.0 - r[0, 0] + r[1, 1] - r[2, 2])) / 2.0, r[0, 2] - r[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1.0 - r[0, 0] - r[1, 1] + r[2, 2])) / 2.0, r[1, 0] - r[0, 1])
    return [round(float(v), 12) for v in (w, x, y, z)]


def _camera_rows(tok: TokenStream, log_token: bytes) -> list[tuple]:
    """Eight roof cameras: OpenCV camera frame (x right, y down, z forward) -> ego frame."""
    rows = []
    for channel, yaw_deg, token in zip(CAMERA_CHANNELS, _CAMERA_YAW_DEG, tok.take(len(CAMERA_CHANNELS))):
        a = np.deg2rad(yaw_deg)
        fwd, right, down = np.array([np.cos(a), np.sin(a), 0.0]), np.array([np.sin(a), -np.cos(a), 0.0]), \
            np.array([0.0, 0.0, -1.0])
        ego_from_cam = np.stack([right, down, fwd], axis=1)
        pos = [round(1.5 + 1.2 * float(np.cos(a)), 3), round(0.6 * float(np.sin(a)), 3), 1.9]
        k = [[1545.0, 0.0, 960.0], [0.0, 1545.0, 560.0], [0.0, 0.0, 1.0]]
        dist = [-0.356, 0.172, -0.00031, 0.00066, -0.0518]
        rows.append((token, log_token, channel, "synthetic_rgb_1920x1080", _pk(pos),
                     _pk(_quat_from_matrix(ego_from_cam)), _pk(k), _pk(dist), 1920, 1080))
    return rows


def _insert(con: sqlite3.Connection, table: str, rows: list[tuple]) -> None:
    cols = [c for c, _ in DB_TABLES[table]]
    con.executemany(f'INSERT INTO "{table}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})', rows)


def _chain(tokens: list[bytes], seg: np.ndarray) -> tuple[list, list]:
    """prev / next tokens of rows ordered in time, linked only within the same segment id ``seg [n]``."""
    n = len(tokens)
    prev = [tokens[i - 1] if i > 0 and seg[i - 1] == seg[i] else None for i in range(n)]
    nxt = [tokens[i + 1] if i + 1 < n and seg[i + 1] == seg[i] else None for i in range(n)]
    return prev, nxt


def write_log(path: Path, c: LogContent) -> list[tuple[bytes, bytes | None]]:
    """Write ``c`` as the nuPlan SQLite file ``path`` (must not exist). Returns, for every scenario tag in
    ``c``'s order, its (lidar_pc token, agent track token or None)."""
    con = sqlite3.connect(str(path), isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("BEGIN")
        for table, cols in DB_TABLES.items():
            con.execute(f'CREATE TABLE "{table}" ({", ".join(f"{n} {t}" for n, t in cols)})')
        tag_refs = _write_rows(con, c)
        for table, col in _INDEXES:
            con.execute(f'CREATE INDEX "idx_{table}_{col}" ON "{table}" ({col})')
        con.execute("COMMIT")
    except BaseException:
        con.close()
        raise
    con.close()
    return tag_refs


def _write_rows(con: sqlite3.Connection, c: LogContent) -> list[tuple[bytes, bytes | None]]:
    tok = TokenStream(c.log_name)
    t_count = len(c.timestamps_us)
    log_token = tok.take(1)[0]
    _insert(con, "log", [(log_token, c.vehicle_name, c.date, int(c.start_us), c.log_name, c.location, c.map_name)])
    cat_tokens = [fixed_token(f"category:{name}") for name in CATEGORY_NAMES]
    _insert(con, "category", [(t, n, _CATEGORY_TEXT[n]) for t, n in zip(cat_tokens, CATEGORY_NAMES)])
    lidar_token = tok.take(1)[0]
    _insert(con, "lidar", [(lidar_token, log_token, LIDAR_CHANNEL, "merged_lidar", _pk([1.36, 0.0, 1.86]),
                            _pk([1.0, 0.0, 0.0, 0.0]))])
    _insert(con, "camera", _camera_rows(tok, log_token))

    # ego poses (one per lidar_pc, with their own timestamps)
    pose_tokens = tok.take(t_count)
    half = c.ego_yaw / 2.0
    zeros = np.zeros(t_count)
    cols = [c.timestamps_us + c.ego_pose_offset_us, c.ego_xy[:, 0], c.ego_xy[:, 1], zeros, np.cos(half), zeros, zeros,
            np.sin(half), c.ego_vel[:, 0], c.ego_vel[:, 1], zeros, c.ego_acc[:, 0], c.ego_acc[:, 1], zeros, zeros,
            zeros, c.ego_yaw_rate]
    lists = [np.asarray(x).tolist() for x in cols]
    _insert(con, "ego_pose", [(t, *vals, c.epsg, log_token) for t, *vals in zip(pose_tokens, *lists)])

    # scenes and the lidar_pc time base
    scene_tokens = tok.take(len(c.scene_starts))
    _insert(con, "scene", [
        (st, log_token, f"{c.log_name}-scene-{k:03d}", pose_tokens[int(c.scene_goal_frame[k])], c.scene_roadblocks[k])
        for k, st in enumerate(scene_tokens)])
    scene_of = np.searchsorted(c.scene_starts, np.arange(t_count), side="right") - 1
    pc_tokens = tok.take(t_count)
    prev, nxt = _chain(pc_tokens, np.zeros(t_count, np.int64))
    _insert(con, "lidar_pc", [
        (pc_tokens[i], nxt[i], prev[i], pose_tokens[i], lidar_token, scene_tokens[scene_of[i]],
         f"{c.log_name}/{LIDAR_CHANNEL}/{pc_tokens[i].hex()}.pcd", int(c.timestamps_us[i]))
        for i in range(t_count)])

    # tracks = continuous runs of an object's boxes; boxes chained within their track
    valid = c.agent_valid
    agent, frame = np.nonzero(valid.T)  # ordered by object, then time
    new_run = np.ones(len(agent), bool)
    new_run[1:] = (agent[1:] != agent[:-1]) | (frame[1:] != frame[:-1] + 1)
    run = np.cumsum(new_run) - 1
    run_agent = agent[new_run]
    track_tokens = tok.take(len(run_agent))
    _insert(con, "track", [
        (track_tokens[r], cat_tokens[int(c.agent_category[a])], float(c.agent_size[a, 1]), float(c.agent_size[a, 0]),
         float(c.agent_size[a, 2])) for r, a in enumerate(run_agent.tolist())])
    box_tokens = tok.take(len(agent))
    bprev, bnext = _chain(box_tokens, run)
    size = c.agent_size[agent]
    fields = [c.agent_xy[frame, agent, 0], c.agent_xy[frame, agent, 1], size[:, 2] / 2.0, size[:, 1], size[:, 0],
              size[:, 2], c.agent_vel[frame, agent, 0], c.agent_vel[frame, agent, 1], np.zeros(len(agent)),
              c.agent_yaw[frame, agent], c.agent_confidence[frame, agent]]
    flist = [f.tolist() for f in fields]
    rows = [(box_tokens[i], pc_tokens[fr], track_tokens[r], bnext[i], bprev[i], *vals)
            for i, (fr, r, *vals) in enumerate(zip(frame.tolist(), run.tolist(), *flist))]
    _insert(con, "lidar_box", rows)

    # scenario tags: the interacting object's track at that frame (NULL when it is not observed)
    run_at = np.full(valid.shape, -1, np.int64)
    run_at[frame, agent] = run
    tag_tokens = tok.take(len(c.tag_frame))
    tag_rows = []
    for tt, fr, ty, a in zip(tag_tokens, c.tag_frame.tolist(), c.tag_type, c.tag_agent.tolist()):
        r = run_at[fr, a] if a >= 0 else -1
        tag_rows.append((tt, pc_tokens[fr], ty, track_tokens[r] if r >= 0 else None))
    _insert(con, "scenario_tag", tag_rows)
    tag_refs = [(row[1], row[3]) for row in tag_rows]

    # signal status per lidar_pc and lane connector
    fr_idx, m_idx = np.nonzero(c.light_status >= 0)
    tl_tokens = tok.take(len(fr_idx))
    status = c.light_status[fr_idx, m_idx]
    _insert(con, "traffic_light_status", [
        (t, pc_tokens[f], int(c.light_fids[m]), STATUS_NAMES[s])
        for t, f, m, s in zip(tl_tokens, fr_idx.tolist(), m_idx.tolist(), status.tolist())])
    return tag_refs
