"""Route centreline for ego progress (spec/metrics.md §1.4, §2.10) and projections onto polylines.

The route centreline is built once per scene from the map's lane graph; projecting points onto it is
batched over any number of points (torch).

Route chaining (workbench decision, the spec leaves it open):

1. Start lane: among the on-route lanes (``Route.lane_indices``; all lanes when the route is empty), the
   lane whose centreline is nearest to the ego rear axle at t0, lanes pointing more than 90° away from
   the ego heading being penalised by 10 m.
2. One predecessor is prepended (an on-route one if there is one, else any) so that an ego standing just
   before its lane's first point is not clamped to arc length 0.
3. Successors are followed from the start lane: on-route successors first (when the route is not empty
   only on-route successors are followed); among several candidates the one whose first heading is closest
   to the current lane's last heading wins. The chain stops at a lane already used, when no successor is
   left, or after ``max_length_m``.
4. With an empty route the nearest lane and its successors are used (same rules); a warning is logged.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch

from ..datatypes import MapData
from ..errors import ShapeError

__all__ = ["project_to_polyline", "route_centerline", "polyline_through"]

logger = logging.getLogger(__name__)


def _project_dense(pts: torch.Tensor, a: torch.Tensor, ab: torch.Tensor, seg_len2: torch.Tensor,
                   seg_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closest segment of ``[M, 2]`` points among ``[M or 1, G]`` segments (a, ab, |ab|²).
    Returns ``(segment position k [M], t [M], squared distance [M])``; ties go to the first segment."""
    safe = torch.where(seg_len2 > 0, seg_len2, torch.ones_like(seg_len2))
    apx = pts[:, None, 0] - a[..., 0]
    apy = pts[:, None, 1] - a[..., 1]
    dot = apx * ab[..., 0] + apy * ab[..., 1]
    t = torch.where(seg_len2 > 0, (dot / safe).clamp(0.0, 1.0), torch.zeros_like(dot))
    dx = apx - t * ab[..., 0]
    dy = apy - t * ab[..., 1]
    d2 = dx * dx + dy * dy
    if seg_valid is not None:
        d2 = torch.where(seg_valid, d2, torch.full_like(d2, float("inf")))
    k = torch.argmin(d2, dim=1, keepdim=True)
    return k[:, 0], t.gather(1, k)[:, 0], d2.gather(1, k)[:, 0]


