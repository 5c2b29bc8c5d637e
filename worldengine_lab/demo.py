"""The main job on the embedded default (``make demo`` / ``worldengine-lab demo``).

Steps so far: generate the embedded world (seeded, reused when already generated with the same seed and
size), import it into the workspace through the nuPlan reader — the same code path as real nuPlan data —
with its log splits, and print the catalog summary. Later stages of the loop extend this job.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from .artifacts import resolve_workspace
from .store import Workspace

__all__ = ["run_demo", "embedded_world"]

log = logging.getLogger(__name__)


def embedded_world(workspace: Workspace, seed: int = 0, num_logs: int | None = None) -> Any:
    """Generate (or reuse, when its manifest has the same seed and generator version) the embedded world under
    ``<workspace>/datasets/embedded-seed<seed>-<n>logs-v<generator version>``."""
    from .logs.synthetic import DEFAULT_NUM_LOGS, GENERATOR_VERSION, load_result, synthesize

    n = num_logs or DEFAULT_NUM_LOGS
    out = workspace.root / "datasets" / f"embedded-seed{seed}-{n}logs-v{GENERATOR_VERSION}"
    if (out / "manifest.json").is_file():
        manifest = json.loads((out / "manifest.json").read_text())
        if str(manifest.get("generator_version")) == str(GENERATOR_VERSION) and manifest.get("seed") == seed:
            log.info("reusing the embedded world at %s", out)
            return load_result(out)
    return synthesize(out, seed=seed, num_logs=n, overwrite=True)


def run_demo(workspace: str | Path | None = None, seed: int = 0, num_logs: int | None = None,
             echo: bool = True) -> dict[str, Any]:
    """Run the demo; returns a summary dict (and prints it when ``echo``)."""
    t0 = time.perf_counter()
    ws = Workspace.open(resolve_workspace(workspace))
    world = embedded_world(ws, seed=seed, num_logs=num_logs)
    t_synth = time.perf_counter() - t0
    from .scenarios.imports import import_nuplan

    manifest = json.loads((Path(world.root) / "manifest.json").read_text())
    splits = {entry["log_id"]: entry["split"] for entry in manifest["logs"]}
    summary = import_nuplan(ws, world.data_root, maps_root=world.maps_root, stride_s=1.0, source="synthetic",
                            splits=splits)
    stats = ws.stats(source="synthetic")
    result = {
        "workspace": str(ws.root),
        "dataset": str(world.root),
        "num_logs": len(world.db_paths),
        "synth_or_reuse_s": round(t_synth, 1),
        "import_s": round(summary["seconds"], 1),
        "catalog": stats,
    }
    if echo:
        _print(result)
    return result


def _print(result: dict[str, Any]) -> None:
    st = result["catalog"]
    lines = [
        "worldengine_lab demo — the embedded world",
        f"  dataset    {result['dataset']} ({result['num_logs']} nuPlan logs; {result['synth_or_reuse_s']} s)",
        f"  workspace  {result['workspace']}",
        f"  imported   {st['num_scenarios']} scenario windows from {st['num_logs']} logs "
        f"through the nuPlan reader in {result['import_s']} s",
        f"  duration   {st['total_duration_s'] / 3600:.2f} h of scenario windows",
        "  per map:   " + ", ".join(f"{k} {v}" for k, v in sorted(st["by_map"].items())),
        "  per split: " + ", ".join(f"{k} {v}" for k, v in sorted(st["by_split"].items())),
        "  top tags:  " + ", ".join(f"{k} {v}" for k, v in sorted(st["by_tag"].items(), key=lambda kv: -kv[1])[:8]),
    ]
    print("\n".join(lines))
