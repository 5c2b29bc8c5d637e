"""Weight-0 compliance columns: driving direction compliance (DDC, §2.12) and lane keeping (§3.3).

Both are computed and reported but do not enter the PDM score.

* DDC: per-step centre displacement d_i = |c_i − c_{i−1}| (d_0 = 0), kept only where the state is *oncoming*.
  ``mode="window"`` (NAVSIM): D = max over i of the sum over samples i − w..i with w = round(window_s / dt)
  (samples i−10..i at 0.1 s). ``mode="segments"`` (closed loop): D = max over contiguous oncoming runs of
  their summed displacement. DDC = 1 if D < 2 m, 0.5 if D < 6 m, else 0.
* Lane keeping (workbench reading of "fails if the centre is > 0.5 m from the centreline for ≥ 2 s
  consecutively"): a run of r consecutive states farther than ``max_lateral_m`` fails when r·dt >= window_s
  (r >= 20 states at 0.1 s, r >= 4 states at 0.5 s).
"""
from __future__ import annotations

from typing import Literal

import torch

from ..sim.geometry import ego_center
from .centerline import project_to_polyline

__all__ = ["driving_direction_compliance", "lane_keeping"]


def driving_direction_compliance(centers: torch.Tensor, oncoming: torch.Tensor, dt: float,
                                 mode: Literal["window", "segments"] = "window", window_s: float = 1.0,
                                 good_m: float = 2.0, bad_m: float = 6.0) -> torch.Tensor:
    """DDC per proposal.

    Args:
        centers: ``[P, S, 2]`` ego centres, m. oncoming: ``[P, S]`` bool. dt: s between states.
    Returns:
        ``[P]`` in {0, 0.5, 1}, dtype of ``centers``.
    """
    d = torch.zeros(centers.shape[:2], dtype=centers.dtype)
    d[:, 1:] = torch.linalg.vector_norm(centers[:, 1:] - centers[:, :-1], dim=-1)
    d = torch.where(oncoming, d, torch.zeros_like(d))
    cs = torch.cumsum(d, dim=1)
    if mode == "window":
        w = int(round(window_s / dt))
        before = torch.zeros_like(cs)
        if w + 1 < cs.shape[1]:
            before[:, w + 1:] = cs[:, : cs.shape[1] - w - 1]
        sums = cs - before  # samples i - w .. i
    elif mode == "segments":
        base = torch.cummax(torch.where(oncoming, torch.zeros_like(cs), cs), dim=1).values
        sums = cs - base
    else:
        raise ValueError(f"driving_direction_compliance.mode: expected 'window' or 'segments', received {mode!r}")
    worst = sums.amax(1) if sums.shape[1] else torch.zeros(centers.shape[0], dtype=centers.dtype)
    return torch.where(worst < good_m, 1.0, torch.where(worst < bad_m, 0.5, 0.0)).to(centers.dtype)


def lane_keeping(states: torch.Tensor, centerline: torch.Tensor, dt: float, max_lateral_m: float = 0.5,
                 window_s: float = 2.0) -> torch.Tensor:
    """Lane keeping per proposal.

    Args:
        states: ``[P, S, D]`` ego states; centerline: ``[C, 2]`` m (empty → 1 everywhere).
    Returns:
        ``[P]`` in {0, 1}, dtype of ``states``.
    """
    p, s = states.shape[:2]
    if centerline.shape[0] == 0:
        return torch.ones(p, dtype=states.dtype)
    _, dist = project_to_polyline(ego_center(states), centerline)
    far = (dist > max_lateral_m).to(torch.long)  # [P, S]
    w = max(1, int(round(window_s / dt)))
    if w > s:
        return torch.ones(p, dtype=states.dtype)
    cs = torch.cat((torch.zeros(p, 1, dtype=torch.long), torch.cumsum(far, 1)), 1)
    runs = cs[:, w:] - cs[:, :-w]  # violations in each window of w states
    return torch.where((runs == w).any(1), 0.0, 1.0).to(states.dtype)
