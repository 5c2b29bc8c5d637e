"""Open nuPlan logs by path (kept open in a small LRU) and re-read catalogued windows."""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Mapping

from ...datatypes import Scenario
from ...errors import MissingFileError
from .reader import NuPlanLog, WindowConfig

__all__ = ["open_log", "discover_logs", "load_catalog_row", "iter_log_scenarios"]

_OPEN: "OrderedDict[tuple[str, str, int, int, int], NuPlanLog]" = OrderedDict()
_LOCK = threading.Lock()
_MAX_OPEN = 16


def open_log(db_path: str | Path, maps_root: str | Path | None = None) -> NuPlanLog:
    """A NuPlanLog for ``db_path``, reused while it stays among the 16 most recently used and the file is
    unchanged (a log replaced on disk, e.g. re-downloaded, is opened again)."""
    path = Path(db_path).resolve()
    try:
        st = path.stat()
    except OSError:
        raise MissingFileError(f"{db_path}: nuPlan log not found; pass the path of a .db file") from None
    key = (str(path), str(maps_root or ""), st.st_mtime_ns, st.st_size, st.st_ino)
    with _LOCK:
        if key in _OPEN:
            _OPEN.move_to_end(key)
            return _OPEN[key]
    log = NuPlanLog(db_path, maps_root=maps_root)
    with _LOCK:
        _OPEN[key] = log
        while len(_OPEN) > _MAX_OPEN:
            _OPEN.popitem(last=False)[1].close()
    return log


def discover_logs(path: str | Path) -> list[Path]:
    """Every ``.db`` log under ``path`` (or ``path`` itself if it is a .db file), sorted."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise MissingFileError(f"{p}: no such file or folder; pass a nuPlan .db file or a folder of them")
    logs = sorted(q for q in p.rglob("*.db") if q.is_file())
    if not logs:
        raise MissingFileError(f"{p}: no .db logs found (searched recursively); is this the nuPlan splits folder?")
    return logs


def load_catalog_row(row: Mapping[str, Any]) -> Scenario:
    """Re-read a catalogued window: ``row`` has path, locator (lidar_pc token), window_json, maps_root."""
    cfg = WindowConfig(**json.loads(row.get("window_json") or "{}"))
    return open_log(row["path"], row.get("maps_root") or None).read(str(row["locator"]), config=cfg)


def iter_log_scenarios(db_path: str | Path, maps_root: str | Path | None = None, **select: Any) -> Iterator[Scenario]:
    """Every selected window of one log (see :meth:`NuPlanLog.select` for ``select``)."""
    log = open_log(db_path, maps_root)
    cfg = select.pop("config", None)
    yield from log.iter_scenarios(log.select(config=cfg, **select), config=cfg)
