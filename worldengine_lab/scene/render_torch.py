"""CPU (pure torch) Gaussian-splatting rasterizer with gsplat 1.5.3 CUDA semantics.

:func:`rasterize` takes gsplat's ``rasterization`` arguments and returns the same ``(render_colors,
render_alphas, meta)``. The forward model is spec ``gaussian-splatting.md`` §3 (culling order, EWA projection
with the Jacobian clamp, eps2d blur, antialiased compensation, opacity-aware radii, tile intersection, stable
(tile, depth) order, front-to-back compositing with the 0.999 α clamp, the 1/255 skip and the exclusive early
stop at T <= 1e-4); the algorithm is §5: everything is projected at once, (Gaussian, tile) pairs are expanded
with ``repeat_interleave`` and ordered by one stable sort, and tiles are composited in rounds of Gaussian
chunks (see :mod:`worldengine_lab.scene._composite`). Loops run over images (batch x cameras) and chunk rounds
only. Gradients flow by autograd through means2d, conics, opacities and colours; ``meta["means2d"]`` is a
non-leaf tensor, so ``retain_grad()`` works as with gsplat.

Frames: ``viewmats`` are cam_from_world (OpenCV camera: x right, y down, z forward, metres); pixel (i, j) has
its centre at (j + 0.5, i + 0.5); depth is camera z.

Examples:
    >>> import torch
    >>> K = torch.tensor([[[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]])
    >>> rgb, alpha, meta = rasterize(torch.tensor([[0.0, 0, 5]]), torch.tensor([[1.0, 0, 0, 0]]),
    ...     torch.full((1, 3), 0.05), torch.tensor([0.8]), torch.tensor([[1.0, 0.5, 0.25]]),
    ...     torch.eye(4)[None], K, 64, 64, packed=False)
    >>> round(float(alpha[0, 31, 31, 0]), 6), meta["radii"][0, 0].tolist()
    (0.660042, [4, 4])
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ShapeError
from ._composite import composite_image, intersect_tiles
from .sh import sh_to_color

__all__ = ["rasterize", "quat_scale_to_covar", "ALPHA_THRESHOLD"]

ALPHA_THRESHOLD = 1.0 / 255.0
"""Minimum α a Gaussian contributes at a pixel (and minimum effective opacity to be kept)."""

_RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
_CAMERA_MODELS = ("pinhole", "ortho")
# gsplat keywords that change the image and that this renderer does not implement; value = "off" setting
_UNSUPPORTED = {"radial_coeffs": None, "tangential_coeffs": None, "thin_prism_coeffs": None,
                "ftheta_coeffs": None, "viewmats_rs": None}


def quat_scale_to_covar(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """3D covariances Σ = R diag(s)² Rᵀ (spec §3.2).

    Args:
        quats: ``[..., 4]`` (w, x, y, z), any norm (normalised here).
        scales: ``[..., 3]`` per-axis standard deviations, m.

    Returns:
        ``[..., 3, 3]`` covariance, m², same frame as the quaternion.
    """
    m = _quat_to_rotmat(quats) * scales[..., None, :]
    return m @ m.transpose(-1, -2)


def _quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` (w, x, y, z), any norm -> ``[..., 3, 3]`` rotation matrices (spec §3.2)."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*quats.shape[:-1], 3, 3)


def _project(means: torch.Tensor, quats: torch.Tensor | None, scales: torch.Tensor | None,
             covars: torch.Tensor | None, opacities: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor,
             width: int, height: int, eps2d: float, camera_model: str,
             antialiased: bool) -> dict[str, torch.Tensor]:
    """EWA projection of M Gaussians into one camera (spec §3.4–3.5), no culling.

    Args: means ``[M,3]`` world m; quats ``[M,4]`` and scales ``[M,3]`` m, or covars ``[M,3,3]`` m²;
    opacities ``[M]``; viewmat ``[4,4]`` cam_from_world; K ``[3,3]`` px. Returns ``[M]`` tensors: u, v (px),
    z (m), s00, s01, s11 (blurred 2D covariance, px²), det (of the blurred covariance), opac (effective o').

    Computed on ``[M]`` component vectors (no batched 3 x 3 products): Σ2D = (J R_view R(q) S)(…)ᵀ.
    """
    rot, trans = viewmat[:3, :3], viewmat[:3, 3]
    mx, my, mz = means.unbind(-1)
    x, y, z = (rot[i, 0] * mx + rot[i, 1] * my + rot[i, 2] * mz + trans[i] for i in range(3))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if camera_model == "pinhole":
        rz = 1.0 / z
        tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
        lim_xp, lim_xn = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
        lim_yp, lim_yn = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
        tx = z * torch.minimum(lim_xp, torch.maximum(-lim_xn, x * rz))
        ty = z * torch.minimum(lim_yp, torch.maximum(-lim_yn, y * rz))
        j00, j11 = fx * rz, fy * rz
        j02, j12 = -fx * tx * rz * rz, -fy * ty * rz * rz
        u, v = fx * x * rz + cx, fy * y * rz + cy
    else:  # ortho
        j00, j11 = fx.expand_as(x), fy.expand_as(x)
        j02 = j12 = torch.zeros_like(x)
        u, v = fx * x + cx, fy * y + cy
    # the two rows of J·R_view, as [M] vectors per column k
    a0 = [j00 * rot[0, k] + j02 * rot[2, k] for k in range(3)]
    a1 = [j11 * rot[1, k] + j12 * rot[2, k] for k in range(3)]
    if covars is None:
        qw, qx, qy, qz = quats.unbind(-1)
        inv = torch.rsqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        qw, qx, qy, qz = qw * inv, qx * inv, qy * inv, qz * inv
        r = [[1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy)],
             [2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx)],
             [2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy)]]
        sx = scales.unbind(-1)
        # T = J·R_view·R(q)·S (2 x 3): column j = s_j · (a · R[:, j])
        t0 = [sx[j] * (a0[0] * r[0][j] + a0[1] * r[1][j] + a0[2] * r[2][j]) for j in range(3)]
        t1 = [sx[j] * (a1[0] * r[0][j] + a1[1] * r[1][j] + a1[2] * r[2][j]) for j in range(3)]
        s00 = t0[0] * t0[0] + t0[1] * t0[1] + t0[2] * t0[2]
        s01 = t0[0] * t1[0] + t0[1] * t1[1] + t0[2] * t1[2]
        s11 = t1[0] * t1[0] + t1[1] * t1[1] + t1[2] * t1[2]
    else:
        cv = [[covars[:, i, j] for j in range(3)] for i in range(3)]
        h0 = [a0[0] * cv[0][j] + a0[1] * cv[1][j] + a0[2] * cv[2][j] for j in range(3)]  # (J R Σ) row 0
        h1 = [a1[0] * cv[0][j] + a1[1] * cv[1][j] + a1[2] * cv[2][j] for j in range(3)]
        s00 = h0[0] * a0[0] + h0[1] * a0[1] + h0[2] * a0[2]
        s01 = h0[0] * a1[0] + h0[1] * a1[1] + h0[2] * a1[2]
        s11 = h1[0] * a1[0] + h1[1] * a1[1] + h1[2] * a1[2]
    det0 = s00 * s11 - s01 * s01
    s00, s11 = s00 + eps2d, s11 + eps2d
    det = s00 * s11 - s01 * s01
    opac = opacities
    if antialiased:
        opac = opacities * torch.sqrt(torch.clamp_min(det0 / det, 0.0))
    return {"u": u, "v": v, "z": z, "s00": s00, "s01": s01, "s11": s11, "det": det, "opac": opac}


def _cull(p: dict[str, torch.Tensor], radius_clip: float, width: int,
          height: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Culling steps 2–5 of spec §3.3 on projected values; returns (keep [M] bool, rx [M], ry [M] px)."""
    thr = torch.tensor(ALPHA_THRESHOLD, dtype=torch.float32).item()  # gsplat's f32 constant
    keep = (p["det"] > 0) & (p["opac"] >= thr)
    extend = torch.clamp_max(torch.sqrt(2.0 * torch.log(torch.clamp_min(p["opac"], thr) / thr)), 3.33)
    rx = torch.ceil(extend * torch.sqrt(torch.clamp_min(p["s00"], 0.0)))
    ry = torch.ceil(extend * torch.sqrt(torch.clamp_min(p["s11"], 0.0)))
    keep &= ~((rx <= radius_clip) & (ry <= radius_clip))
    u, v = p["u"], p["v"]
    keep &= ~((u + rx <= 0) | (u - rx >= width) | (v + ry <= 0) | (v - ry >= height))
    keep &= torch.isfinite(u) & torch.isfinite(v)
    return keep, rx, ry


def _check_inputs(means, quats, scales, opacities, viewmats, Ks, covars) -> None:
    def bad(name: str, expected: str, t: torch.Tensor) -> ShapeError:
        return ShapeError(f"rasterize: expected {name} {expected}, received shape {tuple(t.shape)}")

    if means.ndim < 2 or means.shape[-1] != 3:
        raise bad("means", "[..., N, 3]", means)
    batch, n = means.shape[:-2], means.shape[-2]
    if covars is None:
        if quats.shape != (*batch, n, 4):
            raise bad("quats", f"{[*batch, n, 4]}", quats)
        if scales.shape != (*batch, n, 3):
            raise bad("scales", f"{[*batch, n, 3]}", scales)
    elif covars.shape != (*batch, n, 3, 3):
        raise bad("covars", f"{[*batch, n, 3, 3]}", covars)
    if opacities.shape != (*batch, n):
        raise bad("opacities", f"{[*batch, n]}", opacities)
    if viewmats.ndim != len(batch) + 3 or viewmats.shape[:-3] != batch or viewmats.shape[-2:] != (4, 4):
        raise bad("viewmats", f"{[*batch, 'C', 4, 4]}", viewmats)
    if Ks.shape != (*viewmats.shape[:-2], 3, 3):
        raise bad("Ks", f"{[*viewmats.shape[:-2], 3, 3]}", Ks)


def _colors_for(colors: torch.Tensor, sh_degree: int | None, b: int, c: int, ids: torch.Tensor,
                means: torch.Tensor, campos: torch.Tensor) -> torch.Tensor:
    """Per-image colours ``[V, D]`` of the kept Gaussians ``ids`` (flattened batch index b, camera c)."""
    per_camera = colors.ndim == (5 if sh_degree is not None else 4)
    src = (colors[b, c] if per_camera else colors[b]).index_select(0, ids)
    if sh_degree is None:
        return src
    return sh_to_color(src, means.index_select(0, ids) - campos, sh_degree)


def rasterize(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
              colors: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int, *,
              near_plane: float = 0.01, far_plane: float = 1e10, radius_clip: float = 0.0, eps2d: float = 0.3,
              sh_degree: int | None = None, packed: bool = True, tile_size: int = 16,
              backgrounds: torch.Tensor | None = None, render_mode: str = "RGB", sparse_grad: bool = False,
              absgrad: bool = False, rasterize_mode: str = "classic", channel_chunk: int = 32,
              distributed: bool = False, camera_model: str = "pinhole", segmented: bool = False,
              covars: torch.Tensor | None = None, with_ut: bool = False, with_eval3d: bool = False,
              isect_meta: bool = True, **options: Any) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Render Gaussians into C cameras; a CPU drop-in for ``gsplat.rasterization`` (1.5.3).

    Args:
        means: ``[..., N, 3]`` world-frame centres, m (f32; f64 accepted for debugging).
        quats: ``[..., N, 4]`` (w, x, y, z) rotations, any norm. Ignored when ``covars`` is given.
        scales: ``[..., N, 3]`` activated standard deviations, m.
        opacities: ``[..., N]`` activated opacities in [0, 1].
        colors: feature mode (``sh_degree=None``): ``[..., N, D]`` or per camera ``[..., C, N, D]``;
            SH mode: ``[..., N, K, 3]`` or ``[..., C, N, K, 3]`` with (sh_degree + 1)² <= K.
        viewmats: ``[..., C, 4, 4]`` cam_from_world.
        Ks: ``[..., C, 3, 3]`` intrinsics, px.
        width, height: image size, px (any size; tiles at the right/bottom edge are cropped).
        near_plane, far_plane: cull camera z < near or z > far (m).
        radius_clip: cull when both integer radii <= radius_clip (px).
        eps2d: blur added to the 2D covariance diagonal (px²), in both modes.
        sh_degree: None for feature colours, else the SH degree (colour = max(0, SH + 0.5)).
        packed: meta layout only (True: ``[nnz]`` rows plus ``camera_ids``/``gaussian_ids``); same images.
        tile_size: tile edge, px.
        backgrounds: ``[..., C, D]`` composited as colour + T·bg (depth channel background 0).
        render_mode: "RGB", "D", "ED", "RGB+D" or "RGB+ED" (depth = camera z, m; "ED" divides by alpha).
        rasterize_mode: "classic" or "antialiased" (opacity × compensation ρ).
        camera_model: "pinhole" or "ortho" ("fisheye" and "ftheta" raise NotImplementedError).
        covars: optional ``[..., N, 3, 3]`` world covariances (m²) replacing quats/scales.
        sparse_grad, absgrad, channel_chunk, distributed, segmented: accepted, no effect on the image.
        with_ut, with_eval3d, distortion / rolling-shutter options: not implemented (NotImplementedError).
        isect_meta: (not in gsplat) False skips the intersection bookkeeping (``isect_ids``, ``flatten_ids``,
            ``isect_offsets`` are then None); the image is the same. ``tile_size`` never changes the image
            either, and 8 px tiles composite about twice as fast on a CPU as 16 px tiles.

    Returns:
        ``render_colors [..., C, H, W, X]`` (X = D, 1 or D + 1), ``render_alphas [..., C, H, W, 1]`` and ``meta``
        with gsplat's keys (spec §3.1); culled entries of means2d/depths/conics/opacities are 0, radii (0, 0).
    """
    for name, off in _UNSUPPORTED.items():
        if options.get(name, off) is not None:
            raise NotImplementedError(f"rasterize: option {name!r} is not implemented by the torch renderer; "
                                      "use backend='gsplat' on CUDA or render an undistorted pinhole image")
    shutter = options.pop("rolling_shutter", None)
    if shutter is not None and "GLOBAL" not in str(shutter).upper():
        raise NotImplementedError(f"rasterize: rolling_shutter={shutter!r} is not implemented by the torch "
                                  "renderer; only the global shutter is")
    unknown = set(options) - set(_UNSUPPORTED)
    if unknown:
        raise TypeError(f"rasterize: unexpected keyword(s) {sorted(unknown)}")
    for flag, name in ((with_ut, "with_ut"), (with_eval3d, "with_eval3d")):
        if flag:
            raise NotImplementedError(f"rasterize: {name}=True is not implemented by the torch renderer; "
                                      f"pass {name}=False or use backend='gsplat'")
    if camera_model not in _CAMERA_MODELS:
        raise NotImplementedError(f"rasterize: camera_model={camera_model!r} is not implemented by the torch "
                                  f"renderer (supported: {_CAMERA_MODELS}); use backend='gsplat' on CUDA")
    if render_mode not in _RENDER_MODES:
        raise ValueError(f"rasterize: expected render_mode in {_RENDER_MODES}, received {render_mode!r}")
    if rasterize_mode not in ("classic", "antialiased"):
        raise ValueError(f"rasterize: expected rasterize_mode 'classic' or 'antialiased', received "
                         f"{rasterize_mode!r}")
    if int(tile_size) <= 0 or int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"rasterize: expected positive width, height and tile_size, received {width}x{height}, "
                         f"tile_size={tile_size}")
    _check_inputs(means, quats, scales, opacities, viewmats, Ks, covars)
    width, height, ts = int(width), int(height), int(tile_size)
    dtype, device = means.dtype, means.device
    batch = means.shape[:-2]
    n, c = int(means.shape[-2]), int(viewmats.shape[-3])
    nb = int(math.prod(batch))
    cast = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
    means_b = means.reshape(nb, n, 3)
    quats_b = scales_b = cov_b = None
    if covars is None:
        quats_b, scales_b = cast(quats).reshape(nb, n, 4), cast(scales).reshape(nb, n, 3)
    else:
        cov_b = cast(covars).reshape(nb, n, 3, 3)
    opac_b = cast(opacities).reshape(nb, n)
    view_b = cast(viewmats).reshape(nb, c, 4, 4)
    ks_b = cast(Ks).reshape(nb, c, 3, 3)
    colors_b = cast(colors)
    feat_ndim = 2 if sh_degree is None else 3
    if colors_b.ndim - len(batch) not in (feat_ndim, feat_ndim + 1):
        want = [*batch, "N", "D"] if sh_degree is None else [*batch, "N", "K", 3]
        raise ShapeError(f"rasterize: expected colors {want} (optionally with a camera axis C before N), "
                         f"received {tuple(colors.shape)}")
    colors_b = colors_b.reshape(nb, *colors_b.shape[len(batch):])
    if sh_degree is not None and colors_b.shape[-1] != 3:
        raise ShapeError(f"rasterize: sh_degree={sh_degree} expects colors [..., N, K, 3], received "
                         f"{tuple(colors.shape)}")
    antialiased = rasterize_mode == "antialiased"
    need_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (means, quats, scales, covars, opacities, colors, viewmats, Ks))

    # 1. project every (image, Gaussian); cull; keep differentiable values of the kept ones
    def project(bi: int, view: torch.Tensor, k: torch.Tensor, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        sub = lambda t: None if t is None else t[bi].index_select(0, ids)  # noqa: E731
        return _project(sub(means_b), sub(quats_b), sub(scales_b), sub(cov_b), sub(opac_b), view, k, width,
                        height, eps2d, camera_model, antialiased)

    proj: list[dict[str, torch.Tensor]] = []
    for bi in range(nb):
        for ci in range(c):
            view, k = view_b[bi, ci], ks_b[bi, ci]
            with torch.no_grad():
                z = means_b[bi] @ view[2, :3] + view[2, 3]
                ids = torch.nonzero((z >= near_plane) & (z <= far_plane)).squeeze(1)
                pv = project(bi, view, k, ids)
                keep, rx, ry = _cull(pv, radius_clip, width, height)
                sel = torch.nonzero(keep).squeeze(1)
                ids = ids.index_select(0, sel)
            if need_grad:  # recompute the kept rows with autograd (culled rows may hold inf/nan)
                pv = project(bi, view, k, ids)
            else:
                pv = {key: val.index_select(0, sel) for key, val in pv.items()}
            pv["ids"], pv["rx"], pv["ry"] = ids, rx.index_select(0, sel), ry.index_select(0, sel)
            proj.append(pv)

    # 2. meta tensors [B*C, N, ...] (0 where culled), or [nnz, ...] rows when packed; compositing reads its
    #    inputs from these very tensors, so meta["means2d"].grad is filled by backward()
    def gather(key_fn) -> list[torch.Tensor]:
        return [key_fn(pv) for pv in proj]

    def full(vals: list[torch.Tensor]) -> torch.Tensor:
        out = [torch.zeros((n, *v.shape[1:]), dtype=v.dtype, device=device).index_put((pv["ids"],), v)
               for v, pv in zip(vals, proj)]
        return torch.stack(out)

    v_means2d = gather(lambda p: torch.stack([p["u"], p["v"]], -1))
    v_depths = gather(lambda p: p["z"])
    v_conics = gather(lambda p: torch.stack([p["s11"] / p["det"], -p["s01"] / p["det"], p["s00"] / p["det"]], -1))
    v_opac = gather(lambda p: p["opac"]) if antialiased else [opac_b[i // c, p["ids"]] for i, p in enumerate(proj)]
    v_radii = gather(lambda p: torch.stack([p["rx"], p["ry"]], -1).to(torch.int32))
    sizes = [int(pv["ids"].numel()) for pv in proj]
    if packed:
        m_means2d, m_depths, m_conics, m_opac = (torch.cat(t) for t in (v_means2d, v_depths, v_conics, v_opac))
        split = lambda t: list(torch.split(t, sizes))  # noqa: E731
        v_means2d, v_depths, v_conics, v_opac = (split(t) for t in (m_means2d, m_depths, m_conics, m_opac))
    else:
        m_means2d = full(v_means2d).reshape(*batch, c, n, 2)
        m_depths = full(v_depths).reshape(*batch, c, n)
        m_conics = full(v_conics).reshape(*batch, c, n, 3)
        if antialiased:
            m_opac = full(v_opac).reshape(*batch, c, n)
        else:  # gsplat reports the input opacities (not 0) for every entry in classic mode
            m_opac = opac_b[:, None].expand(nb, c, n).reshape(*batch, c, n)
        # per-image views of the meta tensors themselves (so their .grad is populated)
        per_image = lambda t: [t.reshape(nb * c, n, *t.shape[len(batch) + 2:])[i, pv["ids"]]  # noqa: E731
                               for i, pv in enumerate(proj)]
        v_means2d, v_depths, v_conics, v_opac = (per_image(t) for t in (m_means2d, m_depths, m_conics, m_opac))

    # 3. per image: colours, tile intersection, compositing
    with_depth = render_mode != "RGB"
    tw, th = (width + ts - 1) // ts, (height + ts - 1) // ts
    tile_bits = int(math.floor(math.log2(tw * th))) + 1
    renders, alphas, isect_ids, flatten_ids, offsets, tpg_list = [], [], [], [], [], []
    num_isect, num_kept = 0, 0
    for i, pv in enumerate(proj):
        bi, ci = divmod(i, c)
        ids = pv["ids"]
        if render_mode in ("D", "ED"):
            feats = v_depths[i][:, None]
        else:
            view = view_b[bi, ci]
            campos = -view[:3, :3].T @ view[:3, 3]
            feats = _colors_for(colors_b, sh_degree, bi, ci, ids, means_b[bi], campos)
            if with_depth:
                feats = torch.cat([feats, v_depths[i][:, None]], -1)
        bg = None
        if backgrounds is not None:
            bg = cast(backgrounds).reshape(nb, c, -1)[bi, ci]
            if render_mode in ("D", "ED"):
                bg = torch.zeros(1, dtype=dtype, device=device)
            elif with_depth:
                bg = torch.cat([bg, torch.zeros(1, dtype=dtype, device=device)])
        prune = {} if isect_meta else {"conics": v_conics[i].detach(), "opacities": v_opac[i].detach()}
        isect = intersect_tiles(pv["u"].detach(), pv["v"].detach(), pv["rx"], pv["ry"], pv["z"].detach(),
                                ts, tw, th, with_tile_ids=isect_meta, **prune)
        rgb, alpha = composite_image(v_means2d[i], v_conics[i], v_opac[i], feats, isect["order"],
                                     isect["tile_counts"], tw, th, ts, width, height, bg)
        renders.append(rgb)
        alphas.append(alpha)
        tpg_list.append(isect["tiles_per_gauss"])
        if isect_meta:  # gsplat's intersection bookkeeping
            order = isect["order"]
            depth_bits = pv["z"].detach().float().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
            isect_ids.append((i << (32 + tile_bits)) | (isect["tile_ids"] << 32)
                             | depth_bits.index_select(0, order))
            flatten_ids.append((order + num_kept) if packed else (ids.index_select(0, order) + i * n))
            starts = torch.cumsum(isect["tile_counts"], 0) - isect["tile_counts"]
            offsets.append(starts + num_isect)
            num_isect += int(order.numel())
        num_kept += int(ids.numel())

    colors_out = torch.stack(renders).reshape(*batch, c, height, width, -1)
    alphas_out = torch.stack(alphas).reshape(*batch, c, height, width, 1)
    if render_mode in ("ED", "RGB+ED"):
        colors_out = torch.cat([colors_out[..., :-1], colors_out[..., -1:] / alphas_out.clamp_min(1e-10)], -1)

    meta: dict[str, Any] = {
        "camera_ids": None, "gaussian_ids": None, "batch_ids": None,
        "tile_width": tw, "tile_height": th,
        "isect_ids": torch.cat(isect_ids) if isect_meta else None,
        "flatten_ids": torch.cat(flatten_ids).to(torch.int32) if isect_meta else None,
        "isect_offsets": torch.stack(offsets).to(torch.int32).reshape(*batch, c, th, tw) if isect_meta else None,
        "width": width, "height": height, "tile_size": ts, "n_batches": nb, "n_cameras": c,
    }
    if packed:
        meta.update({
            "batch_ids": torch.cat([torch.full_like(pv["ids"], i // c) for i, pv in enumerate(proj)]),
            "camera_ids": torch.cat([torch.full_like(pv["ids"], i % c) for i, pv in enumerate(proj)]),
            "gaussian_ids": torch.cat([pv["ids"] for pv in proj]),
            "radii": torch.cat(v_radii), "means2d": m_means2d, "depths": m_depths, "conics": m_conics,
            "opacities": m_opac, "tiles_per_gauss": torch.cat(tpg_list).to(torch.int32),
        })
    else:
        meta.update({
            "radii": full(v_radii).reshape(*batch, c, n, 2), "means2d": m_means2d, "depths": m_depths,
            "conics": m_conics, "opacities": m_opac,
            "tiles_per_gauss": full([t.to(torch.int32) for t in tpg_list]).reshape(*batch, c, n),
        })
    return colors_out, alphas_out, meta
