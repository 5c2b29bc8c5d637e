"""NuPlanDB: read-only, indexed access to one nuPlan log (.db), per spec/data-formats.md §1.2–§1.5.

Opening a log reads only small per-log tables (log, lidar, scene, track, category, scenario_tag) and the
lidar_pc/ego_pose time index (a few numbers per 20 Hz sweep). Boxes and traffic-light rows are queried
per window with SQL, so memory stays flat however many windows are read.
"""
from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidPoseError,
    MissingColumnError,
    MissingTableError,
    NonMonotonicTimestampsError,
)
from ._pickle import loads_restricted
from .schema import CATEGORY_NAMES, LIDAR_CHANNEL, REQUIRED_DB_COLUMNS, TRAFFIC_LIGHT_CODES

__all__ = ["NuPlanDB", "LogInfo", "parse_roadblock_ids", "yaw_from_quaternion"]

log = logging.getLogger(__name__)

_SQLITE_MAGIC = b"SQLite format 3\x00"


def yaw_from_quaternion(qw: np.ndarray, qx: np.ndarray, qy: np.ndarray, qz: np.ndarray) -> np.ndarray:
    """Heading (rad, CCW about +z) of ``(w, x, y, z)`` quaternions (spec §5)."""
    return np.arctan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))


def parse_roadblock_ids(text: str | None) -> tuple[str, ...]:
    """Split ``scene.roadblock_ids`` on commas and/or whitespace (both separators occur, spec §1.3).

    A value that is not text (a damaged row: a number, a BLOB) gives no ids."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", "replace")
    if not text or not isinstance(text, str):
        return ()
    return tuple(t for t in text.replace(",", " ").split() if t)


def _token(value: object) -> bytes | None:
    """A token column value as ``bytes``; None for NULL or a value that is not a BLOB (a damaged row).

    ``bytes(5)`` would silently make five zero bytes and ``bytes(-1)`` raise, so only BLOBs are tokens."""
    return bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else None


def _hex(value: object) -> str:
    """Hex text of a token ('' for NULL or a non-BLOB value)."""
    b = _token(value)
    return b.hex() if b is not None else ""


def _numbers(rows: list | pd.DataFrame, num_cols: int) -> np.ndarray:
    """``[R, num_cols]`` float64 from SQL rows; text, BLOBs and NULLs become NaN (callers check finiteness)."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if df.empty:
        return np.zeros((0, num_cols), np.float64)
    return df.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64).reshape(-1, num_cols)


@dataclass(frozen=True)
class LogInfo:
    """The ``log`` row: name (file stem), location, map name, vehicle, date."""

    log_id: str
    location: str
    map_name: str
    vehicle_name: str
    date: str


