"""The trajectory vocabulary: K fixed 4-s plans a learned planner chooses from (spec/post-training.md, policy).

Every entry is 40 rear-axle poses ``(x m, y m, yaw rad)`` at t = 0.1 .. 4.0 s in the ego **body frame** at the
planning time (+x forward, +y left), the same layout a :class:`~worldengine_lab.planners.Planner` returns.

Distance between two plans: each pose is the feature ``(x, y, w * yaw)`` with ``w`` the yaw weight in metres per
radian (default 5 m/rad); the distance is the root-mean-square over the 40 poses of the Euclidean distance of
these features, in metres. It is the Euclidean distance of the flattened ``[120]`` features divided by
``sqrt(40)``, so :meth:`TrajectoryVocabulary.fit` (k-means on the flattened features) and
:meth:`TrajectoryVocabulary.nearest` use one and the same metric. Yaw differences are not wrapped: within a 4-s
horizon body-frame headings stay well inside (-pi, pi).

Examples:
    >>> import torch
    >>> t = torch.linspace(0.1, 4.0, 40)
    >>> futures = torch.stack([torch.stack([v * t, 0 * t, 0 * t], -1) for v in torch.arange(1.0, 9.0)])
    >>> vocab = TrajectoryVocabulary.fit(futures, size=4, seed=0)
    >>> len(vocab)
    4
    >>> int(vocab.nearest(vocab.trajectories[2:3])[0])
    2
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..tensor_files import load_tensors, save_tensors
from ..errors import CorruptFileError, DataFormatError, ShapeError
from .base import PLAN_NUM_POSES

__all__ = ["TrajectoryVocabulary", "VOCABULARY_FORMAT_VERSION", "DEFAULT_YAW_WEIGHT_M_PER_RAD"]

VOCABULARY_FORMAT_VERSION = 1
"""Version of the :meth:`TrajectoryVocabulary.to_dict` layout."""

DEFAULT_YAW_WEIGHT_M_PER_RAD = 5.0
"""Metres of distance one radian of heading difference counts for."""


@dataclass(frozen=True, eq=False)
class TrajectoryVocabulary:
    """K candidate plans.

    Attributes:
        trajectories: ``[K, 40, 3]`` float32 rear-axle poses (x m, y m, yaw rad) at 0.1 .. 4.0 s, ego body frame
            at the planning time (+x forward, +y left); stored contiguous, finite.
        yaw_weight_m_per_rad: metres per radian of the pose distance (see the module docstring).
    """

    trajectories: torch.Tensor  # [K, 40, 3] float32
    yaw_weight_m_per_rad: float = DEFAULT_YAW_WEIGHT_M_PER_RAD

    def __post_init__(self) -> None:
        t = _check_poses("TrajectoryVocabulary.trajectories", self.trajectories)
        if t.shape[0] < 1:
            raise ShapeError("TrajectoryVocabulary.trajectories: expected at least one entry (K >= 1), received K = 0")
        w = self.yaw_weight_m_per_rad
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
            raise DataFormatError(
                f"TrajectoryVocabulary.yaw_weight_m_per_rad: expected a finite number >= 0 (m/rad), received {w!r}")
        object.__setattr__(self, "trajectories", t.detach().to(torch.float32).contiguous())
        object.__setattr__(self, "yaw_weight_m_per_rad", float(w))

    def __len__(self) -> int:
        """K, the number of entries."""
        return int(self.trajectories.shape[0])

    # -------------------------------------------------------------------------------------------------- fitting
    @staticmethod
    def fit(futures: torch.Tensor, size: int = 256, seed: int = 0, iters: int = 50,
            yaw_weight_m_per_rad: float = DEFAULT_YAW_WEIGHT_M_PER_RAD) -> "TrajectoryVocabulary":
        """k-means over expert futures: greedy k-means++ seeding, then at most ``iters`` Lloyd iterations.

        Args:
            futures: ``[M, 40, 3]`` expert plans (x m, y m, yaw rad), body frame at their planning time, finite.
            size: K, entries wanted; needs ``M >= K``.
            seed: seeds the ``torch.Generator`` of the k-means++ draws; the result is deterministic for a seed.
            iters: maximum Lloyd iterations (stops earlier when the assignment no longer changes).
            yaw_weight_m_per_rad: metres per radian in the pose distance.

        Returns:
            The vocabulary ``[K, 40, 3]``: cluster means. A cluster that becomes empty is re-seeded with the point
            farthest from its current centre (distinct points for several empty clusters).

        Raises:
            ShapeError: ``futures`` is not ``[M, 40, 3]`` floating point, or holds NaN/inf.
            DataFormatError: ``M < size``, ``size < 1`` or ``iters < 0``.
        """
        x = _check_poses("TrajectoryVocabulary.fit(futures)", futures)
        m = x.shape[0]
        if not (isinstance(size, int) and size >= 1):
            raise DataFormatError(f"TrajectoryVocabulary.fit(size): expected an int >= 1, received {size!r}")
        if not (isinstance(iters, int) and iters >= 0):
            raise DataFormatError(f"TrajectoryVocabulary.fit(iters): expected an int >= 0, received {iters!r}")
        if m < size:
            raise DataFormatError(
                f"TrajectoryVocabulary.fit(futures): expected at least size = {size} futures, received M = {m}; "
                "collect more futures or ask for a smaller vocabulary")
        w = float(yaw_weight_m_per_rad)
        feats = _features(x.to(torch.float64), w)  # [M, 120]
        gen = torch.Generator().manual_seed(int(seed))
        centres = _kmeans_pp(feats, size, gen)  # [K, 120]
        assign = torch.full((m,), -1, dtype=torch.int64)
        for _ in range(iters):  # Lloyd iterations (each one batched over all points and clusters)
            dist = torch.cdist(feats, centres)  # [M, K]
            near_d, new_assign = dist.min(dim=1)
            if torch.equal(new_assign, assign):
                break
            assign = new_assign
            centres = _update_centres(feats, assign, near_d, size)
        k_traj = _from_features(centres, w).to(torch.float32)
        return TrajectoryVocabulary(k_traj, w)

    # ------------------------------------------------------------------------------------------------ matching
    def distances(self, trajectories: torch.Tensor) -> torch.Tensor:
        """``[B, K]`` root-mean-square pose distance (m) from each of ``trajectories [B, 40, 3]`` to each entry."""
        x = _check_poses("TrajectoryVocabulary.distances(trajectories)", trajectories, finite=False)
        f = _features(x.to(torch.float64), self.yaw_weight_m_per_rad)
        c = _features(self.trajectories.to(torch.float64), self.yaw_weight_m_per_rad)
        return torch.cdist(f, c) / math.sqrt(PLAN_NUM_POSES)

    def nearest(self, trajectories: torch.Tensor) -> torch.Tensor:
        """``[B]`` int64 index of the entry nearest (RMS pose distance) to each of ``trajectories [B, 40, 3]``.

        Raises:
            ShapeError: ``trajectories`` is not ``[B, 40, 3]`` floating point or holds NaN/inf.
        """
        x = _check_poses("TrajectoryVocabulary.nearest(trajectories)", trajectories)
        return self.distances(x).argmin(dim=1)

    # --------------------------------------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain data (a tensor, numbers) that ``torch.load(weights_only=True)`` can read back."""
        return {"version": VOCABULARY_FORMAT_VERSION, "trajectories": self.trajectories.clone(),
                "yaw_weight_m_per_rad": self.yaw_weight_m_per_rad}

    @staticmethod
    def from_dict(data: Any, source: str = "TrajectoryVocabulary.from_dict(data)") -> "TrajectoryVocabulary":
        """Inverse of :meth:`to_dict`.

        Raises:
            DataFormatError: not a dict of that layout, an unknown ``version``, or bad trajectories (the message
                starts with ``source``).
        """
        if not isinstance(data, dict):
            raise DataFormatError(f"{source}: expected a dict from TrajectoryVocabulary.to_dict(), received "
                                  f"{type(data).__name__}")
        version = data.get("version")
        if version != VOCABULARY_FORMAT_VERSION:
            raise DataFormatError(f"{source}: expected vocabulary format version {VOCABULARY_FORMAT_VERSION}, "
                                  f"received {version!r}; re-fit or re-save the vocabulary with this version")
        traj = data.get("trajectories")
        if not isinstance(traj, torch.Tensor):
            raise DataFormatError(f"{source}: expected 'trajectories' to be a [K, 40, 3] tensor, received "
                                  f"{type(traj).__name__}")
        try:
            return TrajectoryVocabulary(traj, data.get("yaw_weight_m_per_rad", DEFAULT_YAW_WEIGHT_M_PER_RAD))
        except (DataFormatError, ShapeError) as e:
            raise DataFormatError(f"{source}: {e}") from e

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` with ``torch.save`` atomically (temporary file, then ``os.replace``); return the
        path."""
        return save_tensors(path, self.to_dict())

    @staticmethod
    def load(path: str | os.PathLike[str]) -> "TrajectoryVocabulary":
        """Read a file written by :meth:`save` (``torch.load(weights_only=True)``).

        Raises:
            MissingFileError: ``path`` does not exist.
            CorruptFileError: unreadable, not a vocabulary, or with bad shapes / NaN values (names the file).
        """
        p = Path(path)
        data = load_tensors(p, "vocabulary file", "create it with TrajectoryVocabulary.save")
        try:
            return TrajectoryVocabulary.from_dict(data, source=f"vocabulary file {str(p)!r}")
        except DataFormatError as e:
            raise CorruptFileError(f"{e}; re-create it with TrajectoryVocabulary.save") from e


# ---------------------------------------------------------------------------------------------------- helpers
def _check_poses(name: str, x: Any, finite: bool = True) -> torch.Tensor:
    """Validate a ``[M, 40, 3]`` floating tensor (finite unless told otherwise); return it."""
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor [M, {PLAN_NUM_POSES}, 3], received {type(x).__name__}")
    if x.ndim != 3 or tuple(x.shape[1:]) != (PLAN_NUM_POSES, 3) or not x.is_floating_point():
        raise ShapeError(f"{name}: expected a floating tensor [M, {PLAN_NUM_POSES}, 3] of (x m, y m, yaw rad) "
                         f"poses, received {x.dtype} {list(x.shape)}")
    if finite and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(dim=(1, 2)).sum())
        raise ShapeError(f"{name}: expected finite poses, received NaN/inf in {bad} of {x.shape[0]} trajectories; "
                         "drop or repair them first")
    return x


def _features(x: torch.Tensor, yaw_weight: float) -> torch.Tensor:
    """``[M, 40, 3]`` poses -> ``[M, 120]`` flattened ``(x, y, w * yaw)`` features, m."""
    scale = torch.tensor([1.0, 1.0, yaw_weight], dtype=x.dtype)
    return (x * scale).reshape(x.shape[0], -1)


def _from_features(f: torch.Tensor, yaw_weight: float) -> torch.Tensor:
    """Inverse of :func:`_features` (``yaw_weight == 0`` gives zero headings)."""
    p = f.reshape(f.shape[0], PLAN_NUM_POSES, 3).clone()
    p[..., 2] = p[..., 2] / yaw_weight if yaw_weight > 0 else 0.0
    return p


def _kmeans_pp(feats: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding: ``[K, F]`` centres taken from ``feats [M, F]``.

    Each step draws ``2 + ln K`` candidate points with probability proportional to their squared distance to the
    nearest chosen centre and keeps the one that lowers the total squared distance most.
    """
    m = feats.shape[0]
    trials = 2 + int(math.log(k))
    idx = torch.empty(k, dtype=torch.int64)
    idx[0] = torch.randint(m, (1,), generator=gen)[0]
    d2 = torch.cdist(feats, feats[idx[:1]]).squeeze(1) ** 2  # [M] squared distance to the nearest chosen centre
    for j in range(1, k):  # sequential by definition; each step is one batched pass over the M points
        total = float(d2.sum())
        if total > 0:
            cand = torch.multinomial(d2 / total, trials, replacement=True, generator=gen)  # [T]
        else:  # every point coincides with a chosen centre: any point will do (duplicates are re-seeded later)
            cand = torch.randint(m, (trials,), generator=gen)
        new_d2 = torch.minimum(d2[None], torch.cdist(feats[cand], feats) ** 2)  # [T, M]
        best = int(new_d2.sum(dim=1).argmin())
        idx[j], d2 = cand[best], new_d2[best]
    return feats[idx].clone()


def _update_centres(feats: torch.Tensor, assign: torch.Tensor, near_d: torch.Tensor, k: int) -> torch.Tensor:
    """Cluster means ``[K, F]``; empty clusters take the points farthest from their assigned centres."""
    counts = torch.bincount(assign, minlength=k)  # [K]
    sums = torch.zeros(k, feats.shape[1], dtype=feats.dtype).index_add_(0, assign, feats)
    centres = sums / counts.clamp(min=1).unsqueeze(1).to(feats.dtype)
    empty = torch.nonzero(counts == 0).squeeze(1)
    if len(empty):
        far = torch.argsort(near_d, descending=True, stable=True)[: len(empty)]
        centres[empty] = feats[far]
    return centres
