"""NC (no at-fault collision, spec/metrics.md §2.7) and TTC (time to collision within bound, §2.9),
batched over proposals, states, look-aheads and objects.

Pipeline (no Python loop over proposals, objects or states):

1. **Broad phase** (:mod:`~worldengine_lab.metrics.broad_phase`) – bounding-circle tests, first per group of
   nearby proposals, then per proposal, give the candidate quadruples (proposal, state, look-ahead, object).
2. **Narrow phase** – exact oriented-box SAT (touching counts) on the candidates: look-ahead 0 is the state's
   own frame (NC, and TTC's k = 0), the others are TTC's projections; the front-bumper test and the relative
   angles run on the contacts only.
3. **Sequential ignore sets** – the reference walks time in order and, per proposal, ignores an object
   after its first *not-at-fault* contact. Equivalently: an at-fault contact counts iff it happens before
   the first not-at-fault contact with the same object. That is a segment-min over (proposal, object)
   (``scatter_reduce``), so the walk is vectorised. TTC orders events by (state, look-ahead).
4. **Early exit** – the narrow phase takes the candidates in two chunks of states (the segment-min state
   carries over); proposals whose NC = 0 and TTC = 0 are settled after the first chunk skip the second.
   This changes no result (both only decrease, and their first indices are already known) and saves much
   of the narrow-phase work in scenes where most candidates collide.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..sim.geometry import (
    COS_AHEAD, COS_BEHIND, EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M, box_separation, cos_relative_angle,
    segment_box_intersects,
)
from ..sim.state import EGO_REAR_TO_CENTER_M, VX, VY, X, Y, YAW
from .broad_phase import candidate_quadruples
from .observations import STOPPED_SPEED_MPS, ObjectTracks

__all__ = ["CollisionResult", "collision_metrics", "TTC_MIN_SPEED_MPS"]

TTC_MIN_SPEED_MPS = 0.005
_NONE = 1 << 30
_CHUNKS = 2  # the time walk is split in this many chunks of states (early exit of settled proposals)
_FAR_M = 1e7  # where absent objects are parked for the narrow phase


@dataclass(frozen=True)
class CollisionResult:
    """Per-proposal collision outputs (``[P]`` tensors).

    Attributes:
        nc: no-at-fault-collision score in {0, 0.5, 1}.
        first_collision_idx: state index of the first counted at-fault contact (agent or static), -1 if none.
        first_agent_collision_idx: state index of the first counted at-fault contact with an agent
            (the one that sets NC = 0), -1 if none.
        any_contact: any ego/object box contact at any state, regardless of fault or ignore sets.
        ttc: 1 or 0.
        first_ttc_idx: state index of the first at-fault projected contact, -1 if none.
    """

    nc: torch.Tensor
    first_collision_idx: torch.Tensor
    first_agent_collision_idx: torch.Tensor
    any_contact: torch.Tensor
    ttc: torch.Tensor
    first_ttc_idx: torch.Tensor


def _pack_objects(objects: ObjectTracks, dtype: torch.dtype) -> torch.Tensor:
    """``[F·N, 7]`` rows (x, y, cos, sin, half_length, half_width, radius) per (frame, object); objects absent
    at a frame are moved far away so that every geometric test fails for them."""
    f_num, n_num = objects.valid.shape
    half = objects.half_lw.to(dtype)[None].expand(f_num, n_num, 2)
    xy = torch.where(objects.valid[..., None], objects.xy.to(dtype), torch.full((), _FAR_M, dtype=dtype))
    rad = torch.linalg.vector_norm(half, dim=-1)
    table = torch.cat((xy, objects.cos_yaw.to(dtype)[..., None], objects.sin_yaw.to(dtype)[..., None], half,
                       rad[..., None]), -1)
    return table.reshape(f_num * n_num, 7)


def collision_metrics(states: torch.Tensor, objects: ObjectTracks, at_fault_area: torch.Tensor,
                      ttc_area: torch.Tensor, dt: float = 0.1, ttc_lookahead_steps: tuple[int, ...] = (0, 3, 6, 9),
                      ttc_max_state: int | None = None, stopped_per_frame: bool = False,
                      center: torch.Tensor | None = None, cos_sin: tuple[torch.Tensor, torch.Tensor] | None = None
                      ) -> CollisionResult:
    """NC and TTC of P proposals against one scene's objects.

    Args:
        states: ``[P, S, D]`` simulated ego states (rear axle, sim/state.py layout); state i is compared with
            object frame i (and i + k for TTC).
        objects: :class:`ObjectTracks` with F >= S frames at ``dt``.
        at_fault_area: ``[P, S]`` bool, multiple_lanes | non_drivable (NC lateral rule, TTC).
        ttc_area: ``[P, S]`` bool, multiple_lanes | non_drivable | in_intersection (TTC).
        dt: seconds between states (and between object frames).
        ttc_lookahead_steps: TTC look-aheads in steps of ``dt`` (NAVSIM 0, 3, 6, 9).
        ttc_max_state: last state index evaluated by TTC (None = all).
        stopped_per_frame: use the object's speed at each frame for the *stopped* test instead of the
            first-appearance speed (§1.2 quirk, default off).
        center, cos_sin: ``[P, S, 2]`` box centres and ``([P, S], [P, S])`` heading cos/sin when the caller
            already has them (saves recomputing).
    Returns:
        :class:`CollisionResult`.
    """
    p_num, s_num = states.shape[:2]
    n_num = objects.num_objects
    dtype = states.dtype
    yaw = states[..., YAW]
    cos, sin = (torch.cos(yaw), torch.sin(yaw)) if cos_sin is None else cos_sin
    rear = states[..., X:Y + 1]  # X, Y are adjacent fields
    if center is None:
        center = rear + EGO_REAR_TO_CENTER_M * torch.stack((cos, sin), -1)
    vx, vy = states[..., VX], states[..., VY]
    speed = torch.sqrt(vx * vx + vy * vy)
    steps = tuple(int(k) for k in ttc_lookahead_steps)
    last = s_num - 1 if ttc_max_state is None else min(int(ttc_max_state), s_num - 1)
    ttc_active = torch.arange(s_num) <= last
    no = torch.full((p_num,), -1, dtype=torch.long)
    if n_num == 0 or p_num == 0:
        ones = torch.ones(p_num, dtype=dtype)
        return CollisionResult(ones, no, no.clone(), torch.zeros(p_num, dtype=torch.bool), ones.clone(), no.clone())

    # look-aheads checked: 0 (the state's own frame, NC and TTC k = 0) first, then the other TTC steps
    look = torch.tensor([0] + [k for k in steps if k != 0], dtype=torch.long)
    ttc_pos = torch.tensor([steps.index(k) if k in steps else -1 for k in look.tolist()],
                           dtype=torch.long)  # order of each look-ahead in the TTC walk
    active = torch.ones(s_num, len(look), dtype=torch.bool)
    active[:, 1:] = ttc_active[:, None]
    acc = _Walk(p_num, n_num, dtype)
    ctx = (objects, _pack_objects(objects, dtype), at_fault_area, ttc_area, ttc_active, look, ttc_pos, len(steps), dt,
           stopped_per_frame)
    p, i, kk, j = candidate_quadruples(center, cos, sin, speed, objects, dt, look, active)
    # per-state ego rows (cx, cy, cos, sin, speed), gathered once per candidate in the narrow phase
    ego_tab = torch.stack((center[..., 0], center[..., 1], cos, sin, speed), -1).reshape(p_num * s_num, 5)
    bounds = [round(c * s_num / _CHUNKS) for c in range(_CHUNKS + 1)]
    settled = torch.zeros(p_num, dtype=torch.bool)
    for s0, s1 in zip(bounds[:-1], bounds[1:]):
        # the narrow phase walks the states in chunks; proposals whose NC = 0 and TTC = 0 are settled skip
        # the later chunks
        take = (i >= s0) & (i < s1)
        if s0 > 0:
            take &= ~settled[p]
        sel = torch.nonzero(take)[:, 0]
        if len(sel):
            _narrow_phase(acc, p[sel], i[sel], kk[sel], j[sel], ego_tab, s_num, ctx)
        settled = (acc.nc == 0) & (acc.first_ttc < _NONE)

    def idx(t: torch.Tensor) -> torch.Tensor:
        return torch.where(t < _NONE, t, torch.full_like(t, -1))

    ttc = torch.where(acc.first_ttc < _NONE, 0.0, 1.0).to(dtype)
    return CollisionResult(acc.nc, idx(acc.first_col), idx(acc.first_agent), acc.any_contact, ttc,
                           idx(acc.first_ttc))


class _Walk:
    """State of the time walk carried between chunks of states (per proposal, and per proposal × object for
    the ignore sets: the time of the first not-at-fault contact)."""

    def __init__(self, p_num: int, n_num: int, dtype: torch.dtype) -> None:
        self.n_num = n_num
        self.nc = torch.ones(p_num, dtype=dtype)
        self.first_col = torch.full((p_num,), _NONE, dtype=torch.long)
        self.first_agent = torch.full((p_num,), _NONE, dtype=torch.long)
        self.first_ttc = torch.full((p_num,), _NONE, dtype=torch.long)
        self.any_contact = torch.zeros(p_num, dtype=torch.bool)
        self.ok_nc = torch.full((p_num * max(n_num, 1),), _NONE, dtype=torch.long)
        self.ok_ttc = torch.full((p_num * max(n_num, 1),), _NONE, dtype=torch.long)

    def counted(self, first_ok: torch.Tensor, p: torch.Tensor, j: torch.Tensor, t: torch.Tensor,
                at_fault: torch.Tensor) -> torch.Tensor:
        """At-fault events before the first not-at-fault event of the same (proposal, object); events arrive
        in chunks of increasing time, so earlier chunks' not-at-fault events are already in ``first_ok``."""
        key = p * self.n_num + j
        ok = ~at_fault
        first_ok.scatter_reduce_(0, key[ok], t[ok], reduce="amin", include_self=True)
        return at_fault & (t < first_ok[key])


