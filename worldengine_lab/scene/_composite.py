"""Tile intersection and front-to-back compositing for the torch rasterizer (spec §3.8–3.9, §5 steps 3–5).

Intersection: each kept Gaussian's box of tiles is expanded with ``repeat_interleave`` (per tile row, then per
tile), Gaussians taken in stable depth order, and the pairs are stable-sorted by tile id: exactly gsplat's order
by (tile, f32 depth bits, Gaussian index). Optionally, tiles in the corners of a box that the Gaussian's
{α >= 1/255} ellipse cannot reach are left out (no pixel value changes).

Compositing runs in *rounds*: round r takes the next chunk of every still-active tile's list (chunks grow
geometrically; tiles sorted by list length so that a batch of tiles pads little), evaluates σ and α for every
(pixel, Gaussian) of those tiles at once, and reproduces the sequential front-to-back loop with a cumulative
product whose first entry is the carried transmittance. The exclusive early stop is carried across chunks as
per-pixel state, so a pixel that stopped adds nothing later. Tiles leave the active set as soon as every pixel
stopped or their list is exhausted. Two implementations share this schedule: an in-place one without autograd
(layout ``[tiles, pixels, chunk]``, reused buffers) and an out-of-place one that autograd differentiates.
"""
from __future__ import annotations

import math

import torch

__all__ = ["intersect_tiles", "composite_image", "T_STOP", "ALPHA_MAX"]

T_STOP = 1e-4
"""Early stop: a Gaussian whose T·(1 − α) would be <= T_STOP is excluded and the pixel stops."""
ALPHA_MAX = 0.999
"""Upper clamp of α (gsplat 1.5.3)."""
_ALPHA_MIN = float(torch.tensor(1.0 / 255.0, dtype=torch.float32))
_FIRST_CHUNK = 64
_MAX_CHUNK = 256
_MAX_ELEMS = 1 << 22  # tiles x chunk x pixels per batch, autograd path (~16 MB per f32 buffer)
_FAST_ELEMS = 1 << 19  # tiles x chunk x pixels per batch, fast path (2 MB per f32 buffer)


