"""Photometric fitting: optimise Gaussians so that their renders match posed images (spec §9).

``fit(images, viewmats, Ks, init, config)`` runs Adam on the **raw** parameters (means, log σ, raw quaternions,
logit opacities, SH band 0 ``sh0`` and higher bands ``shN``; one optimiser per kind, eps 1e-15) against the loss
L = (1 − λ)·L1 + λ·(1 − SSIM), λ = 0.2, with SSIM on an 11 x 11 Gaussian window (σ = 1.5, C1 = 0.01²,
C2 = 0.03², data range 1). Renders are activated on the fly (σ = exp, o = sigmoid, quats normalised by the
rasterizer, colour = max(0, SH + 0.5)) and composited on ``config.background``.

Backends: ``"torch_ref"`` (CPU, :func:`~worldengine_lab.scene.render_torch.rasterize`, autograd) and ``"gsplat"``
(CUDA, ``gsplat.rasterization``; densification by ``gsplat.DefaultStrategy`` when it imports, else by
:mod:`worldengine_lab.scene._refine`, which follows the same rules on any device). Learning rates are gsplat's
trainer defaults, the means' scaled by ``scene_scale`` and decayed exponentially to 0.01x over the run.

CPU budget (spec §9): up to ~20k Gaussians at up to 160 x 120 for ~100–300 steps.

Examples:
    >>> import torch
    >>> a = torch.full((1, 16, 16, 3), 0.5)
    >>> round(float(ssim(a, a)), 6), round(float(ssim(a, 0.5 * a, padding="valid")), 4)
    (1.0, 0.8001)
    >>> round(psnr(a, a + 0.1), 3)
    20.0
"""
from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..datatypes import GaussianScene
from ..errors import ScenarioValidationError, ShapeError
from ._refine import accumulate_stats, new_stats, refine_gaussians, reset_opacities
from .backends import rasterizer, resolve_backend
from .sh import SH_C0, num_sh_bases

__all__ = ["FitConfig", "FitResult", "fit", "ssim", "psnr", "params_from_points", "params_from_scene",
           "params_to_scene", "scene_scale_of", "render_views", "views_of"]

log = logging.getLogger(__name__)

_PARAM_NAMES = ("means", "scales", "quats", "opacities", "sh0", "shN")


