"""Adaptive density control for photometric fitting on any torch device (spec ``gaussian-splatting.md`` §9).

The fitting loop keeps the raw parameters in a dict of ``torch.nn.Parameter`` (``means [G, 3]``, ``scales [G, 3]``
log σ, ``quats [G, 4]``, ``opacities [G]`` logit, ``sh0 [G, 1, 3]``, ``shN [G, K − 1, 3]``) with one Adam per
entry. This module grows and prunes those Gaussians the way gsplat's ``DefaultStrategy`` describes it:

* statistics: after every backward pass, for every Gaussian visible in a view (radius > 0) the norm of the
  gradient of its projected centre (``meta["means2d"].grad``, scaled to [-1, 1] screen units by (W/2, H/2) and by
  the number of cameras) is summed, and its visibility counted;
* grow: Gaussians whose mean gradient exceeds ``grow_grad2d`` are **cloned** (an exact copy) when their largest
  σ is at most ``grow_scale3d · scene_scale``, else **split** into two, placed at samples of the Gaussian itself
  (mean + R·(σ ⊙ n), n ~ N(0, I)) with σ / 1.6;
* prune: opacity below ``prune_opa`` (and, optionally, largest σ above ``prune_scale3d · scene_scale``);
* reset (optional, periodic): opacities clamped to a small value, their Adam moments zeroed.

New rows start with zero Adam moments; kept rows keep theirs; removed rows drop theirs. Everything is batched
over Gaussians (masks and index ops), so the cost is a few tensor copies per refinement.
"""
from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["RefineStats", "new_stats", "accumulate_stats", "refine_gaussians", "edit_gaussians", "reset_opacities"]

RefineStats = dict[str, torch.Tensor]
"""``{"grad2d": [G] float32 summed normalised gradient norms, "count": [G] float32 visibility counts}``."""


def new_stats(num_gaussians: int, device: torch.device | str = "cpu") -> RefineStats:
    """Zeroed statistics for ``num_gaussians`` Gaussians."""
    return {"grad2d": torch.zeros(num_gaussians, device=device), "count": torch.zeros(num_gaussians, device=device)}


@torch.no_grad()
def accumulate_stats(stats: RefineStats, meta: dict[str, Any]) -> None:
    """Add one step's screen-space gradients (in place).

    Args:
        stats: running sums (:func:`new_stats`), ``[G]`` each.
        meta: the rasterizer's meta of that step in non-packed layout: ``means2d [C, G, 2]`` px (with ``.grad``
            after backward), ``radii [C, G, 2]`` or ``[C, G]`` (0 = not drawn), ``width``, ``height``,
            ``n_cameras``.
    """
    grad = meta["means2d"].grad
    if grad is None:
        return
    scale = torch.tensor([0.5 * meta["width"], 0.5 * meta["height"]], dtype=grad.dtype, device=grad.device)
    g = grad.reshape(-1, grad.shape[-2], 2) * (scale * float(meta["n_cameras"]))
    radii = meta["radii"]  # [C, G, 2] per axis (gsplat >= 1.5) or [C, G]
    seen = (radii > 0).any(-1) if radii.ndim == grad.ndim else radii > 0
    seen = seen.reshape(-1, grad.shape[-2])  # [C, G]
    cam, gid = torch.nonzero(seen, as_tuple=True)
    stats["grad2d"].index_add_(0, gid, g[cam, gid].norm(dim=-1).to(stats["grad2d"].dtype))
    stats["count"].index_add_(0, gid, torch.ones_like(gid, dtype=stats["count"].dtype))


@torch.no_grad()
def edit_gaussians(params: dict[str, torch.nn.Parameter], optimizers: dict[str, torch.optim.Optimizer],
                   keep: torch.Tensor, extra: dict[str, torch.Tensor] | None = None) -> None:
    """Keep the rows ``keep [G] bool`` of every parameter and append ``extra`` rows, in place.

    Each optimiser's parameter is swapped for the new tensor; its Adam moments are indexed the same way and the
    appended rows get zero moments. ``extra[name]`` is ``[E, ...]`` with the parameter's trailing shape.
    """
    for name, old in list(params.items()):
        rows = old.data[keep]
        add = None if extra is None else extra[name].to(dtype=old.dtype, device=old.device)
        new = torch.nn.Parameter(rows if add is None else torch.cat([rows, add]), requires_grad=old.requires_grad)
        opt = optimizers.get(name)
        if opt is not None:
            state = opt.state.pop(old, None)
            group = opt.param_groups[0]
            group["params"] = [new]
            if state:
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        s = state[key][keep]
                        state[key] = s if add is None else torch.cat([s, torch.zeros_like(add)])
                opt.state[new] = state
        params[name] = new


