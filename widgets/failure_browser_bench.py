"""Latency of the FailureBrowser: how long the Python side takes to answer a front-end filter message.

Run ``python -m worldengine_lab.widgets.failure_browser_bench`` (one JSON object on stdout) or call :func:`bench`.
"""
from __future__ import annotations

import json
import time

import numpy as np

from worldengine_lab.errors import WorldEngineLabError
from worldengine_lab.mining.failure_table import synthetic_failure_table

from .failure_browser import FailureBrowser

__all__ = ["bench"]


def bench(num_rows: int = 100_000, repeats: int = 5, seed: int = 0) -> dict[str, float]:
    """Time the browser's answer to front-end filter messages on a synthetic table of ``num_rows`` failures.

    Each ``<case>_ms`` is the median and ``<case>_max_ms`` the slowest of ``repeats`` ``set_state`` calls (parse
    the filter, apply it, sort, page records, scatter update), in ms; ``max_ms`` is the slowest call of all.
    ``build_s`` is the constructor's time (s), caches included. Run in a kernel, the figures include serialising
    and sending the widget messages; run in a plain process (no comm), they do not.
    """
    table = synthetic_failure_table(num_rows, seed=seed)
    t0 = time.perf_counter()
    browser = FailureBrowser(table)
    build_s = time.perf_counter() - t0
    cases = {
        "failure_type": {"failure_types": ["collision"]},
        "tag": {"tags": ["night"]},
        "map_and_range": {"map_names": ["sg-one-north"], "metric_ranges": {"ego_progress": [0.2, 0.8]}},
        "search": {"search": "pedestrian"},
        "sort_desc": {"failure_types": ["collision"], "sort_by": "score", "descending": True},
        "combined": {"failure_types": ["collision"], "tags": ["review"], "splits": ["mine"],
                     "metric_ranges": {"score": [None, 0.5]}, "search": "vehicle", "sort_by": "ego_progress"},
    }
    out: dict[str, float] = {"num_rows": float(num_rows), "build_s": round(build_s, 3)}
    for name, flt in cases.items():
        times = []
        for _ in range(repeats):
            browser.set_state({"filter_dict": {}})
            t = time.perf_counter()
            browser.set_state({"filter_dict": flt})
            times.append(time.perf_counter() - t)
            if browser.error:
                raise WorldEngineLabError(f"bench: case {name!r} failed: {browser.error}")
        out[f"{name}_ms"] = round(1000 * float(np.median(times)), 1)
        out[f"{name}_max_ms"] = round(1000 * max(times), 1)
    times = []
    for page in range(1, repeats + 1):
        t = time.perf_counter()
        browser.set_state({"page": page})
        times.append(time.perf_counter() - t)
    out["page_ms"] = round(1000 * float(np.median(times)), 1)
    out["page_max_ms"] = round(1000 * max(times), 1)
    out["max_ms"] = max(v for k, v in out.items() if k.endswith("_max_ms"))
    return out


if __name__ == "__main__":
    print(json.dumps(bench()))
