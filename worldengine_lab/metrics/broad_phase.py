"""Broad phase of the collision checks: which (proposal, state, look-ahead, object) quadruples may touch.

The NC check compares the ego box of proposal p at state i with object j at frame i; the TTC check compares
the same box translated by ``speed·dt·k`` along the heading with object j at frame i + k. Boxes whose bounding
circles do not overlap cannot intersect, so only the quadruples that pass a circle test go to the exact SAT.

Levels, all vectorised:

* **Groups.** Proposals are ordered so that consecutive ones end up close to each other (rank bins of the
  direction of their overall displacement, then its length) and cut into groups of ``group_size``. Objects
  are first tested against the box of *all* projected centres at each (state, look-ahead) (``[S·K, N]``),
  then the survivors against the box of each group's projected centres (``[G, M]``); every box test uses
  the object's bounding circle grown by the ego's bounding radius.
* **Proposals.** Inside each surviving (group, state, look-ahead, object) candidate the group's proposals
  are tested one by one (circle against circle) on a contiguous ``[C, group_size]`` block.

The grouping only affects speed: the result is the exact set of quadruples whose circles overlap, in any
batch order (a small margin keeps the test conservative in float32).
"""
from __future__ import annotations

import math

import torch

from ..sim.geometry import EGO_RADIUS_M
from .observations import ObjectTracks

__all__ = ["candidate_quadruples", "group_order"]

_MARGIN_M = 1e-3
_FAR_M = 1e7


