"""Import scenario windows from driving logs into the workspace catalog.

An import reads every selected window through the dataset's reader (so a bad file fails here, with its
name, not later in a notebook) and writes all catalog rows in one transaction: a failed import writes
nothing.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tqdm.auto import tqdm

from ..datatypes import Scenario
from ..store import Workspace

__all__ = ["catalog_row", "import_nuplan", "import_av2"]

log = logging.getLogger(__name__)


def catalog_row(s: Scenario, source: str, path: str, locator: str, window: Mapping[str, Any],
                maps_root: str | None = None) -> dict[str, Any]:
    """The catalog row of a Scenario: what the store indexes and what its loader needs to re-read it."""
    return {
        "scenario_id": s.scenario_id,
        "source": source,
        "path": path,
        "locator": locator,
        "log_id": s.log_id,
        "map_name": s.provenance.map_name or s.map.map_id,
        "location": s.provenance.location,
        "start_time_s": float(s.timestamps_s[0]),
        "duration_s": s.duration_s,
        "num_steps": s.num_steps,
        "t0": int(s.t0),
        "num_agents": s.agents.num_agents,
        "window_json": json.dumps(dict(window), sort_keys=True),
        "maps_root": maps_root,
    }


def import_nuplan(
    ws: Workspace,
    path: str | Path | Sequence[str | Path],
    maps_root: str | Path | None = None,
    tags: Iterable[str] | None = None,
    tokens: Iterable[str] | None = None,
    stride_s: float | None = None,
    history_s: float = 2.0,
    future_s: float = 8.0,
    dt: float = 0.1,
    source: str = "nuplan",
    splits: Mapping[str, str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Import windows of the nuPlan logs at ``path`` (a .db, a folder, or a list of them) into ``ws``.

    Args:
        maps_root: nuPlan maps folder (default ``$NUPLAN_MAPS_ROOT``).
        tags / tokens / stride_s: window selection, see :meth:`NuPlanLog.select` (default: every tagged sweep).
        history_s, future_s, dt: window shape (s).
        source: catalog source label ('nuplan', or 'synthetic' for the embedded world).
        splits: optional ``log_id -> split`` assignment recorded for the imported scenarios.
    Returns:
        ``{"import_id", "num_scenarios", "num_logs", "seconds"}``.
    """
    from ..logs.nuplan import WindowConfig, discover_logs, open_log

    t_start = time.perf_counter()
    cfg = WindowConfig(history_s=history_s, future_s=future_s, dt=dt)
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        from ..errors import MissingFileError

        raise MissingFileError("import_nuplan.path: expected a .db log, a folder or a list of them, received []")
    logs = sorted({q for p in paths for q in discover_logs(p)})
    mr = str(Path(maps_root).resolve()) if maps_root else None
    rows: list[dict[str, Any]] = []
    scenario_tags: dict[str, list[str]] = {}
    token_list = list(tokens) if tokens is not None else None
    for db_path in tqdm(logs, desc="import nuplan", disable=not progress, unit="log"):
        nl = open_log(db_path, mr)
        if token_list is not None:
            own = [t for t in token_list if _has_token(nl, t)]
            if not own:
                continue
            sel = nl.select(tokens=own, config=cfg)
        else:
            sel = nl.select(tags=tags, stride_s=stride_s, config=cfg)
        for tok in sel["token"]:
            s = nl.read(tok, config=cfg)
            rows.append(catalog_row(s, source, str(Path(db_path).resolve()), tok, cfg.to_dict(), mr))
            scenario_tags[s.scenario_id] = sorted(s.tags)
    if token_list is not None and not rows:
        from ..errors import WorldEngineLabError

        raise WorldEngineLabError(f"{path}: none of the tokens {token_list[:5]} is a lidar_pc of these logs")
    meta = {"source": source, "path": str(path) if isinstance(path, (str, Path)) else f"{len(paths)} paths",
            "params": {"tags": list(tags) if tags else None,
            "tokens": token_list, "stride_s": stride_s, **cfg.to_dict(), "maps_root": mr}}
    with ws.transaction():  # catalog rows and their splits land together or not at all
        import_id = ws.add_scenarios(rows, tags=scenario_tags, import_meta=meta)
        if splits:
            _record_splits(ws, rows, splits)
    secs = time.perf_counter() - t_start
    log.info("imported %d windows from %d logs in %.1f s", len(rows), len(logs), secs)
    return {"import_id": import_id, "num_scenarios": len(rows), "num_logs": len(logs), "seconds": secs}


def import_av2(
    ws: Workspace,
    path: str | Path,
    stride_s: float = 1.0,
    history_s: float = 2.0,
    future_s: float = 8.0,
    dt: float = 0.1,
    skip_incomplete: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Import Argoverse 2 data at ``path``: sensor logs (sliding windows every ``stride_s``) and
    motion-forecasting scenarios (one scenario each). One transaction; returns the same summary as
    :func:`import_nuplan` plus ``skipped`` (log folders without a pose file, left out when
    ``skip_incomplete``; with it False they raise). Damaged files always abort the whole import."""
    from ..logs import av2

    t_start = time.perf_counter()
    found = av2.discover(path)
    rows: list[dict[str, Any]] = []
    scenario_tags: dict[str, list[str]] = {}
    window = {"history_s": history_s, "future_s": future_s, "dt": dt}
    skipped: list[str] = []
    for kind, p in tqdm(found, desc="import av2", disable=not progress, unit="log"):
        if kind == "sensor":
            if skip_incomplete and not (Path(p) / av2.POSE_FILE).is_file():
                log.warning("%s: skipped, no %s (an annotations-only folder is not a sensor log)", p, av2.POSE_FILE)
                skipped.append(str(p))
                continue
            for s in av2.read_sensor_windows(p, history_s=history_s, future_s=future_s, stride_s=stride_s, dt=dt):
                locator = s.scenario_id.rsplit(":", 1)[-1]
                rows.append(catalog_row(s, "av2", str(Path(p).resolve()), locator, window))
                scenario_tags[s.scenario_id] = sorted(s.tags)
        else:
            s = av2.read_forecasting_scenario(p)
            rows.append(catalog_row(s, "av2_forecasting", str(Path(p).resolve()), "", {"dt": s.dt}))
            scenario_tags[s.scenario_id] = sorted(s.tags)
    meta = {"source": "av2", "path": str(path), "params": {"stride_s": stride_s, **window}}
    import_id = ws.add_scenarios(rows, tags=scenario_tags, import_meta=meta)
    secs = time.perf_counter() - t_start
    return {"import_id": import_id, "num_scenarios": len(rows), "num_logs": len(found) - len(skipped),
            "skipped": skipped, "seconds": secs}


def _has_token(nl: Any, token: str) -> bool:
    try:
        nl.db.index_of(token)
        return True
    except (KeyError, ValueError):
        return False


def _record_splits(ws: Workspace, rows: list[dict[str, Any]], splits: Mapping[str, str]) -> None:
    by_split: dict[str, list[str]] = {}
    for r in rows:
        split = splits.get(r["log_id"])
        if split:
            by_split.setdefault(split, []).append(r["scenario_id"])
    for split, ids in by_split.items():
        ws.set_split(ids, split)
