"""``bench data``: generation, nuPlan window reading and AV2 log reading throughput.

Figures:
    synth_logs_per_s: embedded-world logs generated per second (maps included in the time).
    nuplan_windows_per_s: 10-s windows (2 s + 8 s at 10 Hz) read as Scenarios per second from the
        generated logs, map parse included; nuplan_first_window_s is the cold start (open + map parse).
    nuplan_window_rss_growth_mb: resident memory growth while reading all those windows.
    av2_logs_per_s: whole AV2 sensor logs read per second from ``$AV2_DATA_ROOT`` (null when unset).
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

__all__ = ["bench_data"]

log = logging.getLogger(__name__)


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def bench_data(quick: bool = False, num_logs: int | None = None, av2_root: str | None = None) -> dict[str, Any]:
    from ..logs import av2
    from ..logs.nuplan import NuPlanLog, WindowConfig
    from ..logs.synthetic import synthesize

    n = num_logs or (2 if quick else 8)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="wel-bench-") as tmp:
        t = time.perf_counter()
        world = synthesize(Path(tmp) / "world", seed=0, num_logs=n)
        out["synth_logs"] = n
        out["synth_logs_per_s"] = round(n / (time.perf_counter() - t), 3)
        out["synth_mb_per_log"] = round(sum(p.stat().st_size for p in world.db_paths) / n / 2**20, 2)
        print(f"synth: {n} logs at {out['synth_logs_per_s']} logs/s", file=sys.stderr)

        cfg = WindowConfig()
        rss0 = _rss_mb()
        count = 0
        t = time.perf_counter()
        first = None
        for p in world.db_paths:
            nl = NuPlanLog(p, maps_root=world.maps_root)
            for tok in nl.select(stride_s=0.5, config=cfg).token:
                nl.read(tok, config=cfg)
                count += 1
                if first is None:
                    first = time.perf_counter() - t
            nl.close()
        secs = time.perf_counter() - t
        out["nuplan_windows"] = count
        out["nuplan_windows_per_s"] = round(count / secs, 2)
        out["nuplan_first_window_s"] = round(first or 0.0, 3)
        out["nuplan_window_rss_growth_mb"] = round(_rss_mb() - rss0, 1)
        print(f"nuplan: {count} windows at {out['nuplan_windows_per_s']} windows/s", file=sys.stderr)

    root = av2_root or os.environ.get("AV2_DATA_ROOT")
    if root and Path(root).is_dir():
        logs = [p for kind, p in av2.discover(root) if kind == "sensor" and (p / av2.POSE_FILE).is_file()]
        reps = 1 if quick else 3
        t = time.perf_counter()
        for _ in range(reps):
            for p in logs:
                av2.read_sensor_log(p)
        secs = time.perf_counter() - t
        out["av2_logs"] = len(logs)
        out["av2_logs_per_s"] = round(len(logs) * reps / secs, 3) if logs else None
    else:
        out["av2_logs"] = 0
        out["av2_logs_per_s"] = None
        log.warning("AV2_DATA_ROOT is not set: av2_logs_per_s is null")
    return out