def group_order(center: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Order proposals into spatially coherent groups.

    Args:
        center: ``[P, S, 2]`` ego centres.
        group_size: proposals per group.
    Returns:
        ``(order [G·group_size], real [G·group_size])``: proposal index of every slot (the last proposal
        repeats to fill the last group) and whether the slot is a real (not a padding) entry.
    """
    p_num = center.shape[0]
    disp = center[:, -1] - center[:, 0]
    angle = torch.atan2(disp[:, 1], disp[:, 0])
    length = torch.linalg.vector_norm(disp, dim=-1)
    num_groups = -(-p_num // group_size)
    num_bins = max(1, int(round(math.sqrt(num_groups))))
    rank = torch.empty(p_num, dtype=torch.long)
    rank[torch.argsort(angle)] = torch.arange(p_num)
    bin_id = rank * num_bins // max(p_num, 1)
    key = bin_id.to(torch.float64) * (float(length.max()) + 1.0) + length.to(torch.float64)
    order = torch.argsort(key)
    pad = num_groups * group_size - p_num
    real = torch.ones(num_groups * group_size, dtype=torch.bool)
    if pad:
        order = torch.cat((order, order[-1:].expand(pad)))
        real[p_num:] = False
    return order, real


def candidate_quadruples(center: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, speed: torch.Tensor,
                         objects: ObjectTracks, dt: float, lookahead: torch.Tensor, active: torch.Tensor,
                         first_state: int = 0, group_size: int = 32
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quadruples whose bounding circles overlap.

    Args:
        center: ``[P, S, 2]`` ego box centres, m. cos, sin: ``[P, S]`` heading cos/sin. speed: ``[P, S]`` m/s.
        objects: the scene's objects (frame f ↔ time f·dt).
        dt: seconds between states and frames.
        lookahead: ``[K]`` int64 look-ahead steps (k = 0 is the state's own frame).
        active: ``[S, K]`` bool, which (state, look-ahead) pairs are checked at all.
        first_state: index of the first given state (the given states are a slice starting there); the
            returned state indices are relative to the slice.
    Returns:
        ``(p, i, k_index, j)`` int64 ``[E]`` each; ``k_index`` indexes ``lookahead``.
    """
    p_num, s_num = center.shape[:2]
    f_num, n_num = objects.num_frames, objects.num_objects
    k_num = len(lookahead)
    e = torch.zeros(0, dtype=torch.long)
    if p_num == 0 or n_num == 0 or k_num == 0:
        return e, e, e, e
    dtype = center.dtype
    # projected ego centres [P, S, K]
    shift = (speed * dt)[..., None] * lookahead.to(dtype)  # m along the heading
    ex = torch.addcmul(center[..., 0, None], shift, cos[..., None])
    ey = torch.addcmul(center[..., 1, None], shift, sin[..., None])
    # object centres at frame i + k [S, K, N], with their bounding radius
    frames = torch.arange(first_state, first_state + s_num)[:, None] + lookahead[None, :]
    ok = active & (frames < f_num)
    fr = frames.clamp(max=f_num - 1)
    o_valid = objects.valid[fr] & ok[..., None]  # [S, K, N]
    oxy = objects.xy.to(dtype)[fr]  # [S, K, N, 2]
    o_rad = torch.linalg.vector_norm(objects.half_lw.to(dtype), dim=-1) + (EGO_RADIUS_M + _MARGIN_M)  # [N]
    # group layout [G, S·K, group_size]: one copy, contiguous blocks per (group, state, look-ahead)
    order, real = group_order(center, group_size)
    g_num = len(order) // group_size
    sk = s_num * k_num
    gx = ex.index_select(0, order).view(g_num, group_size, sk).transpose(1, 2).contiguous()
    gy = ey.index_select(0, order).view(g_num, group_size, sk).transpose(1, 2).contiguous()
    x_lo, x_hi = torch.aminmax(gx, dim=-1)  # [G, S·K]
    y_lo, y_hi = torch.aminmax(gy, dim=-1)
    n_real = int(real.sum()) - (g_num - 1) * group_size
    if n_real < group_size:  # padding slots (copies of the last proposal) never pass the per-proposal test
        gx[-1, :, n_real:] = _FAR_M
    # level 0: objects against the box of all proposals at each (state, look-ahead)
    ox, oy = oxy[..., 0].reshape(sk, n_num), oxy[..., 1].reshape(sk, n_num)  # [S·K, N]
    gap_x = torch.clamp(torch.maximum(x_lo.amin(0)[:, None] - ox, ox - x_hi.amax(0)[:, None]), min=0)
    gap_y = torch.clamp(torch.maximum(y_lo.amin(0)[:, None] - oy, oy - y_hi.amax(0)[:, None]), min=0)
    near0 = (gap_x * gap_x + gap_y * gap_y <= o_rad * o_rad) & o_valid.reshape(sk, n_num)
    m_sk, m_j = torch.nonzero(near0, as_tuple=True)
    if len(m_sk) == 0:
        return e, e, e, e
    # level A: group boxes against the surviving (state, look-ahead, object) triples, [G, M]
    mx, my, mr = ox[m_sk, m_j], oy[m_sk, m_j], o_rad[m_j]
    gap_x = torch.clamp(torch.maximum(x_lo.index_select(1, m_sk) - mx, mx - x_hi.index_select(1, m_sk)), min=0)
    gap_y = torch.clamp(torch.maximum(y_lo.index_select(1, m_sk) - my, my - y_hi.index_select(1, m_sk)), min=0)
    cg, cm = torch.nonzero(gap_x * gap_x + gap_y * gap_y <= mr * mr, as_tuple=True)
    if len(cg) == 0:
        return e, e, e, e
    # level B: every proposal of the candidate's group, on contiguous [C, group_size] blocks
    block = cg * sk + m_sk[cm]
    dx = gx.view(-1, group_size).index_select(0, block) - mx[cm][:, None]
    dy = gy.view(-1, group_size).index_select(0, block) - my[cm][:, None]
    r = mr[cm][:, None]
    c_idx, slot = torch.nonzero(dx * dx + dy * dy <= r * r, as_tuple=True)
    flat = cg[c_idx] * group_size + slot
    sk_hit = m_sk[cm[c_idx]]
    return order[flat], sk_hit // k_num, sk_hit % k_num, m_j[cm[c_idx]]
