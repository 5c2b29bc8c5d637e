"""Deterministic splits by log: every scenario of a log lands in the same split, so no log leaks across splits.

Each log id is hashed with sha256 (with the seed) to a number ``u`` in [0, 1); the log goes to the first split
whose cumulative fraction exceeds ``u``. A log's split depends only on its id, the seed and the fractions, so
adding logs later never moves existing ones (a test log stays a test log). Fractions hold in expectation over
logs, not exactly.

Examples:
    >>> parts = split_logs(["log-a", "log-b", "log-c"], {"train": 0.5, "test": 0.5}, seed=0)
    >>> sorted(parts) == ["log-a", "log-b", "log-c"] and set(parts.values()) <= {"train", "test"}
    True
"""
from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import WorldEngineLabError

if TYPE_CHECKING:
    from ..store.workspace import Workspace

__all__ = ["log_unit_interval", "split_logs", "split_by_log"]


def log_unit_interval(log_id: str, seed: int = 0) -> float:
    """The log's position in [0, 1): the first 8 bytes of ``sha256(f"{seed}:{log_id}")`` over 2**64."""
    digest = hashlib.sha256(f"{int(seed)}:{log_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _check_fractions(fractions: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    names = list(fractions)
    if not names:
        raise WorldEngineLabError("split: expected at least one split in fractions, received none")
    values = np.array([float(fractions[k]) for k in names], np.float64)
    if not np.isfinite(values).all() or (values < 0).any() or not math.isclose(values.sum(), 1.0, abs_tol=1e-6):
        raise WorldEngineLabError(
            f"split: expected non-negative fractions summing to 1, received {dict(fractions)} (sum {values.sum():g}); "
            f"divide by the total to normalise"
        )
    return names, np.cumsum(values)


def split_logs(log_ids: Iterable[str], fractions: Mapping[str, float], seed: int = 0) -> dict[str, str]:
    """Map each distinct log id to a split name (see the module docstring for the rule)."""
    names, cum = _check_fractions(fractions)
    logs = list(dict.fromkeys(str(x) for x in log_ids))
    u = np.array([log_unit_interval(log, seed) for log in logs], np.float64)
    idx = np.minimum(np.searchsorted(cum, u, side="right"), len(names) - 1)
    # a zero fraction never receives a log, even at the boundary where cum equals u
    return {log: names[i] for log, i in zip(logs, idx)}


def split_by_log(
    scenarios: Any, fractions: Mapping[str, float], seed: int = 0, workspace: "Workspace | None" = None
) -> dict[str, list[str]]:
    """Split scenarios by their log; return ``{split: [scenario ids, in input order]}`` (every split present).

    Args:
        scenarios: a ScenarioSet, a DataFrame with ``scenario_id`` and ``log_id`` columns, a mapping
            scenario_id -> log_id, or a list of scenario ids together with ``workspace`` (to look up their logs).
        fractions: split name -> fraction of logs, summing to 1, e.g. ``{"pretrain": 0.6, "mine": 0.2,
            "test_common": 0.2}``.
        seed: changes the assignment; the same seed gives the same split on every machine.

    Store the result with ``for split, ids in parts.items(): workspace.set_split(ids, split)``.
    """
    frame = _as_frame(scenarios, workspace)
    names, _ = _check_fractions(fractions)
    by_log = split_logs(frame["log_id"].tolist(), fractions, seed)
    out: dict[str, list[str]] = {name: [] for name in names}
    for sid, log in zip(frame["scenario_id"].tolist(), frame["log_id"].tolist()):
        out[by_log[str(log)]].append(sid)
    return out


def _as_frame(scenarios: Any, workspace: "Workspace | None") -> pd.DataFrame:
    if isinstance(scenarios, pd.DataFrame):
        frame = scenarios
    elif isinstance(scenarios, Mapping):
        frame = pd.DataFrame({"scenario_id": list(scenarios), "log_id": list(scenarios.values())})
    elif hasattr(scenarios, "to_frame") and hasattr(scenarios, "ids"):  # a ScenarioSet
        frame = scenarios.to_frame()
    else:
        ids = [scenarios] if isinstance(scenarios, str) else list(scenarios)
        if workspace is None:
            raise WorldEngineLabError(
                "split_by_log: a list of ids needs workspace= to look up their logs; or pass a ScenarioSet or a "
                "DataFrame with scenario_id and log_id columns"
            )
        frame = workspace.catalog(ids=ids)
        missing = sorted(set(ids) - set(frame["scenario_id"]))
        if missing:
            raise WorldEngineLabError(f"split_by_log: {len(missing)} ids are not in the catalog, e.g. {missing[:5]}")
    for col in ("scenario_id", "log_id"):
        if col not in frame.columns:
            raise WorldEngineLabError(
                f"split_by_log: expected columns 'scenario_id' and 'log_id', received {list(frame.columns)}"
            )
    if frame["scenario_id"].duplicated().any():
        dup = frame.loc[frame["scenario_id"].duplicated(), "scenario_id"].tolist()[:5]
        raise WorldEngineLabError(f"split_by_log: expected unique scenario ids, received duplicates {dup}")
    return frame
