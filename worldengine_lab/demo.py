"""The main job on the embedded default (``make demo`` / ``worldengine-lab demo``).

Generates the embedded world (seeded, reused when already generated with the same seed and size), imports it
into the workspace through the nuPlan reader — the same code path as real nuPlan data — with its log splits, then
runs the rest of the loop (:mod:`worldengine_lab.loop`) and prints the catalog summary, the results table and
where the HTML report and ``summary.json`` are.
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


def import_embedded_world(ws: Workspace, world: Any, stride_s: float = 1.0,
                          event_offsets_s: tuple[float, ...] = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
                          ) -> dict[str, Any]:
    """Import the embedded world's windows with their splits.

    * ``pretrain`` and ``test_common`` logs: one window every ``stride_s`` seconds;
    * ``mine`` logs: the same, plus the windows around each rare event;
    * ``test_rare`` logs: only the windows around rare events, never used for training or mining.

    "Around an event" means a window whose "now" is ``event_offsets_s`` from the moment the hazard begins
    (from the manifest), so the planner meets the hazard during its 4-s episode; each such window is tagged
    with its event type in the catalog.

    Returns the summed import summary (``num_scenarios``, ``num_logs``, ``seconds``, ``import_ids``).
    """
    from .logs.nuplan import open_log
    from .logs.nuplan.reader import SWEEP_PERIOD_S
    from .scenarios.imports import import_nuplan

    manifest = json.loads((Path(world.root) / "manifest.json").read_text())
    splits = {entry["log_id"]: entry["split"] for entry in manifest["logs"]}
    common = dict(maps_root=world.maps_root, source="synthetic", splits=splits)
    parts = []
    strided = [Path(world.root) / e["path"] for e in manifest["logs"] if e["split"] in ("pretrain", "test_common", "mine")]
    if strided:
        parts.append(import_nuplan(ws, strided, stride_s=stride_s, **common))
    around: list[Path] = []
    event_of: dict[str, str] = {}  # window token -> rare event type
    for e in manifest["logs"]:
        if e["split"] not in ("mine", "test_rare") or not e.get("rare_events"):
            continue
        path = Path(world.root) / e["path"]
        valid = open_log(path, world.maps_root).select(stride_s=SWEEP_PERIOD_S)  # every sweep a window fits at
        token_at = dict(zip(valid["idx"].to_numpy().tolist(), valid["token"]))
        for ev in e["rare_events"]:
            for o in event_offsets_s:
                tok = token_at.get(int(ev["frame"]) + int(round(o / SWEEP_PERIOD_S)))
                if tok is not None:
                    event_of[tok] = ev["type"]
        if any(t in event_of for t in valid["token"]):
            around.append(path)
    if event_of:
        parts.append(import_nuplan(ws, around, tokens=list(event_of), **common))
        # the windows before the hazard begins carry no rare tag in the log; name their event in the catalog
        for kind in sorted(set(event_of.values())):
            ws.tag([t for t, k in event_of.items() if k == kind], kind)
    return {"num_scenarios": ws.count(source="synthetic"), "num_logs": len(manifest["logs"]),
            "seconds": sum(p["seconds"] for p in parts), "import_ids": [p["import_id"] for p in parts]}


def run_demo(workspace: str | Path | None = None, seed: int = 0, num_logs: int | None = None,
             echo: bool = True, until: str = "report", epochs: int | None = None, iterations: int | None = None,
             report: str | None = None, max_scenarios: int | None = None, compare: list[str] | None = None,
             variants_method: str | None = None) -> dict[str, Any]:
    """Run the World Engine loop (:func:`worldengine_lab.loop.run_loop`) up to ``until``; returns its results
    and prints a line per stage, the catalog summary and the final results table when ``echo``."""
    import dataclasses

    from .loop import LoopConfig, run_loop

    ws = Workspace.open(resolve_workspace(workspace))
    cfg = LoopConfig(seed=seed, num_logs=num_logs)
    overrides = {"pretrain_epochs": epochs, "posttrain_iterations": iterations, "report_path": report,
                 "max_scenarios": max_scenarios, "compare_recipes": tuple(compare) if compare is not None else None,
                 "variants_method": variants_method}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    t0 = time.perf_counter()
    results = run_loop(ws, cfg, progress=echo, echo=print if echo else None, until=until)
    results["total_s"] = time.perf_counter() - t0
    if echo:
        w = results.get("world", {})
        _print({"workspace": str(ws.root), "num_logs": w.get("num_logs"), "catalog": ws.stats(source="synthetic")})
        if "table" in results:
            print("\nWorld Engine results table (95 % bootstrap intervals; PDMS and success in %):")
            print(results["table"])
            print(f"\nreport:  {results['report']['html']}")
            print(f"summary: {results['report']['summary']}")
        print(f"total {results['total_s'] / 60:.1f} min")
    return results


def _print(result: dict[str, Any]) -> None:
    st = result["catalog"]
    lines = [
        "worldengine_lab demo — the embedded world",
        f"  workspace  {result['workspace']}",
        f"  imported   {st['num_scenarios']} scenario windows from {st['num_logs']} logs through the nuPlan reader",
        f"  duration   {st['total_duration_s'] / 3600:.2f} h of scenario windows",
        "  per map:   " + ", ".join(f"{k} {v}" for k, v in sorted(st["by_map"].items())),
        "  per split: " + ", ".join(f"{k} {v}" for k, v in sorted(st["by_split"].items())),
        "  top tags:  " + ", ".join(f"{k} {v}" for k, v in sorted(st["by_tag"].items(), key=lambda kv: -kv[1])[:8]),
    ]
    print("\n".join(lines))
