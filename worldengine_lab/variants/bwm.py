"""Sampling from the behaviour world model: chosen agents are generated, every other agent is held fixed.

:func:`sample` runs a seeded DDIM reverse process on a batch of scenes. Generated tokens start from noise and go
through ``sample_steps`` reverse steps; the ego, the agents not asked for and static objects stay clean (noise
level 0: the network reads their logged futures as conditions and they are never updated). An optional ``guide``
re-anchors the predicted clean futures at every step (:mod:`.adversarial`; ``realism=`` builds one with the
realism terms only, the OMEGA recipe for plain sampling). The sampled waypoints are turned back
into the scenario's local frame, interpolated to every step with a cubic spline that starts at each agent's logged
state at now, continued straight past the model's horizon, and projected to kinematic feasibility with the same
projection as the parametric edits (:func:`~worldengine_lab.variants.project`), batched over every generated
agent of every scene.

Noise is drawn per scene from a generator seeded by ``(seed, scenario_id)``, so a scene's result does not
depend on what else is in the batch: same request, same futures.

:func:`sample_variants` wraps the results as :class:`~worldengine_lab.datatypes.variant.Variant` objects whose
lineage record is :class:`~worldengine_lab.variants.ops_sampled.BWMSample` (sampler, checkpoint hash, agents,
guidance) plus the seed.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from ..datatypes import EGO_INDEX, AgentType, Scenario
from ..datatypes.variant import Variant, variant_hash8, variant_id
from ..errors import ShapeError
from ._edit import Tracks, with_tracks
from ._projection import project_arrays
from .bwm_features import BWMBatch, pack_scenes, to_local
from .bwm_model import BehaviourWorldModel, model_hash
from .limits import FeasibilityConfig
from .lineage import VARIANT_TAG
from .ops_sampled import BWMSample

if TYPE_CHECKING:
    from .adversarial import GuidanceConfig

__all__ = ["Guide", "SMOOTHING", "smoothing_matrix", "sample", "sample_tokens", "write_futures", "sample_variants",
           "default_agents", "scene_seed"]

logger = logging.getLogger(__name__)

Guide = Callable[[torch.Tensor, int, int], torch.Tensor]
"""``guide(x0_hat [B, N, W, 2], step, t) -> x0 [B, N, W, 2]``: re-anchors the predicted clean tokens (scaled
residuals) at reverse step ``step`` (0 = first) of diffusion time ``t``; it may only change generated tokens."""

_STATIC_TYPES = [int(t) for t in AgentType if t.is_static]

SMOOTHING = 30.0
"""Default weight of the jerk penalty of :func:`smoothing_matrix` applied to sampled waypoints."""


def scene_seed(seed: int, scenario_id: str, index: int = 0) -> int:
    """The 63-bit noise seed of variant ``index`` of one scene in a request with ``seed``."""
    key = f"{int(seed)}:{int(index)}:{scenario_id}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def default_agents(scenario: Scenario, max_agents: int = 24) -> np.ndarray:
    """Agents :func:`sample` generates by default: every non-ego, non-static agent observed at now, nearest to
    the ego first, at most ``max_agents - 1``; ``[K]`` int64."""
    a = scenario.agents
    ok = a.valid[scenario.t0] & ~np.isin(a.agent_type, _STATIC_TYPES)
    ok[EGO_INDEX] = False
    d = np.linalg.norm(a.xy[scenario.t0] - a.xy[scenario.t0, EGO_INDEX], axis=-1)
    return np.argsort(np.where(ok, d, np.inf), kind="stable")[: min(int(ok.sum()), max_agents - 1)].astype(np.int64)


@torch.no_grad()
def _denoise(model: BehaviourWorldModel, x: torch.Tensor, t: torch.Tensor, known: torch.Tensor,
             ctx: dict[str, torch.Tensor]) -> torch.Tensor:
    c = model.config.x0_clip
    return model(x, t, known, ctx).clamp(-c, c)


def sample_tokens(model: BehaviourWorldModel, batch: BWMBatch, seeds: Sequence[int],
                  guide: Guide | None = None) -> torch.Tensor:
    """Run the reverse process on a packed batch; returns the clean tokens ``[B, N, W, 2]`` (scaled residuals;
    fixed tokens are returned exactly as given).

    Args:
        model: the denoiser (eval mode).
        batch: :func:`~worldengine_lab.variants.bwm_features.pack_scenes` output; ``batch.generate`` marks the
            tokens to generate.
        seeds: one noise seed per scene.
        guide: optional re-anchoring of the predicted clean tokens at every step.
    """
    cfg = model.config
    b, n, w, _ = batch.future.shape
    s_steps = cfg.sample_steps
    if len(seeds) != b:
        raise ShapeError(f"sample_tokens(seeds): expected one seed per scene ({b}), received {len(seeds)}")
    gen = batch.generate & batch.token_valid  # [B, N]
    fixed = model.encode(batch.future, batch.cv) * batch.future_valid[..., None]
    known = torch.where(gen[..., None], torch.ones_like(batch.future_valid), batch.future_valid)
    # per-scene noise: initial tokens and one draw per reverse step, independent of the batch's padding
    counts = batch.token_valid.sum(1).tolist()
    noise = torch.zeros(s_steps + 1, b, n, w, 2)
    for i, (sd, c) in enumerate(zip(seeds, counts)):  # one generator per scene (setup, not per step)
        g = torch.Generator().manual_seed(int(sd))
        noise[:, i, :c] = torch.randn(s_steps + 1, c, w, 2, generator=g)
    taus = torch.linspace(cfg.diffusion_steps, 0, s_steps + 1).round().long()
    ab = model.alpha_bar.double()
    ctx = model.context(batch)
    g3 = gen[..., None, None]
    x = torch.where(g3, noise[0], fixed)
    for i in range(s_steps):  # reverse diffusion steps
        t_cur, t_next = int(taus[i]), int(taus[i + 1])
        t_tok = torch.where(gen, torch.full_like(batch.agent_index, t_cur), torch.zeros_like(batch.agent_index))
        x0 = torch.where(g3, _denoise(model, x, t_tok, known, ctx), fixed)  # held tokens are what they are
        if guide is not None:
            x0 = torch.where(g3, guide(x0, i, t_cur), x0)
        a_cur, a_next = float(ab[t_cur]), float(ab[t_next])
        eps = (x - a_cur ** 0.5 * x0) / max(1.0 - a_cur, 1e-8) ** 0.5
        sigma = cfg.eta * ((1 - a_next) / max(1 - a_cur, 1e-8) * (1 - a_cur / a_next)) ** 0.5 if t_next > 0 else 0.0
        x_next = a_next ** 0.5 * x0 + max(1 - a_next - sigma ** 2, 0.0) ** 0.5 * eps + sigma * noise[i + 1]
        x = torch.where(g3, x_next, fixed)
    return x


def smoothing_matrix(num_waypoints: int, lam: float) -> np.ndarray:
    """``[W, W]`` Whittaker smoother of residual waypoints: ``z = S r`` minimises ``|r - z|^2 + lam |D3 z'|^2`` where
    ``z'`` is ``z`` with two zeros in front (the residual to constant velocity is 0 with zero slope at now) and
    ``D3`` takes third differences (jerk). ``lam = 0`` is the identity."""
    w = num_waypoints
    if lam <= 0:
        return np.eye(w)
    n = w + 2
    d3 = np.diff(np.eye(n), 3, axis=0)  # [n - 3, n]
    big = 1e6  # the two anchors are kept at 0
    weight = np.diag(np.concatenate([[big, big], np.ones(w)]))
    full = np.linalg.solve(weight + lam * d3.T @ d3, weight)  # [n, n]
    return full[2:, 2:]


def _spline_future(times: np.ndarray, way: np.ndarray, v0: np.ndarray, num_future: int, dt: float) -> np.ndarray:
    """Positions at steps 1 .. num_future after now from waypoints ``way [K, W, 2]`` at ``times [W]`` s, starting
    at ``way``'s origin row 0 = now with velocity ``v0 [K, 2]``; straight at the end velocity past the last
    waypoint. Returns ``[K, num_future, 2]`` (frame of the inputs)."""
    from scipy.interpolate import CubicSpline

    x = np.concatenate([[0.0], times])
    k = way.shape[0]
    y = np.concatenate([np.zeros((1, k * 2)), way.transpose(1, 0, 2).reshape(len(times), k * 2)])  # [W + 1, K * 2]
    cs = CubicSpline(x, y, axis=0, bc_type=((1, v0.reshape(-1)), (2, np.zeros(k * 2))))
    q = np.arange(1, num_future + 1) * dt
    inside = np.minimum(q, x[-1])
    out = cs(inside) + (q - inside)[:, None] * cs(x[-1], 1)[None]
    return out.reshape(num_future, k, 2).transpose(1, 0, 2)


def write_futures(scenarios: Sequence[Scenario], model: BehaviourWorldModel, batch: BWMBatch, tokens: torch.Tensor,
                  feasibility: FeasibilityConfig = FeasibilityConfig(), smoothing: float = SMOOTHING) -> list[Scenario]:
    """Scenarios whose generated agents (``batch.generate``) follow the sampled tokens: residuals to constant
    velocity smoothed (:func:`smoothing_matrix` with ``smoothing``), splined to every step, projected to
    feasibility (all generated agents of all scenes at once), valid over the whole future. Other agents are
    untouched. Scenes must share ``dt`` and the number of steps after now."""
    gen = (batch.generate & batch.token_valid).numpy()
    if not gen.any():
        return list(scenarios)
    f_steps = {s.num_steps - s.t0 - 1 for s in scenarios}
    if len(f_steps) != 1 or min(f_steps) < 1:
        raise ShapeError(f"write_futures(scenarios): expected scenes with the same number (>= 1) of steps after "
                         f"now, received {sorted(f_steps)}; sample scenes of equal windows together")
    f, dt = f_steps.pop(), scenarios[0].dt
    res_m = (tokens * model.scale).double()  # [B, N, W, 2] residual to constant velocity, m, own frame
    res_m = torch.einsum("vw,bnwc->bnvc", torch.from_numpy(smoothing_matrix(res_m.shape[2], smoothing)), res_m)
    own = res_m + batch.cv.double()
    local = to_local(own, batch.pose0).numpy()  # [B, N, W, 2] m, local frame
    bi, ni = np.nonzero(gen)
    pose = batch.pose0.numpy()[bi, ni]  # [K, 3]
    way = local[bi, ni] - pose[:, None, :2]  # relative to the position at now
    idx = batch.agent_index.numpy()[bi, ni]
    vel0 = np.stack([scenarios[b].agents.vel_xy[scenarios[b].t0, i] for b, i in zip(bi, idx)]).astype(np.float64)
    rel = _spline_future(batch.times_s.double().numpy(), way, vel0, f, dt)  # [K, F, 2]
    target = np.concatenate([np.zeros((len(bi), 1, 2)), rel], 1) + pose[:, None, :2]  # [K, F + 1, 2]
    a0 = np.zeros(len(bi))
    types = np.array([int(scenarios[b].agents.agent_type[i]) for b, i in zip(bi, idx)])
    res = project_arrays(target, pose[:, 2], np.linalg.norm(vel0, axis=-1), a0, feasibility.limit_arrays(types),
                         feasibility, dt)
    vel = res.speed[..., None] * np.stack([np.cos(res.yaw), np.sin(res.yaw)], -1)
    out = []
    for b, s in enumerate(scenarios):  # assembling B output scenarios
        rows = np.flatnonzero(bi == b)
        if not len(rows):
            out.append(s)
            continue
        tr = Tracks.of(s.agents)
        ai = idx[rows]
        tr.xy[s.t0 + 1:, ai] = res.xy[rows, 1:].transpose(1, 0, 2)
        tr.yaw[s.t0 + 1:, ai] = ((res.yaw[rows, 1:] + np.pi) % (2 * np.pi) - np.pi).T
        tr.vel_xy[s.t0 + 1:, ai] = vel[rows, 1:].transpose(1, 0, 2)
        tr.valid[s.t0 + 1:, ai] = True
        out.append(with_tracks(s, tr))
    return out


def sample(model: BehaviourWorldModel, scenarios: Sequence[Scenario],
           agents_to_generate: Sequence[Sequence[int]] | None = None, seed: int = 0, guide: Guide | None = None,
           feasibility: FeasibilityConfig = FeasibilityConfig(), batch: BWMBatch | None = None,
           realism: "GuidanceConfig | None" = None) -> list[Scenario]:
    """Generate the futures of chosen agents in each scenario (one sample per scenario, batched).

    Args:
        model: a trained :class:`~worldengine_lab.variants.bwm_model.BehaviourWorldModel`.
        scenarios: B scenarios with the same ``dt`` and number of steps after now.
        agents_to_generate: per scenario, agent indices (observed at now, not the ego); default
            :func:`default_agents`. Everything else is held fixed.
        seed: request seed; scene noise is seeded by ``(seed, scenario_id)``.
        guide: optional re-anchoring (e.g. :func:`~worldengine_lab.variants.adversarial.make_guide`).
        feasibility: limits of the projection.
        batch: the packed scenes if already built with the same ``agents_to_generate``.
        realism: re-anchor every step with the realism terms of this
            :class:`~worldengine_lab.variants.adversarial.GuidanceConfig` (on road, no collisions among non-ego
            agents, kinematics; its attack term is ignored) when no ``guide`` is given.
    Returns:
        The edited scenarios (same ids; the generated agents' futures replaced, valid over the whole future).
    """
    items = list(scenarios)
    if agents_to_generate is None:
        agents_to_generate = [default_agents(s, model.config.features.max_agents) for s in items]
    if batch is None:
        batch = pack_scenes(items, model.config.features, agents_to_generate)
    if guide is None and realism is not None:
        from .adversarial import distance_fields, make_guide

        cfg = replace(realism, attack_weight=0.0)
        guide = make_guide(model, batch, torch.full((len(items),), -1), distance_fields(items, cfg), cfg)
    seeds = [scene_seed(seed, s.scenario_id) for s in items]
    tokens = sample_tokens(model, batch, seeds, guide)
    return write_futures(items, model, batch, tokens, feasibility)


def _as_variant(parent: Scenario, edited: Scenario, record: BWMSample, seed: int, objective: str) -> Variant:
    """Wrap a sampled scenario with its lineage (as :func:`~worldengine_lab.variants.make_variant` does)."""
    vid = variant_id(parent.scenario_id, [record], seed)
    prov = parent.provenance
    extra = tuple(prov.extra) + (("parent_id", parent.scenario_id), ("ops_hash", variant_hash8([record], seed)),
                                 ("seed", str(int(seed))), ("sampler", record.sampler),
                                 ("checkpoint", record.checkpoint))
    meta = dict(parent.meta)
    meta.update({"parent_id": parent.scenario_id, "variant_id": vid, "objective": objective,
                 "sampler": record.sampler, "checkpoint": record.checkpoint, "seed": int(seed)})
    scenario = replace(edited, scenario_id=vid, provenance=replace(prov, source="variant", extra=extra), meta=meta,
                       tags=edited.tags | {VARIANT_TAG, f"{VARIANT_TAG}:{record.name}"})
    return Variant(parent_id=parent.scenario_id, ops=(record,), scenario=scenario, objective=objective,
                   seed=int(seed))


def sample_variants(model: BehaviourWorldModel, scenarios: Sequence[Scenario],
                    agents_to_generate: Sequence[Sequence[int]] | None = None, seed: int = 0,
                    guide: Guide | None = None, guidance: str = "", attackers: Sequence[int] | None = None,
                    index: Sequence[int] | int = 0, objective: str = "behaviour world model sample",
                    feasibility: FeasibilityConfig = FeasibilityConfig(), batch: BWMBatch | None = None
                    ) -> list[Variant]:
    """:func:`sample`, wrapped as Variants with lineage ``{"op": "bwm_sample", "sampler": "bwm", "checkpoint":
    model hash, "agents": [...], "guidance", "attacker", "index"}`` and ``seed``.

    ``index`` (one per scenario, or one for all) tells apart several variants of the same parent in one request;
    it also enters the noise seed, so they differ. ``batch``: the packed scenes, if already built with the same
    ``agents_to_generate``.
    """
    items = list(scenarios)
    fc = model.config.features
    if agents_to_generate is None:
        agents_to_generate = [default_agents(s, fc.max_agents) for s in items]
    idx = [int(index)] * len(items) if isinstance(index, (int, np.integer)) else [int(i) for i in index]
    att = list(attackers) if attackers is not None else [-1] * len(items)
    batch = pack_scenes(items, fc, agents_to_generate) if batch is None else batch
    seeds = [scene_seed(seed, s.scenario_id, k) for s, k in zip(items, idx)]
    tokens = sample_tokens(model, batch, seeds, guide)
    edited = write_futures(items, model, batch, tokens, feasibility)
    h = model_hash(model)
    out = []
    for s, e, g, a, k in zip(items, edited, agents_to_generate, att, idx):  # lineage per variant
        ids = s.agents.track_ids
        rec = BWMSample(sampler="bwm", checkpoint=h, agents=tuple(str(ids[i]) for i in np.asarray(g, np.int64)),
                        guidance=guidance, attacker=str(ids[a]) if a >= 0 else "", index=k)
        out.append(_as_variant(s, e, rec, seed, objective))
    logger.info("sampled %d behaviour-model variants (guidance %r, checkpoint %s)", len(out), guidance or "none", h)
    return out
