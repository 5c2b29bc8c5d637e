"""Re-read an AV2 scenario from its catalog row (the loader registered for sources ``av2`` and
``av2_forecasting``).

Row fields used: ``source``, ``path`` (log or scenario folder), ``locator`` (sensor logs: the t0 grid time
in ns on the log clock, i.e. the part of ``scenario_id`` after the last ``:``) and ``window_json``
(``history_s``, ``future_s`` (null = to the end of the log), ``dt``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ...datatypes import Scenario
from ...errors import DataFormatError, WindowOutOfRangeError
from .forecasting import read_forecasting_scenario
from .sensor import load_sensor_log

__all__ = ["load_catalog_row", "read_sensor_window_at"]


def read_sensor_window_at(
    log_dir: str | Path, t0_ns: int, history_s: float = 2.0, future_s: float | None = 8.0, dt: float = 0.1,
    require_map: bool = True,
) -> Scenario:
    """The window of a sensor log whose "now" is the grid time ``t0_ns`` (ns, log clock).

    Raises WindowOutOfRangeError if ``t0_ns`` is not a grid time of the log at this ``dt`` or the window
    does not fit in the log.
    """
    sensor_log = load_sensor_log(log_dir, dt=dt, require_map=require_map)
    dt_ns = int(round(dt * 1e9))
    offset = int(t0_ns) - int(sensor_log.grid_ns[0])
    if offset % dt_ns or not 0 <= offset // dt_ns < sensor_log.num_steps:
        raise WindowOutOfRangeError(
            f"{sensor_log.log_dir}: t0 = {t0_ns} ns is not a grid time of this log at dt = {dt} s (grid "
            f"{int(sensor_log.grid_ns[0])} + k * {dt_ns} ns, k < {sensor_log.num_steps}); re-import the log"
        )
    t0 = offset // dt_ns
    n_hist = int(round(history_s / dt))
    stop = sensor_log.num_steps if future_s is None else t0 + int(round(future_s / dt)) + 1
    return sensor_log.scenario(t0, t0 - n_hist, stop)


def load_catalog_row(row: Mapping[str, Any]) -> Scenario:
    """Scenario of a catalog row written by the AV2 import (see the module doc)."""
    source = row.get("source")
    path = row.get("path")
    if not path:
        raise DataFormatError(f"catalog row {row.get('scenario_id')!r}: expected a 'path' to the AV2 data, received "
                              f"{path!r}; re-import it")
    if source == "av2_forecasting":
        return read_forecasting_scenario(path)
    if source != "av2":
        raise DataFormatError(f"catalog row {row.get('scenario_id')!r}: expected source 'av2' or 'av2_forecasting', "
                              f"received {source!r}")
    window = json.loads(row.get("window_json") or "{}")
    try:
        t0_ns = int(row["locator"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(f"catalog row {row.get('scenario_id')!r}: expected 'locator' = the t0 timestamp in ns, "
                              f"received {row.get('locator')!r}; re-import it") from exc
    return read_sensor_window_at(
        path, t0_ns, history_s=float(window.get("history_s", 2.0)), future_s=window.get("future_s", 8.0),
        dt=float(window.get("dt", 0.1)),
    )