def _quat_rotmat(q: torch.Tensor) -> torch.Tensor:
    """``[N, 4]`` (w, x, y, z), any norm -> ``[N, 3, 3]``."""
    w, x, y, z = torch.nn.functional.normalize(q, dim=-1).unbind(-1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(-1, 3, 3)


@torch.no_grad()
def refine_gaussians(params: dict[str, torch.nn.Parameter], optimizers: dict[str, torch.optim.Optimizer],
                     stats: RefineStats, *, scene_scale: float, grow_grad2d: float, grow_scale3d: float,
                     prune_opa: float, prune_scale3d: float | None = None, max_gaussians: int | None = None,
                     generator: torch.Generator | None = None) -> dict[str, int]:
    """One refinement: clone, split, then prune (in place); returns the counts.

    Args:
        params, optimizers: the raw parameters and their optimisers (see the module doc); edited in place.
        stats: statistics since the last refinement (:func:`accumulate_stats`); not reset here.
        scene_scale: m, the scale that ``grow_scale3d`` and ``prune_scale3d`` are relative to.
        grow_grad2d: mean normalised screen-gradient norm above which a Gaussian grows.
        grow_scale3d: largest σ / scene_scale at or below which a growing Gaussian is cloned (above: split).
        prune_opa: opacity below which a Gaussian is removed.
        prune_scale3d: if set, also remove Gaussians whose largest σ / scene_scale exceeds it.
        max_gaussians: cap on G after growing: when more would grow, the candidates with the largest gradients
            win (each split adds one Gaussian net, each clone one).
        generator: RNG for the split samples (seeded by the caller).

    Returns:
        ``{"cloned": n, "split": n, "pruned": n, "num_gaussians": G}`` (G after refinement).
    """
    grads = stats["grad2d"] / stats["count"].clamp_min(1.0)
    sigma = torch.exp(params["scales"].data)  # [G, 3] m
    small = sigma.amax(-1) <= grow_scale3d * scene_scale
    grow = grads > grow_grad2d
    g = grads.numel()
    if max_gaussians is not None:
        room = max(int(max_gaussians) - g, 0)
        if int(grow.sum()) > room:
            order = torch.argsort(torch.where(grow, grads, torch.full_like(grads, -1.0)), descending=True,
                                  stable=True)
            grow = torch.zeros_like(grow)
            grow[order[:room]] = True
    clone, split = grow & small, grow & ~small
    n_clone, n_split = int(clone.sum()), int(split.sum())
    if n_clone:  # exact copies, appended after the originals
        edit_gaussians(params, optimizers, torch.ones(g, dtype=torch.bool, device=grads.device),
                       {k: p.data[clone] for k, p in params.items()})
        split = torch.cat([split, torch.zeros(n_clone, dtype=torch.bool, device=grads.device)])
    if n_split:  # two samples of each split Gaussian replace it
        src = {k: p.data[split] for k, p in params.items()}
        s = torch.exp(src["scales"])  # [S, 3]
        noise = torch.randn((2, n_split, 3), generator=generator, dtype=s.dtype, device="cpu").to(s.device)
        offsets = torch.einsum("nij,knj->kni", _quat_rotmat(src["quats"]), s[None] * noise)  # [2, S, 3]
        new = {k: torch.cat([v, v]) for k, v in src.items()}
        new["means"] = (src["means"][None] + offsets).reshape(-1, 3)
        new["scales"] = torch.log(s / 1.6).repeat(2, 1)
        edit_gaussians(params, optimizers, ~split, new)
    opac = torch.sigmoid(params["opacities"].data)
    prune = opac < prune_opa
    if prune_scale3d is not None:
        prune |= torch.exp(params["scales"].data).amax(-1) > prune_scale3d * scene_scale
    n_prune = int(prune.sum())
    if n_prune:
        edit_gaussians(params, optimizers, ~prune)
    return {"cloned": n_clone, "split": n_split, "pruned": n_prune,
            "num_gaussians": int(params["means"].shape[0])}


@torch.no_grad()
def reset_opacities(params: dict[str, torch.nn.Parameter], optimizers: dict[str, torch.optim.Optimizer],
                     value: float) -> None:
    """Clamp opacities to at most ``value`` and zero their Adam moments (INRIA's periodic reset)."""
    p = params["opacities"]
    p.data.clamp_(max=math.log(value / (1.0 - value)))
    state = optimizers["opacities"].state.get(p, {})
    for key in ("exp_avg", "exp_avg_sq"):
        if key in state:
            state[key].zero_()