# ------------------------------------------------------------------------------------------------ metrics
@functools.lru_cache(maxsize=32)
def _window_matrix(n: int, size: int, sigma: float, pad: int, dtype: torch.dtype,
                   device: torch.device) -> torch.Tensor:
    """``[n + 2·pad − size + 1, n]`` banded matrix applying the normalised 1-D Gaussian window (std ``sigma``
    px) along one image axis with ``pad`` zeros on each side: row i holds the taps of output sample i."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-x * x / (2.0 * sigma * sigma))
    g = g / g.sum()
    out = torch.arange(n + 2 * pad - size + 1)[:, None]
    tap = torch.arange(n)[None, :] - out + pad  # which tap multiplies input j for output i
    inside = (tap >= 0) & (tap < size)
    return torch.where(inside, g[tap.clamp(0, size - 1)], 0.0).to(dtype=dtype, device=device)


def ssim(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, *, window_size: int = 11,
         sigma: float = 1.5, padding: str = "same", c1: float = 0.01 ** 2, c2: float = 0.03 ** 2) -> torch.Tensor:
    """Mean structural similarity of two images (differentiable; INRIA's formula, data range 1).

    Local means, variances and covariance come from a normalised ``window_size`` x ``window_size`` Gaussian
    window (std ``sigma`` px) applied per channel. The window is separable, so it is applied as two banded
    matrix products (rows, then columns) to the stacked a, b, a², b², ab: the same numbers as a 2-D
    ``conv2d`` with zero padding, several times faster on a CPU. The SSIM map
    ((2μaμb + C1)(2σab + C2)) / ((μa² + μb² + C1)(σa² + σb² + C2)) is averaged over pixels, channels, images.

    Args:
        a, b: ``[..., H, W, C]`` images (channel last; any leading dims), values in [0, 1].
        padding: "same" (zero padding of window_size // 2, INRIA) or "valid" (no padding, fused-ssim in
            gsplat's trainer; H and W must be >= window_size).

    Returns:
        Scalar tensor; 1 for identical images. For constant images x and y with "valid" padding it is
        (2xy + C1) / (x² + y² + C1).
    """
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape or a.ndim < 3:
        raise ShapeError(f"ssim: expected two images [..., H, W, C] of one shape, received {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if padding not in ("same", "valid"):
        raise ValueError(f"ssim: expected padding 'same' or 'valid', received {padding!r}")
    h, w, c = a.shape[-3:]
    if padding == "valid" and (h < window_size or w < window_size):
        raise ShapeError(f"ssim: 'valid' padding needs images of at least {window_size} x {window_size} px, "
                         f"received {h} x {w}; pass padding='same'")
    dtype = torch.promote_types(a.dtype, torch.float32)
    x = a.to(dtype).reshape(-1, h, w, c).permute(0, 3, 1, 2)
    y = b.to(dtype).reshape(-1, h, w, c).permute(0, 3, 1, 2)
    stack = torch.cat([x, y, x * x, y * y, x * y], 1)  # [N, 5C, H, W]
    pad = window_size // 2 if padding == "same" else 0
    rows = _window_matrix(h, window_size, sigma, pad, dtype, x.device)  # [H', H]
    cols = _window_matrix(w, window_size, sigma, pad, dtype, x.device)  # [W', W]
    f = rows @ stack @ cols.T  # [N, 5C, H', W']
    mu_x, mu_y, exx, eyy, exy = f.split(c, 1)
    sxx, syy, sxy = exx - mu_x * mu_x, eyy - mu_y * mu_y, exy - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * sxy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    return (num / den).mean()


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio, dB: 10·log10(range² / mean((a − b)²)) over all elements (inf if equal)."""
    a = torch.as_tensor(a).detach().to(torch.float64)
    b = torch.as_tensor(b).detach().to(torch.float64)
    if a.shape != b.shape:
        raise ShapeError(f"psnr: expected two arrays of one shape, received {tuple(a.shape)} and {tuple(b.shape)}")
    mse = float(torch.mean((a - b) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range ** 2 / mse)


# ------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class FitConfig:
    """Hyper-parameters of :func:`fit` (defaults: gsplat's trainer, spec §9, sized for a CPU)."""

    steps: int = 100
    """Optimisation steps (one batch of views each)."""
    batch_size: int = 1
    """Views rendered per step (drawn without replacement, reshuffled every epoch); learning rates × √batch."""
    lr_means: float = 1.6e-4
    """Learning rate of the means, multiplied by ``scene_scale`` (m per step)."""
    lr_means_final: float = 0.01
    """Factor the means' learning rate decays to (exponentially) by the last step."""
    lr_scales: float = 5e-3
    """Learning rate of the log scales."""
    lr_quats: float = 1e-3
    """Learning rate of the raw quaternions."""
    lr_opacities: float = 5e-2
    """Learning rate of the logit opacities."""
    lr_sh0: float = 2.5e-3
    """Learning rate of SH band 0 (the base colour)."""
    lr_shN: float = 2.5e-3 / 20
    """Learning rate of SH bands >= 1."""
    ssim_lambda: float = 0.2
    """λ in L = (1 − λ)·L1 + λ·(1 − SSIM)."""
    ssim_padding: str = "same"
    """SSIM border handling: "same" (zero padding, INRIA) or "valid" (gsplat's fused-ssim)."""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """RGB the renders are composited on (the training images should use the same)."""
    sh_degree: int = 0
    """Highest SH degree fitted (0–3); the parameters hold (sh_degree + 1)² bases."""
    sh_degree_interval: int = 1000
    """The active degree is min(step // sh_degree_interval, sh_degree) (spec: one band per 1000 steps)."""
    rasterize_mode: str = "classic"
    """"classic" or "antialiased" (WorldEngine / MTGS train antialiased)."""
    init_opacity: float = 0.1
    """Opacity of Gaussians initialised from points."""
    init_neighbors: int = 3
    """σ of a point-initialised Gaussian = mean distance to this many nearest neighbours."""
    densify: bool = False
    """Grow and prune Gaussians (clone / split by screen gradient, prune transparent ones)."""
    refine_start: int = 50
    """Densify only after more than this many steps (gsplat: 500; scaled down for short CPU runs). Steps are
    counted 1-based: densification follows optimisation step n when start < n < stop and n % every == 0."""
    refine_every: int = 50
    """Densify every this many steps (gsplat: 100)."""
    refine_stop: int = 10_000
    """No densification (and no gradient statistics) from this step on (gsplat: 15 000)."""
    prune_opa: float = 0.005
    """Remove Gaussians whose opacity is below this."""
    grow_grad2d: float = 0.0002
    """Grow Gaussians whose mean screen-gradient norm ((W/2, H/2)·n_cameras units) exceeds this. The
    normalisation makes the statistic roughly independent of image size, so gsplat's value is kept."""
    grow_scale3d: float = 0.01
    """Clone when the largest σ <= this × scene_scale, split otherwise."""
    prune_scale3d: float | None = None
    """If set, remove Gaussians whose largest σ exceeds this × scene_scale (gsplat: 0.1, after the first reset)."""
    reset_every: int | None = None
    """If set, clamp opacities to 2·prune_opa after every this many steps (gsplat's reset; spec §9: gsplat 1.5.3
    never fires it). None (default) never resets; this choice is recorded in ``FitResult.config``."""
    max_gaussians: int = 20_000
    """Cap on the number of Gaussians while densifying (the CPU budget)."""
    scene_scale: float | None = None
    """m; None: 1.1 × the largest distance of a camera centre from their mean (or 1.1 × the median
    camera-to-Gaussian distance when all cameras coincide)."""
    backend: str = "auto"
    """"auto", "torch_ref" (CPU) or "gsplat" (CUDA)."""
    seed: int = 0
    """Seeds the view order and the split samples."""
    log_every: int = 25
    """Log progress every this many steps (logging.INFO)."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ScenarioValidationError(f"FitConfig: expected steps >= 1 and batch_size >= 1, received "
                                          f"{self.steps} and {self.batch_size}")
        if not 0 <= self.sh_degree <= 3:
            raise ScenarioValidationError(f"FitConfig.sh_degree: expected 0..3, received {self.sh_degree}")
        if not 0.0 <= self.ssim_lambda <= 1.0:
            raise ScenarioValidationError(f"FitConfig.ssim_lambda: expected [0, 1], received {self.ssim_lambda}")


@dataclass(frozen=True, eq=False)
class FitResult:
    """Outcome of :func:`fit`.

    Attributes:
        scene: the fitted Gaussians, activated (``GaussianScene``; frame of the cameras' viewmats).
        history: per step ``loss``, ``l1``, ``ssim``, ``psnr`` (dB, on that step's batch), ``num_gaussians``
            and ``lr_means``: ``[steps]`` arrays.
        num_gaussians: G at the end.
        params: raw parameters (numpy): means ``[G, 3]``, scales ``[G, 3]`` log σ, quats ``[G, 4]``,
            opacities ``[G]`` logit, sh0 ``[G, 1, 3]``, shN ``[G, K − 1, 3]``.
        refinements: one dict per densification: step (steps completed), cloned, split, pruned, num_gaussians.
        scene_scale: m, the value the means' learning rate was scaled by.
        seconds: wall time of the optimisation.
        backend: "torch_ref" or "gsplat"; strategy: "none", "cpu" (this package) or "gsplat".
        config: the FitConfig used.
    """

    scene: GaussianScene
    history: dict[str, np.ndarray]
    num_gaussians: int
    params: dict[str, np.ndarray]
    refinements: list[dict[str, int]] = field(default_factory=list)
    scene_scale: float = 1.0
    seconds: float = 0.0
    backend: str = "torch_ref"
    strategy: str = "none"
    config: FitConfig = field(default_factory=FitConfig)

    def summary(self) -> dict[str, Any]:
        """Small dict for logs and notebooks: steps, final loss / PSNR, G, seconds, backend."""
        h = self.history
        return {"steps": int(len(h["loss"])), "final_loss": float(h["loss"][-1]), "final_psnr": float(h["psnr"][-1]),
                "num_gaussians": self.num_gaussians, "seconds": round(self.seconds, 2), "backend": self.backend,
                "strategy": self.strategy, "refinements": len(self.refinements)}


# ------------------------------------------------------------------------------------------------ parameters
def _sh_rows(sh0: torch.Tensor, rest: torch.Tensor, sh_degree: int) -> tuple[torch.Tensor, torch.Tensor]:
    k = num_sh_bases(sh_degree)
    if rest.shape[1] >= k - 1:
        return sh0, rest[:, :k - 1]
    pad = torch.zeros(rest.shape[0], k - 1 - rest.shape[1], 3, dtype=rest.dtype)
    return sh0, torch.cat([rest, pad], 1)


def params_from_points(points: np.ndarray, rgb: np.ndarray | None = None, *, sh_degree: int = 0,
                       opacity: float = 0.1, num_neighbors: int = 3) -> dict[str, torch.Tensor]:
    """Raw parameters of Gaussians seeded at points (spec §9 initialisation).

    σ = mean distance to the ``num_neighbors`` nearest other points (isotropic, log stored), o = ``opacity``
    (logit stored), quats identity, sh0 = (rgb − 0.5) / C0 (grey 0.5 when ``rgb`` is None), shN = 0.

    Args:
        points: ``[P, 3]`` m. rgb: ``[P, 3]`` in [0, 1] or None.
    Returns:
        float32 tensors ``means [P, 3]``, ``scales [P, 3]``, ``quats [P, 4]``, ``opacities [P]``,
        ``sh0 [P, 1, 3]``, ``shN [P, (d + 1)² − 1, 3]``.
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 2 or not np.isfinite(pts).all():
        raise ShapeError(f"params_from_points: expected at least 2 finite points [P, 3], received {pts.shape}")
    k = min(int(num_neighbors), len(pts) - 1)
    dist, _ = cKDTree(pts).query(pts, k=k + 1)  # column 0 is the point itself
    sigma = np.maximum(np.asarray(dist, np.float64).reshape(len(pts), -1)[:, 1:].mean(1), 1e-4)
    colour = np.full((len(pts), 3), 0.5) if rgb is None else np.asarray(rgb, np.float64)
    if colour.shape != pts.shape:
        raise ShapeError(f"params_from_points: expected rgb [P, 3] = {list(pts.shape)}, received {colour.shape}")
    f = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    p = len(pts)
    return {"means": f(pts), "scales": f(np.repeat(np.log(sigma)[:, None], 3, 1)),
            "quats": f(np.tile([1.0, 0.0, 0.0, 0.0], (p, 1))),
            "opacities": f(np.full(p, math.log(opacity / (1.0 - opacity)))),
            "sh0": f(((colour - 0.5) / SH_C0)[:, None, :]), "shN": torch.zeros(p, num_sh_bases(sh_degree) - 1, 3)}


def params_from_scene(scene: GaussianScene, *, sh_degree: int = 0) -> dict[str, torch.Tensor]:
    """Raw parameters of an activated scene: log σ, logit(o) (o clipped to [1e-6, 1 − 1e-6]), quats as given,
    SH bands cut or zero-padded to ``sh_degree``."""
    o = np.clip(scene.opacities.astype(np.float64), 1e-6, 1.0 - 1e-6)
    f = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    sh0, shn = _sh_rows(f(scene.sh[:, :1]), f(scene.sh[:, 1:]), sh_degree)
    return {"means": f(scene.means), "scales": f(np.log(np.maximum(scene.scales.astype(np.float64), 1e-12))),
            "quats": f(scene.quats), "opacities": f(np.log(o / (1.0 - o))), "sh0": sh0, "shN": shn}


def params_to_scene(params: dict[str, torch.Tensor]) -> GaussianScene:
    """Activated :class:`GaussianScene` of raw parameters (σ = exp, o = sigmoid, sh = [sh0, shN])."""
    t = {k: v.detach().to("cpu", torch.float32) for k, v in params.items()}
    return GaussianScene(t["means"].numpy().copy(), t["quats"].numpy().copy(), torch.exp(t["scales"]).numpy(),
                         torch.sigmoid(t["opacities"]).numpy(), torch.cat([t["sh0"], t["shN"]], 1).numpy())


def scene_scale_of(viewmats: np.ndarray | torch.Tensor, means: np.ndarray | torch.Tensor | None = None) -> float:
    """gsplat's scene scale: 1.1 × max distance of the camera centres from their mean (m).

    When every camera sits at one place, 1.1 × the median camera-to-Gaussian distance of ``means`` (or 1.0).
    """
    v = np.asarray(torch.as_tensor(viewmats).detach().cpu(), np.float64)
    centres = -np.einsum("vji,vj->vi", v[:, :3, :3], v[:, :3, 3])  # -Rᵀ t
    spread = float(np.linalg.norm(centres - centres.mean(0), axis=1).max())
    if spread > 1e-3:
        return 1.1 * spread
    if means is not None and len(means):
        m = np.asarray(torch.as_tensor(means).detach().cpu(), np.float64)
        return 1.1 * float(np.median(np.linalg.norm(m - centres.mean(0), axis=1)))
    return 1.0


def _init_params(init: Any, sh_degree: int, cfg: FitConfig) -> dict[str, torch.Tensor]:
    if isinstance(init, GaussianScene):
        return params_from_scene(init, sh_degree=sh_degree)
    if isinstance(init, dict):
        missing = [k for k in _PARAM_NAMES if k not in init]
        if missing:
            raise ShapeError(f"fit(init): a raw parameter dict needs {list(_PARAM_NAMES)}, missing {missing}")
        raw = {k: (init[k].detach().to("cpu", torch.float32).clone() if torch.is_tensor(init[k])
                   else torch.tensor(np.array(init[k], np.float32))) for k in _PARAM_NAMES}
        raw["sh0"], raw["shN"] = _sh_rows(raw["sh0"], raw["shN"], sh_degree)
        return raw
    if isinstance(init, tuple) and len(init) == 2:
        return params_from_points(init[0], init[1], sh_degree=sh_degree, opacity=cfg.init_opacity,
                                  num_neighbors=cfg.init_neighbors)
    if isinstance(init, np.ndarray) or torch.is_tensor(init):
        return params_from_points(np.asarray(init), None, sh_degree=sh_degree, opacity=cfg.init_opacity,
                                  num_neighbors=cfg.init_neighbors)
    raise ShapeError(f"fit(init): expected a GaussianScene, points [P, 3], (points, rgb) or a raw parameter dict, "
                     f"received {type(init).__name__}")


def _check_views(images: Any, viewmats: Any, Ks: Any, device: torch.device) -> tuple[torch.Tensor, ...]:
    imgs = torch.as_tensor(np.asarray(images, np.float32) if not torch.is_tensor(images) else images)
    vms = torch.as_tensor(np.asarray(viewmats, np.float32) if not torch.is_tensor(viewmats) else viewmats)
    ks = torch.as_tensor(np.asarray(Ks, np.float32) if not torch.is_tensor(Ks) else Ks)
    if imgs.ndim != 4 or imgs.shape[-1] != 3:
        raise ShapeError(f"fit(images): expected [V, H, W, 3] float32 in [0, 1], received {tuple(imgs.shape)}")
    v = imgs.shape[0]
    if vms.shape != (v, 4, 4) or ks.shape != (v, 3, 3):
        raise ShapeError(f"fit: expected viewmats [{v}, 4, 4] (cam_from_world) and Ks [{v}, 3, 3] (px), one per "
                         f"image, received {tuple(vms.shape)} and {tuple(ks.shape)}; see views_of(rig, poses)")
    if not (torch.isfinite(imgs).all() and torch.isfinite(vms).all() and torch.isfinite(ks).all()):
        raise ShapeError("fit: expected finite images, viewmats and Ks, received NaN/Inf")
    return (imgs.to(device, torch.float32).contiguous(), vms.to(device, torch.float32),
            ks.to(device, torch.float32))


def _render(raster: Any, backend: str, params: dict[str, torch.Tensor], viewmats: torch.Tensor, Ks: torch.Tensor,
            width: int, height: int, sh_degree: int, background: torch.Tensor,
            mode: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """Render raw parameters into C views: ``([C, H, W, 3] colour composited on background, meta)``."""
    extra = {"tile_size": 8, "isect_meta": False} if backend == "torch_ref" else {}
    colors = torch.cat([params["sh0"], params["shN"]], 1)
    out, _, meta = raster(params["means"], params["quats"], torch.exp(params["scales"]),
                          torch.sigmoid(params["opacities"]), colors, viewmats, Ks, int(width), int(height),
                          sh_degree=int(sh_degree), packed=False,
                          backgrounds=background.expand(viewmats.shape[0], 3), rasterize_mode=mode, **extra)
    return out, meta


def _gsplat_strategy(cfg: FitConfig) -> Any:
    """gsplat's DefaultStrategy with this config's thresholds, or None when it cannot be imported.

    It is called with the 1-based step count, like the CPU path, so its opacity reset (``step % reset_every ==
    0``, unguarded in some gsplat versions) cannot fire before the first step; without ``reset_every`` the
    period is set past the last step.
    """
    try:
        from gsplat import DefaultStrategy
    except Exception:  # noqa: BLE001 - any import failure means "use the package's own refinement"
        return None
    return DefaultStrategy(prune_opa=cfg.prune_opa, grow_grad2d=cfg.grow_grad2d, grow_scale3d=cfg.grow_scale3d,
                           prune_scale3d=cfg.prune_scale3d if cfg.prune_scale3d is not None else 0.1,
                           refine_start_iter=cfg.refine_start, refine_stop_iter=cfg.refine_stop,
                           refine_every=cfg.refine_every,
                           reset_every=cfg.reset_every if cfg.reset_every is not None else cfg.steps + 2,
                           absgrad=False, verbose=False)


def fit(images: np.ndarray | torch.Tensor, viewmats: np.ndarray | torch.Tensor, Ks: np.ndarray | torch.Tensor,
        init: GaussianScene | np.ndarray | tuple[np.ndarray, np.ndarray] | dict[str, Any],
        config: FitConfig = FitConfig()) -> FitResult:
    """Fit Gaussians to V posed images by minimising 0.8·L1 + 0.2·(1 − SSIM) (see the module doc).

    Args:
        images: ``[V, H, W, 3]`` float32 in [0, 1], composited on ``config.background``.
        viewmats: ``[V, 4, 4]`` cam_from_world (OpenCV camera, m) of each image (:func:`views_of` builds them
            from a rig and ego poses).
        Ks: ``[V, 3, 3]`` pinhole intrinsics, px, for ``W x H``.
        init: a GaussianScene (activated; converted to raw values), points ``[P, 3]`` (grey), a tuple
            ``(points [P, 3], rgb [P, 3])``, or a raw parameter dict (see :class:`FitResult.params`).
        config: hyper-parameters.

    Returns:
        :class:`FitResult` with the fitted scene, per-step history and the raw parameters.

    Raises:
        ShapeError: inputs of the wrong shape. BackendUnavailableError: ``backend="gsplat"`` without CUDA.
    """
    cfg = config
    backend = resolve_backend(cfg.backend)
    device = torch.device("cuda" if backend == "gsplat" else "cpu")
    imgs, vms, ks = _check_views(images, viewmats, Ks, device)
    num_views, height, width = (int(n) for n in imgs.shape[:3])
    raw = _init_params(init, cfg.sh_degree, cfg)
    params = {k: torch.nn.Parameter(raw[k].to(device).contiguous()) for k in _PARAM_NAMES}
    scene_scale = float(cfg.scene_scale) if cfg.scene_scale is not None else scene_scale_of(vms, raw["means"])
    batch = min(cfg.batch_size, num_views)
    lrs = {"means": cfg.lr_means * scene_scale, "scales": cfg.lr_scales, "quats": cfg.lr_quats,
           "opacities": cfg.lr_opacities, "sh0": cfg.lr_sh0, "shN": cfg.lr_shN}
    optimizers = {k: torch.optim.Adam([{"params": [params[k]], "lr": lrs[k] * math.sqrt(batch), "name": k}],
                                      eps=1e-15, betas=(0.9, 0.999)) for k in _PARAM_NAMES}
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizers["means"], cfg.lr_means_final ** (1.0 / cfg.steps))
    raster = rasterizer(backend)
    strategy, strategy_state, stats, kind = None, None, None, "none"
    if cfg.densify:
        strategy = _gsplat_strategy(cfg) if backend == "gsplat" else None
        if strategy is not None:
            strategy.check_sanity(params, optimizers)
            strategy_state = strategy.initialize_state(scene_scale=scene_scale)
            kind = "gsplat"
        else:
            stats, kind = new_stats(params["means"].shape[0], device), "cpu"
    gen = torch.Generator().manual_seed(int(cfg.seed))
    bg = torch.tensor(cfg.background, dtype=torch.float32, device=device)
    history: dict[str, list[float]] = {k: [] for k in ("loss", "l1", "ssim", "psnr", "num_gaussians", "lr_means")}
    refinements: list[dict[str, int]] = []
    queue: list[int] = []
    lam = float(cfg.ssim_lambda)
    start = time.perf_counter()
    for step in range(cfg.steps):
        while len(queue) < batch:
            queue += torch.randperm(num_views, generator=gen).tolist()
        idx = torch.tensor(queue[:batch], device=device)
        queue = queue[batch:]
        degree = min(step // max(cfg.sh_degree_interval, 1), cfg.sh_degree)
        render, meta = _render(raster, backend, params, vms[idx], ks[idx], width, height, degree, bg,
                               cfg.rasterize_mode)
        target = imgs[idx]
        l1 = (render - target).abs().mean()
        sim = ssim(render, target, padding=cfg.ssim_padding)
        loss = (1.0 - lam) * l1 + lam * (1.0 - sim)
        done = step + 1  # steps completed after this one: the densification schedule counts these
        if strategy is not None:
            strategy.step_pre_backward(params, optimizers, strategy_state, done, meta)
        elif stats is not None:
            meta["means2d"].retain_grad()
        loss.backward()
        if stats is not None and done < cfg.refine_stop:
            accumulate_stats(stats, meta)
        history["lr_means"].append(optimizers["means"].param_groups[0]["lr"])
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        scheduler.step()
        if strategy is not None:
            strategy.step_post_backward(params, optimizers, strategy_state, done, meta, packed=False)
        elif stats is not None and done < cfg.refine_stop:
            if done > cfg.refine_start and done % cfg.refine_every == 0:
                counts = refine_gaussians(params, optimizers, stats, scene_scale=scene_scale,
                                          grow_grad2d=cfg.grow_grad2d, grow_scale3d=cfg.grow_scale3d,
                                          prune_opa=cfg.prune_opa, prune_scale3d=cfg.prune_scale3d,
                                          max_gaussians=cfg.max_gaussians, generator=gen)
                refinements.append({"step": done, **counts})
                log.debug("fit after step %d: %s", done, counts)
                stats = new_stats(params["means"].shape[0], device)
            if cfg.reset_every and done % cfg.reset_every == 0:
                reset_opacities(params, optimizers, 2.0 * cfg.prune_opa)
        with torch.no_grad():
            history["loss"].append(float(loss))
            history["l1"].append(float(l1))
            history["ssim"].append(float(sim))
            history["psnr"].append(psnr(render.clamp(0.0, 1.0), target))
            history["num_gaussians"].append(int(params["means"].shape[0]))
        if cfg.log_every and (step % cfg.log_every == 0 or step == cfg.steps - 1):
            log.info("fit step %d/%d: loss %.4f, PSNR %.2f dB, %d Gaussians, %.1f s", step + 1, cfg.steps,
                     history["loss"][-1], history["psnr"][-1], history["num_gaussians"][-1],
                     time.perf_counter() - start)
    seconds = time.perf_counter() - start
    out = {k: v.detach() for k, v in params.items()}
    return FitResult(scene=params_to_scene(out), history={k: np.asarray(v) for k, v in history.items()},
                     num_gaussians=int(out["means"].shape[0]),
                     params={k: v.cpu().numpy() for k, v in out.items()}, refinements=refinements,
                     scene_scale=scene_scale, seconds=seconds, backend=backend, strategy=kind, config=cfg)


def views_of(rig: Any, world_from_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-view cameras of every rig camera at every ego pose.

    Args:
        rig: a :class:`~worldengine_lab.datatypes.CameraRig` (C cameras).
        world_from_ego: ``[F, 4, 4]`` (or ``[4, 4]``) float64 ego poses, scenario frame.
    Returns:
        ``viewmats [F·C, 4, 4]`` float32 cam_from_world and ``Ks [F·C, 3, 3]`` float32, pose-major.
    """
    poses = np.asarray(world_from_ego, np.float64).reshape(-1, 4, 4)
    vms = np.concatenate([rig.viewmats(p) for p in poses])  # F small (a few tens)
    return vms.astype(np.float32), np.tile(np.asarray(rig.Ks, np.float32), (len(poses), 1, 1))


def render_views(scene: GaussianScene, viewmats: np.ndarray | torch.Tensor, Ks: np.ndarray | torch.Tensor,
                 width: int, height: int, *, background: Sequence[float] = (0.0, 0.0, 0.0),
                 rasterize_mode: str = "classic", backend: str = "auto") -> np.ndarray:
    """Render a scene as :func:`fit` sees it (SH colour max(0, SH + 0.5), composited on ``background``).

    Args:
        scene: activated Gaussians. viewmats: ``[V, 4, 4]`` cam_from_world. Ks: ``[V, 3, 3]`` px.
    Returns:
        ``[V, H, W, 3]`` float32, clipped to [0, 1].
    """
    name = resolve_backend(backend)
    device = torch.device("cuda" if name == "gsplat" else "cpu")
    params = {k: v.to(device) for k, v in params_from_scene(scene, sh_degree=scene.sh_degree).items()}
    vms = torch.as_tensor(np.asarray(viewmats, np.float32)).to(device)
    ks = torch.as_tensor(np.asarray(Ks, np.float32)).to(device)
    bg = torch.tensor(list(background), dtype=torch.float32, device=device)
    with torch.no_grad():
        out, _ = _render(rasterizer(name), name, params, vms, ks, width, height, scene.sh_degree, bg,
                         rasterize_mode)
    return out.clamp(0.0, 1.0).cpu().numpy()
