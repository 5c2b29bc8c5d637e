"""The batched closed-loop environment: B scenarios stepped together at ``dt`` (10 Hz).

``ClosedLoopEnv(scenarios, config)`` packs the scenarios once (:mod:`.scene_batch`), builds the reactive
agents' reference paths (:mod:`.paths`) and the area rasters (:mod:`._checks`); then

* :meth:`ClosedLoopEnv.reset` -> :class:`SimState` at every scenario's t0 (ego state estimated from the log);
* :meth:`ClosedLoopEnv.observe` -> the planner's :class:`~worldengine_lab.planners.Observation`;
* :meth:`ClosedLoopEnv.set_plan` -> the state following a new ``[B, 40, 3]`` body-frame plan;
* :meth:`ClosedLoopEnv.step` -> the state one ``dt`` later;
* :meth:`ClosedLoopEnv.finalize` -> :class:`Episode`: every step's agent boxes and the per-step checks.

Ego: tracked with the LQR tracker + kinematic bicycle (spec §2.5, ``tracking="lqr"``), or placed exactly on the
plan's poses (World Engine's perfect tracking, spec §3.1, ``tracking="perfect"``). Other agents replay the log
(``agents="log_replay"``) or, when dynamic, drive with the reactive IDM along their paths (``"reactive"``,
spec §3.2). Every step gets ego-vs-agent collision flags (bounding circles, then separating axes), the
drivable-area test of the ego corners and the on-route-lane test of the ego centre ("oncoming", spec §2.6).

The checks never change the dynamics (episodes do not terminate early, spec §3.1), so :meth:`finalize` computes
them for all steps at once, batched over time; ``step`` only advances the ego and the reactive agents, and agent
boxes are materialised lazily when an observation, an IDM update or ``finalize`` needs them. The buffers of a
:class:`SimState` are shared by the states of one episode (step k writes row k + 1).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from ..datatypes import Scenario, TrafficLightStatus
from ..errors import ScenarioValidationError, ShapeError, WorldEngineLabError
from ..planners.base import PLAN_NUM_POSES, Observation
from ._checks import AreaRasters, area_flags, build_area_rasters, ego_agent_overlaps
from .config import SimConfig
from .dynamics import bicycle_step
from .geometry import EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M, EGO_RADIUS_M, box_corners
from .idm import find_leaders, reactive_agent_step, reactive_idm_accel
from .observe import AgentBoxes, build_observation
from .paths import AgentPaths, build_paths, lookup_rows
from .poses import reference_poses, states_from_poses
from .scene_batch import SceneBatch, pack_scenarios
from .state import EGO_REAR_TO_CENTER_M, VX, VY, X, Y, YAW, YAW_RATE
from .tracker import ReferenceProfiles, fit_profiles, lqr_controls

__all__ = ["SimState", "Trajectory", "Episode", "ClosedLoopEnv"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trajectory:
    """Append-only buffers of one episode; row k is k steps after t0 (k = 0 .. S).

    Attributes:
        ego: ``[S + 1, B, D]`` ego rear-axle states.
        agent_s: ``[S + 1, B, N]`` arc length of reactive agents on their paths, m; agent_v: their speed, m/s.
        actions: ``[S + 1, B, 2]`` (accel m/s^2, steering rate rad/s) applied from each step (0 for perfect
            tracking and for the last row).
        plan_index: ``[S + 1]`` int64, the plan executed from each step (-1: none).
        boxes: :class:`AgentBoxes` ``[W, B, N, ...]`` on the window timeline (row ``hist + k``), initialised
            from the log and completed lazily for simulated steps; ``filled[0]`` is the number of window rows
            already completed.
    """

    ego: torch.Tensor
    agent_s: torch.Tensor
    agent_v: torch.Tensor
    actions: torch.Tensor
    plan_index: torch.Tensor
    boxes: AgentBoxes
    filled: list[int]


@dataclass(frozen=True)
class SimState:
    """The simulation state after ``step`` steps from t0.

    Attributes:
        step: steps since t0.
        ego: ``[B, D]`` ego rear-axle state, local frame.
        agent_s, agent_v: ``[B, N]`` arc length (m) and speed (m/s) of reactive agents; agent_a ``[B, N]`` the
            acceleration held since the last IDM update, m/s^2.
        traj: the episode's shared buffers.
        plan: ``[B, 40, 3]`` the plan being executed in the global frame (None before the first plan).
        plan_step: the step at which ``plan`` was made; num_plans: plans so far.
        profiles: LQR reference profiles of ``plan`` (``tracking="lqr"``).
    """

    step: int
    ego: torch.Tensor
    agent_s: torch.Tensor
    agent_v: torch.Tensor
    agent_a: torch.Tensor
    traj: Trajectory
    plan: torch.Tensor | None = None
    plan_step: int = -1
    num_plans: int = 0
    profiles: ReferenceProfiles | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Episode:
    """Everything an episode produced, on the window timeline (row ``hist + k`` is k steps after t0).

    Attributes:
        boxes: :class:`AgentBoxes` ``[W, B, N, ...]``, history rows from the log, then the simulated steps
            (agent 0 is the ego's box, centre = rear axle + r2c).
        ego / actions / plan_index: as in :class:`Trajectory`, ``[S + 1, ...]``.
        collision: ``[S + 1, B, N]`` bool, the ego footprint overlaps agent n (touching counts).
        offroad: ``[S + 1, B]`` bool, an ego corner lies outside the drivable area.
        oncoming: ``[S + 1, B]`` bool, the ego centre lies outside every on-route lane.
        num_steps: S.
    """

    boxes: AgentBoxes
    ego: torch.Tensor
    actions: torch.Tensor
    plan_index: torch.Tensor
    collision: torch.Tensor
    offroad: torch.Tensor
    oncoming: torch.Tensor
    num_steps: int


class ClosedLoopEnv:
    """Static data of a batched closed-loop episode over ``scenarios`` (see the module docstring)."""

    def __init__(self, scenarios: Sequence[Scenario], config: SimConfig = SimConfig()) -> None:
        config.validate()
        if not len(scenarios):
            raise ScenarioValidationError("ClosedLoopEnv(scenarios): expected at least one Scenario, received none")
        for s in scenarios:
            if not isinstance(s, Scenario):
                raise ScenarioValidationError(
                    f"ClosedLoopEnv(scenarios): expected Scenario objects, received {type(s).__name__}")
            if abs(float(s.dt) - config.dt_s) > 1e-9:
                raise ScenarioValidationError(
                    f"Scenario {s.scenario_id!r}.dt: expected {config.dt_s} s (SimConfig.dt_s), received {s.dt}; "
                    "resample the log or set SimConfig(dt_s=...)")
        self.config = config
        self.hist = config.history_steps - 1
        self.agent_every = int(round(config.agent_period_s / config.dt_s))
        self.batch: SceneBatch = pack_scenarios(scenarios, config.num_steps, self.hist, config.dtype)
        bt = self.batch
        self.half = bt.size_lwh[..., :2] / 2  # [B, N, 2] m
        self.reach2 = (EGO_RADIUS_M + self.half.norm(dim=-1)) ** 2  # [B, N] m^2, collision broad phase
        self.not_ego = torch.ones_like(bt.present)
        self.not_ego[:, 0] = False
        self.reactive = torch.zeros_like(bt.present)
        self.reactive_rows = torch.zeros(0, dtype=torch.int64)  # flat b * N + n of reactive agents
        self.paths: AgentPaths | None = None
        if config.agents == "reactive":
            self._init_reactive(scenarios)
        self.rasters: AreaRasters | None = None
        if config.check_areas:
            center = bt.ego_state[:, :2] + EGO_REAR_TO_CENTER_M * torch.stack(
                [torch.cos(bt.ego_state[:, YAW]), torch.sin(bt.ego_state[:, YAW])], dim=-1)
            horizon = config.num_steps * config.dt_s
            reach = 20.0 + max(15.0, float(bt.ego_state[:, VX].abs().max())) * horizon + 2.0 * horizon ** 2
            self.rasters = build_area_rasters(scenarios, center, min(reach, 400.0), config.raster_resolution_m)
            for s, ok_d, ok_r in zip(scenarios, self.rasters.has_drivable.tolist(), self.rasters.has_route.tolist()):
                if not ok_d:
                    log.warning("scenario %r has no drivable areas: its ego is never flagged off-road", s.scenario_id)
                if not ok_r:
                    log.warning("scenario %r has no route lanes: its ego is never flagged oncoming", s.scenario_id)

    def _init_reactive(self, scenarios: Sequence[Scenario]) -> None:
        bt, cfg = self.batch, self.config
        no_lanes = [s.scenario_id for s in scenarios if s.map.num_lanes == 0]
        if no_lanes and not cfg.allow_missing_lanes:
            raise ScenarioValidationError(
                f"reactive agents follow map lanes, but scenarios {no_lanes[:5]} have a map without lanes; use "
                "SimConfig(agents='log_replay'), or SimConfig(allow_missing_lanes=True) to drive them along their "
                "logged paths only")
        for sid in no_lanes:
            log.warning("scenario %r has no lanes: reactive agents follow their logged paths only", sid)
        types = torch.tensor(cfg.reactive_types, dtype=torch.int64)
        is_type = (bt.agent_type.unsqueeze(-1) == types).any(-1)
        self.reactive = bt.present & self.not_ego & is_type & bt.future_valid[..., 0] \
            & (bt.position_std > cfg.dynamic_std_m)
        self.reactive_rows = torch.nonzero(self.reactive.reshape(-1)).squeeze(1)
        horizon = cfg.num_steps * cfg.dt_s
        self.paths = build_paths(bt.future_xy, bt.future_yaw, bt.future_valid, bt.lanes, bt.signal_lane,
                                 self.reactive, spacing_m=cfg.path_spacing_m, max_length_m=60.0 + 20.0 * horizon)

    # -- episode ------------------------------------------------------------------------------------------------
    def reset(self) -> SimState:
        """The state at t0: logged ego state, reactive agents at the start of their paths at logged speed."""
        bt, cfg = self.batch, self.config
        s1 = cfg.num_steps + 1
        b, n = bt.size_lwh.shape[:2]
        ego = bt.ego_state.to(cfg.dtype)
        speed0 = torch.where(self.reactive, bt.log_vel[self.hist].norm(dim=-1), 0.0)
        traj = Trajectory(
            ego=torch.zeros(s1, b, ego.shape[-1], dtype=cfg.dtype), agent_s=torch.zeros(s1, b, n, dtype=cfg.dtype),
            agent_v=torch.zeros(s1, b, n, dtype=cfg.dtype), actions=torch.zeros(s1, b, 2, dtype=cfg.dtype),
            plan_index=torch.full((s1,), -1, dtype=torch.int64),
            boxes=AgentBoxes(xy=bt.log_xy.clone(), yaw=bt.log_yaw.clone(), vel=bt.log_vel.clone(),
                             valid=bt.log_valid.clone()),
            filled=[self.hist],
        )
        traj.ego[0] = ego
        traj.agent_v[0] = speed0
        self._check_finite(ego, 0)
        return SimState(step=0, ego=ego, agent_s=torch.zeros_like(speed0), agent_v=speed0,
                        agent_a=torch.zeros_like(speed0), traj=traj)

    def set_plan(self, state: SimState, plan_body: torch.Tensor, planner_id: str = "planner") -> SimState:
        """Adopt a new plan ``[B, 40, 3]`` (body frame of the current ego) from the current step on.

        Raises:
            ShapeError / ScenarioValidationError: wrong batch size, shape, dtype, or NaN/inf poses.
        """
        b = self.batch.batch_size
        where = f"planner {planner_id!r}: plan(obs)"
        if not isinstance(plan_body, torch.Tensor):
            raise ShapeError(f"{where}: expected a torch.Tensor [{b}, 40, 3], received {type(plan_body).__name__}")
        if tuple(plan_body.shape) != (b, PLAN_NUM_POSES, 3):
            raise ShapeError(
                f"{where}: expected shape [{b}, {PLAN_NUM_POSES}, 3] (B scenarios x 40 poses x (x, y, yaw)), "
                f"received {list(plan_body.shape)}")
        if not plan_body.is_floating_point():
            raise ShapeError(f"{where}: expected a float tensor, received {plan_body.dtype}")
        bad = ~torch.isfinite(plan_body).all(dim=-1).all(dim=-1)
        if bool(bad.any()):
            ids = [self.batch.scenario_ids[i] for i in torch.nonzero(bad).flatten().tolist()[:5]]
            raise ScenarioValidationError(f"{where}: expected finite poses, received NaN/inf for scenarios {ids}")
        plan_body = plan_body.detach().to(self.config.dtype)
        ref = reference_poses(plan_body, state.ego[:, :3])  # [B, 41, 3] global
        profiles = fit_profiles(ref, self.config.tracker) if self.config.tracking == "lqr" else None
        return replace(state, plan=ref[:, 1:], plan_step=state.step, num_plans=state.num_plans + 1, profiles=profiles)

    def step(self, state: SimState) -> SimState:
        """Advance all scenarios by one ``dt``: ego (tracker or perfect tracking) and reactive agents."""
        cfg, tr = self.config, state.traj
        if state.plan is None:
            raise WorldEngineLabError("ClosedLoopEnv.step: no plan yet; call set_plan(state, plan) first")
        k = state.step
        if k >= cfg.num_steps:
            raise WorldEngineLabError(f"ClosedLoopEnv.step: the episode ended after {cfg.num_steps} steps")
        i = k - state.plan_step
        if i >= PLAN_NUM_POSES:
            raise WorldEngineLabError(f"ClosedLoopEnv.step: the plan made at step {state.plan_step} is exhausted")
        if cfg.tracking == "lqr":
            assert state.profiles is not None
            accel, steer_rate = lqr_controls(state.ego, state.profiles, i, cfg.tracker)
            ego = bicycle_step(state.ego, accel, steer_rate, cfg.dt_s, cfg.tracker.bicycle)
            tr.actions[k] = torch.stack([accel, steer_rate], dim=-1)
        else:
            ego = self._perfect_step(state, i)
        s, v, a = state.agent_s, state.agent_v, state.agent_a
        if self.paths is not None:
            s, v, a = self._reactive_step(state)
        tr.plan_index[k] = state.num_plans - 1
        tr.filled[0] = min(tr.filled[0], self.hist + k + 1)  # (re)writing row k + 1 invalidates its boxes
        tr.ego[k + 1] = ego
        tr.agent_s[k + 1] = s
        tr.agent_v[k + 1] = v
        if (k + 1) % self.agent_every == 0 or k + 1 == cfg.num_steps:
            self._check_finite(ego, k + 1, s, v)
        return replace(state, step=k + 1, ego=ego, agent_s=s, agent_v=v, agent_a=a)

    def observe(self, state: SimState) -> Observation:
        """The planner's view at the current step (agents and lanes in the ego body frame)."""
        k = state.step
        history = self.boxes(state.traj, k - self.hist, k + 1)
        return build_observation(self.batch, self.config, k, state.ego, history, self.hist + k)

    def finalize(self, state: SimState) -> Episode:
        """All boxes of the episode so far and the per-step checks, computed batched over time."""
        cfg, tr, k = self.config, state.traj, state.step
        boxes = self.boxes(tr, -self.hist, k + 1)
        ego = tr.ego[: k + 1]
        sim = slice(self.hist, self.hist + k + 1)
        yaw = ego[..., YAW]
        c, s = torch.cos(yaw), torch.sin(yaw)
        center = boxes.xy[sim, :, 0]  # [K, B, 2]
        collision = torch.zeros(k + 1, *self.half.shape[:2], dtype=torch.bool)
        if cfg.check_collisions:
            valid = boxes.valid[sim] & self.not_ego
            collision = ego_agent_overlaps(center.reshape(-1, 2), yaw.reshape(-1), boxes.xy[sim].flatten(0, 1),
                                           boxes.yaw[sim].flatten(0, 1), self.half.repeat(k + 1, 1, 1),
                                           valid.flatten(0, 1), self.reach2.repeat(k + 1, 1)).view_as(collision)
        offroad = torch.zeros(k + 1, self.batch.batch_size, dtype=torch.bool)
        oncoming = torch.zeros_like(offroad)
        if self.rasters is not None:
            corners = box_corners(center, c, s, EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M)  # [K, B, 4, 2] FL, RL, RR, FR
            pts = torch.cat([corners, center.unsqueeze(2)], dim=2).transpose(0, 1)  # [B, K, 5, 2]
            drivable, on_route = area_flags(self.rasters, pts.reshape(pts.shape[0], -1, 2))
            offroad = ~drivable.view(-1, k + 1, 5)[..., :4].all(dim=-1).T
            oncoming = ~on_route.view(-1, k + 1, 5)[..., 4].T
        return Episode(boxes=boxes, ego=ego, actions=tr.actions[: k + 1], plan_index=tr.plan_index[: k + 1],
                       collision=collision, offroad=offroad, oncoming=oncoming, num_steps=k)

    def boxes(self, tr: Trajectory, start: int, stop: int) -> AgentBoxes:
        """Agent boxes for steps ``start .. stop - 1`` after t0 (negative: history; at most the current step),
        time-major views of the episode's box buffers."""
        self._fill_boxes(tr, self.hist + stop)
        b = tr.boxes
        rows = slice(self.hist + start, self.hist + stop)
        return AgentBoxes(xy=b.xy[rows], yaw=b.yaw[rows], vel=b.vel[rows], valid=b.valid[rows])

    def _fill_boxes(self, tr: Trajectory, stop_row: int) -> None:
        """Complete window rows ``filled .. stop_row - 1``: reactive agents on their paths (steps >= 1) and the
        ego's box from its state (steps >= 0); other agents keep their logged boxes."""
        lo = tr.filled[0]
        if stop_row <= lo:
            return
        bx, rows = tr.boxes, slice(lo, stop_row)
        ks = slice(lo - self.hist, stop_row - self.hist)  # steps after t0
        if self.paths is not None and len(self.reactive_rows):
            first = max(ks.start, 1)
            if ks.stop > first:
                j = slice(self.hist + first, stop_row)
                s_k = tr.agent_s[first : ks.stop]  # [K, B, N]
                agent = torch.arange(s_k.shape[1] * s_k.shape[2]).view(1, *s_k.shape[1:]).expand_as(s_k)
                p_xy, tan, heading = lookup_rows(self.paths, agent, s_k)  # meaningless for non-reactive agents
                r = self.reactive
                bx.xy[j] = torch.where(r.unsqueeze(-1), p_xy.to(bx.xy.dtype), bx.xy[j])
                bx.yaw[j] = torch.where(r, heading.to(bx.yaw.dtype), bx.yaw[j])
                speed = tr.agent_v[first : ks.stop].unsqueeze(-1)
                bx.vel[j] = torch.where(r.unsqueeze(-1), speed * tan.to(bx.vel.dtype), bx.vel[j])
                bx.valid[j] |= r
        ego = tr.ego[ks]  # [K, B, D]
        c, s = torch.cos(ego[..., YAW]), torch.sin(ego[..., YAW])
        r2c = EGO_REAR_TO_CENTER_M
        bx.xy[rows, :, 0] = torch.stack([ego[..., X] + r2c * c, ego[..., Y] + r2c * s], -1)
        bx.yaw[rows, :, 0] = ego[..., YAW]
        vx, vy = ego[..., VX], ego[..., VY] + ego[..., YAW_RATE] * EGO_REAR_TO_CENTER_M  # centre velocity
        bx.vel[rows, :, 0] = torch.stack([c * vx - s * vy, s * vx + c * vy], dim=-1)
        bx.valid[rows, :, 0] = True
        tr.filled[0] = stop_row

    # -- internals --------------------------------------------------------------------------------------------
    def _check_finite(self, ego: torch.Tensor, k: int, s: torch.Tensor | None = None,
                      v: torch.Tensor | None = None) -> None:
        """Raise if an ego state (or a reactive agent's arc length / speed) is NaN/inf."""
        ok = torch.isfinite(ego).all(-1)
        if s is not None and v is not None:
            ok &= (torch.isfinite(s) & torch.isfinite(v)).all(-1)
        if not bool(ok.all()):
            bad = [self.batch.scenario_ids[i] for i in torch.nonzero(~ok).flatten()[:5].tolist()]
            raise WorldEngineLabError(
                f"closed loop: non-finite ego or agent state by step {k} after t0 in scenarios {bad}; check the "
                "plans and the logged initial states")

    def _perfect_step(self, state: SimState, i: int) -> torch.Tensor:
        """Place the ego on plan pose i with the plan's finite-difference velocity (spec §3.1)."""
        assert state.plan is not None
        return states_from_poses(state.plan[:, i : i + 1], state.ego, self.config.dt_s)[:, 0]

    def _reactive_step(self, state: SimState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every ``agent_period_s``: IDM accelerations from the current boxes (ego included); every step: move
        the reactive agents with the held acceleration."""
        cfg, bt = self.config, self.batch
        assert self.paths is not None
        accel = state.agent_a
        k = state.step
        if k % self.agent_every == 0:
            now = self.boxes(state.traj, k, k + 1)
            red = bt.signal_status[self.hist + k] == int(TrafficLightStatus.RED)
            lead = find_leaders(self.paths, state.agent_s, now.xy[0], now.yaw[0], now.vel[0], now.valid[0],
                                self.reactive, self.half[..., 0], red, cfg.idm)
            accel = reactive_idm_accel(state.agent_v, lead.speed.to(cfg.dtype), lead.distance.to(cfg.dtype),
                                       lead.has_leader, cfg.idm)
            accel = torch.where(self.reactive, accel, 0.0)
        s, v = reactive_agent_step(state.agent_s, state.agent_v, accel, cfg.dt_s)
        return s, v, accel
