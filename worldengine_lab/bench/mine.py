"""``bench mine``: the mining job's throughput with the PDM-Closed expert, open loop and closed loop.

A small embedded world (1 log quick, 2 logs otherwise; 40 windows of 10 s per log) is generated once under
the system temp folder and reused by later runs (``setup_s`` covers generating or reusing it, importing it
into a fresh temporary workspace and reading the windows; none of that is in the throughput figures). Then
:func:`~worldengine_lab.mining.pipeline.mine` runs the expert (``tracking="perfect"``, as World Engine's
closed loop executes plans) on ``num_scenarios`` windows drawn with seed 0, once per mode: evaluation,
storing the run, classifying, clustering, ranking and storing the cases are all inside the timed figures.

Figures:
    scenarios_per_s_open_loop / scenarios_per_s_closed_loop: scenarios mined per second (wall clock).
    open_loop_s / closed_loop_s: the timed seconds behind them.
    setup_s: world generation or reuse + import + loading the scenarios, s (not timed above).
    num_scenarios, batch_size, num_logs; pdms_open_loop / pdms_closed_loop and success_pct_closed_loop as a
    sanity check of what was measured.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

__all__ = ["bench_mine"]

_SEED = 0


def _world(num_logs: int) -> tuple[Any, bool]:
    """The cached embedded world of ``num_logs`` logs (generated if absent or stale); (result, reused)."""
    from ..logs.synthetic import GENERATOR_VERSION, load_result, synthesize

    name = f"mine-seed{_SEED}-{num_logs}logs-v{GENERATOR_VERSION}"
    out = Path(tempfile.gettempdir()) / "worldengine-lab-bench" / name
    manifest = out / "manifest.json"
    if manifest.is_file():
        meta = json.loads(manifest.read_text())
        if str(meta.get("generator_version")) == str(GENERATOR_VERSION) and meta.get("seed") == _SEED:
            return load_result(out), True
    return synthesize(out, seed=_SEED, num_logs=num_logs, overwrite=True), False


def bench_mine(quick: bool = False, num_scenarios: int | None = None, batch_size: int | None = None,
               num_logs: int | None = None) -> dict[str, Any]:
    """Mine the expert's failures on a small embedded world; see the module docstring for the figures.

    Args:
        quick: 1 log and 2 scenarios instead of 2 logs and 32 scenarios (one batch of the default size).
        num_scenarios: scenarios evaluated per mode (at most the world's windows).
        batch_size: scenarios simulated together (default: all of them in one batch).
        num_logs: logs of the generated world.
    """
    from ..errors import WorldEngineLabError
    from ..mining.evaluate import WE_CLOSED_LOOP, EvalConfig
    from ..mining.pipeline import mine
    from ..planners.registry import load_planner
    from ..scenarios.imports import import_nuplan
    from ..store import Workspace

    n_logs = num_logs or (1 if quick else 2)
    n = num_scenarios or (2 if quick else 32)
    batch = batch_size or n
    if n < 1 or batch < 1 or n_logs < 1:
        raise WorldEngineLabError(f"bench_mine: expected num_scenarios, batch_size and num_logs >= 1, received "
                                  f"{n}, {batch}, {n_logs}")
    out: dict[str, Any] = {}
    t = time.perf_counter()
    world, reused = _world(n_logs)
    with tempfile.TemporaryDirectory(prefix="wel-bench-mine-") as tmp:
        ws = Workspace.open(Path(tmp) / "ws")
        try:
            import_nuplan(ws, world.data_root, maps_root=world.maps_root, stride_s=1.0, source="synthetic",
                          progress=False)
            picked = ws.scenarios().sample(n, seed=_SEED)
            scenarios = list(picked)
            out["setup_s"] = round(time.perf_counter() - t, 2)
            out["world_reused"] = reused
            print(f"bench mine: {len(scenarios)} scenarios ready in {out['setup_s']} s "
                  f"({'reused' if reused else 'generated'} world of {n_logs} logs)", file=sys.stderr)
            planner = load_planner("expert", tracking="perfect")
            config = EvalConfig(sim=replace(WE_CLOSED_LOOP, tracking="perfect"), batch_size=batch, seed=_SEED)
            for mode in ("open_loop", "closed_loop"):
                t = time.perf_counter()
                res = mine(ws, planner, scenarios=scenarios, modes=(mode,), config=config,
                           description=f"bench mine, {len(scenarios)} scenarios")
                secs = time.perf_counter() - t
                summary = res.summaries[mode]
                out[f"{mode}_s"] = round(secs, 2)
                out[f"scenarios_per_s_{mode}"] = round(len(scenarios) / secs, 3)
                out[f"pdms_{mode}"] = round(float(summary["pdms"]), 2)
                out[f"success_pct_{mode}"] = round(float(summary["success_rate_pct"]), 1)
                out[f"num_cases_{mode}"] = int(len(res.cases))
                print(f"bench mine: {mode} {out[f'scenarios_per_s_{mode}']} scenarios/s", file=sys.stderr)
        finally:
            ws.close()
    out["num_scenarios"] = len(scenarios)
    out["batch_size"] = batch
    out["num_logs"] = n_logs
    return out
