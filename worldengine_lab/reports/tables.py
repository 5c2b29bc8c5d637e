"""World Engine's results table from stored evaluation runs, with bootstrap intervals and paired gains.

One row per planner (recipe), columns as in World Engine's README: open-loop PDMS on test-common and test-rare,
closed-loop success rate and closed-loop PDMS* on test-rare — each a :class:`~.stats.Estimate` over scenarios — plus,
for every planner after the first (the base), the paired difference to the base on the same scenarios. Numbers
come from the workspace's ``eval_runs`` / ``eval_results``, so a report shows exactly what the store holds.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import WorkspaceError
from ..mining.store import eval_runs, load_eval_results
from ..store.workspace import Workspace
from .stats import Estimate, bootstrap_mean, paired_difference

__all__ = ["COLUMNS", "latest_results", "results_table", "before_after", "format_table"]

COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("OL PDMS common", "open_loop", "test_common", "score"),
    ("OL PDMS rare", "open_loop", "test_rare", "score"),
    ("CL success rare", "closed_loop", "test_rare", "success"),
    ("CL PDMS* rare", "closed_loop", "test_rare", "score"),
)
"""(column, mode, split, result field) of the table, in World Engine's order."""


def latest_results(ws: Workspace, planner_id: str, mode: str, split: str) -> pd.DataFrame | None:
    """The newest stored run of ``planner_id`` in ``mode`` on ``split`` (rows), or None when there is none."""
    runs = eval_runs(ws, planner_id=planner_id, mode=mode)
    runs = runs[runs["description"].str.startswith(f"split={split},")]
    if not len(runs):
        return None
    return load_eval_results(ws, run_id=str(runs.iloc[0]["run_id"]))


def results_table(ws: Workspace, planners: Mapping[str, str], resamples: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """The results table for ``planners`` (row label -> stored planner id; the first is the base).

    Cells are :class:`Estimate` (None where the run is missing); ``Δ <column>`` cells are paired differences to
    the base on the scenarios both runs scored. ``.attrs["run_ids"]`` lists the runs used.

    Raises:
        WorkspaceError: no planner has any stored run (evaluate first: ``worldengine-lab mine --split ...``).
    """
    rows: dict[str, dict[str, Estimate | None]] = {}
    run_ids: list[str] = []
    base_frames: dict[str, pd.DataFrame] = {}
    for i, (label, pid) in enumerate(planners.items()):  # a handful of recipes
        row: dict[str, Estimate | None] = {}
        for col, mode, split, field in COLUMNS:
            frame = latest_results(ws, pid, mode, split)
            if frame is None:
                row[col] = None
                continue
            rid = str(frame.attrs["run"]["run_id"])
            if rid not in run_ids:
                run_ids.append(rid)
            values = frame.set_index("scenario_id")[field].astype(np.float64)
            row[col] = bootstrap_mean(values.to_numpy(), resamples, seed=seed)
            if i == 0:
                base_frames[col] = values
            elif col in base_frames:
                both = values.index.intersection(base_frames[col].index)
                if len(both):
                    row[f"Δ {col}"] = paired_difference(values.loc[both].to_numpy(),
                                                        base_frames[col].loc[both].to_numpy(), resamples, seed=seed)
        rows[label] = row
    if not run_ids:
        raise WorkspaceError(f"results_table: no stored evaluation runs for planners {list(planners.values())} in "
                             f"{ws.root}; evaluate them on test_common and test_rare first")
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.attrs["run_ids"] = run_ids
    return table


def before_after(ws: Workspace, base_id: str, post_id: str, split: str = "test_rare",
                 mode: str = "closed_loop") -> pd.DataFrame:
    """Per-scenario outcome change from ``base_id`` to ``post_id``: ``fixed`` (failed → succeeded), ``broken``,
    ``still failing`` or ``still fine``, with both scores, sorted by score gain (largest first)."""
    a, b = latest_results(ws, base_id, mode, split), latest_results(ws, post_id, mode, split)
    if a is None or b is None:
        raise WorkspaceError(f"before_after: need stored {mode} runs on {split} for {base_id!r} and {post_id!r}")
    m = a[["scenario_id", "success", "score", "failure_type"]].merge(
        b[["scenario_id", "success", "score", "failure_type"]], on="scenario_id", suffixes=("_base", "_post"))
    sb, sp = m["success_base"].astype(bool).to_numpy(), m["success_post"].astype(bool).to_numpy()
    m["change"] = np.select([~sb & sp, sb & ~sp, ~sb & ~sp], ["fixed", "broken", "still failing"], "still fine")
    m["score_gain"] = m["score_post"] - m["score_base"]
    return m.sort_values("score_gain", ascending=False, kind="stable").reset_index(drop=True)


def format_table(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Strings ``"value [low, high]"`` for display, percentages (×100) for PDMS and success rates."""
    return table.apply(lambda col: col.map(lambda e: e.format(100.0, digits) if isinstance(e, Estimate) else "–"))
