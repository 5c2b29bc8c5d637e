"""Per-frame composition: a static background plus rigid actors posed from a (possibly edited) scenario.

A :class:`ScenarioScene` holds the background Gaussians in the scenario frame and every actor's Gaussians in
its box frame (x along the heading, y left, z up, origin at the 3D box centre). ``frame(t)`` poses the actors
present at step ``t`` from the scenario's tracks and returns the posed scene plus the ego camera pose; an
edited variant re-poses the same Gaussians (``with_scenario``), nothing is refitted.

The pure functions below implement spec ``gaussian-splatting.md`` §7.3/§7.4: quaternions are (w, x, y, z),
Hamilton products, poses in float64 until the final cast.

Examples:
    >>> import numpy as np
    >>> m, q = actor_to_world(np.array([[1.0, 0.5, 0.0]]), np.array([[1.0, 0, 0, 0]]),
    ...                       quat_from_yaw(np.pi / 2), np.array([10.0, 20.0, 0.0]))
    >>> np.round(m, 6).tolist()
    [[9.5, 21.0, 0.0]]
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..datatypes import BACKGROUND_ID, GaussianScene, Scenario
from ..errors import ScenarioValidationError, ShapeError, WindowOutOfRangeError

__all__ = [
    "ScenarioScene", "GroundHeight", "PoseLog", "MIRROR_SH_BASES", "SENTINEL_Z_M",
    "quat_multiply", "quat_normalize", "quat_to_matrix", "quat_from_matrix", "quat_from_yaw", "quat_yaw", "quat_slerp",
    "actor_to_world", "mirror_gaussians", "interpolate_log_poses",
]

log = logging.getLogger(__name__)

MIRROR_SH_BASES = (1, 4, 5, 9, 10, 11)
"""SH bases odd in y (negated when a Gaussian is mirrored through the local xz plane, spec §7.4)."""
SENTINEL_Z_M = 1000.0
"""A logged actor pose with translation z >= this is a sentinel: the actor is absent at that frame (§7.1)."""
_I64_MAX = np.iinfo(np.int64).max


# ---------------------------------------------------------------------------------------------- quaternions
def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b`` of ``[..., 4]`` (w, x, y, z) quaternions (broadcasting): rotate by b, then a."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """``q [..., 4]`` scaled to unit norm; all-zero rows raise ShapeError (they are not rotations)."""
    q = np.asarray(q)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if (n == 0).any():
        raise ShapeError(f"quaternions: expected non-zero (w, x, y, z) rows, received {int((n == 0).sum())} "
                         "all-zero row(s); use (1, 0, 0, 0) for 'no rotation'")
    return q / n


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` of quaternions ``q [..., 4]`` (normalised first)."""
    w, x, y, z = np.moveaxis(quat_normalize(q), -1, 0)
    r = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                  2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                  2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1)
    return r.reshape(r.shape[:-1] + (3, 3))


def quat_from_matrix(r: np.ndarray) -> np.ndarray:
    """``[N, 3, 3]`` rotations -> ``[N, 4]`` (w, x, y, z) quaternions with w >= 0 (vectorised Shepperd)."""
    tr = np.trace(r, axis1=1, axis2=2)
    d = np.stack([tr, r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]], 1)
    k = np.argmax(d, 1)
    q = np.zeros((len(r), 4))
    for case in range(4):  # four formulas, each applied to its rows at once
        m = k == case
        rr = r[m]
        if case == 0:
            s = 2.0 * np.sqrt(1.0 + tr[m])
            q[m] = np.stack([s / 4, (rr[:, 2, 1] - rr[:, 1, 2]) / s, (rr[:, 0, 2] - rr[:, 2, 0]) / s,
                             (rr[:, 1, 0] - rr[:, 0, 1]) / s], 1)
        else:
            i, j, l = case - 1, case % 3, (case + 1) % 3
            s = 2.0 * np.sqrt(np.maximum(1.0 + rr[:, i, i] - rr[:, j, j] - rr[:, l, l], 1e-300))
            v = np.zeros((m.sum(), 4))
            v[:, 0] = (rr[:, l, j] - rr[:, j, l]) / s
            v[:, 1 + i] = s / 4
            v[:, 1 + j] = (rr[:, j, i] + rr[:, i, j]) / s
            v[:, 1 + l] = (rr[:, l, i] + rr[:, i, l]) / s
            q[m] = v
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)


