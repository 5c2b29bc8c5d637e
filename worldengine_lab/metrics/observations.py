"""Object boxes for scoring: :class:`ObjectTracks` (torch) built from a Scenario's AgentTracks.

Spec/metrics.md §1.2 (agents vs static objects, the *stopped* test and its first-appearance quirk) and §2.3
(observation preparation: native 10 Hz boxes by default, or the 2 Hz-subsample-then-interpolate path for
parity with the reference). Frame 0 of an ObjectTracks is "now" (the scenario's ``t0``); frames are
``dt`` seconds apart (0.1 s for NAVSIM scoring). The ego (agent 0, and any track named ``"ego"``) is never
an object.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import torch

from ..datatypes import AgentTracks, AgentType, Scenario
from ..errors import ScenarioValidationError, ShapeError
from ..sim.state import wrap_angle

__all__ = ["ObjectTracks", "interpolate_keyframes", "STOPPED_SPEED_MPS"]

logger = logging.getLogger(__name__)

STOPPED_SPEED_MPS = 0.05
STATIC_AGENT_CODES = tuple(int(t) for t in AgentType if t.is_static)
"""Agent type codes of objects that never move (cones, barriers, signs, generic objects)."""


def _as_tensor(name: str, value: object, dtype: torch.dtype) -> torch.Tensor:
    try:
        if isinstance(value, torch.Tensor):
            return value.to(dtype)
        arr = np.asarray(value)
        if not arr.flags.writeable:  # frozen seam arrays: copy rather than alias read-only memory
            arr = arr.copy()
        return torch.as_tensor(arr, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"ObjectTracks.{name}: expected an array convertible to {dtype}, received "
                         f"{type(value).__name__} ({exc})") from exc


@dataclass(frozen=True, eq=False)
class ObjectTracks:
    """Oriented boxes of N objects over F frames (torch, time-major), the ego excluded.

    Attributes:
        xy: ``[F, N, 2]`` box centre, m, scenario local frame.
        yaw: ``[F, N]`` heading, rad, CCW from +x.
        size_lw: ``[N, 2]`` (length, width), m, > 0 for every object valid at some frame.
        vel: ``[F, N, 2]`` velocity, m/s, local frame axes.
        valid: ``[F, N]`` bool; the object exists at that frame.
        is_static: ``[N]`` bool; static object classes (cone, barrier, sign, generic), the rest are agents.
        stopped_first: ``[N]`` bool; static, or speed at its first valid frame <= 0.05 m/s (§1.2 quirk).
        track_ids: N track ids.
        dt: seconds between frames.
    """

    xy: torch.Tensor  # [F, N, 2] m
    yaw: torch.Tensor  # [F, N] rad
    size_lw: torch.Tensor  # [N, 2] m
    vel: torch.Tensor  # [F, N, 2] m/s
    valid: torch.Tensor  # [F, N] bool
    is_static: torch.Tensor  # [N] bool
    stopped_first: torch.Tensor  # [N] bool
    track_ids: tuple[str, ...] = ()
    dt: float = 0.1
    cos_yaw: torch.Tensor = field(init=False, repr=False)  # [F, N]
    sin_yaw: torch.Tensor = field(init=False, repr=False)  # [F, N]
    half_lw: torch.Tensor = field(init=False, repr=False)  # [N, 2] m

    def __post_init__(self) -> None:
        self.validate()
        object.__setattr__(self, "cos_yaw", torch.cos(self.yaw))
        object.__setattr__(self, "sin_yaw", torch.sin(self.yaw))
        object.__setattr__(self, "half_lw", 0.5 * self.size_lw)
        if not self.track_ids:
            object.__setattr__(self, "track_ids", tuple(f"obj{i}" for i in range(self.num_objects)))

    @property
    def num_frames(self) -> int:
        return int(self.xy.shape[0])

    @property
    def num_objects(self) -> int:
        return int(self.xy.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.xy.dtype

    def validate(self) -> None:
        """Check shapes, dtypes, finiteness where valid and positive sizes; raise naming the field."""
        o = "ObjectTracks"
        if not isinstance(self.xy, torch.Tensor) or self.xy.ndim != 3 or self.xy.shape[-1] != 2:
            raise ShapeError(f"{o}.xy: expected a tensor [F, N, 2], received "
                             f"{getattr(self.xy, 'shape', type(self.xy).__name__)}")
        f, n = self.xy.shape[:2]
        want = {"yaw": (f, n), "size_lw": (n, 2), "vel": (f, n, 2), "valid": (f, n), "is_static": (n,),
                "stopped_first": (n,)}
        for name, shape in want.items():
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
                raise ShapeError(f"{o}.{name}: expected shape {list(shape)} (F={f}, N={n}), received "
                                 f"{list(getattr(t, 'shape', [])) or type(t).__name__}")
        for name in ("xy", "yaw", "size_lw", "vel"):
            if not getattr(self, name).is_floating_point():
                raise ShapeError(f"{o}.{name}: expected a floating-point tensor, received {getattr(self, name).dtype}")
        for name in ("valid", "is_static", "stopped_first"):
            if getattr(self, name).dtype != torch.bool:
                raise ShapeError(f"{o}.{name}: expected dtype torch.bool, received {getattr(self, name).dtype}")
        if len(self.track_ids) not in (0, n):
            raise ShapeError(f"{o}.track_ids: expected {n} ids, received {len(self.track_ids)}")
        if not (isinstance(self.dt, (int, float)) and math.isfinite(self.dt) and self.dt > 0):
            raise ScenarioValidationError(f"{o}.dt: expected a positive number of seconds, received {self.dt!r}")
        v = self.valid
        for name, mask in (("xy", v[..., None]), ("yaw", v), ("vel", v[..., None])):
            t = getattr(self, name)
            if not bool(torch.isfinite(torch.where(mask, t, torch.zeros_like(t))).all()):
                raise ScenarioValidationError(f"{o}.{name}: expected finite values where valid, received NaN/inf; "
                                              "mark unobserved frames invalid")
        seen = v.any(0)
        bad = seen & ~(torch.isfinite(self.size_lw) & (self.size_lw > 0)).all(-1)
        if bool(bad.any()):
            k = int(torch.nonzero(bad)[0, 0])
            tid = self.track_ids[k] if self.track_ids else k
            raise ScenarioValidationError(
                f"{o}.size_lw: expected finite length and width > 0 m for every observed object, received "
                f"{self.size_lw[k].tolist()} for object {tid!r}; drop it or give it a size")

    def to(self, dtype: torch.dtype) -> "ObjectTracks":
        """A copy with floating-point fields cast to ``dtype``."""
        return ObjectTracks(self.xy.to(dtype), self.yaw.to(dtype), self.size_lw.to(dtype), self.vel.to(dtype),
                            self.valid, self.is_static, self.stopped_first, self.track_ids, self.dt)

    @staticmethod
    def from_arrays(xy: object, yaw: object, size_lw: object, vel: object | None = None, valid: object | None = None,
                    is_static: object | None = None, track_ids: Sequence[str] | None = None, dt: float = 0.1,
                    dtype: torch.dtype = torch.float64) -> "ObjectTracks":
        """Build from numpy/torch arrays (shapes as the attributes; ``vel`` defaults to 0, ``valid`` to all
        True, ``is_static`` to all False). Tracks whose id is ``"ego"`` are dropped (closed-loop boxes)."""
        xy_t = _as_tensor("xy", xy, dtype)
        if xy_t.ndim != 3 or xy_t.shape[-1] != 2:
            raise ShapeError(f"ObjectTracks.from_arrays.xy: expected [F, N, 2], received {list(xy_t.shape)}")
        f, n = xy_t.shape[:2]
        vel_t = torch.zeros_like(xy_t) if vel is None else _as_tensor("vel", vel, dtype)
        valid_t = torch.ones((f, n), dtype=torch.bool) if valid is None else _as_tensor("valid", valid, torch.bool)
        static_t = torch.zeros(n, dtype=torch.bool) if is_static is None else _as_tensor("is_static", is_static, torch.bool)
        yaw_t = _as_tensor("yaw", yaw, dtype)
        size_t = _as_tensor("size_lw", size_lw, dtype)
        ids = tuple(track_ids) if track_ids is not None else tuple(f"obj{i}" for i in range(n))
        if len(ids) != n:
            raise ShapeError(f"ObjectTracks.from_arrays.track_ids: expected {n} ids, received {len(ids)}")
        keep = torch.tensor([tid != "ego" for tid in ids], dtype=torch.bool)
        base = ObjectTracks(xy=xy_t, yaw=yaw_t, size_lw=size_t, vel=vel_t, valid=valid_t, is_static=static_t,
                            stopped_first=torch.zeros(n, dtype=torch.bool), track_ids=ids, dt=dt)
        stopped = _stopped_first(base.vel, base.valid, base.is_static)
        k = torch.nonzero(keep)[:, 0]
        return ObjectTracks(
            xy=xy_t[:, k], yaw=yaw_t[:, k], size_lw=size_t[k], vel=vel_t[:, k], valid=valid_t[:, k],
            is_static=static_t[k], stopped_first=stopped[k], track_ids=tuple(ids[i] for i in k.tolist()), dt=dt)

    @staticmethod
    def from_scenario(scenario: Scenario, num_frames: int = 51, start: int | None = None,
                      parity_2hz_observations: bool = False, frame_dt: float = 0.1,
                      dtype: torch.dtype = torch.float64) -> "ObjectTracks":
        """Object boxes of a scenario for the frames ``start .. start + num_frames - 1`` (default start = t0).

        Frames past the end of the scenario are invalid. Objects never valid in the window are left out.
        With ``parity_2hz_observations`` the tracks are subsampled to every 5th frame (2 Hz) and interpolated
        back to 10 Hz with the reference rules (§2.3, :func:`interpolate_keyframes` rule ``"navsim"``).

        Raises:
            ScenarioValidationError: the scenario's step is not ``frame_dt``, or an observed object has no size.
        """
        if abs(float(scenario.dt) - frame_dt) > 1e-6:
            raise ScenarioValidationError(
                f"ObjectTracks.from_scenario: expected scenario.dt = {frame_dt} s (the scoring grid), received "
                f"{scenario.dt}; resample the scenario first")
        if num_frames < 1:
            raise ShapeError(f"ObjectTracks.from_scenario.num_frames: expected >= 1, received {num_frames}")
        a: AgentTracks = scenario.agents
        s0 = scenario.t0 if start is None else int(start)
        if not 0 <= s0 < a.num_steps:
            raise ScenarioValidationError(f"ObjectTracks.from_scenario.start: expected in [0, {a.num_steps}), received {s0}")
        frames = np.arange(s0, s0 + num_frames)
        inside = frames < a.num_steps
        fr = np.minimum(frames, a.num_steps - 1)
        is_obj = np.ones(a.num_agents, bool)
        is_obj[0] = False
        is_obj &= a.agent_type != int(AgentType.EGO)
        is_obj &= a.track_ids != "ego"
        valid = a.valid[fr] & inside[:, None]
        is_obj &= valid.any(0)
        idx = np.flatnonzero(is_obj)
        xy = torch.as_tensor(a.xy[fr][:, idx], dtype=dtype)
        yaw = torch.as_tensor(a.yaw[fr][:, idx], dtype=dtype)
        vel = torch.as_tensor(a.vel_xy[fr][:, idx], dtype=dtype)
        valid_t = torch.as_tensor(valid[:, idx])
        if parity_2hz_observations:
            if (num_frames - 1) % 5:
                raise ShapeError(f"ObjectTracks.from_scenario.num_frames: the 2 Hz parity path needs 5·m + 1 frames "
                                 f"(e.g. 51), received {num_frames}")
            keys = torch.arange(0, num_frames, 5)
            xy, yaw, vel, valid_t = interpolate_keyframes(xy[keys], yaw[keys], vel[keys], valid_t[keys], 5, "navsim")
        static = torch.as_tensor(np.isin(a.agent_type[idx], STATIC_AGENT_CODES))
        size = torch.as_tensor(a.size_lwh[idx, :2], dtype=dtype)
        # zero the fields of invalid frames so that garbage never reaches the geometry
        xy = torch.where(valid_t[..., None], xy, torch.zeros_like(xy))
        yaw = torch.where(valid_t, yaw, torch.zeros_like(yaw))
        vel = torch.where(valid_t[..., None], vel, torch.zeros_like(vel))
        return ObjectTracks(xy=xy, yaw=yaw, size_lw=size, vel=vel, valid=valid_t, is_static=static,
                            stopped_first=_stopped_first(vel, valid_t, static),
                            track_ids=tuple(str(t) for t in a.track_ids[idx]), dt=frame_dt)


def _stopped_first(vel: torch.Tensor, valid: torch.Tensor, is_static: torch.Tensor) -> torch.Tensor:
    """``[N]`` bool: static, or speed at the first valid frame <= 0.05 m/s (objects never valid: static only)."""
    n = valid.shape[1]
    if valid.shape[0] == 0 or n == 0:
        return is_static.clone()
    first = torch.argmax(valid.to(torch.int8), dim=0)  # [N], first True (0 where none)
    v0 = vel[first, torch.arange(n)]
    return is_static | (valid.any(0) & (torch.linalg.vector_norm(v0, dim=-1) <= STOPPED_SPEED_MPS))


def interpolate_keyframes(xy: torch.Tensor, yaw: torch.Tensor, vel: torch.Tensor, valid: torch.Tensor,
                          substeps: int, rule: Literal["navsim", "hold"] = "navsim"
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Interpolate M keyframes to ``(M - 1)·substeps + 1`` frames (vectorised over objects and frames).

    Centre and velocity are interpolated linearly; heading is unwrapped along each track, interpolated and
    re-wrapped (shortest arc between consecutive observations).

    Rules:
        * ``"navsim"`` (§2.3): an object exists between its first and last observed keyframe (gaps are
          bridged by interpolating between the surrounding observations); an object observed at exactly one
          keyframe is kept, unchanged, at **all** frames.
        * ``"hold"`` (§5.1 step 4): between keyframes m and m+1, an object seen at both is interpolated, one
          seen only at m is held at its state at m, one seen only at m+1 is absent until m+1.

    Args:
        xy: ``[M, N, 2]`` m; yaw: ``[M, N]`` rad; vel: ``[M, N, 2]`` m/s; valid: ``[M, N]`` bool.
        substeps: frames per keyframe interval (5 for 2 Hz → 10 Hz).
    Returns:
        ``(xy [F, N, 2], yaw [F, N], vel [F, N, 2], valid [F, N])``.
    """
    m, n = valid.shape
    if substeps < 1 or m < 1:
        raise ShapeError(f"interpolate_keyframes: expected substeps >= 1 and M >= 1, received {substeps}, {m}")
    f = (m - 1) * substeps + 1
    ar = torch.arange(m)[:, None].expand(m, n)
    prev_idx = torch.cummax(torch.where(valid, ar, torch.full_like(ar, -1)), dim=0).values  # [M, N]
    nxt = torch.where(valid, ar, torch.full_like(ar, m)).flip(0)
    next_idx = torch.cummin(nxt, dim=0).values.flip(0)  # [M, N]
    # unwrap heading along the track, holding the last observation over gaps
    filled = torch.gather(yaw, 0, prev_idx.clamp(min=0))
    first_obs = torch.gather(yaw, 0, next_idx.clamp(max=m - 1)[:1].expand(m, n))
    filled = torch.where(prev_idx >= 0, filled, first_obs)
    yaw_u = filled[:1] + torch.cat((torch.zeros_like(filled[:1]), torch.cumsum(wrap_angle(filled.diff(dim=0)), 0)))

    u = torch.arange(f, dtype=xy.dtype) / substeps  # keyframe coordinate of each frame
    ka = torch.floor(u).long().clamp(max=m - 1)
    kb = torch.ceil(u).long().clamp(max=m - 1)
    if rule == "navsim":
        lo = prev_idx[ka]  # [F, N]
        hi = next_idx[kb]
        ok = (lo >= 0) & (hi < m)
        single = valid.sum(0) == 1
        only = next_idx[0].clamp(max=m - 1)  # the single observation's index
        lo = torch.where(single[None], only[None].expand(f, n), lo.clamp(0, m - 1))
        hi = torch.where(single[None], only[None].expand(f, n), hi.clamp(0, m - 1))
        ok = ok | single[None]
    elif rule == "hold":
        va, vb = valid[ka], valid[kb]
        lo = ka[:, None].expand(f, n)
        hi = torch.where(vb, kb[:, None].expand(f, n), lo)
        ok = va | ((ka == kb)[:, None] & vb)
    else:
        raise ScenarioValidationError(f"interpolate_keyframes.rule: expected 'navsim' or 'hold', received {rule!r}")
    span = (hi - lo).to(xy.dtype)
    w = torch.where(span > 0, (u[:, None] - lo.to(xy.dtype)) / torch.where(span > 0, span, torch.ones_like(span)),
                    torch.zeros_like(span))
    w = w.clamp(0.0, 1.0)
    cols = torch.arange(n)[None].expand(f, n)

    def lerp(t: torch.Tensor) -> torch.Tensor:
        a, b = t[lo, cols], t[hi, cols]
        ww = w if t.ndim == 2 else w[..., None]
        return a + (b - a) * ww

    out_xy, out_vel = lerp(xy), lerp(vel)
    out_yaw = wrap_angle(lerp(yaw_u))
    return out_xy, out_yaw, out_vel, ok
