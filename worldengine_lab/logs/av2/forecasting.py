"""AV2 motion-forecasting scenario (``scenario_<id>.parquet`` + ``log_map_archive_<id>.json``, spec §2.10)
-> :class:`Scenario`.

* Time: ``timestamps_ns = linspace(start_timestamp, end_timestamp, num_timestamps)`` (float64 ns, as
  stored); ``dt`` = their spacing rounded to 1 us (0.1 s). Steps are already uniform: no resampling.
* Agents: the ``"AV"`` track is the ego (agent 0, track id ``"AV"``, box = the AV2 ego box
  4.877 x 2.0 x 1.473 m); the other tracks follow in order of first appearance in the file. Positions are
  box centres in the city frame, ``heading`` and ``velocity_x/y`` are taken as given. A track is valid at
  the timesteps where it has a row. Box sizes are per-``object_type`` defaults (:mod:`.categories`): the
  files carry none.
* ``t0`` = the last timestep with ``observed`` true (49), or 49 if the column is absent.
* Local frame origin = the AV centre at t0, rounded to 1 m.
* ``tags = {"av2_focal:<focal_track_id>"}``; ``meta`` holds the focal and scored track ids and the city.
* Route: none in AV2; ``goal_xy`` / ``goal_yaw`` = the AV centre / heading at its last observed step.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ...datatypes import AgentTracks, AgentType, MapData, Provenance, Route, Scenario
from ...errors import DataFormatError, EmptyLogError, InvalidPoseError, MissingFileError, NonMonotonicTimestampsError
from ._io import column, read_parquet
from .categories import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_LWH, forecast_agent_types, forecast_sizes
from .map import parse_map

__all__ = ["read_forecasting_scenario", "find_forecasting_files", "AV_TRACK_ID", "DEFAULT_T0"]

log = logging.getLogger(__name__)

AV_TRACK_ID = "AV"
DEFAULT_T0 = 49
MAX_TIMESTEPS = 100_000
"""More steps than this in one scenario (AV2 has 110) means a damaged ``num_timestamps``."""
_STATE = ["position_x", "position_y", "heading", "velocity_x", "velocity_y"]
REQUIRED_COLUMNS = ["track_id", "object_type", "timestep", *_STATE, "start_timestamp", "end_timestamp",
                    "num_timestamps"]
OPTIONAL_COLUMNS = ["observed", "object_category", "scenario_id", "focal_track_id", "city"]


def find_forecasting_files(scenario_dir: Path) -> tuple[Path, Path | None]:
    """``(parquet, map JSON or None)`` of a forecasting scenario folder (or of its parquet file)."""
    scenario_dir = Path(scenario_dir)
    if scenario_dir.is_file():
        parquet, scenario_dir = scenario_dir, scenario_dir.parent
    else:
        found = sorted(scenario_dir.glob("scenario_*.parquet")) if scenario_dir.is_dir() else []
        if not found:
            raise MissingFileError(
                f"{scenario_dir / 'scenario_*.parquet'}: expected an AV2 motion-forecasting scenario table, but "
                f"{'none is in the folder' if scenario_dir.is_dir() else 'the folder does not exist'}; pass a "
                "<split>/<scenario_id>/ folder"
            )
        parquet = found[0]
    maps = sorted(scenario_dir.glob("log_map_archive_*.json"))
    return parquet, (maps[0] if maps else None)


def _single(path: Path, values: np.ndarray, name: str) -> object:
    uniq = pd.unique(values)
    if len(uniq) != 1:
        raise DataFormatError(f"{path}: column '{name}' must hold one value repeated on every row, received "
                              f"{len(uniq)} distinct values")
    return uniq[0]


def read_forecasting_scenario(scenario_dir: str | Path, require_map: bool = True) -> Scenario:
    """Read an AV2 motion-forecasting scenario folder as a Scenario (see the module doc).

    Args:
        scenario_dir: ``<split>/<scenario_id>/`` (or its ``scenario_*.parquet``).
        require_map: if False, a missing ``log_map_archive_*.json`` gives an empty MapData.
    Raises:
        MissingFileError, CorruptFileError, MissingColumnError, EmptyLogError (no rows),
        InvalidPoseError (NaN state), NonMonotonicTimestampsError (end <= start, or a track with two rows
        at one timestep), DataFormatError (no ``AV`` track, timestep out of range).
    """
    parquet, map_path = find_forecasting_files(Path(scenario_dir))
    scenario_dir = parquet.parent
    if map_path is None and require_map:
        raise MissingFileError(
            f"{scenario_dir / 'log_map_archive_*.json'}: expected the scenario's vector map beside {parquet.name}; "
            "copy it from the dataset, or pass require_map=False"
        )
    table = read_parquet(parquet, REQUIRED_COLUMNS, OPTIONAL_COLUMNS, what="forecasting scenario")
    if table.num_rows == 0:
        raise EmptyLogError(f"{parquet}: the scenario table has no rows")

    num_t = int(_single(parquet, column(table, "num_timestamps", np.int64), "num_timestamps"))
    start = float(_single(parquet, column(table, "start_timestamp", np.float64), "start_timestamp"))
    end = float(_single(parquet, column(table, "end_timestamp", np.float64), "end_timestamp"))
    if not 1 <= num_t <= MAX_TIMESTEPS or not np.isfinite([start, end]).all() or (num_t > 1 and end <= start):
        raise NonMonotonicTimestampsError(
            f"{parquet}: expected finite start_timestamp < end_timestamp and 1 <= num_timestamps <= {MAX_TIMESTEPS}, "
            "received "
            f"start={start!r}, end={end!r}, num_timestamps={num_t}"
        )
    timestamps_ns = np.linspace(start, end, num_t)  # [T] float64, ns
    dt = round((end - start) / (num_t - 1) / 1e9, 6) if num_t > 1 else 0.1

    track = column(table, "track_id").astype(str)
    step = column(table, "timestep", np.int64)
    state = np.stack([column(table, c, np.float64) for c in _STATE], axis=1)  # [R, 5]
    bad = ~np.isfinite(state).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidPoseError(f"{parquet}: {int(bad.sum())} row(s) hold NaN/inf in {_STATE}; first at row {row} "
                               f"(track_id {track[row]}, timestep {step[row]}); repair or drop those rows")
    if step.min() < 0 or step.max() >= num_t:
        raise DataFormatError(f"{parquet}: column 'timestep' must lie in [0, {num_t}) (num_timestamps), received "
                              f"[{step.min()}, {step.max()}]")

    ids = np.asarray(pd.unique(track)).astype(str)  # first-appearance order
    if not (ids == AV_TRACK_ID).any():
        raise DataFormatError(f"{parquet}: column 'track_id' has no '{AV_TRACK_ID}' (ego) track; expected the "
                              "AV2 motion-forecasting layout with the ego as track 'AV'")
    ids = np.concatenate([[AV_TRACK_ID], ids[ids != AV_TRACK_ID]])
    lookup = pd.Index(ids)
    a_idx = lookup.get_indexer(track)
    num_a = len(ids)
    key = a_idx.astype(np.int64) * num_t + step
    if len(np.unique(key)) != len(key):
        dup = pd.Series(key).duplicated().to_numpy()
        row = int(np.flatnonzero(dup)[0])
        raise NonMonotonicTimestampsError(
            f"{parquet}: each track's 'timestep' must strictly increase, but track_id {track[row]} has more than "
            f"one row at timestep {step[row]}; drop the duplicated (track_id, timestep) rows"
        )

    valid = np.zeros((num_t, num_a), bool)
    xy = np.zeros((num_t, num_a, 2), np.float64)
    yaw = np.zeros((num_t, num_a), np.float64)
    vel = np.zeros((num_t, num_a, 2), np.float64)
    valid[step, a_idx] = True
    xy[step, a_idx] = state[:, 0:2]
    yaw[step, a_idx] = state[:, 2]
    vel[step, a_idx] = state[:, 3:5]

    if "observed" in table.column_names and column(table, "observed").astype(bool).any():
        t0 = int(step[column(table, "observed").astype(bool)].max())
    else:
        t0 = min(DEFAULT_T0, num_t - 1)
    origin = np.round(xy[t0, 0]).astype(np.float64)

    first_row = np.unique(a_idx, return_index=True)[1]  # [N] first row of each agent, agent order
    obj_type = column(table, "object_type").astype(str)[first_row]
    agent_type = forecast_agent_types(obj_type)
    agent_type[0] = int(AgentType.EGO)
    sizes = forecast_sizes(obj_type)
    sizes[0] = EGO_SIZE_LWH

    agents = AgentTracks(
        xy=np.where(valid[..., None], xy - origin, 0.0).astype(np.float32),
        yaw=yaw.astype(np.float32),
        vel_xy=vel.astype(np.float32),
        size_lwh=sizes.astype(np.float32),
        agent_type=agent_type.astype(np.int8),
        valid=valid,
        track_ids=ids,
    )

    def optional_single(name: str, default: str) -> str:
        return str(_single(parquet, column(table, name), name)) if name in table.column_names else default

    scenario_id = optional_single("scenario_id", parquet.stem.removeprefix("scenario_"))
    focal = optional_single("focal_track_id", "")
    city = optional_single("city", "")
    scored: tuple[str, ...] = ()
    if "object_category" in table.column_names:
        cat = column(table, "object_category", np.int64)[first_row]
        scored = tuple(ids[cat >= 2].tolist())
    last = int(np.flatnonzero(valid[:, 0])[-1])  # the AV's last observed step
    local_map = parse_map(map_path, city=city).to_local(origin) if map_path is not None else MapData.empty()
    log.info("%s: %d steps, %d tracks, focal %s, city %s", scenario_id, num_t, num_a, focal or "?", city or "?")
    return Scenario(
        scenario_id=scenario_id,
        log_id=scenario_id,
        dt=dt,
        t0=t0,
        timestamps_s=timestamps_ns / 1e9,
        origin_xy=origin,
        agents=agents,
        map=local_map,
        route=Route(goal_xy=agents.xy[last, 0].copy(), goal_yaw=float(agents.yaw[last, 0])),
        tags=frozenset({f"av2_focal:{focal}"}) if focal else frozenset(),
        provenance=Provenance(source="av2_forecasting", path=str(scenario_dir), log_id=scenario_id,
                              map_name=city, location=city),
        ego_rear_axle_to_center_m=EGO_REAR_AXLE_TO_CENTER_M,
        meta={"focal_track_id": focal, "scored_track_ids": scored, "city": city, "start_timestamp_ns": start},
    )