def project_to_polyline(points: torch.Tensor, polyline: torch.Tensor, block: int = 16, num_blocks: int = 2,
                        chunk_elems: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """Arc length of the closest point on a polyline (clamped to its ends) and the distance to it.

    Exact, coarse to fine: segments are grouped in blocks of ``block``; each point is first tested against
    the ``num_blocks`` blocks whose bounding boxes are nearest, and against all segments only when another
    block's bounding box is not farther than the best distance found (so the result, tie-breaking included,
    equals the brute-force one).

    Args:
        points: ``[..., 2]`` m.
        polyline: ``[C, 2]`` m, C >= 1 (zero-length segments are allowed).
    Returns:
        ``(s [...], distance [...])`` m. Ties go to the first closest segment.
    """
    if polyline.ndim != 2 or polyline.shape[-1] != 2 or polyline.shape[0] < 1:
        raise ShapeError(f"project_to_polyline.polyline: expected [C >= 1, 2], received {list(polyline.shape)}")
    shape = points.shape[:-1]
    pts = points.reshape(-1, 2)
    pl = polyline.to(points.dtype)
    if pts.shape[0] == 0:
        e = torch.zeros(0, dtype=points.dtype)
        return e.reshape(shape), e.reshape(shape)
    if pl.shape[0] == 1:
        d = torch.linalg.vector_norm(pts - pl[0], dim=-1)
        return torch.zeros_like(d).reshape(shape), d.reshape(shape)
    a, b = pl[:-1], pl[1:]
    ab = b - a
    seg_len2 = (ab * ab).sum(-1)
    seg_len = torch.sqrt(seg_len2)
    cum = torch.cat((torch.zeros(1, dtype=pl.dtype), torch.cumsum(seg_len, 0)[:-1]))
    n_seg = len(a)
    n_blk = -(-n_seg // block)
    if pts.shape[0] > 1 and bool((pts == pts[:1]).all()):  # e.g. all proposals start from the same state
        s0, d0 = project_to_polyline(pts[:1], polyline, block, num_blocks, chunk_elems)
        return s0.expand(pts.shape[0]).reshape(shape), d0.expand(pts.shape[0]).reshape(shape)
    if n_blk <= num_blocks:
        k, t, d2 = _brute(pts, a, ab, seg_len2, chunk_elems)
    else:
        k, t, d2 = _coarse_to_fine(pts, a, b, ab, seg_len2, block, num_blocks, chunk_elems)
    s = cum[k] + t * seg_len[k]
    return s.reshape(shape), torch.sqrt(d2).reshape(shape)


def _brute(pts: torch.Tensor, a: torch.Tensor, ab: torch.Tensor, seg_len2: torch.Tensor,
           chunk_elems: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ks, ts, ds = [], [], []
    step = max(1, chunk_elems // len(a))
    for i in range(0, pts.shape[0], step):
        k, t, d2 = _project_dense(pts[i:i + step], a[None], ab[None], seg_len2[None])
        ks.append(k), ts.append(t), ds.append(d2)
    return torch.cat(ks), torch.cat(ts), torch.cat(ds)


def _coarse_to_fine(pts: torch.Tensor, a: torch.Tensor, b: torch.Tensor, ab: torch.Tensor, seg_len2: torch.Tensor,
                    block: int, num_blocks: int, chunk_elems: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n_seg = len(a)
    n_blk = -(-n_seg // block)
    pad = n_blk * block - n_seg
    seg_lo = torch.minimum(a, b)
    seg_hi = torch.maximum(a, b)
    big = torch.finfo(a.dtype).max
    blk_lo = torch.nn.functional.pad(seg_lo, (0, 0, 0, pad), value=big).view(n_blk, block, 2).amin(1)
    blk_hi = torch.nn.functional.pad(seg_hi, (0, 0, 0, pad), value=-big).view(n_blk, block, 2).amax(1)
    table = torch.cat((a, ab, seg_len2[:, None]), 1)  # [n_seg, 5]: one gather per lookup
    ks, ts, ds = [], [], []
    step = max(1, chunk_elems // (num_blocks * block + n_blk))
    for i in range(0, pts.shape[0], step):
        p = pts[i:i + step]
        gap = torch.clamp(torch.maximum(blk_lo[None] - p[:, None], p[:, None] - blk_hi[None]), min=0)
        lb = (gap * gap).sum(-1)  # [m, n_blk] squared lower bounds
        lb_near, order = torch.topk(lb, num_blocks + 1, dim=1, largest=False, sorted=True)
        chosen = torch.sort(order[:, :num_blocks], dim=1).values  # ascending block ids keep tie-breaking
        segs = (chosen[..., None] * block + torch.arange(block)).reshape(len(p), -1)  # [m, num_blocks * block]
        valid = segs < n_seg
        rows = table.index_select(0, segs.clamp(max=n_seg - 1).reshape(-1)).view(len(p), -1, 5)
        kk, t, d2 = _project_dense(p, rows[..., 0:2], rows[..., 2:4], rows[..., 4], valid)
        k = segs.gather(1, kk[:, None])[:, 0]
        # exactness: any other block whose bound is not farther than the best distance → brute force
        redo = torch.nonzero(lb_near[:, num_blocks] <= d2)[:, 0]
        if len(redo):
            k2, t2, d22 = _brute(p[redo], a, ab, seg_len2, chunk_elems)
            k[redo], t[redo], d2[redo] = k2, t2, d22
        ks.append(k), ts.append(t), ds.append(d2)
    return torch.cat(ks), torch.cat(ts), torch.cat(ds)


def polyline_through(points: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[C, 2]`` float64 polyline through the given points with consecutive duplicates removed
    (e.g. the closed-loop expert path through its rear-axle positions, §3.3)."""
    p = torch.as_tensor(np.asarray(points, dtype=np.float64) if not isinstance(points, torch.Tensor) else points,
                        dtype=torch.float64)[..., :2]
    if p.ndim != 2 or p.shape[0] < 1:
        raise ShapeError(f"polyline_through.points: expected [C >= 1, 2+], received {list(p.shape)}")
    if not bool(torch.isfinite(p).all()):
        raise ShapeError("polyline_through.points: expected finite coordinates, received NaN/inf")
    keep = torch.ones(p.shape[0], dtype=torch.bool)
    keep[1:] = (p[1:] != p[:-1]).any(-1)
    return p[keep]


def _lane_points(m: MapData, i: int) -> np.ndarray:
    return m.lanes.get(i).astype(np.float64)


def _heading(p: np.ndarray, end: bool) -> float:
    if len(p) < 2:
        return float("nan")
    d = p[-1] - p[-2] if end else p[1] - p[0]
    return math.atan2(d[1], d[0])


def _angle_diff(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.pi
    return abs((a - b + math.pi) % (2 * math.pi) - math.pi)


def _nearest_lane(m: MapData, candidates: np.ndarray, xy: np.ndarray, yaw: float) -> int:
    best, best_score = -1, float("inf")
    for i in candidates:
        p = _lane_points(m, int(i))
        if len(p) == 0:
            continue
        if len(p) == 1:
            d, h = float(np.hypot(*(p[0] - xy))), float("nan")
        else:
            a, b = p[:-1], p[1:]
            ab = b - a
            l2 = (ab * ab).sum(-1)
            t = np.clip(((xy - a) * ab).sum(-1) / np.where(l2 > 0, l2, 1.0), 0.0, 1.0)
            dist = np.hypot(*(a + t[:, None] * ab - xy).T)
            k = int(np.argmin(dist))
            d, h = float(dist[k]), math.atan2(ab[k, 1], ab[k, 0])
        score = d + (10.0 if _angle_diff(h, yaw) > math.pi / 2 else 0.0)
        if score < best_score:
            best, best_score = int(i), score
    return best


def route_centerline(m: MapData, route_lanes: np.ndarray, ego_xy: np.ndarray, ego_yaw: float,
                     max_length_m: float = 500.0) -> torch.Tensor:
    """``[C, 2]`` float64 route centreline (see the module docstring for the chaining rules).

    Args:
        m: the map.
        route_lanes: ``[R]`` lane indices of the route (may be empty).
        ego_xy: ``[2]`` ego rear axle at t0, m, local frame.
        ego_yaw: ego heading at t0, rad.
    Returns:
        the polyline; ``[0, 2]`` if the map has no usable lane.
    """
    route = set(int(i) for i in np.asarray(route_lanes).ravel())
    cands = np.array(sorted(route)) if route else np.arange(m.num_lanes)
    if not route:
        logger.warning("route_centerline: the route is empty; using the lane nearest the ego and its successors")
    start = _nearest_lane(m, cands, np.asarray(ego_xy, np.float64), float(ego_yaw)) if len(cands) else -1
    if start < 0:
        logger.warning("route_centerline: no lane with points; progress will be 0")
        return torch.zeros((0, 2), dtype=torch.float64)
    succ = m.lane_successors
    chain = [start]
    preds = succ[succ[:, 1] == start, 0] if len(succ) else np.zeros(0, int)
    preds = [int(p) for p in preds if len(_lane_points(m, int(p))) > 1]
    if preds:
        on = [p for p in preds if p in route]
        chain.insert(0, (on or preds)[0])
    length = sum(float(np.hypot(*np.diff(_lane_points(m, i), axis=0).T).sum()) for i in chain)
    cur = start
    while length < max_length_m:
        nxt = [int(j) for j in (succ[succ[:, 0] == cur, 1] if len(succ) else []) if int(j) not in chain]
        if route:
            nxt = [j for j in nxt if j in route]
        nxt = [j for j in nxt if len(_lane_points(m, j)) > 0]
        if not nxt:
            break
        h_end = _heading(_lane_points(m, cur), end=True)
        cur = min(nxt, key=lambda j: (_angle_diff(_heading(_lane_points(m, j), end=False), h_end), j))
        chain.append(cur)
        length += float(np.hypot(*np.diff(_lane_points(m, cur), axis=0).T).sum())
    pts = np.concatenate([_lane_points(m, i) for i in chain])
    return polyline_through(pts)