def quat_from_yaw(yaw: np.ndarray | float) -> np.ndarray:
    """Quaternions ``[..., 4]`` of rotations by ``yaw [...]`` rad about +z (CCW)."""
    h = 0.5 * np.asarray(yaw, np.float64)
    z = np.zeros_like(h)
    return np.stack([np.cos(h), z, z, np.sin(h)], axis=-1)


def quat_yaw(q: np.ndarray) -> np.ndarray:
    """Yaw ``[...]`` rad of ``q [..., 4]``: atan2(2(wz + xy), 1 − 2(y² + z²))."""
    w, x, y, z = np.moveaxis(np.asarray(q), -1, 0)
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_slerp(q0: np.ndarray, q1: np.ndarray, f: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation ``[..., 4]`` from q0 (f = 0) to q1 (f = 1), spec §7.3.

    Both are normalised; q1 is negated when q0·q1 < 0 (shorter arc); nearly parallel pairs (|dot| > 0.9995)
    interpolate linearly; the result is renormalised.
    """
    a, b = quat_normalize(np.asarray(q0, np.float64)), quat_normalize(np.asarray(q1, np.float64))
    f = np.asarray(f, np.float64)[..., None]
    dot = (a * b).sum(-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(theta)
    near = dot > 0.9995
    safe = np.where(near, 1.0, sin)
    wa = np.where(near, 1.0 - f, np.sin((1.0 - f) * theta) / safe)
    wb = np.where(near, f, np.sin(f * theta) / safe)
    return quat_normalize(wa * a + wb * b)


def actor_to_world(means: np.ndarray, quats: np.ndarray, pose_q: np.ndarray,
                   pose_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move actor-frame Gaussians into the world (spec §7.4): μ_w = R_p μ + t_p, q_w = q_p ⊗ normalise(q).

    Args:
        means: ``[G, 3]`` m, actor (box) frame.
        quats: ``[G, 4]`` (w, x, y, z), actor frame, any norm.
        pose_q: ``[4]`` or ``[G, 4]`` unit world_from_actor rotation (not renormalised, as WorldEngine).
        pose_t: ``[3]`` or ``[G, 3]`` m, world_from_actor translation.
    Returns:
        ``(means [G, 3], quats [G, 4])`` float64, world frame.
    """
    pq = np.asarray(pose_q, np.float64)
    w, x, y, z = np.moveaxis(pq, -1, 0)  # rotation matrix without renormalising the pose
    r = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                  2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                  2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1)
    r = r.reshape(pq.shape[:-1] + (3, 3))
    mu = np.einsum("...ij,...j->...i", r, np.asarray(means, np.float64)) + np.asarray(pose_t, np.float64)
    return mu, quat_multiply(pq, quat_normalize(np.asarray(quats, np.float64)))