def _narrow_phase(acc: _Walk, p: torch.Tensor, i: torch.Tensor, kk: torch.Tensor, j: torch.Tensor,
                  ego_tab: torch.Tensor, s_num: int, ctx: tuple) -> None:
    """Exact tests and the NC / TTC rules for candidate quadruples (p, i, look-ahead index kk, j);
    ``ego_tab`` ``[P·S, 5]`` holds (cx, cy, cos, sin, speed) per (proposal, state)."""
    objects, obj_tab, at_fault_area, ttc_area, ttc_active, look, ttc_pos, num_steps, dt, stopped_per_frame = ctx
    n_num = objects.num_objects
    dtype = ego_tab.dtype
    # one gather per side: ego rows (cx, cy, cos, sin, speed), object rows (x, y, cos, sin, hl, hw, radius)
    flat_ps = p * s_num + i
    ego_rows = ego_tab.index_select(0, flat_ps)
    cx, cy, co, si, spd = ego_rows.unbind(-1)
    k_steps = look[kk]
    o = obj_tab.index_select(0, (i + k_steps) * n_num + j)  # frame i + k exists by construction
    shift = spd * (dt * k_steps.to(dtype))
    ctr = torch.stack((torch.addcmul(cx, shift, co), torch.addcmul(cy, shift, si)), -1)
    ego_half = torch.tensor([EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M], dtype=dtype)
    hit = box_separation(ctr, co, si, ego_half, o[:, :2], o[:, 2], o[:, 3], o[:, 4:6]) <= 0

    # ---- NC: state i against frame i ------------------------------------------------------------------
    hit_idx = torch.nonzero(hit & (kk == 0))[:, 0]
    if len(hit_idx):
        hp, hi_, hj = p[hit_idx], i[hit_idx], j[hit_idx]
        acc.any_contact[hp] = True
        oh = o[hit_idx]
        c, cc, ss = ctr[hit_idx], co[hit_idx], si[hit_idx]
        front = c + EGO_HALF_LENGTH_M * torch.stack((cc, ss), -1)
        side = EGO_HALF_WIDTH_M * torch.stack((-ss, cc), -1)
        bumper = segment_box_intersects(front + side, front - side, oh[:, :2], oh[:, 2], oh[:, 3], oh[:, 4:6])
        if stopped_per_frame:
            stopped = objects.is_static[hj] | (torch.linalg.vector_norm(objects.vel[hi_, hj].to(dtype), dim=-1)
                                               <= STOPPED_SPEED_MPS)
        else:
            stopped = objects.stopped_first[hj]
        stopped_ego = spd[hit_idx] <= STOPPED_SPEED_MPS
        rear_h = c - EGO_REAR_TO_CENTER_M * torch.stack((cc, ss), -1)  # k = 0: c is the state's own centre
        behind = cos_relative_angle(rear_h, cc, ss, oh[:, :2]) < COS_BEHIND
        lateral_fault = at_fault_area.reshape(-1).index_select(0, flat_ps[hit_idx])
        # rules in order: stopped ego, stopped track, rear, front, lateral (§2.7)
        at_fault = ~stopped_ego & (stopped | (~behind & (bumper | lateral_fault)))
        counted = acc.counted(acc.ok_nc, hp, hj, hi_, at_fault)
        is_agent = ~objects.is_static[hj]
        value = torch.where(is_agent, 0.0, 0.5).to(dtype)
        acc.nc.scatter_reduce_(0, hp[counted], value[counted], "amin", include_self=True)
        acc.first_col.scatter_reduce_(0, hp[counted], hi_[counted], "amin", include_self=True)
        ca = counted & is_agent
        acc.first_agent.scatter_reduce_(0, hp[ca], hi_[ca], "amin", include_self=True)

    # ---- TTC: state i projected by k steps against frame i + k ----------------------------------------
    k_order = ttc_pos[kk]
    hit_idx = torch.nonzero(hit & (k_order >= 0) & ttc_active[i] & (spd >= TTC_MIN_SPEED_MPS))[:, 0]
    if len(hit_idx):
        tp, ti, tj = p[hit_idx], i[hit_idx], j[hit_idx]
        cc, ss = co[hit_idx], si[hit_idx]
        rear_h = torch.stack((cx[hit_idx], cy[hit_idx]), -1) - EGO_REAR_TO_CENTER_M * torch.stack((cc, ss), -1)
        cos_a = cos_relative_angle(rear_h, cc, ss, o[hit_idx, :2])  # rear axle at state i, centroid at i + k
        ahead, behind = cos_a > COS_AHEAD, cos_a < COS_BEHIND
        at_fault = ahead | (ttc_area.reshape(-1).index_select(0, flat_ps[hit_idx]) & ~behind)
        counted = acc.counted(acc.ok_ttc, tp, tj, ti * num_steps + k_order[hit_idx], at_fault)
        acc.first_ttc.scatter_reduce_(0, tp[counted], ti[counted], "amin", include_self=True)
