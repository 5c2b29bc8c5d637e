"""The machine-readable results of a loop run: ``summary.json`` in World Engine's table layout.

Layout (values in percent, like World Engine's table; intervals are 95 % percentile-bootstrap over scenarios)::

    {"recipes": {RECIPE: {SPLIT: {METRIC: {"value": v, "ci95": [lo, hi], "n": scenarios}}}},
     "deltas":  {"<recipe>_vs_base": {SPLIT: {METRIC: {"value": d, "ci95": [lo, hi], "n": scenarios}}}},
     "config": {...}, "provenance": {...}}

RECIPE is one of :data:`RECIPE_KEYS` (``base`` and ``worldengine`` — the full recipe — always; the others when
they were run), SPLIT one of :data:`SPLITS`, METRIC one of :data:`METRICS`. Deltas are paired: the same resampled
scenarios for both planners (``worldengine_vs_base`` is always present when both were evaluated). Every figure
comes from the workspace's stored evaluation runs, so the summary and the HTML report show the same numbers.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..artifacts import atomic_write_text, code_version, utc_now_iso
from ..errors import DataFormatError, WorkspaceError
from ..store.workspace import Workspace
from .stats import Estimate, bootstrap_mean, paired_difference
from .tables import latest_results

__all__ = ["RECIPE_KEYS", "RECIPE_OF_KEY", "SPLITS", "METRICS", "build_summary", "write_summary", "check_summary"]

RECIPE_KEYS: tuple[str, ...] = ("base", "sft_rare", "rl_common", "rl_rare", "rl_rare_rollouts", "worldengine")
"""Row keys of the summary, in World Engine's table order (``worldengine`` is its full recipe)."""

RECIPE_OF_KEY: dict[str, str | None] = {
    "base": None, "sft_rare": "sft_rare_logs", "rl_common": "rl_common_logs", "rl_rare": "rl_rare_logs",
    "rl_rare_rollouts": "rl_rare_rollouts", "worldengine": "rl_rare_rollouts_bwm",
}
"""Summary key → post-training recipe (:data:`worldengine_lab.training.rl.RECIPES`); None for the base."""

SPLITS: tuple[str, ...] = ("test_common", "test_rare")
METRICS: dict[str, tuple[str, str]] = {
    "ol_pdms": ("open_loop", "score"), "cl_success": ("closed_loop", "success"), "cl_pdms": ("closed_loop", "score"),
}
"""Metric key → (evaluation mode, per-scenario result field)."""


def _cell(e: Estimate) -> dict[str, Any]:
    return {"value": round(100.0 * e.value, 4), "ci95": [round(100.0 * e.low, 4), round(100.0 * e.high, 4)],
            "n": int(e.n)}


def _values(frame: pd.DataFrame, field: str) -> pd.Series:
    return frame.set_index("scenario_id")[field].astype(np.float64)


