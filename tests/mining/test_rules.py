"""Rare-case mining rules (spec/metrics.md §4)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from worldengine_lab.errors import ShapeError
from worldengine_lab.mining import mine_rare_cases, percentile_name, select_rl_frames


def _table(rows: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([(k, *v) for k, v in rows.items()],
                        columns=["token", "no_at_fault_collisions", "drivable_area_compliance", "ego_progress"])


T16 = {"a": (1, 1, 0.95), "b": (1, 1, 0.10), "c": (0, 1, 0.0), "d": (1, 0, 0.0), "e": (0.5, 1, 0.4),
       "f": (1, 1, 0.0), "g": (1, 1, 0.60), "h": (1, 1, 0.30)}


def test_t16_sets_and_names() -> None:
    out = mine_rare_cases(_table(T16), "navtrain")
    assert out == {"navtrain_collision": ["c"], "navtrain_off_road": ["d"], "navtrain_ep_1pct": ["b"]}
    assert mine_rare_cases(_table(T16), "navtrain", percentile=50)["navtrain_ep_50pct"] == ["b", "h"]


def test_static_collisions_are_not_mined_and_sets_overlap() -> None:
    rows = {"x": (0.5, 1, 0.2), "y": (0, 0, 0.0), "z": (1, 1, 0.5), "w": (1, 1, 0.7)}
    out = mine_rare_cases(_table(rows), "s")
    assert out["s_collision"] == ["y"] and out["s_off_road"] == ["y"]


def test_equal_or_empty_pools_give_empty_low_progress_sets() -> None:
    same = {k: (1, 1, 0.5) for k in "abcd"}
    assert mine_rare_cases(_table(same), "s")["s_ep_1pct"] == []
    none_safe = {"a": (0, 1, 0.5), "b": (1, 1, 0.0)}
    assert mine_rare_cases(_table(none_safe), "s")["s_ep_1pct"] == []


def test_percentile_uses_numpy_linear_interpolation() -> None:
    rng = np.random.default_rng(3)
    ep = rng.uniform(0.01, 1.0, size=200)
    t = pd.DataFrame({"token": [f"t{i}" for i in range(200)], "nc": 1.0, "dac": 1.0, "ep": ep})
    got = mine_rare_cases(t, "s", percentile=5)["s_ep_5pct"]
    thr = np.percentile(ep, 5)
    assert got == [f"t{i}" for i in np.flatnonzero(ep < thr)]


def test_percentile_names() -> None:
    assert percentile_name(1) == "1" and percentile_name(1.0) == "1"
    assert percentile_name(0.5) == "0.5" and percentile_name(12.50) == "12.5" and percentile_name(0) == "0"


def test_tokens_from_index_and_bad_tables() -> None:
    t = _table(T16).set_index("token")
    assert mine_rare_cases(t, "s")["s_collision"] == ["c"]
    with pytest.raises(ShapeError, match="percentile"):
        mine_rare_cases(_table(T16), "s", percentile=120)
    bad = _table(T16)
    bad.loc[0, "ego_progress"] = np.nan
    with pytest.raises(ShapeError, match="NaN"):
        mine_rare_cases(bad, "s")


def test_select_rl_frames_v1_filter() -> None:
    t = pd.DataFrame({
        "valid": [True, True, True, False, True],
        "best_anchor_score": [0.95, 0.95, 0.95, 0.95, 0.8],
        "plan_score": [0.5, 0.9, 0.9, 0.5, 0.5],
        "plan_nc": [1, 1, 1, 1, 1], "plan_dac": [1, 1, 1, 1, 1],
        "plan_ep": [0.9, 0.1, 0.5, 0.9, 0.9],
    })
    assert select_rl_frames(t).tolist() == [True, True, False, False, False]
