"""Rare-case mining rules over a per-token PDMS table (spec/metrics.md §4).

Three token sets (a token may be in several):

* ``<split>_collision``: NC == 0 exactly (static-object contacts, NC = 0.5, are not mined);
* ``<split>_off_road``: DAC == 0;
* ``<split>_ep_<p>pct``: among *safe* tokens (NC == 1 and DAC == 1) with EP > 0, the p-th percentile of EP
  (numpy's default linear interpolation) is the threshold; tokens of that pool with EP **strictly below**
  it are selected (empty when all pool EPs are equal).

Examples:
    >>> import pandas as pd
    >>> t = pd.DataFrame({"token": list("abc"), "no_at_fault_collisions": [1, 0, 1],
    ...                   "drivable_area_compliance": [1, 1, 0], "ego_progress": [0.9, 0.0, 0.0]})
    >>> mine_rare_cases(t, "train")["train_collision"]
    ['b']
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ShapeError

__all__ = ["mine_rare_cases", "percentile_name", "select_rl_frames", "COLUMN_ALIASES"]

COLUMN_ALIASES = {
    "no_at_fault_collisions": ("no_at_fault_collisions", "nc", "NC"),
    "drivable_area_compliance": ("drivable_area_compliance", "dac", "DAC"),
    "ego_progress": ("ego_progress", "ep", "EP"),
}


def percentile_name(p: float) -> str:
    """``1.0 → '1'``, ``0.5 → '0.5'``, ``12.50 → '12.5'`` (no trailing zeros, no exponent)."""
    text = f"{float(p):.10f}".rstrip("0").rstrip(".")
    return text or "0"


def _column(table: pd.DataFrame, name: str) -> np.ndarray:
    for alias in COLUMN_ALIASES[name]:
        if alias in table.columns:
            values = table[alias].to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                raise ShapeError(f"mine_rare_cases: column {alias!r} holds NaN/inf; drop invalid scenes first")
            return values
    raise ShapeError(f"mine_rare_cases: expected a column {name!r} (or one of {COLUMN_ALIASES[name][1:]}), received "
                     f"columns {list(table.columns)}")


def mine_rare_cases(table: pd.DataFrame, split: str, percentile: float = 1.0,
                    token_column: str = "token") -> dict[str, list[str]]:
    """The three rare-case token lists of §4.

    Args:
        table: one row per token with NC, DAC, EP (§2.13 names, or nc/dac/ep) and ``token_column``
            (or the index holds the tokens).
        split: prefix of the list names (e.g. ``"navtrain"``).
        percentile: p in [0, 100] for the low-progress threshold.
    Returns:
        ``{"<split>_collision": [...], "<split>_off_road": [...], "<split>_ep_<p>pct": [...]}``, tokens in
        table order.
    """
    if not 0.0 <= float(percentile) <= 100.0:
        raise ShapeError(f"mine_rare_cases.percentile: expected a value in [0, 100], received {percentile!r}")
    tokens = (table[token_column] if token_column in table.columns else table.index.to_series()).astype(str).to_numpy()
    nc = _column(table, "no_at_fault_collisions")
    dac = _column(table, "drivable_area_compliance")
    ep = _column(table, "ego_progress")
    pool = (nc == 1.0) & (dac == 1.0) & (ep > 0.0)
    if pool.any():
        threshold = float(np.percentile(ep[pool], percentile))
        low = pool & (ep < threshold)
    else:
        low = np.zeros(len(tokens), bool)
    return {
        f"{split}_collision": tokens[nc == 0.0].tolist(),
        f"{split}_off_road": tokens[dac == 0.0].tolist(),
        f"{split}_ep_{percentile_name(percentile)}pct": tokens[low].tolist(),
    }


def select_rl_frames(table: pd.DataFrame, best_score_min: float = 0.9, plan_score_max: float = 2.0 / 3.0,
                     ep_max: float = 0.2) -> np.ndarray:
    """WorldEngine "v1" rollout-frame filter (§4, reference only): keep a valid frame if the best anchor
    score >= 0.9 and (the executed plan's score <= 2/3 or (plan NC == 1, DAC == 1 and EP < 0.2)).

    Args:
        table: columns ``valid``, ``best_anchor_score``, ``plan_score``, ``plan_nc``, ``plan_dac``, ``plan_ep``.
    Returns:
        ``[rows]`` bool.
    """
    need = ["valid", "best_anchor_score", "plan_score", "plan_nc", "plan_dac", "plan_ep"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ShapeError(f"select_rl_frames: expected columns {need}, missing {missing}")
    t = table
    weak_plan = (t["plan_score"] <= plan_score_max) | (
        (t["plan_nc"] == 1) & (t["plan_dac"] == 1) & (t["plan_ep"] < ep_max))
    return (t["valid"].astype(bool) & (t["best_anchor_score"] >= best_score_min) & weak_plan).to_numpy()