class NuPlanDB:
    """One nuPlan log file, opened read-only.

    Attributes after construction (all aligned on the merged-lidar sweeps, sorted by time, 20 Hz):
        lidar_pc_tokens: ``[S]`` object array of ``bytes`` tokens.
        timestamps_us: ``[S]`` int64, µs.
        scene_index: ``[S]`` int32 index into :attr:`scenes` (-1 if the sweep has no scene).
        ego_xy: ``[S, 2]`` float64, m, global frame, **rear axle**.
        ego_yaw: ``[S]`` float64, rad.
        ego_vel_local: ``[S, 2]`` float64, m/s in the ego frame (x forward, y left).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._name = self.path.name
        if not self.path.is_file():
            from ...errors import MissingFileError

            raise MissingFileError(f"{self.path}: nuPlan log not found; pass the path of a .db file")
        with open(self.path, "rb") as fh:
            head = fh.read(100)
        if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
            raise CorruptFileError(
                f"{self.path}: not a SQLite database (header {head[:16]!r}); expected a nuPlan .db log — "
                "the file may be truncated or of another format"
            )
        try:
            self.con = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro&immutable=1", uri=True,
                                       check_same_thread=False)
            self.con.execute("PRAGMA query_only = 1")
            tables = {r[0] for r in self.con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise CorruptFileError(f"{self.path}: cannot read SQLite database ({exc}); re-download the log") from exc
        self._check_schema(tables)
        self.info = self._read_log()
        self._read_time_index()

    # ------------------------------------------------------------------------------------------------ schema
    def _sql(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        try:
            return self.con.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise CorruptFileError(f"{self.path}: query failed ({exc}); the file may be damaged") from exc

    def _frame(self, sql: str, params: tuple | list = ()) -> pd.DataFrame:
        try:
            return pd.read_sql_query(sql, self.con, params=params)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            raise CorruptFileError(f"{self.path}: query failed ({exc}); the file may be damaged") from exc

    def _check_schema(self, tables: set[str]) -> None:
        for table, cols in REQUIRED_DB_COLUMNS.items():
            if table not in tables:
                raise MissingTableError(
                    f"{self.path}: table '{table}' is missing; a nuPlan log needs the tables "
                    f"{sorted(REQUIRED_DB_COLUMNS)} (spec §1.3)"
                )
            have = {r[1] for r in self._sql(f'PRAGMA table_info("{table}")')}
            for col in cols:
                if col not in have:
                    raise MissingColumnError(
                        f"{self.path}: column '{table}.{col}' is missing (table has {sorted(have)}); "
                        "the reader needs it (spec §1.3)"
                    )

    def _read_log(self) -> LogInfo:
        rows = self._sql("SELECT location, map_version, "
                         + ("vehicle_name, " if self._has_col("log", "vehicle_name") else "'', ")
                         + ("date " if self._has_col("log", "date") else "'' ")
                         + "FROM log")
        if not rows:
            raise EmptyLogError(f"{self.path}: table 'log' is empty; expected one row describing the log")
        location, map_version, vehicle, date = rows[0]
        if not map_version:
            raise MissingColumnError(f"{self.path}: log.map_version is empty; expected a map name such as 'us-ma-boston'")
        map_name = str(map_version)
        if map_name.endswith(".gpkg"):
            map_name = map_name[: -len(".gpkg")]
        return LogInfo(self.path.stem, str(location or ""), map_name, str(vehicle or ""), str(date or ""))

    def _has_col(self, table: str, col: str) -> bool:
        return any(r[1] == col for r in self._sql(f'PRAGMA table_info("{table}")'))

    def _has_index(self, table: str, col: str) -> bool:
        """True if an index of ``table`` starts with column ``col`` (cached per table/column)."""
        cache = self.__dict__.setdefault("_index_cache", {})
        if (table, col) not in cache:
            cache[(table, col)] = any(
                (info := self._sql(f'PRAGMA index_info("{row[1]}")')) and info[0][2] == col
                for row in self._sql(f'PRAGMA index_list("{table}")')
            )
        return cache[(table, col)]

    # ------------------------------------------------------------------------------------------------ time
    def _read_time_index(self) -> None:
        lidars = self._sql("SELECT token, channel FROM lidar")
        merged = [t for t, c in lidars if c == LIDAR_CHANNEL]
        if not merged:
            if len(lidars) == 1:
                merged = [lidars[0][0]]
            else:
                raise EmptyLogError(
                    f"{self.path}: no lidar row with channel '{LIDAR_CHANNEL}' (found {[c for _, c in lidars]}); "
                    "nuPlan's time base is the merged point cloud"
                )
        df = self._frame(
            "SELECT lp.token AS token, lp.next_token AS next_token, lp.timestamp AS ts, lp.scene_token AS scene, "
            "ep.token AS ep_token, ep.x, ep.y, ep.qw, ep.qx, ep.qy, ep.qz, ep.vx, ep.vy "
            "FROM lidar_pc lp LEFT JOIN ego_pose ep ON ep.token = lp.ego_pose_token "
            "WHERE lp.lidar_token = ? ORDER BY lp.timestamp, lp.rowid",
            (merged[0],),
        )
        if df.empty:
            raise EmptyLogError(f"{self.path}: table 'lidar_pc' has no sweeps; the log is empty")
        ts_num = pd.to_numeric(df["ts"], errors="coerce").to_numpy(np.float64)
        bad_ts = ~np.isfinite(ts_num) | (np.abs(ts_num) > 2.0**62) | (ts_num != np.round(ts_num))
        if bad_ts.any():
            i = int(np.flatnonzero(bad_ts)[0])
            raise NonMonotonicTimestampsError(
                f"{self.path}: lidar_pc.timestamp must be integer microseconds, {int(bad_ts.sum())} row(s) hold NULL, "
                f"text or an out-of-range value (first: {df['ts'].iat[i]!r}); the file is damaged, re-download it")
        ts = pd.to_numeric(df["ts"], errors="coerce").astype(np.int64).to_numpy()
        df["token"] = df["token"].map(_token)
        if df["token"].isna().any():
            raise CorruptFileError(
                f"{self.path}: lidar_pc.token must be a BLOB on every row, {int(df['token'].isna().sum())} row(s) "
                "hold NULL, text or a number; the file is damaged, re-download it")
        df["next_token"] = df["next_token"].map(_token)
        dup = np.flatnonzero(np.diff(ts) <= 0)
        if len(dup):
            raise NonMonotonicTimestampsError(
                f"{self.path}: lidar_pc.timestamp repeats at {ts[dup[0]]} µs (token "
                f"{_hex(df['token'].iat[int(dup[0])])}); timestamps must strictly increase"
            )
        # the next_token chain must follow time order
        nxt = df["next_token"].to_numpy(object)
        tok = df["token"].to_numpy(object)
        has_next = np.array([n is not None for n in nxt[:-1]], bool)
        chained = np.array([a == b for a, b in zip(nxt[:-1], tok[1:])], bool)
        bad = np.flatnonzero(has_next & ~chained)
        if len(bad):
            i = int(bad[0])
            raise NonMonotonicTimestampsError(
                f"{self.path}: lidar_pc.next_token of {bytes(tok[i]).hex()} does not point at the next sweep in time "
                f"({ts[i]} µs); the prev/next chain and lidar_pc.timestamp disagree"
            )
        if df["ep_token"].isna().any():
            i = int(np.flatnonzero(df["ep_token"].isna().to_numpy())[0])
            raise InvalidPoseError(
                f"{self.path}: lidar_pc {bytes(tok[i]).hex()} points at an ego_pose that does not exist "
                "(lidar_pc.ego_pose_token)"
            )
        pose = _numbers(df[["x", "y", "qw", "qx", "qy", "qz", "vx", "vy"]], 8)
        if not np.isfinite(pose).all():
            i, j = np.argwhere(~np.isfinite(pose))[0]
            col = ["x", "y", "qw", "qx", "qy", "qz", "vx", "vy"][j]
            raise InvalidPoseError(
                f"{self.path}: ego_pose.{col} is NaN/inf or not a number for ego_pose {_hex(df['ep_token'].iat[i])} "
                f"(lidar_pc at {ts[i]} µs; value {df[col].iat[i]!r}); poses must be finite numbers"
            )
        with np.errstate(over="ignore"):
            qn = np.linalg.norm(pose[:, 2:6], axis=1)
        if ((qn < 1e-6) | ~np.isfinite(qn)).any():
            i = int(np.flatnonzero((qn < 1e-6) | ~np.isfinite(qn))[0])
            raise InvalidPoseError(f"{self.path}: ego_pose quaternion is zero or overflows at lidar_pc {ts[i]} µs "
                                   f"(norm {qn[i]:g}); poses need a unit quaternion")
        self.lidar_pc_tokens: np.ndarray = tok  # [S] bytes
        self.timestamps_us: np.ndarray = ts  # [S] int64
        self.ego_xy: np.ndarray = pose[:, :2]  # [S, 2] float64, m, global, rear axle
        self.ego_yaw: np.ndarray = yaw_from_quaternion(*(pose[:, 2:6] / qn[:, None]).T)  # [S] rad
        self.ego_vel_local: np.ndarray = pose[:, 6:8]  # [S, 2] m/s, ego frame
        scenes = self.scenes
        codes, uniq = pd.factorize(df["scene"].map(_hex))
        lookup = {tok: i for i, tok in enumerate(scenes["token_hex"])}
        self.scene_index: np.ndarray = np.array([lookup.get(u, -1) for u in uniq], np.int32)[codes]
        self._token_pos = {t: i for i, t in enumerate(tok)}

    @property
    def num_sweeps(self) -> int:
        return int(len(self.timestamps_us))

    def index_of(self, token: str | bytes) -> int:
        """Position of a lidar_pc token (hex text or bytes) in the time index; KeyError if absent."""
        b = bytes.fromhex(token) if isinstance(token, str) else bytes(token)
        try:
            return self._token_pos[b]
        except KeyError:
            raise KeyError(f"{self.path}: lidar_pc token {b.hex()} is not a merged-lidar sweep of this log") from None

    # ------------------------------------------------------------------------------------------------ small tables
    @cached_property
    def scenes(self) -> pd.DataFrame:
        """Scenes ordered by name: token_hex, name, roadblock_ids (tuple), goal_ego_pose_token_hex."""
        df = self._frame("SELECT token, name, roadblock_ids, goal_ego_pose_token FROM scene ORDER BY name")
        df["token_hex"] = df["token"].map(_hex)
        df["roadblock_ids"] = df["roadblock_ids"].map(parse_roadblock_ids)
        df["goal_ego_pose_token_hex"] = df["goal_ego_pose_token"].map(_hex)
        return df.drop(columns=["token", "goal_ego_pose_token"])

    def goal_pose(self, scene_idx: int) -> tuple[np.ndarray, float] | None:
        """Goal of a scene: (rear-axle xy [2] float64 global, yaw rad), or None if the scene has no goal."""
        tok = self.scenes["goal_ego_pose_token_hex"].iat[scene_idx]
        if not tok:
            return None
        rows = self._sql("SELECT x, y, qw, qx, qy, qz FROM ego_pose WHERE token = ?", (bytes.fromhex(tok),))
        if not rows:
            return None
        values = _numbers(rows[:1], 6)[0]
        if not np.isfinite(values).all():
            return None
        x, y, qw, qx, qy, qz = values
        return np.array([x, y], np.float64), float(yaw_from_quaternion(qw, qx, qy, qz))

    @cached_property
    def tags(self) -> pd.DataFrame:
        """Scenario tags: sweep index ``idx`` (into the time index), ``type``, ``agent_track_hex``."""
        has_agent = self._has_col("scenario_tag", "agent_track_token")
        df = self._frame(
            "SELECT lidar_pc_token, type" + (", agent_track_token" if has_agent else ", NULL AS agent_track_token")
            + " FROM scenario_tag"
        )
        idx = df["lidar_pc_token"].map(lambda b: self._token_pos.get(_token(b), -1))
        out = pd.DataFrame({"idx": idx.to_numpy(np.int64), "type": df["type"].astype(str)})
        out["agent_track_hex"] = df["agent_track_token"].map(_hex)
        return out[out["idx"] >= 0].reset_index(drop=True)

    @cached_property
    def track_categories(self) -> dict[bytes, str]:
        """track token -> category name (global nuPlan names, spec §1.3)."""
        rows = self._sql("SELECT t.token, c.name FROM track t LEFT JOIN category c ON c.token = t.category_token")
        return {_token(t): (n if n in CATEGORY_NAMES else "generic_object") for t, n in rows if _token(t) is not None}

    def cameras(self) -> pd.DataFrame:
        """The ``camera`` table with pickled fields decoded by the restricted unpickler (spec §1.2):
        channel, translation [3] m (ego frame), rotation [4] wxyz (camera→ego), intrinsic [3,3], distortion,
        width, height (px)."""
        df = self._frame("SELECT token, channel, translation, rotation, intrinsic, distortion, width, height FROM camera")
        for col in ("translation", "rotation", "intrinsic", "distortion"):
            df[col] = [np.asarray(loads_restricted(v, f"{self._name}: camera.{col}"), dtype=np.float64) for v in df[col]]
        df["token"] = df["token"].map(_hex)
        return df

    # ------------------------------------------------------------------------------------------------ per window
    def _rows_for_sweeps(self, table: str, columns: tuple[str, ...], idx: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
        """Rows of ``table`` whose lidar_pc_token is one of the sweeps ``idx`` ([W] positions in the time index).

        Returns ``(sweep [R] int64 in 0..W-1, rows)`` where each row holds ``columns``. Uses the table's
        index on lidar_pc_token when the file has one; otherwise a rowid map built once per table by a
        single scan, so each window is still an indexed lookup.
        """
        idx = np.asarray(idx, np.int64)
        cols = ", ".join(f"t.{c}" for c in columns)
        rows: list[tuple] = []
        if self._has_index(table, "lidar_pc_token"):
            tokens = [bytes(self.lidar_pc_tokens[i]) for i in idx]
            for start in range(0, len(tokens), 500):  # stay under SQLite's bound-variable limit
                chunk = tokens[start : start + 500]
                rows += self._sql(
                    f"SELECT lp.timestamp, {cols} FROM lidar_pc lp JOIN {table} t ON t.lidar_pc_token = lp.token "
                    f"WHERE lp.token IN ({','.join('?' * len(chunk))})", chunk)
        else:
            sweeps, rowids = self._rowid_map(table)
            lo = np.searchsorted(sweeps, idx, side="left")
            hi = np.searchsorted(sweeps, idx, side="right")
            sel = np.concatenate([rowids[a:b] for a, b in zip(lo, hi)]) if len(idx) else np.zeros(0, np.int64)
            for start in range(0, len(sel), 900):
                chunk = [int(r) for r in sel[start : start + 900]]
                rows += self._sql(
                    f"SELECT lp.timestamp, {cols} FROM {table} t JOIN lidar_pc lp ON lp.token = t.lidar_pc_token "
                    f"WHERE t.rowid IN ({','.join('?' * len(chunk))})", chunk)
        ts = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        window_ts = self.timestamps_us[idx]
        order = np.argsort(window_ts)
        sweep = order[np.searchsorted(window_ts, ts, sorter=order)] if len(rows) else np.zeros(0, np.int64)
        return sweep.astype(np.int64), [r[1:] for r in rows]

    def _rowid_map(self, table: str) -> tuple[np.ndarray, np.ndarray]:
        """(sweep position [R] int64 sorted, rowid [R] int64) of every row of ``table``; one scan, cached."""
        cache = self.__dict__.setdefault("_rowid_maps", {})
        if table not in cache:
            log.info("%s: %s has no index on lidar_pc_token; building a rowid map (one scan)", self._name, table)
            cur = self.con.execute(
                f"SELECT t.rowid, lp.timestamp FROM {table} t JOIN lidar_pc lp ON lp.token = t.lidar_pc_token"
            )
            parts = []
            while True:
                rows = cur.fetchmany(200_000)
                if not rows:
                    break
                parts.append(np.nan_to_num(_numbers(rows, 2), nan=-1.0).astype(np.int64))
            arr = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
            sweep = np.searchsorted(self.timestamps_us, arr[:, 1])
            keep = (sweep < self.num_sweeps) & (self.timestamps_us[np.minimum(sweep, self.num_sweeps - 1)] == arr[:, 1])
            order = np.argsort(sweep[keep], kind="stable")
            cache[table] = (sweep[keep][order], arr[keep, 0][order])
        return cache[table]

    def boxes(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Boxes at the sweeps ``idx`` ([W] int positions in the time index), as arrays of R rows:
        sweep [R] int64 (0..W-1), track [R] object (bytes token), xyyaw [R, 3] float64 (centre m global, rad),
        vel [R, 2] float64 (m/s, global), lwh [R, 3] float64 (length, width, height, m)."""
        sweep, rows = self._rows_for_sweeps(
            "lidar_box", ("track_token", "x", "y", "yaw", "vx", "vy", "length", "width", "height"), idx)
        track = np.empty(len(rows), object)
        track[:] = [_token(r[0]) for r in rows]  # a damaged (non-BLOB) track token reads as no track
        num = _numbers([r[1:] for r in rows], 8)  # text/BLOB values read as NaN: the box is dropped
        return {"sweep": sweep, "track": track, "xyyaw": num[:, 0:3], "vel": num[:, 3:5], "lwh": num[:, 5:8]}

    def traffic_lights(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Traffic-light rows at the sweeps ``idx``: sweep [R] int64, lane_connector_id [R] int64,
        status [R] int8 (0 green, 1 yellow, 2 red, 3 unknown). Rows with a non-integer connector id are dropped."""
        sweep, rows = self._rows_for_sweeps("traffic_light_status", ("lane_connector_id", "status"), idx)
        conn = pd.to_numeric(pd.Series([r[0] for r in rows], dtype=object), errors="coerce").to_numpy(np.float64)
        text = np.array([str(r[1]).lower() for r in rows], dtype=object)
        uniq, inv = np.unique(text, return_inverse=True) if len(text) else (np.zeros(0, object), np.zeros(0, np.int64))
        status = np.array([TRAFFIC_LIGHT_CODES.get(u, 3) for u in uniq], np.int8)[inv] if len(text) else np.zeros(0, np.int8)
        ok = np.isfinite(conn)
        return {"sweep": sweep[ok], "lane_connector_id": conn[ok].astype(np.int64), "status": status[ok]}

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "NuPlanDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"NuPlanDB({self._name!r}, map={self.info.map_name!r}, sweeps={self.num_sweeps}, "
                f"scenes={len(self.scenes)})")
