"""Benchmarks: ``worldengine-lab bench NAME --json`` prints one JSON object of figures (units in the names).

Benchmarks register by name; each returns a flat dict of numbers (and a few strings). The machine's
``cpu_count`` and torch thread count are added to every result.
"""
from __future__ import annotations

import importlib
import os
import resource
from typing import Any, Callable

__all__ = ["BENCHMARKS", "run_benchmark", "peak_rss_mb", "machine_facts"]

# name -> "module:function"; modules import lazily so `bench --help` stays fast
BENCHMARKS: dict[str, str] = {
    "data": "worldengine_lab.bench.data:bench_data",
    "sim": "worldengine_lab.bench.sim:bench_sim_cli",
    "score": "worldengine_lab.bench.score:bench_score",
    "mine": "worldengine_lab.bench.mine:bench_mine",
    "train": "worldengine_lab.bench.train:bench_train",
    "render": "worldengine_lab.bench.render:bench_render",
    "variants": "worldengine_lab.bench.variants:bench_variants",
}


def peak_rss_mb() -> float:
    """Peak resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine_facts() -> dict[str, Any]:
    """cpu_count and torch's intra-op thread count."""
    facts: dict[str, Any] = {"cpu_count": os.cpu_count() or 1}
    try:
        import torch

        facts["torch_num_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        facts["torch_num_threads"] = None
    return facts


def run_benchmark(name: str, **kwargs: Any) -> dict[str, Any]:
    """Run benchmark ``name`` and return its figures plus machine facts and peak RSS."""
    if name not in BENCHMARKS:
        from ..errors import WorldEngineLabError

        raise WorldEngineLabError(f"unknown benchmark {name!r}; available: {sorted(BENCHMARKS)}")
    mod, fn = BENCHMARKS[name].split(":")
    func: Callable[..., dict[str, Any]] = getattr(importlib.import_module(mod), fn)
    out = func(**kwargs)
    out.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    out.update(machine_facts())
    return {"benchmark": name, **out}
