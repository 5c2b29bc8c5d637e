"""Find AV2 sensor logs and motion-forecasting scenarios under a path (for ``data import av2 PATH``).

A folder is a **sensor log** if it holds ``city_SE3_egovehicle.feather`` or an annotation file
(``annotations.feather`` / ``annotations_with_ego.feather``); it is a **forecasting scenario** if it holds
a ``scenario_*.parquet``. PATH may be one such folder, a file inside one, or any folder above them (a split
folder, a dataset root); folders are searched down to ``max_depth`` levels, not descending into a match
or into a log's ``sensors/``, ``map/`` and ``calibration/`` folders.
"""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import MissingFileError
from .annotations import ANNOTATION_FILES, POSE_FILE

__all__ = ["discover", "scan_sensor_logs", "scan_forecasting_scenarios", "SENSOR", "FORECASTING"]

SENSOR = "sensor"
FORECASTING = "forecasting"
_SENSOR_FILES = frozenset({POSE_FILE, *ANNOTATION_FILES})
_SKIP = frozenset({"sensors", "map", "calibration", "__pycache__"})


def _kind_of(names: set[str]) -> str | None:
    if any(n.startswith("scenario_") and n.endswith(".parquet") for n in names):
        return FORECASTING
    if names & _SENSOR_FILES:
        return SENSOR
    return None


def _walk(folder: Path, depth: int, out: list[tuple[str, Path]]) -> None:
    try:
        entries = list(os.scandir(folder))
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        return
    kind = _kind_of({e.name for e in entries if e.is_file()})
    if kind is not None:
        out.append((kind, folder))
        return
    if depth <= 0:
        return
    for e in sorted(entries, key=lambda e: e.name):
        if e.is_dir() and not e.name.startswith(".") and e.name not in _SKIP:
            _walk(Path(e.path), depth - 1, out)


def discover(path: str | Path, max_depth: int = 4) -> list[tuple[str, Path]]:
    """``[(kind, folder)]`` for every AV2 sensor log (kind ``"sensor"``) and forecasting scenario
    (``"forecasting"``) at or under ``path``, sorted by folder.

    Raises MissingFileError if ``path`` does not exist. A path holding neither gives an empty list.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: expected an AV2 log folder, split folder or scenario folder, but the path "
                               "does not exist")
    if path.is_file():
        kind = _kind_of({path.name}) or _kind_of({p.name for p in path.parent.iterdir() if p.is_file()})
        return [(kind, path.parent)] if kind else []
    out: list[tuple[str, Path]] = []
    _walk(path, max_depth, out)
    return sorted(out, key=lambda kp: str(kp[1]))


def scan_sensor_logs(root: str | Path, max_depth: int = 4) -> list[Path]:
    """Sensor log folders at or under ``root`` (see :func:`discover`)."""
    return [p for kind, p in discover(root, max_depth) if kind == SENSOR]


def scan_forecasting_scenarios(root: str | Path, max_depth: int = 4) -> list[Path]:
    """Forecasting scenario folders at or under ``root`` (see :func:`discover`)."""
    return [p for kind, p in discover(root, max_depth) if kind == FORECASTING]
