"""``bench train`` on a tiny setup: the figures are there, finite and positive, and stdout carries one JSON object."""
from __future__ import annotations

import math

from worldengine_lab.bench import BENCHMARKS, run_benchmark


def test_bench_train_figures() -> None:
    assert BENCHMARKS["train"] == "worldengine_lab.bench.train:bench_train"
    result = run_benchmark("train", num_scenarios=1, vocab_size=8, num_steps=2, batch_size=4)
    for key in ("rl_states_per_s", "candidates_scored_per_s", "rl_steps_per_s"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["num_states"] == 8 and result["vocab_size"] == 8 and result["num_steps"] == 2
    assert {"peak_rss_mb", "cpu_count", "torch_num_threads"} <= set(result)
