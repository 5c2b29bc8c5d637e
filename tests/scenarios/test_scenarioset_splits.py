"""split_by_log: deterministic by sha256 of the log id, one split per log, stable when logs are added."""
from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from worldengine_lab.errors import WorldEngineLabError
from worldengine_lab.scenarios import log_unit_interval, split_by_log, split_logs

FRACTIONS = {"pretrain": 0.6, "mine": 0.2, "test_common": 0.1, "test_rare": 0.1}


def test_unit_interval_is_sha256_of_seed_and_log():
    want = int.from_bytes(hashlib.sha256(b"7:log-a").digest()[:8], "big") / 2**64
    assert log_unit_interval("log-a", seed=7) == want
    assert 0.0 <= want < 1.0


def test_split_is_deterministic_and_fractions_hold_over_many_logs():
    logs = [f"log{i:04d}" for i in range(2000)]
    a, b = split_logs(logs, FRACTIONS, seed=3), split_logs(logs, FRACTIONS, seed=3)
    assert a == b and set(a) == set(logs)
    counts = pd.Series(a).value_counts(normalize=True)
    for name, frac in FRACTIONS.items():
        assert counts[name] == pytest.approx(frac, abs=0.04)
    assert split_logs(logs, FRACTIONS, seed=4) != a


def test_adding_logs_never_moves_existing_ones():
    logs = [f"log{i}" for i in range(100)]
    before = split_logs(logs, FRACTIONS)
    after = split_logs(logs + [f"new{i}" for i in range(100)], FRACTIONS)
    assert all(after[log] == split for log, split in before.items())


def test_zero_fraction_gets_nothing_and_bad_fractions_raise():
    parts = split_logs([f"l{i}" for i in range(300)], {"a": 0.5, "never": 0.0, "b": 0.5})
    assert "never" not in set(parts.values())
    for bad in ({"a": 0.5, "b": 0.4}, {"a": -0.5, "b": 1.5}, {}, {"a": float("nan")}):
        with pytest.raises(WorldEngineLabError, match="fractions|at least one"):
            split_logs(["l0"], bad)


def test_split_by_log_keeps_logs_together_for_every_input_form(ws):
    frame = ws.catalog()
    parts = split_by_log(frame, {"train": 0.5, "test": 0.5}, seed=0)
    assert list(parts) == ["train", "test"]
    assert sorted(parts["train"] + parts["test"]) == sorted(frame["scenario_id"])
    log_of = dict(zip(frame["scenario_id"], frame["log_id"]))
    assert set(parts["train"]).isdisjoint(parts["test"])
    split_of_log = {}
    for split, ids in parts.items():
        for sid in ids:
            assert split_of_log.setdefault(log_of[sid], split) == split
    assert split_by_log(ws.scenarios(), {"train": 0.5, "test": 0.5}, seed=0) == parts
    assert split_by_log(log_of, {"train": 0.5, "test": 0.5}, seed=0) == parts
    assert split_by_log(list(log_of), {"train": 0.5, "test": 0.5}, seed=0, workspace=ws) == parts
    with pytest.raises(WorldEngineLabError, match="workspace="):
        split_by_log(list(log_of), {"train": 1.0})
    for split, ids in parts.items():
        ws.set_split(ids, split)
    assert ws.stats()["by_split"] == {k: len(v) for k, v in parts.items() if v}
