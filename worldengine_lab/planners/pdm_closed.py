"""The rule-based expert in the PDM-Closed style (spec/metrics.md §2.14), also the reference for ego progress.

At each call, for every scenario: the route centreline and its lateral offsets (default −1, 0, +1 m) ×
IDM longitudinal profiles at fractions (default 0.2 … 1.0) of the lane speed limit give 15 proposals of 4 s
at 0.1 s. The leader on each path is the nearest agent ahead whose box overlaps the path corridor under a
constant-velocity forecast, or a red on-route signalised connector (a stopped obstacle at its entry). Each
proposal is simulated with the LQR tracker + kinematic bicycle from the actual ego state and scored with the
PDM scorer against the constant-velocity forecast of the agents (EP normalised over the proposals); the best
score wins (ties: more progress). The planner returns the winning proposal's path poses (what a controller
should track), not its tracked simulation, as PDM-Closed does.

Batching: paths, IDM profiles, tracking and scoring are vectorised over the proposals of a scenario; the
scenarios of a batch are visited one after another because each has its own map (the scorer works per scene).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import torch

from ..datatypes import Scenario, TrafficLightStatus
from ..metrics.observations import ObjectTracks
from ..metrics.pdm import ScorerConfig, score_proposals
from ..metrics.scoring_map import ScoringMap
from ..sim.idm import PDMIDMParams, pdm_idm_profile
from ..sim.state import EGO_REAR_TO_CENTER_M, EGO_REAR_TO_FRONT_M, EGO_WIDTH_M, VX, X, Y, YAW, wrap_angle
from ..sim.poses import states_from_poses
from ..sim.tracker import simulate
from .base import PLAN_NUM_POSES, Observation

__all__ = ["PDMClosedConfig", "PDMClosedPlanner"]


@dataclass(frozen=True)
class PDMClosedConfig:
    """Parameters of the PDM-Closed expert.

    Attributes:
        speed_fractions: IDM target speeds as fractions of the lane speed limit.
        lateral_offsets_m: offsets of the centreline paths, m (+ = left).
        fallback_speed_mps: target speed where the route lanes carry no limit, m/s.
        idm: IDM constants (§2.14).
        corridor_margin_m: an agent is on a path if its lateral distance is below half the ego width plus half
            its own width plus this margin, m.
        scorer: scorer variant; EP is normalised over the batch of proposals (``reference="batch"``).
        tracking: how proposals are rolled out for scoring: ``"lqr"`` (NAVSIM's PDM-Closed: the LQR tracker +
            kinematic bicycle from the actual ego state) or ``"perfect"`` (the ego placed on the proposal, as
            World Engine's closed loop executes plans; use it when the simulator tracks perfectly).
        recenter_m: the scoring raster is rebuilt around the point 2 s ahead of the ego (at most 40 m) once
            that point is this far from the raster's centre, m (off-raster points take the slow exact path).
    """

    speed_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    lateral_offsets_m: tuple[float, ...] = (-1.0, 0.0, 1.0)
    fallback_speed_mps: float = 15.0
    idm: PDMIDMParams = field(default_factory=PDMIDMParams)
    corridor_margin_m: float = 0.3
    scorer: ScorerConfig = field(default_factory=lambda: ScorerConfig(reference="batch"))
    tracking: Literal["lqr", "perfect"] = "lqr"
    recenter_m: float = 20.0


@dataclass(frozen=True)
class _Route:
    centerline: np.ndarray  # [C, 2] float64, m, local frame
    speed_limit_mps: float
    scoring_map: ScoringMap


class PDMClosedPlanner:
    """Rule-based expert: IDM proposals along the route, each simulated and PDM-scored; the best is driven."""

    def __init__(self, config: PDMClosedConfig = PDMClosedConfig()):
        self.config = config
        self.planner_id = "pdm_closed"
        self._routes: dict[str, _Route] = {}

    # ------------------------------------------------------------------------------------------------ episode
    def reset(self, scenarios: Sequence[Scenario], seed: int = 0) -> None:
        """Precompute each scenario's route centreline, speed limit and scoring map."""
        self._routes = {s.scenario_id: self._route_of(s) for s in scenarios}

    def scoring_map(self, scenario_id: str) -> ScoringMap | None:
        """The scoring map built at :meth:`reset` for ``scenario_id`` (None if that scenario was not reset)."""
        route = self._routes.get(scenario_id)
        return route.scoring_map if route is not None else None

    def _route_of(self, s: Scenario) -> _Route:
        smap = ScoringMap.from_scenario(s)
        limits = s.map.lane_speed_limit_mps[s.route.lane_indices] if len(s.route.lane_indices) else np.zeros(0)
        limits = limits[np.isfinite(limits) & (limits > 0)]
        speed = float(np.median(limits)) if len(limits) else self.config.fallback_speed_mps
        return _Route(smap.centerline.numpy().astype(np.float64), speed, smap)

    # ------------------------------------------------------------------------------------------------ planning
    def plan(self, obs: Observation) -> torch.Tensor:
        """``[B, 40, 3]`` body-frame rear-axle poses at 0.1 … 4.0 s."""
        out = torch.zeros(obs.batch_size, PLAN_NUM_POSES, 3, dtype=obs.dtype)
        for b, sid in enumerate(obs.scenario_ids):  # one scene at a time: each has its own map (see module doc)
            route = self._routes.get(sid)
            if route is None or len(route.centerline) < 2:
                out[b] = _constant_velocity(obs.ego_state[b], obs.dtype)
                continue
            out[b] = self._plan_one(obs, b, route).to(obs.dtype)
        return out

    def _plan_one(self, obs: Observation, b: int, route: _Route) -> torch.Tensor:
        cfg = self.config
        f64 = torch.float64
        ego = obs.ego_state[b].to(f64)
        x0, y0, yaw0, v0 = float(ego[X]), float(ego[Y]), float(ego[YAW]), max(float(ego[VX]), 0.0)
        cos0, sin0 = np.cos(yaw0), np.sin(yaw0)
        ahead = np.array([x0, y0]) + min(2.0 * v0, 40.0) * np.array([cos0, sin0])
        if np.linalg.norm(ahead - route.scoring_map.center_xy.numpy()) > cfg.recenter_m:
            route = dataclasses.replace(route, scoring_map=route.scoring_map.recentered(ahead))
            self._routes[obs.scenario_ids[b]] = route

        # paths: centreline offsets, sampled every 0.5 m from the ego's projection onward
        cl = route.centerline
        seg = np.diff(cl, axis=0)
        seglen = np.linalg.norm(seg, axis=1)
        s_cl = np.concatenate([[0.0], np.cumsum(seglen)])
        s_ego = _project(cl, s_cl, np.array([x0, y0]))
        horizon = v0 * 4.0 + 60.0
        s_samp = s_ego + np.arange(0.0, horizon, 0.5)
        pts, tang = _sample(cl, s_cl, s_samp)  # [M, 2], [M, 2]
        normal = np.stack([-tang[:, 1], tang[:, 0]], 1)
        offsets = np.asarray(cfg.lateral_offsets_m)
        paths = pts[None] + offsets[:, None, None] * normal[None]  # [L, M, 2]
        ds = s_samp - s_ego  # [M] path arc length (offset paths use the centreline parametrisation)

        # agents under a constant-velocity forecast, in the local frame
        axy = obs.agents_xy[b, -1].to(f64).numpy()  # [N, 2] body frame, now
        avalid = obs.agents_valid[b, -1].numpy().copy()
        avalid[0] = False  # index 0 is the ego itself
        avel = obs.agents_vel[b, -1].to(f64).numpy()
        ayaw = obs.agents_yaw[b, -1].to(f64).numpy() + yaw0
        size = obs.agents_size[b].to(f64).numpy()
        rot = np.array([[cos0, -sin0], [sin0, cos0]])
        gxy = axy @ rot.T + np.array([x0, y0])
        gvel = avel @ rot.T
        t = np.arange(PLAN_NUM_POSES + 11) * 0.1  # 51 frames for the scorer
        fxy = gxy[None] + t[:, None, None] * gvel[None]  # [F, N, 2]

        # leaders per path: at each IDM step, nearest agent (or red light) inside the corridor ahead
        n_steps = PLAN_NUM_POSES
        lead_s = np.full((len(offsets), n_steps), np.inf)
        lead_v = np.zeros((len(offsets), n_steps))
        if avalid.any():
            k = np.flatnonzero(avalid)
            pos = fxy[:n_steps, k]  # [T, n, 2]
            d = pos[:, None, :, None, :] - paths[None, :, None, :, :]  # [T, L, n, M, 2]
            dist = np.linalg.norm(d, axis=-1)
            j = dist.argmin(-1)  # [T, L, n] nearest path sample
            lat = np.take_along_axis(dist, j[..., None], -1)[..., 0]
            half = EGO_WIDTH_M / 2 + size[k, 1] / 2 + cfg.corridor_margin_m
            on_path = lat < half[None, None]
            # leader rear minus the ego's rear-axle-to-front distance: IDM's gap is then bumper to bumper
            s_ag = ds[j] - size[k, 0][None, None] / 2 - EGO_REAR_TO_FRONT_M
            ahead = ds[j] > EGO_REAR_TO_CENTER_M + 0.5
            cand = np.where(on_path & ahead, s_ag, np.inf)
            best = cand.argmin(-1)  # [T, L]
            lead_s = np.take_along_axis(cand, best[..., None], -1)[..., 0].T  # [L, T]
            v_along = (gvel[k] @ np.stack([np.cos(yaw0), np.sin(yaw0)]))  # [n]
            lead_v = np.where(np.isfinite(lead_s), np.maximum(v_along[best.T], 0.0), 0.0)
        stop_s = self._red_light_stop(obs, b, cl, s_cl, s_ego, rot, np.array([x0, y0]))
        if stop_s is not None:
            lead_v = np.where(stop_s < lead_s, 0.0, lead_v)
            lead_s = np.minimum(lead_s, stop_s)

        # IDM profiles: [L paths] x [V speeds]
        nv = len(cfg.speed_fractions)
        target = torch.tensor([f * route.speed_limit_mps for f in cfg.speed_fractions], dtype=f64)
        lp = torch.as_tensor(lead_s, dtype=f64)[:, None, :].expand(-1, nv, -1)
        lv = torch.as_tensor(lead_v, dtype=f64)[:, None, :].expand(-1, nv, -1)
        prog, _ = pdm_idm_profile(torch.zeros(len(offsets), nv, dtype=f64), torch.full((len(offsets), nv), v0, dtype=f64),
                                  target.expand(len(offsets), nv), lp, lv, torch.zeros(len(offsets), nv, dtype=f64),
                                  num_steps=n_steps, params=cfg.idm)  # [L, V, 41] m along the path
        # poses along each path at the profile's progress
        ref = np.zeros((len(offsets), nv, n_steps + 1, 3))
        for li in range(len(offsets)):  # 3 paths
            px = np.interp(prog[li].numpy(), ds, paths[li, :, 0])
            py = np.interp(prog[li].numpy(), ds, paths[li, :, 1])
            hd = np.unwrap(np.arctan2(tang[:, 1], tang[:, 0]))
            ref[li, :, :, 0], ref[li, :, :, 1] = px, py
            ref[li, :, :, 2] = np.interp(prog[li].numpy(), ds, hd)
        # blend the first poses from the actual ego pose onto the path (offset fades in over 1 s)
        w = np.clip(np.arange(n_steps + 1) / 10.0, 0.0, 1.0)[None, None, :, None]
        start = np.array([x0, y0, yaw0])
        gap = start - ref[:, :, :1, :]
        gap[..., 2] = (gap[..., 2] + np.pi) % (2 * np.pi) - np.pi  # the short way round, not across ±π
        ref = ref + (1 - w) * gap
        ref_t = torch.as_tensor(ref.reshape(-1, n_steps + 1, 3), dtype=f64)
        ref_t[..., 2] = wrap_angle(ref_t[..., 2])
        init = ego[None].expand(ref_t.shape[0], -1).contiguous()
        if cfg.tracking == "perfect":
            states = torch.cat([init[:, None], states_from_poses(ref_t[:, 1:], init)], 1)  # [P, 41, D]
        else:
            states = simulate(init, ref_t)  # [P, 41, D]

        n_f = fxy.shape[0]
        objects = ObjectTracks.from_arrays(
            fxy, np.repeat(ayaw[None], n_f, 0), size[:, :2], np.repeat(gvel[None], n_f, 0),
            np.repeat(avalid[None], n_f, 0), dt=0.1, dtype=f64)
        scores = score_proposals(states, objects, route.scoring_map, cfg.scorer)
        key = scores.score * 1e3 + scores.raw_progress * 1e-3
        best = int(torch.argmax(key))
        chosen = ref_t[best, 1:]  # [40, 3] local frame: the proposal itself; the tracker only served scoring
        return _to_body(chosen, x0, y0, yaw0)

    def _red_light_stop(self, obs: Observation, b: int, cl: np.ndarray, s_cl: np.ndarray, s_ego: float,
                        rot: np.ndarray, origin: np.ndarray) -> float | None:
        """Rear-axle progress at which the ego must stop for a red on-route connector, or None."""
        red = (obs.lanes_traffic_light[b] == int(TrafficLightStatus.RED)) & obs.lanes_on_route[b]
        red &= obs.lanes_valid[b, :, 0]
        if not bool(red.any()):
            return None
        starts = obs.lanes_xy[b, red, 0].to(torch.float64).numpy() @ rot.T + origin  # entry points, local frame
        s = np.array([_project(cl, s_cl, p) for p in starts]) - s_ego
        near = np.array([np.linalg.norm(_sample(cl, s_cl, np.array([si + s_ego]))[0][0] - p) < 2.5
                         for si, p in zip(s, starts)])
        s = s[(s > EGO_REAR_TO_CENTER_M) & near]
        return float(s.min() - EGO_REAR_TO_FRONT_M) if len(s) else None


# ---------------------------------------------------------------------------------------------------- helpers
def _project(cl: np.ndarray, s_cl: np.ndarray, p: np.ndarray) -> float:
    """Arc length of the point of the polyline ``cl`` nearest to ``p``."""
    a, b = cl[:-1], cl[1:]
    ab = b - a
    tt = np.clip(((p - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-12), 0.0, 1.0)
    q = a + tt[:, None] * ab
    i = int(np.argmin(np.linalg.norm(q - p, axis=1)))
    return float(s_cl[i] + tt[i] * np.linalg.norm(ab[i]))


def _sample(cl: np.ndarray, s_cl: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points ``[M, 2]`` and unit tangents ``[M, 2]`` at arc lengths ``s`` (extrapolated straight at the ends)."""
    i = np.clip(np.searchsorted(s_cl, s, side="right") - 1, 0, len(cl) - 2)
    seg = cl[i + 1] - cl[i]
    seglen = np.maximum(np.linalg.norm(seg, axis=1), 1e-9)
    tang = seg / seglen[:, None]
    pts = cl[i] + tang * (s - s_cl[i])[:, None]
    return pts, tang


def _to_body(poses: torch.Tensor, x0: float, y0: float, yaw0: float) -> torch.Tensor:
    c, s = np.cos(yaw0), np.sin(yaw0)
    dx, dy = poses[:, 0] - x0, poses[:, 1] - y0
    return torch.stack([c * dx + s * dy, -s * dx + c * dy, wrap_angle(poses[:, 2] - yaw0)], dim=1)


def _constant_velocity(ego: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    t = torch.arange(1, PLAN_NUM_POSES + 1, dtype=dtype) * 0.1
    v = max(float(ego[VX]), 0.0)
    return torch.stack([v * t, torch.zeros_like(t), torch.zeros_like(t)], dim=1)
