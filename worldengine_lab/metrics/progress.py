"""Ego progress (EP): raw progress along a centreline and the three normalisation rules.

* **NAVSIM v1.1** (§2.10, :func:`ep_navsim`): weighted raw progress r = P·m (m = NC·DAC); M = max(r_ref, r);
  EP = r / M if M > 5 m, else EP = 1 if m > 0 else 0.
* **Closed-loop PDMS\\*** (§3.3) and **dense-reward pairwise** (§5.1 step 6) (:func:`ep_raw_max`):
  M = max(P_ref, P) on *raw* progress; EP = P / M if M > 0.1 m else 1; then EP ×= m.

Raw progress (:func:`raw_progress`): project the ego **centre** of the first and the last state onto the
centreline (closest point, arc length clamped to the polyline) and take max(0, s_end − s_start).

Examples:
    >>> import torch
    >>> ep_navsim(torch.tensor([10.0]), torch.tensor([1.0]), 20.0, 1.0)
    tensor([0.5000])
"""
from __future__ import annotations

import logging
from typing import Literal

import torch

from ..errors import ShapeError
from ..sim.geometry import ego_center
from ..sim.state import X, Y
from .centerline import project_to_polyline

__all__ = ["raw_progress", "ep_navsim", "ep_raw_max", "NAVSIM_EP_THRESHOLD_M", "RAW_EP_THRESHOLD_M"]

logger = logging.getLogger(__name__)

NAVSIM_EP_THRESHOLD_M = 5.0
RAW_EP_THRESHOLD_M = 0.1
_EPS_GUARD = 1e-5


def raw_progress(states: torch.Tensor, centerline: torch.Tensor,
                 point: Literal["center", "rear_axle"] = "center") -> torch.Tensor:
    """Raw progress of each trajectory along the centreline.

    Args:
        states: ``[P, S, D]`` rear-axle ego states (S >= 1).
        centerline: ``[C, 2]`` m; empty → progress 0 (warning).
        point: the projected point: the box centre (§2.10, default) or the rear axle.
    Returns:
        ``[P]`` m, >= 0, in the dtype of ``states``.
    """
    if states.ndim != 3:
        raise ShapeError(f"raw_progress.states: expected [P, S, D], received {list(states.shape)}")
    if centerline.shape[0] == 0:
        logger.warning("raw_progress: empty centreline; progress is 0 for every proposal")
        return torch.zeros(states.shape[0], dtype=states.dtype)
    first, last = states[:, 0], states[:, -1]
    if point == "center":
        first, last = ego_center(first), ego_center(last)
    else:
        first, last = first[:, X:Y + 1], last[:, X:Y + 1]
    s_first, _ = project_to_polyline(first, centerline)  # identical starts are projected once
    s_last, _ = project_to_polyline(last, centerline)
    return torch.clamp(s_last - s_first, min=0.0)


def _as(x: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=like.dtype).expand_as(like)


def ep_navsim(progress: torch.Tensor, multiplier: torch.Tensor, ref_progress: torch.Tensor | float,
              ref_multiplier: torch.Tensor | float, threshold_m: float = NAVSIM_EP_THRESHOLD_M) -> torch.Tensor:
    """NAVSIM rule (§2.10), each proposal against the reference.

    Args:
        progress: ``[P]`` raw progress, m. multiplier: ``[P]`` NC·DAC.
        ref_progress, ref_multiplier: scalars or ``[P]``: the reference's raw progress and multiplier.
    Returns:
        ``[P]`` EP in [0, 1] (already 0 where the multiplier is 0).
    """
    r = progress * multiplier
    r_ref = _as(ref_progress, r) * _as(ref_multiplier, r)
    big = torch.maximum(r, r_ref)
    norm = r / torch.where(big > 0, big, torch.ones_like(big))
    fallback = (multiplier > 0).to(r.dtype)
    return torch.where(big > threshold_m, norm, fallback)


def ep_raw_max(progress: torch.Tensor, multiplier: torch.Tensor, ref_progress: torch.Tensor | float,
               threshold_m: float = RAW_EP_THRESHOLD_M) -> torch.Tensor:
    """Closed-loop / pairwise rule (§3.3, §5.1 step 6): M = max(P_ref, P) on raw progress; EP = P / M if
    M > threshold else 1; EP ×= multiplier. A 0/0 (only possible with a threshold < 0) gives 1e-5.

    Args:
        progress: ``[P]`` raw progress, m. multiplier: ``[P]`` NC·DAC. ref_progress: scalar or ``[P]``, m.
    Returns:
        ``[P]`` EP.
    """
    ref = _as(ref_progress, progress)
    big = torch.maximum(progress, ref)
    norm = torch.where(big > 0, progress / torch.where(big > 0, big, torch.ones_like(big)),
                       torch.full_like(big, _EPS_GUARD))
    ep = torch.where(big > threshold_m, norm, torch.ones_like(big))
    return ep * multiplier
