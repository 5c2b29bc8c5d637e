"""GaussianScene: a set of 3D Gaussians with gsplat's parameter names (activated values, raw SH)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ScenarioValidationError, ShapeError
from ._checks import check_array, freeze

__all__ = ["GaussianScene", "BACKGROUND_ID", "sh_degree_of"]

BACKGROUND_ID = -1
"""``actor_ids`` value of background (static) Gaussians, sky included."""


def sh_degree_of(num_bases: int) -> int:
    """Return d for K = (d + 1)² spherical-harmonic bases (K ∈ {1, 4, 9, 16}).

    >>> sh_degree_of(16)
    3
    """
    for d in range(4):
        if (d + 1) ** 2 == num_bases:
            return d
    raise ShapeError(f"sh: expected K = (d + 1)^2 bases with d <= 3 (1, 4, 9 or 16), received K = {num_bases}")


@dataclass(frozen=True, eq=False)
class GaussianScene:
    """G Gaussians, **activated** (what the rasterizer takes), with raw SH colour coefficients.

    Background Gaussians (``actor_ids == -1``) live in the frame of the scenario they belong to: the scenario's
    local frame (x east, y north as the dataset's x/y, z up, metres). Actor Gaussians live in their actor's box
    frame (x along the heading, y left, z up, origin at the 3D box centre) until :mod:`worldengine_lab.scene`
    poses them; a posed scene has every Gaussian in the scenario frame.

    Attributes:
        means: ``[G, 3]`` float32, m.
        quats: ``[G, 4]`` float32, rotation quaternion (w, x, y, z); need not be unit (renderers normalise).
        scales: ``[G, 3]`` float32, m, per-axis standard deviation (exp of the stored log scale).
        opacities: ``[G]`` float32 in [0, 1] (sigmoid of the stored logit).
        sh: ``[G, K, 3]`` float32, spherical-harmonic coefficients, band 0 first, K = (d + 1)² with d <= 3;
            colour = max(0, Σ_k sh_k · Y_k(dir) + 0.5).
        actor_ids: ``[G]`` int32, index into ``actor_track_ids``, or -1 for background.
        actor_track_ids: ``[A]`` str, the track id of each actor sub-model (matches ``AgentTracks.track_ids``).
    """

    means: np.ndarray  # [G, 3] float32, m
    quats: np.ndarray  # [G, 4] float32, wxyz
    scales: np.ndarray  # [G, 3] float32, m
    opacities: np.ndarray  # [G] float32
    sh: np.ndarray  # [G, K, 3] float32
    actor_ids: np.ndarray = field(default=None)  # type: ignore[assignment]  # [G] int32
    actor_track_ids: np.ndarray = field(default=None)  # type: ignore[assignment]  # [A] str

    def __post_init__(self) -> None:
        g = self.means.shape[0] if isinstance(self.means, np.ndarray) and self.means.ndim else 0
        if self.actor_ids is None:
            object.__setattr__(self, "actor_ids", np.full(g, BACKGROUND_ID, np.int32))
        if self.actor_track_ids is None:
            object.__setattr__(self, "actor_track_ids", np.zeros(0, dtype="<U1"))
        self.validate()
        freeze(self.means, self.quats, self.scales, self.opacities, self.sh, self.actor_ids, self.actor_track_ids)

    @property
    def num_gaussians(self) -> int:
        """G."""
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        """d, the spherical-harmonic degree of ``sh``."""
        return sh_degree_of(int(self.sh.shape[1]))

    @property
    def num_actors(self) -> int:
        """A, the number of actor sub-models."""
        return int(self.actor_track_ids.shape[0])

    def validate(self) -> None:
        """Check shapes, dtypes, finiteness and value ranges; raise ShapeError / ScenarioValidationError."""
        o = "GaussianScene"
        d: dict[str, int] = {}
        check_array(o, "means", self.means, ("G", 3), "f", d, finite=True)
        check_array(o, "quats", self.quats, ("G", 4), "f", d, finite=True)
        check_array(o, "scales", self.scales, ("G", 3), "f", d, finite=True)
        check_array(o, "opacities", self.opacities, ("G",), "f", d, finite=True)
        check_array(o, "sh", self.sh, ("G", None, 3), "f", d, finite=True)
        check_array(o, "actor_ids", self.actor_ids, ("G",), "iu", d)
        check_array(o, "actor_track_ids", self.actor_track_ids, (None,), "UO")
        sh_degree_of(int(self.sh.shape[1]))
        if self.means.size and (np.abs(self.quats).sum(axis=1) == 0).any():
            raise ScenarioValidationError(f"{o}.quats: expected non-zero quaternions, received an all-zero row")
        if (self.scales < 0).any():
            raise ScenarioValidationError(f"{o}.scales: expected activated scales >= 0 m (exp of log scale), "
                                          "received a negative value; pass exp(log_scales)")
        if ((self.opacities < 0) | (self.opacities > 1)).any():
            raise ScenarioValidationError(f"{o}.opacities: expected activated opacities in [0, 1] (sigmoid of "
                                          "the logit), received values outside; pass sigmoid(logits)")
        a = self.actor_track_ids.shape[0]
        if self.actor_ids.size and ((self.actor_ids < BACKGROUND_ID) | (self.actor_ids >= a)).any():
            raise ScenarioValidationError(f"{o}.actor_ids: expected -1 (background) or an index < {a} into "
                                          f"actor_track_ids, received {int(self.actor_ids.min())}.."
                                          f"{int(self.actor_ids.max())}")

    def select(self, mask: np.ndarray) -> "GaussianScene":
        """Return the Gaussians where ``mask [G] bool`` is True (actor table unchanged)."""
        m = np.asarray(mask, bool)
        return GaussianScene(self.means[m], self.quats[m], self.scales[m], self.opacities[m], self.sh[m],
                             self.actor_ids[m], self.actor_track_ids.copy())

    @staticmethod
    def concat(parts: "list[GaussianScene]") -> "GaussianScene":
        """Concatenate scenes in order; actor tables are appended and actor ids re-indexed.

        SH bases are zero-padded to the largest K among the parts.
        """
        if not parts:
            raise ScenarioValidationError("GaussianScene.concat: expected at least one scene, received none")
        k = max(p.sh.shape[1] for p in parts)
        ids, offset, tracks = [], 0, []
        for p in parts:
            ids.append(np.where(p.actor_ids >= 0, p.actor_ids + offset, BACKGROUND_ID).astype(np.int32))
            offset += p.num_actors
            tracks.append(p.actor_track_ids.astype(str))
        sh = [np.pad(p.sh, ((0, 0), (0, k - p.sh.shape[1]), (0, 0))) for p in parts]
        return GaussianScene(
            means=np.concatenate([p.means for p in parts]).astype(np.float32),
            quats=np.concatenate([p.quats for p in parts]).astype(np.float32),
            scales=np.concatenate([p.scales for p in parts]).astype(np.float32),
            opacities=np.concatenate([p.opacities for p in parts]).astype(np.float32),
            sh=np.concatenate(sh).astype(np.float32),
            actor_ids=np.concatenate(ids),
            actor_track_ids=np.concatenate(tracks) if tracks else np.zeros(0, dtype="<U1"),
        )
