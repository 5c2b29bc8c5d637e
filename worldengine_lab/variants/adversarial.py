"""Optimisation-guided adversarial sampling of the behaviour world model (the OMEGA / Safe-Sim idea).

At every reverse diffusion step the predicted clean futures of the generated agents are **re-anchored** by a few
gradient steps on a cost before the sampler moves on (:class:`GuidanceConfig`, :func:`make_guide`):

* **attack**: the attacker (:func:`choose_attacker`: the moving vehicle or cyclist, not behind the ego, that can
  come closest to the ego's logged position at the same time) closes on a spot at the ego's logged front bumper
  (``lead_gap_m``) *at the same time*: a soft minimum over the waypoints in ``window_s`` of the
  distance, pulled down (linearly, in metres) to ``target_distance_m``. Ending up right in front of the ego
  makes the time to collision short while braking still avoids it;
* **on road**: vehicles and cyclists stay within ``lane_half_width_m`` of a lane centreline and keep their
  circles ``road_margin_m`` inside the drivable area (distance fields rasterised around the ego and sampled
  bilinearly, so the cost is differentiable in the positions);
* **no collisions among non-ego agents**: every agent is three circles along its heading; overlaps between a
  generated agent and any other non-ego agent (generated or held fixed) are penalised;
* **kinematics**: accelerations between waypoints above ``max_accel_mps2`` (vehicles; a third of it for
  pedestrians) are penalised;
* **prior**: the re-anchoring changes the accelerations of the network's prediction (integrated twice into
  positions, so the whole future moves smoothly) and pays for the squared changes: the trust region that keeps
  the sample near the learned distribution.

Costs are in metres in the scenario's local frame; only generated tokens move. :func:`adversarial_variants`
chooses the attackers, samples K variants per scenario and returns them with their lineage; whether they stay
avoidable is checked afterwards (:func:`~worldengine_lab.variants.realism.closed_loop_check`).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..datatypes import EGO_INDEX, AgentType, Scenario, Variant
from ._paths import batched_interp
from .bwm import SMOOTHING, default_agents, sample_variants, smoothing_matrix
from .bwm_features import BWMBatch, pack_scenes, to_local
from .bwm_model import BehaviourWorldModel
from .limits import FeasibilityConfig

__all__ = ["GuidanceConfig", "choose_attacker", "distance_fields", "make_guide", "adversarial_variants",
           "guidance_cost"]

logger = logging.getLogger(__name__)

_ATTACKER_TYPES = (int(AgentType.VEHICLE), int(AgentType.BICYCLE))


@dataclass(frozen=True)
class GuidanceConfig:
    """Weights and settings of the guided sampling (costs in m, m/s^2)."""

    attack_weight: float = 2.0
    """Weight of the attack cost (0: realism guidance only)."""
    target_distance_m: float = 1.0
    """Distance to the target spot (just ahead of the ego's logged position) the attacker is pulled down to, m."""
    lead_gap_m: float = -2.0
    """Bumper-to-bumper gap of the target spot ahead of the ego's logged front (m; negative overlaps the ego's
    front): the attacker comes at the ego from the front (a cut-in, a crossing, a brake check), where braking
    can still avoid it, not from the side or from behind."""
    window_s: tuple[float, float] = (1.0, 3.0)
    """Seconds after now in which the attacker closes on the ego (the closed-loop episode is 4 s)."""
    softmin_m: float = 1.0
    """Temperature of the soft minimum over the window, m."""
    road_weight: float = 1.0
    """Weight of the on-road cost."""
    lane_half_width_m: float = 1.2
    """Distance to the nearest lane centreline allowed without cost, m."""
    road_margin_m: float = 0.4
    """Clearance between an agent's circles and the drivable area's edge, m."""
    collision_weight: float = 10.0
    """Weight of the non-ego collision cost."""
    collision_margin_m: float = 0.3
    """Extra clearance between the circles of two agents, m."""
    kinematics_weight: float = 0.2
    """Weight of the acceleration cost."""
    max_accel_mps2: float = 4.0
    """Largest acceleration magnitude between waypoints without cost (vehicles), m/s^2."""
    prior_weight: float = 0.02
    """Weight of the squared acceleration changes of the re-anchoring ((m/s^2)^2, summed over a token): the pull
    towards the network's prediction."""
    iterations: int = 10
    """Gradient steps of each re-anchoring."""
    final_iterations: int = 60
    """Gradient steps at the last reverse step."""
    step_size: float = 0.2
    """Largest change of an acceleration per re-anchoring step (Adam step), m/s^2."""
    grad_scale: float = 1.0
    """Adam's epsilon: gradients much smaller than this make proportionally smaller steps (so agents the cost
    barely touches barely move)."""
    start_fraction: float = 0.0
    """Re-anchor only from this fraction of the reverse steps on (0: from the first)."""
    smoothing: float = SMOOTHING
    """Costs are measured on the waypoints smoothed as :func:`~worldengine_lab.variants.bwm.write_futures` will
    smooth them (weight of the jerk penalty)."""
    grid_resolution_m: float = 1.0
    """Cell size of the distance fields, m."""
    grid_size_m: float = 400.0
    """Side of the square distance fields centred on the ego at now, m (points outside cost nothing)."""


# ------------------------------------------------------------------------------------------------ attacker
def choose_attacker(scenario: Scenario, window_s: tuple[float, float] = (1.5, 4.0), accel_mps2: float = 3.0,
                    max_gap_m: float = 8.0, rank: int = 0) -> int:
    """Index of the attacker (-1: none): the ``rank``-th best moving vehicle or cyclist observed at now, not behind
    the ego, by how close it can come to the ego's logged position at the same time within ``window_s``.

    The reach of a candidate at time tau is its constant-velocity position give or take ``accel_mps2 tau^2 / 2``;
    its gap is ``min_tau (|ego(tau) - cv(tau)| - accel tau^2 / 2)``. Candidates with a gap above ``max_gap_m``
    cannot close on the ego in time and are never chosen; ties go to the one nearer the ego's path.
    """
    s, a = scenario, scenario.agents
    k0, k1 = (int(round(w / s.dt)) for w in window_s)
    steps = s.t0 + np.arange(k0, k1 + 1)
    steps = steps[steps < s.num_steps]
    if not len(steps):
        return -1
    ego_ok = a.valid[steps, EGO_INDEX]
    tau = (steps - s.t0) * s.dt
    p0, v0 = a.xy[s.t0].astype(np.float64), a.vel_xy[s.t0].astype(np.float64)  # [N, 2]
    cv = p0[:, None] + v0[:, None] * tau[None, :, None]  # [N, S, 2]
    gap = np.linalg.norm(a.xy[steps, EGO_INDEX][None] - cv, axis=-1) - 0.5 * accel_mps2 * tau[None] ** 2
    gap = np.where(ego_ok[None], gap, np.inf).min(1)  # [N]
    path = a.xy[s.t0:steps[-1] + 1, EGO_INDEX][a.valid[s.t0:steps[-1] + 1, EGO_INDEX]].astype(np.float64)
    to_path = np.linalg.norm(p0[:, None] - path[None], axis=-1).min(1) if len(path) else np.zeros(len(p0))
    yaw = float(a.yaw[s.t0, EGO_INDEX])
    ahead = (p0 - p0[EGO_INDEX]) @ np.array([np.cos(yaw), np.sin(yaw)])
    moving = np.linalg.norm(v0, axis=-1) > 0.5
    ok = a.valid[s.t0] & np.isin(a.agent_type, _ATTACKER_TYPES) & (ahead > 0.0) & moving & (gap <= max_gap_m)
    ok[EGO_INDEX] = False
    order = np.lexsort((to_path, np.maximum(gap, 0.0).round(0)))
    order = order[ok[order]]
    return int(order[rank]) if rank < len(order) else -1


# ---------------------------------------------------------------------------------------- distance fields
def _lane_mask(s: Scenario, origin: np.ndarray, g: int, res: float) -> np.ndarray:
    """``[G, G]`` bool cells holding a lane centreline point."""
    lanes = s.map.lanes
    mask = np.zeros((g, g), bool)
    if not len(lanes) or lanes.xy.shape[1] < 2:
        return mask
    xy = lanes.xy.astype(np.float64)
    seg = np.linalg.norm(np.diff(xy, axis=1), axis=-1) * (lanes.valid[:, 1:] & lanes.valid[:, :-1])
    s_cum = np.concatenate([np.zeros((len(xy), 1)), np.cumsum(seg, 1)], 1)
    q = np.minimum(np.arange(0.0, float(s_cum[:, -1].max()) + res, res / 2.0)[None], s_cum[:, -1:])
    pts = batched_interp(q, s_cum, xy).reshape(-1, 2)
    ij = np.round((pts - origin) / res).astype(np.int64)
    inside = (ij >= 0).all(1) & (ij < g).all(1)
    mask[ij[inside, 1], ij[inside, 0]] = True
    return mask


def _drivable_mask(s: Scenario, origin: np.ndarray, g: int, res: float) -> np.ndarray | None:
    """``[G, G]`` bool cells whose centre is on the drivable area (None when the map has none)."""
    import shapely

    from .feasibility import _drivable_polygons

    found = _drivable_polygons(s)
    if found is None:
        return None
    polys, hole = found
    gx, gy = np.meshgrid(origin[0] + res * np.arange(g), origin[1] + res * np.arange(g))  # row i: y, column j: x
    inside = shapely.contains_xy(polys[:, None], gx.reshape(1, -1), gy.reshape(1, -1))  # [D, G * G]
    on = inside[~hole].any(0) & ~inside[hole].any(0)
    return on.reshape(g, g)


def distance_fields(scenarios: Sequence[Scenario], config: GuidanceConfig = GuidanceConfig()
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance fields on a square grid around each ego at now.

    Returns ``fields [B, 2, G, G]`` (m): channel 0 the distance to the nearest lane centreline, channel 1 the
    signed distance to the drivable area's edge (positive inside; maps without drivable areas use the
    centreline distance minus half a lane), and ``origin [B, 2]`` (local-frame position of cell (0, 0)'s centre,
    m); cell (i, j) is at ``origin + (j, i) * resolution``.
    """
    from scipy.ndimage import distance_transform_edt

    res = config.grid_resolution_m
    g = int(round(config.grid_size_m / res))
    out, origins = [], []
    for s in scenarios:  # one raster per scene
        origin = s.agents.xy[s.t0, EGO_INDEX].astype(np.float64) - config.grid_size_m / 2.0
        lane = _lane_mask(s, origin, g, res)
        lane_d = distance_transform_edt(~lane) * res if lane.any() else np.full((g, g), 50.0)
        on = _drivable_mask(s, origin, g, res)
        if on is None or not on.any():
            signed = 1.75 - lane_d
        else:
            signed = distance_transform_edt(on) * res - distance_transform_edt(~on) * res
        out.append(np.stack([lane_d, signed]))
        origins.append(origin)
    return torch.as_tensor(np.stack(out), dtype=torch.float32), torch.as_tensor(np.stack(origins))


def _sample_field(field: torch.Tensor, origin: torch.Tensor, xy: torch.Tensor, res: float) -> torch.Tensor:
    """Bilinear samples of ``field [B, C, G, G]`` at local-frame points ``xy [B, ..., 2]`` -> ``[B, C, ...]`` (m);
    points off the grid get the border value."""
    b, ch, g = field.shape[0], field.shape[1], field.shape[-1]
    rel = (xy - origin.view(b, *([1] * (xy.ndim - 2)), 2).to(xy.dtype)) / res  # cell units
    norm = (rel / (g - 1)) * 2 - 1  # align_corners=True: -1 .. 1 over the cell centres
    grid = norm.reshape(b, 1, -1, 2).float()
    out = torch.nn.functional.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(b, ch, *xy.shape[1:-1])


# ---------------------------------------------------------------------------------------------- the cost
def _headings(rel: torch.Tensor, yaw0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine ``[B, N, W]`` of the direction of motion into each waypoint of ``rel [B, N, W, 2]`` (m, local
    axes, relative to the position at now); the heading at now ``yaw0 [B, N]`` while standing."""
    prev = torch.cat([torch.zeros_like(rel[:, :, :1]), rel[:, :, :-1]], 2)
    d = rel - prev
    u0 = torch.stack([torch.cos(yaw0), torch.sin(yaw0)], -1)[:, :, None, :].to(rel.dtype)
    length = d.norm(dim=-1, keepdim=True)
    w = (length / 0.5).clamp(max=1.0)  # blend towards the motion direction once moving
    u = w * d / length.clamp(min=1e-6) + (1 - w) * u0
    u = u / u.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    return u[..., 0], u[..., 1]


def guidance_cost(x0: torch.Tensor, model: BehaviourWorldModel, batch: BWMBatch, attacker: torch.Tensor,
                  fields: tuple[torch.Tensor, torch.Tensor], config: GuidanceConfig = GuidanceConfig()
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-scene guidance cost ``[B]`` of clean tokens ``x0 [B, N, W, 2]`` (scaled) and its parts (``attack``,
    ``road``, ``collision``, ``kinematics``; unweighted).

    ``attacker [B]`` is the token index of each scene's attacker (-1: none); ``fields`` is
    :func:`distance_fields` output.
    """
    cfg = config
    gen = (batch.generate & batch.token_valid)
    res_m = x0 * model.scale  # [B, N, W, 2] residual to constant velocity, m, own frame
    smooth = torch.from_numpy(smoothing_matrix(res_m.shape[2], cfg.smoothing)).to(res_m.dtype)
    own = torch.einsum("vw,bnwc->bnvc", smooth, res_m) + batch.cv  # what write_futures will write
    pose0 = batch.pose0.to(own.dtype)
    rel = to_local(own, pose0) - pose0[:, :, None, :2]  # local-frame axes, relative to the position at now
    local = rel + pose0[:, :, None, :2]
    b, n, w, _ = own.shape
    times = batch.times_s.to(own.dtype)
    parts: dict[str, torch.Tensor] = {}
    # attack: soft minimum of the attacker's distance to a spot at the ego's logged front at the same time
    has = attacker >= 0
    ai = attacker.clamp(min=0)
    att_xy = local[torch.arange(b), ai]  # [B, W, 2]
    ego_rel = rel[:, EGO_INDEX].detach()
    ego_prev = torch.cat([torch.zeros_like(ego_rel[:, :1]), ego_rel[:, :-1]], 1)
    yaw_e = pose0[:, EGO_INDEX, 2]
    u0 = torch.stack([torch.cos(yaw_e), torch.sin(yaw_e)], -1)[:, None]
    step_e = ego_rel - ego_prev
    fwd = torch.where(step_e.norm(dim=-1, keepdim=True) > 0.2, step_e, u0)
    fwd = fwd / fwd.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    lead = (batch.size[:, EGO_INDEX, 0] + batch.size[torch.arange(b), ai, 0]).to(own.dtype) / 2 + cfg.lead_gap_m
    target = local[:, EGO_INDEX].detach() + fwd * lead[:, None, None]
    in_win = (times >= cfg.window_s[0]) & (times <= cfg.window_s[1])
    ok = batch.future_valid[:, EGO_INDEX] & in_win[None]
    d = (att_xy - target).norm(dim=-1)
    d = torch.where(ok, d, torch.full_like(d, 1e3))
    soft = -cfg.softmin_m * torch.logsumexp(-d / cfg.softmin_m, -1)
    parts["attack"] = torch.where(has & ok.any(-1), torch.relu(soft - cfg.target_distance_m), torch.zeros_like(soft))
    # circles along each agent's heading (three per agent, the end ones touching the box ends)
    c, s_ = _headings(rel, pose0[..., 2])
    half_len = batch.size[..., 0].to(own.dtype) / 2
    radius = (batch.size[..., 1].to(own.dtype) / 2).clamp(min=0.3)  # [B, N]
    offs = torch.tensor([-1.0, 0.0, 1.0], dtype=own.dtype)
    along = (half_len[..., None] - radius[..., None]).clamp(min=0.0) * offs  # [B, N, 3]
    centres = local[..., None, :] + along[:, :, None, :, None] * torch.stack([c, s_], -1)[..., None, :]  # [B,N,W,3,2]
    # on road: near a lane centreline, and every circle inside the drivable area (vehicles and cyclists)
    field, origin = fields
    lane_d = _sample_field(field[:, :1], origin, local, cfg.grid_resolution_m)[:, 0]  # [B, N, W]
    inside = _sample_field(field[:, 1:], origin, centres, cfg.grid_resolution_m)[:, 0]  # [B, N, W, 3]
    half = cfg.grid_size_m / 2.0 - 2.0 * cfg.grid_resolution_m
    on_grid = ((local - (origin[:, None, None, :].to(local.dtype) + cfg.grid_size_m / 2.0)).abs() < half).all(-1)
    # agents already off a lane or the drivable area at now (parked on a verge, in a driveway) are exempt
    now = _sample_field(field, origin, pose0[:, :, None, :2], cfg.grid_resolution_m)[..., 0]  # [B, 2, N]
    was_ok = (now[:, 0] <= cfg.lane_half_width_m + 0.5) & (now[:, 1] >= radius + cfg.road_margin_m - 0.2)
    roadish = (torch.isin(batch.agent_type, torch.tensor(_ATTACKER_TYPES)) & gen & was_ok)[..., None] & on_grid
    edge = torch.relu(radius[:, :, None, None] + cfg.road_margin_m - inside).square().sum(-1)
    parts["road"] = ((torch.relu(lane_d - cfg.lane_half_width_m).square() + edge) * roadish).sum((1, 2))
    # collisions among non-ego agents
    valid_t = torch.where(gen[..., None], torch.ones_like(batch.future_valid), batch.future_valid)
    valid_t = valid_t & batch.token_valid[..., None]
    valid_t[:, EGO_INDEX] = False
    diff = centres[:, :, None, :, :, None] - centres[:, None, :, :, None, :]  # [B, N, N, W, 3, 3, 2]
    dd = diff.square().sum(-1).clamp(min=1e-9).sqrt()
    reach = radius[:, :, None, None, None, None] + radius[:, None, :, None, None, None] + cfg.collision_margin_m
    pair_ok = (valid_t[:, :, None] & valid_t[:, None, :]) & (gen[:, :, None] | gen[:, None, :])[..., None]
    pair_ok = pair_ok & ~torch.eye(n, dtype=torch.bool)[None, :, :, None]
    over = torch.relu(reach - dd).square().amax((-1, -2)) * pair_ok  # [B, N, N, W]
    parts["collision"] = over.sum((1, 2, 3)) / 2
    # kinematics: acceleration between waypoints (the state at now and one step before it included)
    step = times[0]
    v0 = batch.cv[:, :, 0].to(own.dtype) / step  # [B, N, 2] own frame
    c0, s0 = torch.cos(pose0[..., 2]), torch.sin(pose0[..., 2])
    v0_local = torch.stack([c0 * v0[..., 0] - s0 * v0[..., 1], s0 * v0[..., 0] + c0 * v0[..., 1]], -1)
    pts = torch.cat([-v0_local[:, :, None] * step, torch.zeros_like(rel[:, :, :1]), rel], 2)  # [B, N, W + 2, 2]
    acc = (pts[:, :, 2:] - 2 * pts[:, :, 1:-1] + pts[:, :, :-2]) / step ** 2  # [B, N, W, 2]
    ped = batch.agent_type == int(AgentType.PEDESTRIAN)
    limit = torch.where(ped, cfg.max_accel_mps2 / 3.0, cfg.max_accel_mps2)[..., None]
    parts["kinematics"] = (torch.relu(acc.norm(dim=-1) - limit).square() * gen[..., None]).sum((1, 2))
    total = (cfg.attack_weight * parts["attack"] + cfg.road_weight * parts["road"]
             + cfg.collision_weight * parts["collision"] + cfg.kinematics_weight * parts["kinematics"])
    return total, parts


def _shift(u: torch.Tensor, step: float, pose0: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Scaled-token change ``[B, N, W, 2]`` made by acceleration changes ``u [B, N, W, 2]`` (m/s^2, local axes)
    held over each waypoint interval from now: twice integrated, rotated into each agent's frame."""
    vel = torch.cumsum(u, 2) * step
    pos = torch.cumsum(vel, 2) * step  # [B, N, W, 2] m, local axes
    c, s = torch.cos(pose0[..., 2])[..., None], torch.sin(pose0[..., 2])[..., None]
    own = torch.stack([c * pos[..., 0] + s * pos[..., 1], -s * pos[..., 0] + c * pos[..., 1]], -1)
    return own / scale


def make_guide(model: BehaviourWorldModel, batch: BWMBatch, attacker: torch.Tensor,
               fields: tuple[torch.Tensor, torch.Tensor], config: GuidanceConfig = GuidanceConfig()):
    """A :data:`~worldengine_lab.variants.bwm.Guide`: from the network's prediction at every reverse step, a few
    Adam steps on :func:`guidance_cost` over **acceleration changes** (m/s^2 per waypoint interval, integrated
    twice into positions), so that a pull on one waypoint moves the whole future smoothly (more steps at the last
    reverse step). The prior term penalises the squared acceleration changes."""
    steps = model.config.sample_steps
    first = int(math.floor(config.start_fraction * steps))
    movable = (batch.generate & batch.token_valid)[..., None, None].float()
    dt_w = float(batch.times_s[0])
    pose0 = batch.pose0.float()

    def guide(x0_hat: torch.Tensor, step: int, t: int) -> torch.Tensor:
        if step < first:
            return x0_hat
        iters = config.final_iterations if step == steps - 1 else config.iterations
        anchor = x0_hat.detach()
        u = torch.zeros_like(anchor, requires_grad=True)
        opt = torch.optim.Adam([u], lr=config.step_size, eps=config.grad_scale)
        with torch.enable_grad():
            for _ in range(iters):  # a few gradient steps of the re-anchoring
                x = anchor + _shift(u * movable, dt_w, pose0, model.scale)
                total, _ = guidance_cost(x, model, batch, attacker, fields, config)
                total = total + config.prior_weight * (u * movable).square().sum((1, 2, 3))
                opt.zero_grad()
                total.sum().backward()
                opt.step()
        return (anchor + _shift(u.detach() * movable, dt_w, pose0, model.scale)).detach()

    return guide


def adversarial_variants(model: BehaviourWorldModel, scenarios: Sequence[Scenario], per_scenario: int = 1,
                         seed: int = 0, config: GuidanceConfig = GuidanceConfig(), companions: int = 0,
                         feasibility: FeasibilityConfig = FeasibilityConfig(),
                         objective: str = "adversarial: attacker closes on the ego") -> list[Variant]:
    """``per_scenario`` guided variants of each scenario that has an attacker (others are skipped).

    Variant k of a scenario generates its ``k % 2``-th ranked attacker when there are two (else the first) plus
    the ``companions`` agents nearest to it; everything else is held at its logged future.
    """
    reqs: list[tuple[Scenario, np.ndarray, int, int]] = []
    for s in scenarios:  # request list: scenario x variant index
        first = choose_attacker(s)
        if first < 0:
            logger.info("no attacker near the ego's path in %s; skipped", s.scenario_id)
            continue
        second = choose_attacker(s, rank=1)
        for k in range(per_scenario):
            att = second if (k % 2 == 1 and second >= 0) else first
            others = default_agents(s, model.config.features.max_agents)
            a = s.agents
            near = others[others != att]
            near = near[np.argsort(np.linalg.norm(a.xy[s.t0, near] - a.xy[s.t0, att], axis=-1), kind="stable")]
            reqs.append((s, np.concatenate([[att], near[:companions]]).astype(np.int64), att, k))
    if not reqs:
        return []
    items = [r[0] for r in reqs]
    gen = [r[1] for r in reqs]
    batch = pack_scenes(items, model.config.features, gen)
    tok = torch.tensor([int(np.flatnonzero(batch.agent_index[i].numpy() == r[2])[0]) for i, r in enumerate(reqs)])
    guide = make_guide(model, batch, tok, distance_fields(items, config), config)
    return sample_variants(model, items, gen, seed=seed, guide=guide, guidance="adversarial",
                           attackers=[r[2] for r in reqs], index=[r[3] for r in reqs], objective=objective,
                           feasibility=feasibility, batch=batch)