def mirror_gaussians(means: np.ndarray, quats: np.ndarray,
                     sh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror Gaussians through the local xz plane (spec §7.4, ``MirroredRigidSubModel``).

    μ → (x, −y, z); q → (w, −x, y, −z) (= M R M, M = diag(1, −1, 1)); SH bases {1, 4, 5, 9, 10, 11} negated;
    scales and opacities are unchanged (the caller copies them).

    Args:
        means: ``[G, 3]`` m; quats: ``[G, 4]``; sh: ``[G, K, 3]`` raw SH coefficients.
    Returns:
        ``(means, quats, sh)`` mirrored copies with the input dtypes.
    """
    m = np.array(means, copy=True)
    m[:, 1] = -m[:, 1]
    q = np.array(quats, copy=True)
    q[:, 1] = -q[:, 1]
    q[:, 3] = -q[:, 3]
    s = np.array(sh, copy=True)
    odd = [k for k in MIRROR_SH_BASES if k < s.shape[1]]
    s[:, odd] = -s[:, odd]
    return m, q, s


def interpolate_log_poses(timestamps_us: np.ndarray, trans: np.ndarray, quats: np.ndarray, t_us: int,
                          frame_valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-replay poses of A actors at time ``t_us`` (MTGS rule, spec §7.3), vectorised over actors.

    t_rel = t − min(log times); prev = last frame with ts <= t_rel, next = first with ts >= t_rel; lerp the
    translation, slerp the rotation. An actor is absent when t is outside its log or prev/next is a sentinel
    frame (z >= ``SENTINEL_Z_M``).

    Args:
        timestamps_us: ``[F]`` or ``[A, F]`` int64 µs, sorted per actor (padding anywhere past the real frames).
        trans: ``[F, 3]`` / ``[A, F, 3]`` m, world_from_actor translations; quats: ``[..., F, 4]`` (w, x, y, z).
        t_us: query time, µs, on the same clock.
        frame_valid: ``[A, F]`` bool, False for padding frames (default: all real).
    Returns:
        ``(trans [A, 3] float64, quats [A, 4] float64, present [A] bool)`` (squeezed to one actor for 1-D input);
        entries of absent actors are (0, 0, 0) and (1, 0, 0, 0).
    """
    single = np.ndim(timestamps_us) == 1
    ts = np.atleast_2d(np.asarray(timestamps_us, np.int64))
    tr = np.asarray(trans, np.float64).reshape(ts.shape + (3,))
    qs = np.asarray(quats, np.float64).reshape(ts.shape + (4,))
    real = np.ones(ts.shape, bool) if frame_valid is None else np.atleast_2d(np.asarray(frame_valid, bool))
    a_idx = np.arange(ts.shape[0])
    n_real = real.sum(1)
    start = np.where(real, ts, _I64_MAX).min(1)
    rel = np.where(real, ts - start[:, None], _I64_MAX)  # [A, F] frame times relative to each actor's first
    t_rel = np.int64(t_us) - start  # [A]
    prev = (rel <= t_rel[:, None]).sum(1) - 1
    nxt = (rel < t_rel[:, None]).sum(1)
    inside = (n_real > 0) & (prev >= 0) & (nxt < n_real)
    p, n = np.clip(prev, 0, ts.shape[1] - 1), np.clip(nxt, 0, ts.shape[1] - 1)
    sentinel = tr[..., 2] >= SENTINEL_Z_M
    present = inside & ~sentinel[a_idx, p] & ~sentinel[a_idx, n]
    span = (ts[a_idx, n] - ts[a_idx, p]).astype(np.float64)
    f = np.where(span > 0, (t_rel - rel[a_idx, p]).astype(np.float64) / np.where(span > 0, span, 1.0), 0.0)
    out_t = tr[a_idx, p] * (1.0 - f)[:, None] + tr[a_idx, n] * f[:, None]
    q_p, q_n = qs[a_idx, p], qs[a_idx, n]
    safe = lambda q: np.where(present[:, None], q, [1.0, 0.0, 0.0, 0.0])  # noqa: E731
    out_q = np.where((span > 0)[:, None], quat_slerp(safe(q_p), safe(q_n), f), safe(q_p))
    out_t = np.where(present[:, None], out_t, 0.0)
    out_q = np.where(present[:, None], out_q, [1.0, 0.0, 0.0, 0.0])
    return (out_t[0], out_q[0], present[0]) if single else (out_t, out_q, present)


# ---------------------------------------------------------------------------------------------- ground, logs
@dataclass(frozen=True, eq=False)
class GroundHeight:
    """Ground elevation z(x, y) in the scenario frame: a raster with a constant fallback.

    Attributes:
        default_z: m, the height where the raster is absent, NaN or does not reach.
        origin_xy: ``[2]`` float64, m, scenario frame, corner of cell (row 0, column 0).
        cell_m: cell edge, m.
        heights: ``[H, W]`` float32, m; rows along +y, columns along +x; NaN = unknown.
    """

    default_z: float = 0.0
    origin_xy: np.ndarray | None = None  # [2] float64, m
    cell_m: float = 1.0
    heights: np.ndarray | None = None  # [H, W] float32, m

    def __post_init__(self) -> None:
        if not np.isfinite(self.default_z):
            raise ScenarioValidationError(f"GroundHeight.default_z: expected a finite height, received {self.default_z}")
        if self.heights is not None:
            if self.heights.ndim != 2 or self.origin_xy is None or np.shape(self.origin_xy) != (2,):
                raise ShapeError("GroundHeight: expected heights [H, W] with origin_xy [2], received "
                                 f"{np.shape(self.heights)} and {np.shape(self.origin_xy)}")
            if not self.cell_m > 0:
                raise ScenarioValidationError(f"GroundHeight.cell_m: expected > 0 m, received {self.cell_m}")

    def at(self, xy: np.ndarray) -> np.ndarray:
        """Ground z ``[...]`` float64 (m) at points ``xy [..., 2]`` (m, scenario frame); nearest cell."""
        xy = np.asarray(xy, np.float64)
        out = np.full(xy.shape[:-1], float(self.default_z))
        if self.heights is None or not xy.size:
            return out
        h, w = self.heights.shape
        col = np.floor((xy[..., 0] - self.origin_xy[0]) / self.cell_m).astype(np.int64)
        row = np.floor((xy[..., 1] - self.origin_xy[1]) / self.cell_m).astype(np.int64)
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        z = self.heights[np.clip(row, 0, h - 1), np.clip(col, 0, w - 1)].astype(np.float64)
        return np.where(inside & np.isfinite(z), z, out)


@dataclass(frozen=True, eq=False)
class PoseLog:
    """Logged 6-DoF poses of A bodies over F frames (scenario frame), used for z, roll and pitch (§7.3).

    Attributes:
        trans: ``[A, F, 3]`` float64, m, world_from_body translation (ego: rear axle; actors: box centre).
        quats: ``[A, F, 4]`` float64, (w, x, y, z) world_from_body rotation.
        valid: ``[A, F]`` bool; False for padding and sentinel (absent) frames.
    """

    trans: np.ndarray  # [A, F, 3] float64, m
    quats: np.ndarray  # [A, F, 4] float64
    valid: np.ndarray  # [A, F] bool

    def __post_init__(self) -> None:
        a_f = self.valid.shape
        if (self.valid.ndim != 2 or self.trans.shape != a_f + (3,) or self.quats.shape != a_f + (4,)):
            raise ShapeError(f"PoseLog: expected trans [A, F, 3], quats [A, F, 4], valid [A, F], received "
                             f"{list(self.trans.shape)}, {list(self.quats.shape)}, {list(a_f)}")

    def nearest(self, rows: np.ndarray, xy: np.ndarray, yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Simulator override (§7.3) for bodies ``rows [n]`` at ``xy [n, 2]`` m and ``yaw [n]`` rad.

        Picks the valid logged pose nearest in xy, keeps its z, roll and pitch, sets xy, and rotates by
        Rz(yaw − yaw(q_log)). Returns ``(trans [n, 3], quats [n, 4], has_log [n] bool)``.
        """
        n = np.arange(len(rows))
        if self.valid.shape[1] == 0:
            return np.concatenate([xy, np.zeros((len(rows), 1))], 1), quat_from_yaw(yaw), np.zeros(len(rows), bool)
        tr, qs, ok = self.trans[rows], self.quats[rows], self.valid[rows]
        d2 = np.where(ok, ((tr[..., :2] - xy[:, None, :]) ** 2).sum(-1), np.inf)
        j = np.argmin(d2, axis=1)
        has = np.isfinite(d2[n, j])
        q_log = np.where(has[:, None], qs[n, j], [1.0, 0.0, 0.0, 0.0])
        q = quat_multiply(quat_from_yaw(yaw - quat_yaw(q_log)), quat_normalize(q_log))
        z = np.where(has, tr[n, j, 2], 0.0)
        return np.concatenate([xy, z[:, None]], axis=1), q, has


# ---------------------------------------------------------------------------------------------- the scene
@dataclass(frozen=True, eq=False)
class ScenarioScene:
    """A Gaussian scene tied to a scenario: static background + rigid actors posed per step.

    Attributes:
        background: GaussianScene, scenario frame (x, y as ``Scenario`` local frame, z up, m); actor_ids all -1.
        actors: GaussianScene in box frames; ``actor_ids [G]`` index ``actor_track_ids [A]`` which match
            ``scenario.agents.track_ids`` (actors whose track is not in the scenario are never shown).
        scenario: the Scenario that poses the actors (edit it with :meth:`with_scenario`).
        ground: ground height for actor z (box centre = ground + height / 2) and the ego camera pose.
        ego_log: optional logged ego rear-axle poses (A = 1) giving z, roll and pitch near the ego's xy.
        actor_log: optional logged actor box poses (A = ``actors.num_actors``) for z, roll and pitch.
        meta: provenance and build statistics (free-form).
    """

    background: GaussianScene
    actors: GaussianScene
    scenario: Scenario
    ground: GroundHeight = field(default_factory=GroundHeight)
    ego_log: PoseLog | None = None
    actor_log: PoseLog | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.background, GaussianScene) or not isinstance(self.actors, GaussianScene):
            raise ScenarioValidationError("ScenarioScene: expected GaussianScene background and actors, received "
                                          f"{type(self.background).__name__} and {type(self.actors).__name__}")
        if (self.background.actor_ids != BACKGROUND_ID).any():
            raise ScenarioValidationError("ScenarioScene.background: expected every actor_id == -1 (static); "
                                          "move actor Gaussians into `actors` in their box frame")
        if (self.actors.actor_ids < 0).any():
            raise ScenarioValidationError("ScenarioScene.actors: expected every actor_id >= 0 (an index into "
                                          "actor_track_ids); put static Gaussians into `background`")
        tracks = self.actors.actor_track_ids.astype(str)
        if len(set(tracks.tolist())) != len(tracks):
            raise ScenarioValidationError("ScenarioScene.actors.actor_track_ids: expected unique track ids, "
                                          "received duplicates; merge each track's Gaussians into one actor")
        if self.ego_log is not None and self.ego_log.valid.shape[0] != 1:
            raise ShapeError(f"ScenarioScene.ego_log: expected A = 1, received {self.ego_log.valid.shape[0]}")
        if self.actor_log is not None and self.actor_log.valid.shape[0] != self.actors.num_actors:
            raise ShapeError(f"ScenarioScene.actor_log: expected A = {self.actors.num_actors} (one per actor), "
                             f"received {self.actor_log.valid.shape[0]}")
        # per-actor index into the scenario's agents (-1: not in the scenario) and precomputed arrays
        index = {str(t): i for i, t in enumerate(self.scenario.agents.track_ids)}
        agent_of = np.array([index.get(t, -1) for t in tracks.tolist()], np.int64)
        if (agent_of < 0).any():
            log.debug("ScenarioScene: %d actor(s) not in scenario %s are never shown", int((agent_of < 0).sum()),
                      self.scenario.scenario_id)
        k = max(self.background.sh.shape[1], self.actors.sh.shape[1])
        pad = lambda s: np.pad(s, ((0, 0), (0, k - s.shape[1]), (0, 0)))  # noqa: E731
        self._cache.update(agent_of=agent_of, bg_sh=pad(self.background.sh), act_sh=pad(self.actors.sh),
                           act_q=quat_normalize(self.actors.quats.astype(np.float64)) if self.actors.num_gaussians
                           else np.zeros((0, 4)))

    @property
    def num_gaussians(self) -> int:
        """Background plus all actor Gaussians (G before dropping absent actors)."""
        return self.background.num_gaussians + self.actors.num_gaussians

    def with_scenario(self, scenario: Scenario) -> "ScenarioScene":
        """The same Gaussians posed by another (e.g. edited) scenario; nothing is refitted."""
        return replace(self, scenario=scenario)

    # -------------------------------------------------------------------------------------------- poses
    def _tracks_at(self, t: float, agents: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """xy ``[n, 2]`` f64, yaw ``[n]`` f64 and valid ``[n]`` of scenario agents ``agents [n]`` at step t."""
        tr = self.scenario.agents
        num = tr.num_steps
        if not (np.isfinite(t) and 0 <= t <= num - 1):
            raise WindowOutOfRangeError(f"ScenarioScene.frame: expected a step index t in [0, {num - 1}] of "
                                        f"scenario {self.scenario.scenario_id}, received {t}")
        i0 = int(np.floor(t))
        i1 = min(i0 + 1, num - 1)
        w = float(t - i0)
        a = np.maximum(agents, 0)
        xy0, xy1 = tr.xy[i0, a].astype(np.float64), tr.xy[i1, a].astype(np.float64)
        y0, y1 = tr.yaw[i0, a].astype(np.float64), tr.yaw[i1, a].astype(np.float64)
        valid = (agents >= 0) & tr.valid[i0, a] & (tr.valid[i1, a] | (w == 0.0))
        dyaw = (y1 - y0 + np.pi) % (2 * np.pi) - np.pi
        return xy0 * (1 - w) + xy1 * w, y0 + w * dyaw, valid

    def world_from_ego(self, t: float) -> np.ndarray:
        """Ego rear-axle pose ``[4, 4]`` float64 (scenario frame) at step ``t``.

        xy and yaw come from the ego track (box centre moved back by ``scenario.ego_rear_axle_to_center_m``);
        z, roll and pitch from the nearest logged ego pose if ``ego_log`` is set, else z = ground, level.
        """
        xy, yaw, _ = self._tracks_at(t, np.zeros(1, np.int64))
        rear = xy - self.scenario.ego_rear_axle_to_center_m * np.stack([np.cos(yaw), np.sin(yaw)], -1)
        trans, q, has = (self.ego_log.nearest(np.zeros(1, np.int64), rear, yaw) if self.ego_log is not None
                         else (None, None, np.zeros(1, bool)))
        if not has[0]:
            trans = np.concatenate([rear, self.ground.at(rear)[:, None]], 1)
            q = quat_from_yaw(yaw)
        pose = np.eye(4)
        pose[:3, :3] = quat_to_matrix(q[0])
        pose[:3, 3] = trans[0]
        return pose

    def actor_poses(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World_from_actor poses of every actor at step t: ``(trans [A, 3], quats [A, 4], present [A])``.

        float64, scenario frame; box centre z = ground + height / 2 unless ``actor_log`` gives a logged pose.
        """
        agent_of = self._cache["agent_of"]
        xy, yaw, present = self._tracks_at(t, agent_of)
        h = self.scenario.agents.size_lwh[np.maximum(agent_of, 0), 2].astype(np.float64)
        trans = np.concatenate([xy, (self.ground.at(xy) + 0.5 * h)[:, None]], 1)
        quats = quat_from_yaw(yaw)
        if self.actor_log is not None and len(agent_of):
            lt, lq, has = self.actor_log.nearest(np.arange(len(agent_of)), xy, yaw)
            trans = np.where(has[:, None], lt, trans)
            quats = np.where(has[:, None], lq, quats)
        return trans, quats, present

    def frame(self, t: float) -> tuple[GaussianScene, np.ndarray]:
        """The scene at step ``t`` (a scenario step index; fractional values interpolate between steps).

        Returns:
            scene: GaussianScene in the scenario frame: the background, then the Gaussians of every actor
                valid at t, posed by μ_w = R_p μ + t_p and q_w = q_p ⊗ q (one batched op over Gaussians);
                ``actor_ids`` still index ``actors.actor_track_ids``.
            world_from_ego: ``[4, 4]`` float64, ego rear-axle pose (see :meth:`world_from_ego`).
        """
        trans, quats, present = self.actor_poses(t)
        act = self.actors
        ids = act.actor_ids.astype(np.int64)
        keep = present[ids] if len(ids) else np.zeros(0, bool)
        kid = ids[keep]
        means, q = actor_to_world(act.means[keep], self._cache["act_q"][keep], quats[kid], trans[kid])
        bg = self.background
        scene = GaussianScene(
            means=np.concatenate([bg.means, means], dtype=np.float32),
            quats=np.concatenate([bg.quats, q], dtype=np.float32),
            scales=np.concatenate([bg.scales, act.scales[keep]], dtype=np.float32),
            opacities=np.concatenate([bg.opacities, act.opacities[keep]], dtype=np.float32),
            sh=np.concatenate([self._cache["bg_sh"], self._cache["act_sh"][keep]], dtype=np.float32),
            actor_ids=np.concatenate([bg.actor_ids, act.actor_ids[keep]]).astype(np.int32),
            actor_track_ids=act.actor_track_ids.copy(),
        )
        return scene, self.world_from_ego(t)

    def __repr__(self) -> str:
        return (f"ScenarioScene({self.scenario.scenario_id!r}, background={self.background.num_gaussians}, "
                f"actors={self.actors.num_actors} ({self.actors.num_gaussians} Gaussians), "
                f"sh_degree={max(self.background.sh_degree, self.actors.sh_degree)})")