def intersect_tiles(u: torch.Tensor, v: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor, z: torch.Tensor,
                    tile_size: int, tile_width: int, tile_height: int, with_tile_ids: bool = True,
                    conics: torch.Tensor | None = None,
                    opacities: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
    """(Gaussian, tile) pairs of V kept Gaussians, in gsplat's order (spec §3.8).

    Pairs are generated per (Gaussian, tile row), then per tile of the row: first the Gaussian's box rows, then
    for each row its columns, all in stable depth order, and finally stable-sorted by tile id.

    Args:
        u, v: ``[V]`` projected centres, px. rx, ry: ``[V]`` integer radii, px (float tensors).
        z: ``[V]`` camera depth, m (> 0). tile_size: px. tile_width, tile_height: tiles per row / column.
        with_tile_ids: also return the tile id of every sorted pair.
        conics, opacities: ``[V, 3]`` and ``[V]``; when given, each row keeps only the columns whose pixel
            centres the ellipse {α >= 1/255} can reach (tiles in the corners of the box are dropped). The image is
            unchanged (dropped pairs are skipped at every pixel); the pair list is shorter than gsplat's.

    Returns:
        ``order [M]`` int64 index into the V Gaussians, sorted by (tile id, depth, index); ``tile_ids [M]``
        int64 row-major tile id (ty · tile_width + tx) of each sorted pair (or None); ``tile_counts [tiles]``
        int64; ``tiles_per_gauss [V]`` int64 (tiles of the box, before any pruning).
    """
    with torch.no_grad():
        f32 = torch.float32
        ts = float(tile_size)
        tu, tv = u.to(f32) / ts, v.to(f32) / ts
        trx, try_ = rx.to(f32) / ts, ry.to(f32) / ts
        x0 = torch.clamp(torch.floor(tu - trx), 0, tile_width)
        x1 = torch.clamp(torch.ceil(tu + trx), 0, tile_width)
        y0 = torch.clamp(torch.floor(tv - try_), 0, tile_height)
        y1 = torch.clamp(torch.ceil(tv + try_), 0, tile_height)
        counts = ((x1 - x0) * (y1 - y0)).long()
        # stable depth order (ties keep ascending index); positive f32 sort like their int32 bit patterns
        by_depth = torch.sort(z.to(f32).view(torch.int32), stable=True).indices
        box = torch.stack([x0, x1, y0], -1).index_select(0, by_depth)  # [V, 3] in depth order
        rseg, rloc = _expand((y1 - y0).long().index_select(0, by_depth))  # (Gaussian, tile row) pairs
        rbox = box.index_select(0, rseg)
        row_gid = by_depth.index_select(0, rseg)
        ty = (rbox[:, 2] + rloc).to(torch.int32)
        col0, col1 = rbox[:, 0], rbox[:, 1]
        if conics is not None and opacities is not None:
            col0, col1 = _ellipse_columns(row_gid, ty, col0, col1, u.to(f32), v.to(f32), conics.to(f32),
                                          opacities.to(f32), tile_size)
        pseg, ploc = _expand((col1 - col0).clamp_min(0).long())  # (row, column) pairs
        gid = row_gid.index_select(0, pseg)
        tile = ty.index_select(0, pseg) * tile_width + col0.to(torch.int32).index_select(0, pseg) + ploc
        num_tiles = tile_width * tile_height
        key = tile.to(torch.int16) if num_tiles <= torch.iinfo(torch.int16).max else tile
        perm = torch.sort(key, stable=True).indices  # radix sort on small integer keys
        return {"order": gid.index_select(0, perm),
                "tile_ids": tile.index_select(0, perm).long() if with_tile_ids else None,
                "tile_counts": torch.bincount(tile, minlength=num_tiles), "tiles_per_gauss": counts}


def _ellipse_columns(gid: torch.Tensor, ty: torch.Tensor, col0: torch.Tensor, col1: torch.Tensor,
                     u: torch.Tensor, v: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor,
                     tile_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Narrow each (Gaussian ``gid``, tile row ``ty``) column range [col0, col1) to the tiles whose pixel centres
    the region {σ <= ln(255·o')} (where α can reach 1/255) meets; ``[R]`` float tensors of tile columns.

    With σ = ½a(dx + (b/a)·dy)² + ½γ·dy² (γ = det/a), the region's right edge x(dy) is concave and its left
    edge convex, so over the row's band of pixel-centre dy their extremes are at the band-clamped dy of the
    region's rightmost / leftmost points. Margins (1e-3 in σ, 0.05 px) keep the test conservative under f32 rounding;
    near-degenerate conics keep their full range.
    """
    dtype = conics.dtype
    # per Gaussian (V): shape of the region
    a, b, c = conics.unbind(-1)
    lim = 2.0 * (torch.log(opacities * 255.0) + 1e-3)  # 2·σ_max
    det = a * c - b * b
    bad = ((det <= 1e-6 * a * c) | (lim <= 0)).to(dtype)  # near-degenerate: keep the whole box row
    det = det + bad  # any positive value; the result is overridden below
    gamma = det / a
    y_half = torch.sqrt(torch.clamp_min(lim / gamma, 0.0))  # half height of the region
    x_half = torch.sqrt(torch.clamp_min(lim * c / det, 0.0))  # half width
    table = torch.stack([v - 0.5, y_half, -b * x_half / c, b * x_half / c, b / a, lim / a, gamma / a,
                         (u - 0.45) / tile_size, (u - 0.05 - tile_size + 0.5) / tile_size, bad * 1e9], -1)
    # per row (R); an empty band (the row misses the region) collapses to a point: at most one extra tile
    v_, y_half, dy_right, dy_left, b_a, lim_a, g_a, u_hi, u_lo, widen = table.index_select(0, gid).unbind(-1)
    lo = ty.to(dtype) * tile_size - v_  # band of pixel-centre dy in this row (relative to the centre)
    hi = torch.minimum(lo + (tile_size - 1), y_half)
    lo = torch.maximum(lo, -y_half)
    dy_r = torch.minimum(torch.maximum(dy_right, lo), hi)
    dy_l = torch.minimum(torch.maximum(dy_left, lo), hi)
    right = torch.sqrt(torch.clamp_min(lim_a - g_a * dy_r * dy_r, 0.0)).sub_(b_a * dy_r)
    left = torch.sqrt(torch.clamp_min(lim_a - g_a * dy_l * dy_l, 0.0)).add_(b_a * dy_l)  # = −(left edge)
    last = torch.floor(u_hi + right / tile_size).add_(widen + 1)  # one past the last tile with a reachable centre
    first = torch.ceil(u_lo - left / tile_size).sub_(widen)
    return torch.fmax(col0, first), torch.fmin(col1, last)  # fmax/fmin: a NaN bound keeps the box


def _expand(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Segments of lengths ``counts [S]`` laid end to end: ``seg [M]`` (segment of each slot, int64) and
    ``local [M]`` (position inside it, int32), M = Σ counts."""
    seg = torch.repeat_interleave(counts)
    starts = (torch.cumsum(counts, 0) - counts).to(torch.int32)
    local = torch.arange(seg.numel(), dtype=torch.int32, device=counts.device) - starts.index_select(0, seg)
    return seg, local


def composite_image(means2d: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor, feats: torch.Tensor,
                    order: torch.Tensor, tile_counts: torch.Tensor, tile_width: int, tile_height: int,
                    tile_size: int, width: int, height: int,
                    background: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-to-back compositing of one image (spec §3.9).

    Args:
        means2d: ``[V, 2]`` centres, px. conics: ``[V, 3]`` (a, b, c), 1/px². opacities: ``[V]`` effective o'.
        feats: ``[V, X]`` features to composite (colour, depth ...).
        order: ``[M]`` pairs' Gaussian index, sorted by (tile, depth). tile_counts: ``[tiles]`` pairs per tile.
        tile_width, tile_height, tile_size, width, height: tiling and image size (px).
        background: optional ``[X]`` added as T·background.

    Returns:
        ``image [H, W, X]`` and ``alpha [H, W, 1]`` (= 1 − final T), dtype of ``feats``.

    Without autograd (no input requires grad, or under ``torch.no_grad()``) a fast in-place path runs; with it,
    an out-of-place path that autograd can differentiate. Both implement the same arithmetic.
    """
    ts, nx = int(tile_size), int(feats.shape[-1])
    grid = (tile_width, tile_height, ts, width, height)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (means2d, conics, opacities, feats)):
        acc, trans = _composite_autograd(means2d, conics, opacities, feats, order, tile_counts, *grid)
    else:
        with torch.no_grad():
            acc, trans = _composite_fast(means2d, conics, opacities, feats, order, tile_counts, *grid)
    img = acc.reshape(tile_height, tile_width, ts, ts, nx).permute(0, 2, 1, 3, 4).reshape(
        tile_height * ts, tile_width * ts, nx)[:height, :width]
    trans = trans.reshape(tile_height, tile_width, ts, ts).permute(0, 2, 1, 3).reshape(
        tile_height * ts, tile_width * ts)[:height, :width, None]
    if background is not None:
        img = img + trans * background
    return img, 1.0 - trans


def _pixel_centres(tiles: torch.Tensor, tile_width: int, ts: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Pixel-centre x of each column and y of each row of ``tiles [A]``: two ``[A, ts]`` tensors, px."""
    loc = torch.arange(ts, device=tiles.device, dtype=dtype) + 0.5
    rows = torch.div(tiles, tile_width, rounding_mode="floor")
    return (tiles % tile_width)[:, None] * ts + loc, rows[:, None] * ts + loc


def _composite_fast(means2d, conics, opacities, feats, order, tile_counts, tile_width, tile_height, ts, width,
                    height) -> tuple[torch.Tensor, torch.Tensor]:
    """In-place, no-grad compositing; returns ``acc [tiles, P, X]`` and final ``T [tiles, P]``.

    State per pixel: ``T_run`` (transmittance so far; set to 0 once the pixel stopped, which zeroes every later
    weight) and ``T_out`` (the transmittance at the stop). α = exp2(log2 o' − σ/ln 2), with the conic folded into
    base-2 coefficients; σ < 0 is tested only where a conic is near-degenerate (elsewhere it cannot occur).
    """
    dtype, device = feats.dtype, feats.device
    npix, nx = ts * ts, int(feats.shape[-1])
    num_tiles, num_pairs = tile_width * tile_height, int(order.numel())
    inv_ln2 = 1.0 / math.log(2.0)
    a, b, c = conics.unbind(-1)
    risky = b * b >= (1.0 - 1e-5) * a * c  # [V] conics where rounding could make σ < 0
    # per-Gaussian records [V + 1, 7 + X]; row V is a sentinel with α = 0 that fills the slots past the end of a
    # tile's list
    rec = torch.zeros(means2d.shape[0] + 1, 7 + nx, dtype=dtype, device=device)
    rec[:-1, :2] = means2d
    rec[:-1, 2], rec[:-1, 3], rec[:-1, 4] = -0.5 * inv_ln2 * a, -inv_ln2 * b, -0.5 * inv_ln2 * c
    rec[:-1, 5], rec[-1, 5] = torch.log2(opacities), -math.inf
    rec[:-1, 6] = risky.to(dtype)
    rec[:-1, 7:] = feats
    order = torch.cat([order, torch.full((1,), means2d.shape[0], dtype=order.dtype, device=device)])
    starts = torch.cumsum(tile_counts, 0) - tile_counts
    acc = torch.zeros(num_tiles, nx, npix, dtype=dtype, device=device)
    t_run = torch.ones(num_tiles, npix, dtype=dtype, device=device)
    px_all, py_all = _pixel_centres(torch.arange(num_tiles, device=device), tile_width, ts, dtype)
    outside = ((px_all >= width)[:, None, :] | (py_all >= height)[:, :, None]).reshape(num_tiles, npix)
    t_run.masked_fill_(outside, 0.0)  # pixels past the image edge count as stopped
    t_out = torch.ones(num_tiles, npix, dtype=dtype, device=device)
    pxy_all = torch.stack([px_all, py_all], 1)  # [tiles, 2, ts]
    thr = torch.nextafter(torch.tensor(_ALPHA_MIN, dtype=dtype), torch.tensor(0.0, dtype=dtype)).item()
    any_risky = bool(risky.any())

    active = torch.sort(tile_counts, descending=True, stable=True).indices
    active = active[tile_counts[active] > 0]
    # workspace reused by every batch (fresh multi-MB buffers would page-fault on each first touch)
    cap = max(_FAST_ELEMS, _MAX_CHUNK * npix) + npix * max(1, _FAST_ELEMS // (_FIRST_CHUNK * npix))
    ws_e, ws_t, ws_k = (torch.empty(cap, dtype=dtype, device=device) for _ in range(3))
    pos, chunk = 0, _FIRST_CHUNK
    while active.numel():
        counts = tile_counts[active].tolist()
        per = max(1, _FAST_ELEMS // (chunk * npix))
        for i in range(0, active.numel(), per):
            kb = min(chunk, counts[i] - pos)  # tiles are sorted by count: the first is the longest
            tiles = active[i:i + per]
            nb = tiles.numel()
            steps = torch.arange(pos, pos + kb, device=device)
            idx = starts.index_select(0, tiles)[:, None] + steps
            idx.masked_fill_(steps >= tile_counts.index_select(0, tiles)[:, None], num_pairs)  # -> sentinel
            r = rec.index_select(0, order.index_select(0, idx.reshape(-1))).reshape(nb, kb, -1)
            r = r.transpose(1, 2).contiguous()  # [B, fields, k]: Gaussians along the contiguous axis
            pxy = pxy_all.index_select(0, tiles)
            # layout [B, rows, cols, k]: every operand is contiguous along k, so the broadcasts vectorise
            dx = r[:, None, 0] - pxy[:, 0, :, None]  # [B, ts(cols), k]
            dy = r[:, None, 1] - pxy[:, 1, :, None]  # [B, ts(rows), k]
            ex = dx.square().mul_(r[:, None, 2])
            ey = torch.addcmul(r[:, None, 5], dy.square(), r[:, None, 4])
            e = torch.add(ey[:, :, None, :], ex[:, None, :, :], out=ws_e[:nb * npix * kb].view(nb, ts, ts, kb))
            e.addcmul_(dy.mul_(r[:, None, 3])[:, :, None, :], dx[:, None, :, :])  # [B, rows, cols, k]
            if any_risky and bool(r[:, 6].any()):
                e.masked_fill_(e > r[:, None, None, 5], -math.inf)  # σ < 0: skip
            alpha = e.reshape(nb, npix, kb).exp2_().clamp_max_(ALPHA_MAX)
            torch.nn.functional.threshold_(alpha, thr, 0.0)  # α < 1/255: skip
            trans = ws_t[:nb * npix * (kb + 1)].view(nb, npix, kb + 1)
            tr = t_run.index_select(0, tiles)
            trans[..., 0] = tr
            torch.sub(1.0, alpha, out=trans[..., 1:])
            trans.cumprod_(-1)  # trans[..., g] = T before Gaussian g, trans[..., g + 1] = T after
            weight = alpha.mul_(trans[..., :kb])
            last = trans[..., kb]
            stopping = (last <= T_STOP) & (tr > 0)
            if bool(stopping.any()):
                keep = torch.sub(trans[..., 1:], T_STOP, out=ws_k[:nb * npix * kb].view(nb, npix, kb))
                keep.sign_().clamp_min_(0.0)  # 1 while T > 1e-4 (a prefix: T only decreases), else 0
                weight.mul_(keep)
                t_stop = trans.gather(-1, keep.sum(-1, keepdim=True).long()).squeeze(-1)
                t_out.index_copy_(0, tiles, torch.where(stopping, t_stop, t_out.index_select(0, tiles)))
                last = torch.nn.functional.threshold(last, T_STOP, 0.0)  # stopped pixels: T_run = 0
            t_run.index_copy_(0, tiles, last)
            acc.index_add_(0, tiles, torch.bmm(r[:, 7:], weight.transpose(1, 2)))  # [B, X, P]
        pos += chunk
        active = active[(tile_counts[active] > pos) & (t_run[active].amax(1) > 0)]
        chunk = min(2 * chunk, _MAX_CHUNK)
    return acc.transpose(1, 2), torch.where(t_run > 0, t_run, t_out)


def _composite_autograd(means2d, conics, opacities, feats, order, tile_counts, tile_width, tile_height, ts, width,
                        height) -> tuple[torch.Tensor, torch.Tensor]:
    """Out-of-place compositing that autograd differentiates; returns ``acc [tiles, P, X]``, ``T [tiles, P]``.

    State per pixel: transmittance ``T`` (frozen at the stop) and a ``done`` flag, carried across chunks.
    """
    dtype, device = feats.dtype, feats.device
    npix, nx = ts * ts, int(feats.shape[-1])
    num_tiles = tile_width * tile_height
    # per-pair records in sorted order: mx, my, a, b, c, o, feats...
    rec = torch.cat([means2d, conics, opacities[:, None], feats], -1)[order]
    starts = torch.cumsum(tile_counts, 0) - tile_counts
    tiles_out: list[torch.Tensor] = []
    acc_out: list[torch.Tensor] = []
    t_out: list[torch.Tensor] = []

    active = torch.nonzero(tile_counts > 0).squeeze(1)
    if active.numel():
        px, py = _pixel_centres(active, tile_width, ts, dtype)
        outside = ((px >= width)[:, None, :] | (py >= height)[:, :, None]).reshape(-1, npix)
        state = {
            "tile": active, "start": starts[active], "count": tile_counts[active], "px": px, "py": py,
            "acc": torch.zeros(active.numel(), npix, nx, dtype=dtype, device=device),
            "T": torch.ones(active.numel(), npix, dtype=dtype, device=device),
            "done": outside,
        }
        pos, chunk = 0, _FIRST_CHUNK
        while state["tile"].numel():
            state = _round(state, rec, pos, chunk, ts, nx)
            pos += chunk
            finished = state["done"].all(1) | (state["count"] <= pos)
            if finished.any():
                tiles_out.append(state["tile"][finished])
                acc_out.append(state["acc"][finished])
                t_out.append(state["T"][finished])
                state = {key: val[~finished] for key, val in state.items()}
            chunk = min(2 * chunk, _MAX_CHUNK)

    acc = torch.zeros(num_tiles, npix, nx, dtype=dtype, device=device)
    trans = torch.ones(num_tiles, npix, dtype=dtype, device=device)
    if tiles_out:
        ids = torch.cat(tiles_out)
        acc = acc.index_copy(0, ids, torch.cat(acc_out))
        trans = trans.index_copy(0, ids, torch.cat(t_out))
    return acc, trans


def _round(state: dict[str, torch.Tensor], rec: torch.Tensor, pos: int, chunk: int, ts: int,
           nx: int) -> dict[str, torch.Tensor]:
    """Composite list positions [pos, pos + chunk) of every active tile; returns the updated state."""
    num = state["tile"].numel()
    per = max(1, _MAX_ELEMS // (chunk * ts * ts))
    if num > per:  # memory cap: split the active tiles into batches
        parts = [_round({k: v[i:i + per] for k, v in state.items()}, rec, pos, chunk, ts, nx)
                 for i in range(0, num, per)]
        return {k: torch.cat([p[k] for p in parts]) for k in state}
    dtype = rec.dtype
    steps = pos + torch.arange(chunk, device=rec.device)
    inb = steps[None, :] < state["count"][:, None]  # [A, k]
    idx = torch.where(inb, state["start"][:, None] + steps[None, :], torch.zeros_like(inb, dtype=torch.long))
    r = rec[idx]  # [A, k, 6 + X]
    mx, my, ca, cb, cc, op = (r[..., i] for i in range(6))
    dx = mx[..., None] - state["px"][:, None, :]  # [A, k, ts] per column
    dy = my[..., None] - state["py"][:, None, :]  # [A, k, ts] per row
    sigma = ((0.5 * cc[..., None] * dy * dy)[..., :, None] + (0.5 * ca[..., None] * dx * dx)[..., None, :]
             + (cb[..., None] * dy)[..., :, None] * dx[..., None, :]).reshape(num, chunk, ts * ts)
    alpha = torch.clamp_max(op[..., None] * torch.exp(-sigma), ALPHA_MAX)
    valid = (sigma >= 0) & (alpha >= _ALPHA_MIN) & inb[..., None]
    alpha = torch.where(valid, alpha, torch.zeros((), dtype=dtype))
    trans = torch.cumprod(torch.cat([state["T"][:, None, :], 1.0 - alpha], 1), 1)  # [A, k + 1, P]
    keep = (trans[:, 1:] > T_STOP) & ~state["done"][:, None, :]
    nkeep = keep.sum(1)  # prefix length per pixel
    weight = torch.where(keep, alpha * trans[:, :-1], torch.zeros((), dtype=dtype))
    acc = state["acc"] + torch.bmm(weight.transpose(1, 2), r[..., 6:])
    new_t = trans.gather(1, nkeep[:, None, :]).squeeze(1)
    done = state["done"] | (nkeep < chunk)
    return {**state, "acc": acc, "T": new_t, "done": done}
