"""Dense reward for RL post-training: PDM scores of every vocabulary anchor at one planning step
(spec/metrics.md §5.1 steps 5–7).

Given the K anchors already simulated from the current ego state (``[K, 41, D]``, §5.1 steps 1–2), the
step's observations (41 frames; log replay, §5.1 step 4 — see
:func:`~worldengine_lab.metrics.observations.interpolate_keyframes` with rule ``"hold"``) and the
reference's raw progress (the PDM-Closed plan of this step, §5.1 step 3), every anchor is scored with the
:data:`~worldengine_lab.metrics.pdm.DENSE_REWARD` variant (TTC look-aheads 0..1.0 s at states 0..30,
``multiple_lanes`` over all drivable polygons, the PDM-Closed centreline) and **pairwise** EP: each
anchor is compared with the reference only (never with the other anchors), so an anchor's reward does
not depend on the rest of the vocabulary.

    score_a = NC_a · DAC_a · (5·EP_a + 5·TTC_a + 2·C_a) / 12
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .observations import ObjectTracks
from .pdm import DENSE_REWARD, ScorerConfig, pdm_score, score_proposals
from .progress import RAW_EP_THRESHOLD_M, ep_raw_max
from .scoring_map import ScoringMap

__all__ = ["DenseReward", "dense_reward", "pairwise_reward"]


@dataclass(frozen=True)
class DenseReward:
    """Per-anchor arrays (``[K]`` float32 numpy, the arrays stored per step by §5.1 step 7). ``lane_keeping``
    is all ones when the config does not compute it."""

    nc: np.ndarray
    dac: np.ndarray
    lane_keeping: np.ndarray
    ep: np.ndarray
    ttc: np.ndarray
    comfort: np.ndarray
    ddc: np.ndarray
    score: np.ndarray
    raw_progress: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def pairwise_reward(progress: torch.Tensor, nc: torch.Tensor, dac: torch.Tensor, ttc: torch.Tensor,
                    comfort: torch.Tensor, reference_progress: float | torch.Tensor,
                    threshold_m: float = RAW_EP_THRESHOLD_M) -> tuple[torch.Tensor, torch.Tensor]:
    """§5.1 steps 6–7 from sub-scores: ``[K]`` raw progress and NC/DAC/TTC/C → ``(EP [K], score [K])``.

    Examples:
        >>> import torch
        >>> one = torch.ones(2, dtype=torch.float64)
        >>> ep, score = pairwise_reward(torch.tensor([6.0, 15.0], dtype=torch.float64), one, one, one, one, 12.0)
        >>> ep.tolist(), [round(v, 6) for v in score.tolist()]
        ([0.5, 1.0], [0.791667, 1.0])
    """
    ep = ep_raw_max(progress, nc * dac, reference_progress, threshold_m)
    return ep, pdm_score(nc, dac, ep, ttc, comfort)


def dense_reward(anchor_states: torch.Tensor, objects: ObjectTracks, scoring_map: ScoringMap,
                 reference_progress: float | torch.Tensor, centerline: torch.Tensor | None = None,
                 config: ScorerConfig = DENSE_REWARD) -> DenseReward:
    """Rewards of K simulated anchors at one planning step.

    Args:
        anchor_states: ``[K, 41, D]`` simulated anchor states (rear axle, scenario local frame).
        objects: 41 frames of logged boxes at 0.1 s starting at the current step.
        scoring_map: map inputs of the scene.
        reference_progress: raw progress (m) of the PDM-Closed reference along ``centerline``.
        centerline: ``[C, 2]`` PDM-Closed route centreline (default: the map's route centreline).
        config: scorer variant (default :data:`DENSE_REWARD`, raw-max EP).
    Returns:
        :class:`DenseReward`.
    """
    sc = score_proposals(anchor_states, objects, scoring_map, config, reference_progress=reference_progress,
                         centerline=centerline)

    def f32(t: torch.Tensor) -> np.ndarray:
        return t.detach().to(torch.float32).numpy()

    lk = sc.lane_keeping if sc.lane_keeping is not None else torch.ones_like(sc.nc)
    return DenseReward(nc=f32(sc.nc), dac=f32(sc.dac), lane_keeping=f32(lk), ep=f32(sc.ep),
                       ttc=f32(sc.ttc), comfort=f32(sc.comfort), ddc=f32(sc.ddc), score=f32(sc.score),
                       raw_progress=f32(sc.raw_progress))
