"""Smoke test of the simulator benchmarks (tiny sizes; the figures themselves are not asserted)."""
from __future__ import annotations

from worldengine_lab.sim._bench import bench_sim, bench_tracker


def test_bench_sim_and_tracker_report_figures():
    out = bench_sim(batch=2, agents=4, steps=10, repeats=1)
    assert out["agent_steps_per_s"] > 0 and out["episodes_per_s"] > 0
    assert out["batch"] == 2 and out["agents_per_scenario"] == 4
    assert bench_tracker(num=16, repeats=1)["trajectories_per_s"] > 0