def build_summary(ws: Workspace, planners: Mapping[str, str], *, config: Mapping[str, Any] | None = None,
                  provenance: Mapping[str, Any] | None = None, resamples: int = 2000, seed: int = 0
                  ) -> dict[str, Any]:
    """The summary of the newest stored evaluation runs of ``planners`` (summary key → stored planner id).

    Args:
        ws: the workspace holding the runs (``eval_runs`` described ``split=<split>, ...``).
        planners: e.g. ``{"base": "learned:base", "worldengine": "learned:rl_rare_rollouts_bwm"}``; keys from
            :data:`RECIPE_KEYS`, ``base`` required.
        config: the loop's settings, stored as given (JSON-serialisable).
        provenance: extra provenance (report path, stage keys); the workspace, code version, run ids, seed and
            time are added.
        resamples / seed: bootstrap settings.
    Raises:
        DataFormatError: an unknown recipe key or no ``base``.
        WorkspaceError: no stored run for any planner (evaluate first).
    """
    unknown = sorted(set(planners) - set(RECIPE_KEYS))
    if unknown or "base" not in planners:
        raise DataFormatError(f"build_summary(planners): keys must come from {list(RECIPE_KEYS)} and include "
                              f"'base'; received {list(planners)}")
    recipes: dict[str, dict[str, dict[str, Any]]] = {}
    frames: dict[tuple[str, str, str], pd.Series] = {}  # (key, split, metric) -> per-scenario values
    run_ids: dict[str, str] = {}
    missing: list[str] = []
    for key in (k for k in RECIPE_KEYS if k in planners):  # at most six recipes
        pid = planners[key]
        for split in SPLITS:
            for metric, (mode, field) in METRICS.items():
                frame = latest_results(ws, pid, mode, split)
                if frame is None:
                    missing.append(f"{key}/{split}/{metric}")
                    continue
                run_ids[f"{key}/{split}/{mode}"] = str(frame.attrs["run"]["run_id"])
                values = _values(frame, field)
                frames[(key, split, metric)] = values
                e = bootstrap_mean(values.to_numpy(), resamples, seed=seed)
                recipes.setdefault(key, {}).setdefault(split, {})[metric] = _cell(e)
    if not recipes:
        raise WorkspaceError(f"build_summary: no stored evaluation runs for {dict(planners)} in {ws.root}; "
                             "evaluate the planners on test_common and test_rare first")
    deltas: dict[str, dict[str, dict[str, Any]]] = {}
    for key in (k for k in RECIPE_KEYS if k in recipes and k != "base"):
        for (k, split, metric), after in frames.items():
            if k != key or ("base", split, metric) not in frames:
                continue
            before = frames[("base", split, metric)]
            both = after.index.intersection(before.index)
            if not len(both):
                continue
            d = paired_difference(after.loc[both].to_numpy(), before.loc[both].to_numpy(), resamples, seed=seed)
            deltas.setdefault(f"{key}_vs_base", {}).setdefault(split, {})[metric] = _cell(d)
    prov = {"workspace": str(ws.root), "code_version": code_version(), "created_at": utc_now_iso(),
            "planners": dict(planners), "run_ids": run_ids, "bootstrap": {"resamples": resamples, "seed": seed,
                                                                        "level": 0.95, "paired_deltas": True},
            "missing": missing, **dict(provenance or {})}
    return json.loads(json.dumps({"recipes": recipes, "deltas": deltas, "config": dict(config or {}),
                                  "provenance": prov}, default=str))


def check_summary(summary: Mapping[str, Any], require: tuple[str, ...] = ("base", "worldengine")) -> None:
    """Raise DataFormatError unless ``summary`` has the documented layout and the ``require``d recipes with every
    split and metric (finite values inside their intervals)."""
    def fail(what: str) -> None:
        raise DataFormatError(f"summary.json: {what}")

    for top in ("recipes", "deltas", "config", "provenance"):
        if top not in summary:
            fail(f"missing top-level key {top!r}")
    for key in require:
        if key not in summary["recipes"]:
            fail(f"missing recipe {key!r} (have {sorted(summary['recipes'])})")
    cells = [(f"recipes/{k}", v) for k, v in summary["recipes"].items()]
    cells += [(f"deltas/{k}", v) for k, v in summary["deltas"].items()]
    for where, splits in cells:
        name = where.split("/")[1]
        if where.startswith("recipes/") and name not in RECIPE_KEYS:
            fail(f"unknown recipe {name!r}")
        for split in SPLITS:
            if where.startswith("recipes/") and name in require and split not in splits:
                fail(f"{where} lacks split {split!r}")
            for metric in METRICS:
                cell = splits.get(split, {}).get(metric)
                if cell is None:
                    if where.startswith("recipes/") and name in require:
                        fail(f"{where}/{split} lacks metric {metric!r}")
                    continue
                v, (lo, hi) = cell["value"], cell["ci95"]
                if not all(np.isfinite([v, lo, hi])) or not lo - 1e-9 <= v <= hi + 1e-9:
                    fail(f"{where}/{split}/{metric}: value {v} outside its interval [{lo}, {hi}]")
    if "worldengine" in require and "base" in require and "worldengine_vs_base" not in summary["deltas"]:
        fail("missing deltas/worldengine_vs_base")


def write_summary(path: str | os.PathLike[str], summary: Mapping[str, Any]) -> Path:
    """Write ``summary`` as indented JSON, atomically (a failed write leaves any previous file untouched)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(summary, indent=2, sort_keys=False) + "\n")
    return out
