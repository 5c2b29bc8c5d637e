"""Scenario windows from nuPlan logs: selection (tags, tokens, stride) and Scenario assembly (spec §1.4–§1.6).

A window is ``history_s`` before and ``future_s`` after a "now" sweep, resampled from the 20 Hz lidar_pc
clock to ``dt`` (default 10 Hz) by taking every ``round(dt / 0.05)``-th sweep, as the devkit does.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from ...datatypes import AgentTracks, AgentType, Provenance, Route, Scenario, TrafficLights
import shapely.errors

from ...errors import CorruptFileError, WindowOutOfRangeError, WorldEngineLabError
from .db import NuPlanDB
from .map import NuPlanMap, find_map_file, load_map
from .schema import CATEGORY_NAMES

__all__ = ["WindowConfig", "NuPlanLog", "EGO_SIZE_LWH", "EGO_REAR_AXLE_TO_CENTER_M", "SWEEP_PERIOD_S"]

log = logging.getLogger(__name__)

SWEEP_PERIOD_S = 0.05  # nuPlan lidar_pc clock, 20 Hz
EGO_SIZE_LWH = (5.176, 2.297, 1.777)  # Chrysler Pacifica, m (spec §1.6)
EGO_REAR_AXLE_TO_CENTER_M = 1.461
_CATEGORY_TYPE = {name: i for i, name in enumerate(CATEGORY_NAMES)}  # names are in AgentType code order


@dataclass(frozen=True)
class WindowConfig:
    """How a scenario window is cut from a log.

    Attributes:
        history_s: seconds of history before "now" (default 2 s).
        future_s: seconds after "now" (default 8 s).
        dt: output step, s; a multiple of the 0.05 s sweep period (default 0.1 s = 10 Hz).
        map_radius_m: map elements within this distance of the ego path are kept (m).
        max_agents: keep at most this many agents besides the ego (nearest at "now" first); None = all.
    """

    history_s: float = 2.0
    future_s: float = 8.0
    dt: float = 0.1
    map_radius_m: float = 80.0
    max_agents: int | None = None

    @property
    def stride(self) -> int:
        """Sweeps per output step."""
        return max(1, int(round(self.dt / SWEEP_PERIOD_S)))

    @property
    def history_steps(self) -> int:
        return int(round(self.history_s / self.dt))

    @property
    def future_steps(self) -> int:
        return int(round(self.future_s / self.dt))

    def to_dict(self) -> dict[str, float | int | None]:
        return {"history_s": self.history_s, "future_s": self.future_s, "dt": self.dt,
                "map_radius_m": self.map_radius_m, "max_agents": self.max_agents}


class NuPlanLog:
    """A nuPlan log with its map: select windows and read them as Scenarios.

    Examples:
        >>> log = NuPlanLog("2021.05.12.22.00.38_veh-35_01008_01518.db", maps_root="maps")  # doctest: +SKIP
        >>> windows = log.select(tags=["starting_left_turn"])                                # doctest: +SKIP
        >>> scenario = log.read(windows.token.iloc[0])                                       # doctest: +SKIP
    """

    def __init__(self, db_path: str | Path, maps_root: str | Path | None = None, config: WindowConfig = WindowConfig()):
        with _damaged_data(db_path, "opening the log"):
            self.db = NuPlanDB(db_path)
        self.maps_root = maps_root
        self.config = config
        self._map: NuPlanMap | None = None

    @property
    def map(self) -> NuPlanMap:
        """The log's map (parsed once, shared between logs of the same city)."""
        if self._map is None:
            self._map = load_map(find_map_file(self.maps_root, self.db.info.map_name))
        return self._map

    # ------------------------------------------------------------------------------------------------ selection
    def valid_sweeps(self, config: WindowConfig | None = None) -> np.ndarray:
        """``[S]`` bool: sweeps that can be "now" of a window — in a valid scene (the devkit drops the first
        two and last two scenes by name) and with the whole window inside the log."""
        cfg = config or self.config
        db = self.db
        n_scenes = len(db.scenes)
        scene_ok = (db.scene_index >= 2) & (db.scene_index < n_scenes - 2)
        if n_scenes < 5:  # short logs (e.g. clipped test logs): fall back to every scene
            scene_ok = db.scene_index >= 0
        idx = np.arange(db.num_sweeps)
        lo = idx - cfg.history_steps * cfg.stride
        hi = idx + cfg.future_steps * cfg.stride
        return scene_ok & (lo >= 0) & (hi < db.num_sweeps)

    def select(
        self,
        tags: Iterable[str] | None = None,
        tokens: Iterable[str] | None = None,
        stride_s: float | None = None,
        config: WindowConfig | None = None,
    ) -> pd.DataFrame:
        """Choose window "now" sweeps. Returns a DataFrame: token (hex), idx (sweep index), timestamp_us,
        scenario_type (devkit rule: lexicographic max of the sweep's tags, 'unknown' if none), tags (tuple).

        - ``tokens``: exactly these lidar_pc tokens (a window that does not fit raises WindowOutOfRangeError).
        - ``tags``: every tagged sweep with one of these scenario types.
        - ``stride_s``: one window every ``stride_s`` seconds over the valid sweeps.
        - nothing: every tagged sweep (nuPlan's scenario definition).
        """
        cfg = config or self.config
        db = self.db
        ok = self.valid_sweeps(cfg)
        tag_df = db.tags
        if tokens is not None:
            idx = np.array([db.index_of(t) for t in tokens], np.int64)
            for i in idx:
                if not ok[i] and not self._fits(int(i), cfg):
                    raise WindowOutOfRangeError(self._range_message(int(i), cfg))
        elif stride_s is not None:
            step = max(1, int(round(stride_s / SWEEP_PERIOD_S)))
            cand = np.flatnonzero(ok)
            idx = cand[(cand - (cand[0] if len(cand) else 0)) % step == 0]
            if tags is not None:
                wanted = tag_df[tag_df["type"].isin(list(tags))]["idx"].to_numpy()
                idx = idx[np.isin(idx, wanted)]
        else:
            t = tag_df if tags is None else tag_df[tag_df["type"].isin(list(tags))]
            idx = np.unique(t["idx"].to_numpy(np.int64))
            dropped = int((~ok[idx]).sum()) if len(idx) else 0
            if dropped:
                log.info("%s: %d tagged sweeps dropped (window does not fit or scene excluded)", db.path.name, dropped)
            idx = idx[ok[idx]]
        grouped = tag_df.groupby("idx")["type"].agg(lambda s: tuple(sorted(set(s))))
        tag_tuples = grouped.reindex(idx).map(lambda v: v if isinstance(v, tuple) else ())
        return pd.DataFrame({
            "token": [bytes(db.lidar_pc_tokens[i]).hex() for i in idx],
            "idx": idx,
            "timestamp_us": db.timestamps_us[idx],
            "scenario_type": [t[-1] if t else "unknown" for t in tag_tuples],
            "tags": list(tag_tuples),
        })

    def _fits(self, i: int, cfg: WindowConfig) -> bool:
        return i - cfg.history_steps * cfg.stride >= 0 and i + cfg.future_steps * cfg.stride < self.db.num_sweeps

    def _range_message(self, i: int, cfg: WindowConfig) -> str:
        have_h = i * SWEEP_PERIOD_S
        have_f = (self.db.num_sweeps - 1 - i) * SWEEP_PERIOD_S
        return (
            f"{self.db.path}: window around lidar_pc {bytes(self.db.lidar_pc_tokens[i]).hex()} needs "
            f"{cfg.history_s:g} s of history and {cfg.future_s:g} s of future, the log has {have_h:.2f} s before "
            f"and {have_f:.2f} s after; choose a later/earlier token or shorten history_s/future_s"
        )

    # ------------------------------------------------------------------------------------------------ reading
    def read(self, token: str | int, config: WindowConfig | None = None, tags: Sequence[str] | None = None) -> Scenario:
        """Read the window whose "now" is lidar_pc ``token`` (hex, or a sweep index) as a Scenario."""
        i = int(token) if isinstance(token, (int, np.integer)) else self.db.index_of(token)
        with _damaged_data(self.db.path, f"reading the window at lidar_pc {token}"):
            return self._read(i, config, tags)

    def _read(self, i: int, config: WindowConfig | None, tags: Sequence[str] | None) -> Scenario:
        cfg = config or self.config
        db = self.db
        if not self._fits(i, cfg):
            raise WindowOutOfRangeError(self._range_message(i, cfg))
        s = cfg.stride
        idx = np.arange(i - cfg.history_steps * s, i + cfg.future_steps * s + 1, s, dtype=np.int64)  # [T]
        t0 = cfg.history_steps
        n_t = len(idx)

        # ego: rear axle -> box centre, local velocity -> global
        yaw = db.ego_yaw[idx]
        cos, sin = np.cos(yaw), np.sin(yaw)
        rear = db.ego_xy[idx]
        centre = rear + EGO_REAR_AXLE_TO_CENTER_M * np.stack([cos, sin], 1)
        vl = db.ego_vel_local[idx]
        vel = np.stack([cos * vl[:, 0] - sin * vl[:, 1], sin * vl[:, 0] + cos * vl[:, 1]], 1)
        origin = np.round(rear[t0], 0).astype(np.float64)

        # agents: scatter box rows into [T, N]
        boxes = db.boxes(idx)
        has_track = np.array([t is not None for t in boxes["track"]], bool)
        finite = has_track & np.isfinite(boxes["xyyaw"]).all(1) & np.isfinite(boxes["vel"]).all(1)
        codes, uniq = pd.factorize(boxes["track"][finite])
        uniq = [bytes(u) for u in uniq]
        n_ag = len(uniq)
        sweep = boxes["sweep"][finite]
        xy = np.zeros((n_t, n_ag, 2))
        ay = np.zeros((n_t, n_ag))
        av = np.zeros((n_t, n_ag, 2))
        valid = np.zeros((n_t, n_ag), bool)
        xy[sweep, codes] = boxes["xyyaw"][finite, :2]
        ay[sweep, codes] = boxes["xyyaw"][finite, 2]
        av[sweep, codes] = boxes["vel"][finite]
        valid[sweep, codes] = True
        size = np.zeros((n_ag, 3))
        if n_ag:
            lwh = np.nan_to_num(boxes["lwh"][finite], nan=0.0)
            size = pd.DataFrame(lwh).groupby(codes).median().reindex(range(n_ag)).fillna(0).to_numpy()
        cats = db.track_categories
        atype = np.array([_CATEGORY_TYPE.get(cats.get(u, "generic_object"), int(AgentType.GENERIC_OBJECT)) for u in uniq],
                         np.int8).reshape(-1)
        # order: observed at t0 first, nearest first; then the rest by first appearance
        dist = np.where(valid[t0], np.linalg.norm(xy[t0] - centre[t0], axis=1), np.inf)
        first = np.where(valid.any(0), valid.argmax(0), n_t)
        order = np.lexsort((first, dist))
        if cfg.max_agents is not None:
            order = order[: cfg.max_agents]
        track_ids = np.array(["ego"] + [uniq[k].hex() for k in order])
        all_valid = np.concatenate([np.ones((n_t, 1), bool), valid[:, order]], 1)
        all_xy = np.concatenate([centre[:, None], xy[:, order]], 1) - origin
        agents = AgentTracks(
            xy=np.where(all_valid[..., None], all_xy, 0.0).astype(np.float32),
            yaw=np.concatenate([yaw[:, None], ay[:, order]], 1).astype(np.float32),
            vel_xy=np.concatenate([vel[:, None], av[:, order]], 1).astype(np.float32),
            size_lwh=np.concatenate([np.array([EGO_SIZE_LWH]), size[order]], 0).astype(np.float32),
            agent_type=np.concatenate([[int(AgentType.EGO)], atype[order]]).astype(np.int8),
            valid=all_valid,
            track_ids=track_ids,
        )

        # route and map
        scene_idx = int(db.scene_index[i])
        route_ids: tuple[str, ...] = ()
        goal = None
        if scene_idx >= 0:
            route_ids = tuple(db.scenes["roadblock_ids"].iat[scene_idx])
            goal = db.goal_pose(scene_idx)
        m = self.map
        md, kept = m.crop(rear, cfg.map_radius_m, origin)
        pos = {int(g): k for k, g in enumerate(kept)}
        route_lanes = m.lanes_of_roadblocks(route_ids)
        route = Route(
            roadblock_ids=route_ids,
            lane_indices=np.array([pos[int(g)] for g in route_lanes if int(g) in pos], np.int32),
            goal_xy=(goal[0] - origin).astype(np.float32) if goal else np.full(2, np.nan, np.float32),
            goal_yaw=goal[1] if goal else float("nan"),
        )

        # traffic lights at each step for the signalised connectors kept
        status = np.full((n_t, len(md.signalized_lanes)), 3, np.int8)
        if len(md.signalized_lanes):
            tl = db.traffic_lights(idx)
            fids = m.lane_fids[kept[md.signalized_lanes]]
            order = np.argsort(fids)
            pos = np.searchsorted(fids, tl["lane_connector_id"], sorter=order)
            pos = np.minimum(pos, len(fids) - 1)
            col = order[pos]
            ok = fids[col] == tl["lane_connector_id"]
            status[tl["sweep"][ok], col[ok]] = tl["status"][ok]

        tag_df = db.tags
        own_tags = tuple(sorted(set(tag_df.loc[tag_df["idx"] == i, "type"]))) if tags is None else tuple(tags)
        token_hex = bytes(db.lidar_pc_tokens[i]).hex()
        return Scenario(
            scenario_id=token_hex,
            log_id=db.info.log_id,
            dt=cfg.dt,
            t0=t0,
            timestamps_s=db.timestamps_us[idx].astype(np.float64) / 1e6,
            origin_xy=origin,
            agents=agents,
            map=md,
            route=route,
            traffic_lights=TrafficLights(status),
            tags=frozenset(own_tags),
            provenance=Provenance(
                source="nuplan", path=str(db.path), log_id=db.info.log_id, map_name=db.info.map_name,
                location=db.info.location, first_token=bytes(db.lidar_pc_tokens[idx[0]]).hex(), t0_token=token_hex,
            ),
            ego_rear_axle_to_center_m=EGO_REAR_AXLE_TO_CENTER_M,
            meta={"window": cfg.to_dict(), "scenario_type": own_tags[-1] if own_tags else "unknown"},
        )

    def iter_scenarios(self, selection: pd.DataFrame | None = None, config: WindowConfig | None = None) -> Iterator[Scenario]:
        """Read every selected window (default: :meth:`select` with no arguments) lazily."""
        sel = self.select(config=config) if selection is None else selection
        for tok in sel["token"]:
            yield self.read(tok, config=config)

    def close(self) -> None:
        self.db.close()

    def __repr__(self) -> str:
        return f"NuPlanLog({self.db.path.name!r}, map={self.db.info.map_name!r}, sweeps={self.db.num_sweeps})"



class _damaged_data:
    """Context manager: a parsing error that escaped the specific checks (an unexpected type or value in a
    damaged file) becomes a CorruptFileError naming the file; WorldEngineLabErrors pass through unchanged."""

    _CAUGHT = (KeyError, ValueError, TypeError, IndexError, AttributeError, OverflowError,
               shapely.errors.GEOSException)

    def __init__(self, path: str | Path, doing: str) -> None:
        self.path, self.doing = path, doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or isinstance(exc, WorldEngineLabError) or not isinstance(exc, self._CAUGHT):
            return False
        raise CorruptFileError(
            f"{self.path}: {self.doing} failed on a value the nuPlan reader cannot use ({type(exc).__name__}: "
            f"{str(exc)[:200]}); the log or its map is damaged or does not follow the nuPlan schema (spec §1.3) — "
            "check it with `sqlite3 FILE 'PRAGMA integrity_check'` or download it again"
        ) from exc
