"""``bench sim``: closed-loop agent-steps per second (reactive agents, collision and drivable checks on)."""
from __future__ import annotations

from typing import Any

__all__ = ["bench_sim_cli"]


def bench_sim_cli(quick: bool = False) -> dict[str, Any]:
    """Run :func:`worldengine_lab.sim._bench.bench_sim` (64 scenarios x 32 agents x 40 steps; 16 x 32 quick)."""
    from ..sim._bench import bench_sim

    return bench_sim(batch=16 if quick else 64, agents=32, steps=40, reactive=True)
