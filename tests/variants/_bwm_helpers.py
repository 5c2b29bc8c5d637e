"""Tiny behaviour world models and scenes for the BWM, guidance and generation tests."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
import torch

from worldengine_lab.testing import make_scenario
from worldengine_lab.variants import BehaviourWorldModel, BWMConfig, BWMFeatureConfig

TINY_FEATURES = BWMFeatureConfig(max_agents=8, history_steps=5, horizon_steps=40, waypoint_stride=4,
                                 max_map_elements=4, element_points=4)
TINY = BWMConfig(features=TINY_FEATURES, d_model=32, num_layers=1, num_heads=2, pair_dim=8, diffusion_steps=20,
                 sample_steps=4, dropout=0.0)


def tiny_model(seed: int = 0) -> BehaviourWorldModel:
    """An untrained tiny model (eval mode)."""
    torch.manual_seed(seed)
    return BehaviourWorldModel(TINY).eval()


def constant_velocity_model() -> BehaviourWorldModel:
    """A tiny model whose head is zero: it predicts x0 = 0, i.e. every generated agent keeps its velocity."""
    m = tiny_model()
    with torch.no_grad():
        for p in m.head.parameters():
            p.zero_()
    return m


def scenes(n: int = 4, num_agents: int = 4) -> list:
    """``n`` straight-road scenes (ego + ``num_agents - 1`` cars in a row), speeds 8..11 m/s."""
    return [make_scenario(num_agents=num_agents, speed_mps=8.0 + i, gap_m=15.0 + 2 * i, seed=i) for i in range(n)]


def moved(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.abs(a.astype(np.float64) - b.astype(np.float64)).max() > 1e-6)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test with one torch thread (tiny tensors gain nothing from more, and a busy machine makes thread
    hand-offs slow), restoring the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
