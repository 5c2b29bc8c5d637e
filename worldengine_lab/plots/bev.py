"""Bird's-eye view (BEV) of a scenario and its rollouts: packed frame arrays and static plotly figures.

* :func:`bev_frames` packs everything a BEV needs into numpy arrays (:class:`BEVFrames`): the map as one
  flattened point array with offsets, per-frame agent boxes of the log and of every rollout, traffic-light
  states, the ego's logged / planned / simulated trajectories and the collision and off-road events. It is
  vectorised over agents and frames; the scenario viewer widget sends these arrays to the browser once.
* :func:`bev_figure` draws one time step as a ``plotly`` figure (reports, static use); plotly is imported on use.
* :func:`top_k_candidates` scores the vocabulary of a learned planner at every planning step of each rollout
  (one batched ``planner.top_k`` call) and returns the k best candidates with their sub-scores.

Frames and units: metres in the scenario's local frame; every trajectory is the **ego box centre** (plans and
candidates, which planners give as rear-axle poses, are shifted forward by ``ego_rear_axle_to_center_m``), so
logged, planned and simulated paths are directly comparable with the drawn boxes.

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> f = bev_frames(make_scenario(num_agents=3, num_steps=21, t0=5))
    >>> f.log.boxes.shape, f.map_kind.shape == (len(f.map_offsets) - 1,)
    ((21, 3, 5), True)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..datatypes import AgentTracks, AgentType, Polylines, Rollout, Scenario, StopLineType, TrafficLights
from ..errors import MissingDependencyError, ScenarioValidationError, ShapeError, WorldEngineLabError

if TYPE_CHECKING:  # plotly is optional and imported on use
    import plotly.graph_objects as go

__all__ = ["MAP_KINDS", "TYPE_COLORS", "LIGHT_COLORS", "PANEL_COLORS", "SUBSCORE_LABELS", "CandidateFrames",
           "TrackFrames", "BEVFrames", "box_corners", "bev_frames", "bev_figure", "top_k_candidates"]

log = logging.getLogger(__name__)

MAP_KINDS = ("drivable_area", "drivable_hole", "walkway", "crosswalk", "stop_line", "lane_boundary", "lane",
             "connector")
"""Map layer of each flattened polyline (``BEVFrames.map_kind`` codes index this tuple), in drawing order."""
_KIND = {name: code for code, name in enumerate(MAP_KINDS)}
TYPE_COLORS = {AgentType.VEHICLE: "#4c78a8", AgentType.PEDESTRIAN: "#f58518", AgentType.BICYCLE: "#54a24b",
               AgentType.TRAFFIC_CONE: "#e8590c", AgentType.BARRIER: "#9d755d", AgentType.CZONE_SIGN: "#b279a2",
               AgentType.GENERIC_OBJECT: "#868e96", AgentType.EGO: "#7048e8"}
"""Fill colour of each agent type (the ego's is the first rollout's colour)."""
LIGHT_COLORS = ("#2f9e44", "#f59f00", "#e03131", "#adb5bd")
"""Colour of each :class:`~worldengine_lab.datatypes.TrafficLightStatus` code (green, yellow, red, unknown)."""
PANEL_COLORS = ("#7048e8", "#f08c00", "#0ca678", "#1c7ed6", "#d6336c")
"""Ego colour of rollout i (cycled)."""
SUBSCORE_LABELS = ("NC", "DAC", "TTC", "C", "EP")
"""Sub-score names of :attr:`CandidateFrames.subscores` (the learned planner's heads, in order)."""
_LOGGED_EGO_COLOR = "#495057"
_LIGHT_STOP_LINE_RADIUS_M = 15.0  # a traffic-light stop line takes the state of the nearest connector start
_VIEW_MARGIN_M = 30.0


# ------------------------------------------------------------------------------------------------ containers
@dataclass(frozen=True, eq=False)
class CandidateFrames:
    """The k best vocabulary candidates of a learned planner at P planning steps, best first.

    Attributes:
        steps: ``[P]`` int32, planning steps on the scenario timeline.
        indices: ``[P, k]`` int32 vocabulary indices.
        xy: ``[P, k, 41, 2]`` float32, m, local frame, ego box centre at t = 0, 0.1, .., 4.0 s after the step.
        scores: ``[P, k]`` float32 selection scores; policy: ``[P, k]`` float32 imitation probabilities.
        subscores: ``[P, k, 5]`` float32 predicted probabilities in the order of :data:`SUBSCORE_LABELS`.
    """

    steps: np.ndarray  # [P] int32
    indices: np.ndarray  # [P, k] int32
    xy: np.ndarray  # [P, k, 41, 2] float32, m, local frame
    scores: np.ndarray  # [P, k] float32
    policy: np.ndarray  # [P, k] float32
    subscores: np.ndarray  # [P, k, 5] float32

    @property
    def k(self) -> int:
        """Candidates per step."""
        return int(self.indices.shape[1])


@dataclass(frozen=True, eq=False)
class TrackFrames:
    """One source of agent motion (the log, or one rollout) on the common timeline of T steps.

    Attributes:
        label: panel title (``"log"`` or the rollout's label).
        boxes: ``[T, N, 5]`` float32 (x m, y m, yaw rad, length m, width m), box centres, local frame.
        valid: ``[T, N]`` bool; False where unobserved, not simulated or past the end of the source.
        simulated: ``[T]`` bool, steps of the closed-loop episode (all False for the log).
        plans_xy: ``[P, 41, 2]`` float32, m, the plan made at each planning step (ego box centre, t = 0 .. 4 s).
        plan_steps: ``[P]`` int32, the step of each plan.
        collision: ``[T]`` bool, the ego box overlaps another agent; offroad: ``[T]`` bool, an ego corner is
            off the drivable area; collision_agent: ``[T]`` int32, the first agent in contact (-1 none).
        candidates: the planner's top-k candidates along this source, or None.
    """

    label: str
    boxes: np.ndarray  # [T, N, 5] float32
    valid: np.ndarray  # [T, N] bool
    simulated: np.ndarray  # [T] bool
    plans_xy: np.ndarray  # [P, 41, 2] float32
    plan_steps: np.ndarray  # [P] int32
    collision: np.ndarray  # [T] bool
    offroad: np.ndarray  # [T] bool
    collision_agent: np.ndarray  # [T] int32
    candidates: CandidateFrames | None = None

    def active_plan(self, t: int) -> int:
        """Index of the plan being executed at step ``t`` (the latest made at or before it), -1 if none."""
        return int(np.searchsorted(self.plan_steps, t, side="right")) - 1


@dataclass(frozen=True, eq=False)
class BEVFrames:
    """Everything a BEV of one scenario and its rollouts needs, as numpy arrays on one timeline of T steps.

    Attributes:
        scenario_id, dt (s), t0 (index of "now"); timestamps_s: ``[T]`` float64, s (extended at dt past the log).
        agent_type: ``[N]`` int8 :class:`~worldengine_lab.datatypes.AgentType`; track_ids: ``[N]`` str.
        map_xy: ``[Q, 2]`` float32, m, the points of all map polylines one after another; polyline i is
            ``map_xy[map_offsets[i]:map_offsets[i + 1]]``; map_offsets: ``[M + 1]`` int32; map_kind: ``[M]`` int8
            codes of :data:`MAP_KINDS`. Lane i's centreline is polyline ``lane_polyline0 + i``.
        light_status: ``[T, L]`` int8 traffic-light status per signalised lane (held at the last logged value
            past the log); light_polyline / light_column: ``[J]`` int32, map polylines drawn in the colour of
            light column ``light_column[j]`` (signalised connectors and their traffic-light stop lines).
        log: the logged motion; rollouts: one :class:`TrackFrames` per rollout.
        logged_ego_xy: ``[T, 2]`` float32, m, the logged ego box centre, NaN where not logged.
        bounds: ``[4]`` float32 (x_min, y_min, x_max, y_max), m, a view around every ego path.
    """

    scenario_id: str
    dt: float
    t0: int
    timestamps_s: np.ndarray  # [T] float64
    agent_type: np.ndarray  # [N] int8
    track_ids: np.ndarray  # [N] str
    map_xy: np.ndarray  # [Q, 2] float32
    map_offsets: np.ndarray  # [M + 1] int32
    map_kind: np.ndarray  # [M] int8
    lane_polyline0: int
    light_status: np.ndarray  # [T, L] int8
    light_polyline: np.ndarray  # [J] int32
    light_column: np.ndarray  # [J] int32
    log: TrackFrames
    rollouts: tuple[TrackFrames, ...]
    logged_ego_xy: np.ndarray  # [T, 2] float32
    bounds: np.ndarray  # [4] float32

    @property
    def num_steps(self) -> int:
        """T."""
        return int(len(self.timestamps_s))

    @property
    def num_agents(self) -> int:
        """N (the ego included)."""
        return int(len(self.agent_type))

    @property
    def panels(self) -> tuple[TrackFrames, ...]:
        """The sources shown side by side: the rollouts, or the log when there are none."""
        return self.rollouts or (self.log,)

    def polyline(self, i: int) -> np.ndarray:
        """``[k, 2]`` float32 points of map polyline ``i``."""
        return self.map_xy[self.map_offsets[i] : self.map_offsets[i + 1]]


# --------------------------------------------------------------------------------------------------- geometry
def box_corners(boxes: np.ndarray) -> np.ndarray:
    """Corners of oriented boxes: ``[..., 5]`` (x, y, yaw, length, width) -> ``[..., 4, 2]`` in the order front
    left, rear left, rear right, front right (same units and frame as the input)."""
    b = np.asarray(boxes, np.float64)
    c, s = np.cos(b[..., 2]), np.sin(b[..., 2])
    hl, hw = b[..., 3] / 2, b[..., 4] / 2
    sx = np.array([1.0, -1.0, -1.0, 1.0])
    sy = np.array([1.0, 1.0, -1.0, -1.0])
    lx, ly = sx * hl[..., None], sy * hw[..., None]  # [..., 4] body-frame corners
    x = b[..., 0:1] + c[..., None] * lx - s[..., None] * ly
    y = b[..., 1:2] + s[..., None] * lx + c[..., None] * ly
    return np.stack([x, y], -1)


def _poses_to_centre(body: np.ndarray, origin: np.ndarray, r2c: float) -> np.ndarray:
    """Body-frame rear-axle poses ``[P, ..., S, 3]`` of origins ``[P, 3]`` -> ``[P, ..., S + 1, 2]`` float32 box
    centres in the local frame, the origin itself prepended (t = 0)."""
    body = np.asarray(body, np.float64)
    origin = np.asarray(origin, np.float64)
    o = origin.reshape(origin.shape[:1] + (1,) * (body.ndim - 2) + (3,))  # [P, 1.., 3] broadcasts over [..., S]
    poses = np.concatenate([np.zeros(body.shape[:-2] + (1, 3)), body], -2)
    c, s = np.cos(o[..., 2]), np.sin(o[..., 2])
    x = o[..., 0] + c * poses[..., 0] - s * poses[..., 1]
    y = o[..., 1] + s * poses[..., 0] + c * poses[..., 1]
    yaw = poses[..., 2] + o[..., 2]
    return np.stack([x + r2c * np.cos(yaw), y + r2c * np.sin(yaw)], -1).astype(np.float32)


# ---------------------------------------------------------------------------------------------------- packing
def _flatten_map(scenario: Scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """All map layers as one point array: ``(xy [Q, 2], offsets [M + 1], kind [M], index of lane 0)``."""
    m = scenario.map
    drivable_kind = np.where(m.drivable_is_hole, _KIND["drivable_hole"], _KIND["drivable_area"])
    layers: list[tuple[Polylines, np.ndarray]] = [  # one entry per map layer (a handful), in drawing order
        (m.drivable_areas, drivable_kind),
        (m.walkways, np.full(len(m.walkways), _KIND["walkway"])),
        (m.crosswalks, np.full(len(m.crosswalks), _KIND["crosswalk"])),
        (m.stop_lines, np.full(len(m.stop_lines), _KIND["stop_line"])),
        (m.lane_left, np.full(m.num_lanes, _KIND["lane_boundary"])),
        (m.lane_right, np.full(m.num_lanes, _KIND["lane_boundary"])),
        (m.lanes, np.where(m.lane_is_connector, _KIND["connector"], _KIND["lane"])),
    ]
    xy = [pl.xy[pl.valid].astype(np.float32) for pl, _ in layers]  # the valid points form a prefix of each row
    lengths = np.concatenate([pl.valid.sum(1) for pl, _ in layers]).astype(np.int64)
    kind = np.concatenate([k for _, k in layers]).astype(np.int8)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    lane0 = len(kind) - m.num_lanes
    return np.concatenate(xy).reshape(-1, 2), offsets, kind, lane0


def _lights(scenario: Scenario, t: int, map_xy: np.ndarray, offsets: np.ndarray, kind: np.ndarray,
            lane0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(status [T, L] int8, polyline [J] int32, column [J] int32)``: connectors, then the traffic-light stop
    lines within 15 m of a signalised connector's start (each takes the nearest one's column)."""
    m = scenario.map
    assert scenario.traffic_lights is not None
    st = scenario.traffic_lights.status
    rows = np.minimum(np.arange(t), max(st.shape[0] - 1, 0))
    status = st[rows].astype(np.int8) if st.shape[0] else np.zeros((t, 0), np.int8)
    sig = m.signalized_lanes.astype(np.int32)
    poly = sig + lane0
    col = np.arange(len(sig), dtype=np.int32)
    stops = np.flatnonzero(kind == _KIND["stop_line"])[m.stop_line_type == StopLineType.TRAFFIC_LIGHT]
    has_points = offsets[poly + 1] > offsets[poly]
    if len(stops) and has_points.any():
        lengths = (offsets[stops + 1] - offsets[stops]).astype(np.float64)
        csum = np.concatenate([np.zeros((1, 2)), np.cumsum(map_xy.astype(np.float64), 0)])
        centroid = (csum[offsets[stops + 1]] - csum[offsets[stops]]) / np.maximum(lengths, 1)[:, None]  # [S, 2]
        starts = map_xy[np.minimum(offsets[poly], max(len(map_xy) - 1, 0))].astype(np.float64)  # [M, 2]
        d = np.linalg.norm(centroid[:, None] - starts[None], axis=-1)
        d[:, ~has_points] = np.inf
        near = d.argmin(1)
        ok = (d[np.arange(len(stops)), near] <= _LIGHT_STOP_LINE_RADIUS_M) & (lengths > 0)
        poly = np.concatenate([poly, stops[ok].astype(np.int32)])
        col = np.concatenate([col, near[ok].astype(np.int32)])
    return status, poly.astype(np.int32), col.astype(np.int32)


def _pad_time(a: np.ndarray, t: int, fill: Any = 0) -> np.ndarray:
    out = np.full((t,) + a.shape[1:], fill, a.dtype)
    out[: min(len(a), t)] = a[:t]
    return out


def _boxes(agents: AgentTracks, t: int) -> tuple[np.ndarray, np.ndarray]:
    """``([T, N, 5] float32 boxes, [T, N] bool valid)`` padded to T steps."""
    boxes = np.concatenate([agents.xy, agents.yaw[..., None],
                            np.broadcast_to(agents.size_lwh[None, :, :2], agents.yaw.shape + (2,))], -1)
    return _pad_time(boxes.astype(np.float32), t), _pad_time(agents.valid, t, False)


def _log_frames(scenario: Scenario, t: int, candidates: CandidateFrames | None) -> TrackFrames:
    boxes, valid = _boxes(scenario.agents, t)
    no = np.zeros(t, bool)
    return TrackFrames("log", boxes, valid, no, np.zeros((0, 41, 2), np.float32), np.zeros(0, np.int32), no, no,
                       np.full(t, -1, np.int32), candidates)


def _rollout_frames(scenario: Scenario, ro: Rollout, label: str, t: int,
                    candidates: CandidateFrames | None) -> TrackFrames:
    boxes, valid = _boxes(ro.agents, t)
    info = ro.info
    sim = np.zeros(ro.num_steps, bool)
    sim[ro.sim_slice] = True
    sim = np.asarray(info.get("sim/simulated", sim), bool)
    coll = np.asarray(info.get("sim/collision", np.zeros(ro.num_steps, bool)), bool)
    off = np.asarray(info.get("sim/offroad", np.zeros(ro.num_steps, bool)), bool)
    who = np.asarray(info.get("sim/collision_agents", np.zeros((ro.num_steps, 1), bool)), bool)
    first = np.where(who.any(1), who.argmax(1), -1).astype(np.int32)
    steps = ro.plan_steps.astype(np.int32)
    plans = _poses_to_centre(ro.plans, ro.ego_states[steps, :3], scenario.ego_rear_axle_to_center_m) \
        if len(steps) else np.zeros((0, 41, 2), np.float32)
    return TrackFrames(label, boxes, valid, _pad_time(sim, t, False), plans, steps, _pad_time(coll, t, False),
                       _pad_time(off, t, False), _pad_time(first, t, -1), candidates)


def _labels(rollouts: Sequence[Rollout], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        if len(labels) != len(rollouts) or not all(isinstance(x, str) and x for x in labels):
            raise ShapeError(f"bev_frames(labels): expected {len(rollouts)} non-empty strings (one per rollout), "
                             f"received {list(labels)!r}")
        return list(labels)
    ids = [r.planner_id for r in rollouts]
    return [f"{p} ({i + 1})" if ids.count(p) > 1 else p for i, p in enumerate(ids)]


def _check_rollouts(scenario: Scenario, rollouts: Sequence[Rollout]) -> None:
    if not isinstance(scenario, Scenario):
        raise ScenarioValidationError(f"bev_frames(scenario): expected a Scenario, received {type(scenario).__name__}")
    for i, ro in enumerate(rollouts):
        if not isinstance(ro, Rollout):
            raise ScenarioValidationError(f"bev_frames(rollouts[{i}]): expected a Rollout (from sim.rollout), "
                                          f"received {type(ro).__name__}")
        if ro.scenario_id != scenario.scenario_id or ro.agents.num_agents != scenario.agents.num_agents:
            raise ScenarioValidationError(
                f"bev_frames(rollouts[{i}]): expected a rollout of scenario {scenario.scenario_id!r} with "
                f"{scenario.agents.num_agents} agents, received one of {ro.scenario_id!r} with "
                f"{ro.agents.num_agents}; pass the scenario the rollout was simulated on")


def bev_frames(scenario: Scenario, rollouts: Sequence[Rollout] = (), labels: Sequence[str] | None = None,
               candidates: Sequence[CandidateFrames | None] | None = None) -> BEVFrames:
    """Pack a scenario and its rollouts for a BEV (see :class:`BEVFrames`); vectorised over agents and frames.

    Args:
        scenario: the scenario; rollouts: rollouts of it (their agents must match the scenario's).
        labels: one name per rollout (default: planner ids, numbered when repeated).
        candidates: one :class:`CandidateFrames` (or None) per panel (per rollout, or one for the log when there
            are no rollouts), e.g. from :func:`top_k_candidates`.
    Raises:
        ScenarioValidationError / ShapeError: rollouts of another scenario, or wrong numbers of labels/candidates.
    """
    rollouts = tuple(rollouts)
    _check_rollouts(scenario, rollouts)
    names = _labels(rollouts, labels)
    npanels = max(len(rollouts), 1)
    cands = list(candidates) if candidates is not None else [None] * npanels
    if len(cands) != npanels:
        raise ShapeError(f"bev_frames(candidates): expected {npanels} entries (one per panel), received {len(cands)}")
    t = max([scenario.num_steps] + [r.num_steps for r in rollouts])
    ts = scenario.timestamps_s
    timestamps = np.concatenate([ts, ts[-1] + scenario.dt * np.arange(1, t - len(ts) + 1)])
    map_xy, offsets, kind, lane0 = _flatten_map(scenario)
    status, light_poly, light_col = _lights(scenario, t, map_xy, offsets, kind, lane0)
    log_frames = _log_frames(scenario, t, None if rollouts else cands[0])
    outs = tuple(_rollout_frames(scenario, r, n, t, c) for r, n, c in zip(rollouts, names, cands))
    logged = np.where(log_frames.valid[:, :1], log_frames.boxes[:, 0, :2], np.nan).astype(np.float32)
    paths = [logged] + [np.where(o.valid[:, :1], o.boxes[:, 0, :2], np.nan) for o in outs]
    paths += [o.plans_xy.reshape(-1, 2) for o in outs]
    pts = np.concatenate(paths)
    pts = pts[np.isfinite(pts).all(1)]
    lo, hi = (pts.min(0), pts.max(0)) if len(pts) else (np.zeros(2), np.zeros(2))
    bounds = np.concatenate([lo - _VIEW_MARGIN_M, hi + _VIEW_MARGIN_M]).astype(np.float32)
    a = scenario.agents
    return BEVFrames(scenario.scenario_id, float(scenario.dt), int(scenario.t0), timestamps, a.agent_type.copy(),
                     a.track_ids.copy(), map_xy, offsets, kind, lane0, status, light_poly, light_col, log_frames,
                     outs, logged, bounds)


# ------------------------------------------------------------------------------------------------ candidates
def top_k_candidates(scenario: Scenario, rollouts: Sequence[Rollout] = (), planner: Any = None, k: int = 5,
                     replan_every: int = 5, config: Any = None) -> list[CandidateFrames]:
    """The ``k`` best vocabulary candidates of a learned planner at every planning step, one batched call.

    For each rollout, the observation at each of its planning steps is rebuilt from the rollout itself (the
    simulated agent history and the exact simulated ego state): for a rollout of this planner the candidates are
    exactly those it weighed (the first is the plan it executed); for another planner's rollout, those it would
    have weighed in the same states. Without rollouts, the log is used at ``t0, t0 + replan_every, ...``. All
    observations go through ``planner.top_k(obs, k)`` in one batch. Needs torch (imported on use).

    Args:
        planner: a planner with ``top_k(obs, k)`` and ``vocabulary.trajectories [K, 40, 3]``
            (:class:`~worldengine_lab.planners.LearnedPlanner`).
        config: the ``SimConfig`` of the episodes (history length, lane radius); default ``SimConfig()``.
    Returns:
        One :class:`CandidateFrames` per panel (per rollout, or one for the log).
    Raises:
        WorldEngineLabError: the planner has no ``top_k`` / vocabulary.
    """
    import torch

    from ..sim.config import SimConfig
    from ..sim.env import ClosedLoopEnv
    from ..sim.scene_batch import ego_states_from_log

    if not callable(getattr(planner, "top_k", None)) or not hasattr(getattr(planner, "vocabulary", None),
                                                                     "trajectories"):
        raise WorldEngineLabError(f"top_k_candidates(planner): expected a learned planner with top_k(obs, k) and a "
                                  f"vocabulary, received {type(planner).__name__}; pass a LearnedPlanner or no planner")
    rollouts = tuple(rollouts)
    _check_rollouts(scenario, rollouts)
    sources: list[tuple[Scenario, np.ndarray, np.ndarray]] = []  # (replay scenario, steps [P], ego states [T, D])
    for ro in rollouts:  # a few rollouts
        status = scenario.traffic_lights.status if scenario.traffic_lights is not None else np.zeros((0, 0))
        lights = TrafficLights(status[np.minimum(np.arange(ro.num_steps), scenario.num_steps - 1)])
        replay = replace(scenario, agents=ro.agents, timestamps_s=ro.timestamps_s.copy(), traffic_lights=lights)
        sources.append((replay, ro.plan_steps.astype(np.int64), ro.ego_states))
    if not rollouts:
        steps = np.arange(scenario.t0, scenario.num_steps, max(int(replan_every), 1))
        steps = steps[scenario.agents.valid[steps, 0]]  # a step becomes "now" only where the ego is logged
        sources.append((scenario, steps, ego_states_from_log(scenario)))
    # one scenario object per planning step ("now" moved to that step): a handful of objects, batched below
    batch = [replace(s, t0=int(p)) for s, steps, _ in sources for p in steps]
    ego = np.concatenate([e[steps] for _, steps, e in sources]).astype(np.float64)  # [B, D]
    counts = [len(steps) for _, steps, _ in sources]
    if not batch:
        return [_empty_candidates(k) for _ in counts]
    cfg = replace(config or SimConfig(), num_steps=1, check_collisions=False, check_areas=False, agents="log_replay")
    env = ClosedLoopEnv(batch, cfg)
    state = env.reset()
    state = replace(state, ego=torch.as_tensor(ego, dtype=cfg.dtype))
    top = planner.top_k(env.observe(state), k)
    idx = top.indices.cpu().numpy()
    body = planner.vocabulary.trajectories.cpu().numpy()[idx]  # [B, k, 40, 3]
    xy = _poses_to_centre(body, ego[:, :3], scenario.ego_rear_axle_to_center_m)
    cols = [np.asarray(x.detach().cpu(), np.float32) for x in (top.scores, top.policy, top.subscores)]
    out, start = [], 0
    for (_, steps, _), n in zip(sources, counts):
        sl = slice(start, start + n)
        out.append(CandidateFrames(steps.astype(np.int32), idx[sl].astype(np.int32), xy[sl], cols[0][sl],
                                   cols[1][sl], cols[2][sl]))
        start += n
    log.debug("top-%d candidates at %d planning steps of %d panels", k, len(batch), len(sources))
    return out


def _empty_candidates(k: int) -> CandidateFrames:
    return CandidateFrames(np.zeros(0, np.int32), np.zeros((0, k), np.int32), np.zeros((0, k, 41, 2), np.float32),
                           np.zeros((0, k), np.float32), np.zeros((0, k), np.float32),
                           np.zeros((0, k, 5), np.float32))


# ----------------------------------------------------------------------------------------------------- figure
def _gapped(parts: np.ndarray, boxes: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``[M, K, 2]`` shapes (or ``[M, 5]`` boxes, drawn as closed rings) -> x, y with NaN between shapes, so that
    one plotly trace draws them all."""
    if boxes:
        c = box_corners(parts)
        parts = np.concatenate([c, c[:, :1]], 1)
    gap = np.full(parts.shape[:1] + (1, 2), np.nan)
    flat = np.concatenate([parts, gap], 1).reshape(-1, 2)
    return flat[:, 0], flat[:, 1]


def _map_lines(f: BEVFrames, select: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y of the map polylines ``select`` (bool ``[M]``), NaN-separated (rings are stored closed)."""
    ids = np.flatnonzero(select)
    lengths = (f.map_offsets[ids + 1] - f.map_offsets[ids]).astype(np.int64)
    ids, lengths = ids[lengths > 0], lengths[lengths > 0]
    if not len(ids):
        return np.zeros(0), np.zeros(0)
    ends = np.cumsum(lengths)
    point = np.arange(ends[-1]) + np.repeat(f.map_offsets[ids] - (ends - lengths), lengths)
    xy = np.insert(f.map_xy[point].astype(np.float64), ends, np.nan, axis=0)  # a NaN row after each polyline
    return xy[:, 0], xy[:, 1]


def bev_figure(scenario: Scenario, rollouts: Sequence[Rollout] = (), t: int | None = None,
               labels: Sequence[str] | None = None, candidates: Sequence[CandidateFrames | None] | None = None,
               frames: BEVFrames | None = None, width: int = 720, height: int = 560,
               title: str | None = None) -> "go.Figure":
    """A static BEV at step ``t`` (default: the scenario's t0) as a plotly figure.

    Traces (named): the map (``drivable area``, ``walkways``, ``crosswalks``, ``stop lines``, ``lane boundaries``,
    ``lanes``, ``lane connectors``), ``light: <state>`` for signalised connectors, one trace per agent type at
    ``t`` (agents from the first rollout, else the log), ``ego (logged)`` and ``logged ego path``; per rollout
    ``<label>: ego``, ``<label>: simulated path``, ``<label>: plan`` (the plan executed at ``t``),
    ``<label>: collision`` / ``<label>: off-road`` markers and ``<label>: top-k`` candidates (hover: sub-scores).

    Args:
        frames: reuse an already packed :func:`bev_frames` result (``rollouts``/``labels``/``candidates`` are
            then ignored).
    Raises:
        MissingDependencyError: plotly is not installed.
    """
    try:
        import plotly.graph_objects as go
    except ImportError as e:  # pragma: no cover - plotly is part of the notebook extra
        raise MissingDependencyError("bev_figure needs plotly; install the notebook extra: "
                                     "pip install 'worldengine_lab[notebook]'") from e
    f = frames if frames is not None else bev_frames(scenario, rollouts, labels, candidates)
    t = f.t0 if t is None else int(t)
    if not 0 <= t < f.num_steps:
        raise ShapeError(f"bev_figure(t): expected a step in [0, {f.num_steps}), received {t}")
    fig = go.Figure()
    kinds = f.map_kind
    for name, kind, style in (  # the map layers, in drawing order
        ("drivable area", "drivable_area", dict(fill="toself", fillcolor="#e9ecef", line=dict(width=0))),
        ("drivable holes", "drivable_hole", dict(fill="toself", fillcolor="#ffffff", line=dict(width=0))),
        ("walkways", "walkway", dict(fill="toself", fillcolor="#f1f3f5", line=dict(width=0))),
        ("crosswalks", "crosswalk", dict(fill="toself", fillcolor="#dee2e6", line=dict(color="#adb5bd", width=1))),
        ("stop lines", "stop_line", dict(fill="toself", fillcolor="#ffc9c9", line=dict(color="#fa5252", width=1))),
        ("lane boundaries", "lane_boundary", dict(line=dict(color="#adb5bd", width=1))),
        ("lanes", "lane", dict(line=dict(color="#ced4da", width=1, dash="dot"))),
        ("lane connectors", "connector", dict(line=dict(color="#dee2e6", width=1, dash="dot"))),
    ):
        x, y = _map_lines(f, kinds == _KIND[kind])
        if len(x):
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, hoverinfo="skip", **style))
    if f.light_status.shape[1] and len(f.light_polyline):
        state = f.light_status[t, f.light_column]
        for code, color in enumerate(LIGHT_COLORS):
            sel = np.zeros(len(kinds), bool)
            sel[f.light_polyline[state == code]] = True
            x, y = _map_lines(f, sel)
            if len(x):
                name = ("green", "yellow", "red", "unknown")[code]
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"light: {name}",
                                         line=dict(color=color, width=3)))
    src = f.rollouts[0] if f.rollouts else f.log
    ok = src.valid[t].copy()
    ok[0] = False
    for code in np.unique(f.agent_type[ok]):
        sel = ok & (f.agent_type == code)
        x, y = _gapped(src.boxes[t, sel], boxes=True)
        name = AgentType(int(code)).name.lower()
        text = np.repeat(np.char.add(f.track_ids[sel].astype(str), f" ({name})"), 6)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", fill="toself", name=name, text=text, hoverinfo="text",
                                 fillcolor=TYPE_COLORS[AgentType(int(code))], line=dict(color="#343a40", width=1)))
    if f.log.valid[t, 0]:
        x, y = _gapped(f.log.boxes[t, :1], boxes=True)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="ego (logged)",
                                 line=dict(color=_LOGGED_EGO_COLOR, width=1.5, dash="dash")))
    fig.add_trace(go.Scatter(x=f.logged_ego_xy[:, 0], y=f.logged_ego_xy[:, 1], mode="lines", name="logged ego path",
                             line=dict(color=_LOGGED_EGO_COLOR, width=1.5, dash="dash")))
    for i, ro in enumerate(f.rollouts):
        _add_rollout(fig, go, ro, t, PANEL_COLORS[i % len(PANEL_COLORS)])
    if not f.rollouts and f.log.candidates is not None:
        _add_candidates(fig, go, f.log, t, "log", PANEL_COLORS[0])
    x0, y0, x1, y1 = (float(v) for v in f.bounds)
    fig.update_layout(
        title=title or f"{f.scenario_id}: step {t} ({(t - f.t0) * f.dt:+.1f} s from t0)", width=width, height=height,
        plot_bgcolor="#fbfbfb", margin=dict(l=40, r=10, t=40, b=40), legend=dict(itemsizing="constant"),
        xaxis=dict(range=[x0, x1], title="x [m]", showgrid=False, zeroline=False),
        yaxis=dict(range=[y0, y1], title="y [m]", scaleanchor="x", scaleratio=1, showgrid=False, zeroline=False))
    return fig


def _add_rollout(fig: "go.Figure", go: Any, ro: TrackFrames, t: int, color: str) -> None:
    """The ego box, simulated path, executed plan, events and candidates of one rollout."""
    if ro.valid[t, 0]:
        x, y = _gapped(ro.boxes[t, :1], boxes=True)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", fill="toself", name=f"{ro.label}: ego", fillcolor=color,
                                 line=dict(color="#212529", width=2)))
    sim = ro.simulated & ro.valid[:, 0]
    path = np.where(sim[:, None], ro.boxes[:, 0, :2], np.nan)
    fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines", name=f"{ro.label}: simulated path",
                             line=dict(color=color, width=2)))
    p = ro.active_plan(t)
    if p >= 0:
        fig.add_trace(go.Scatter(x=ro.plans_xy[p, :, 0], y=ro.plans_xy[p, :, 1], mode="lines",
                                 name=f"{ro.label}: plan", line=dict(color=color, width=1.5, dash="dot")))
    for name, flags, symbol, mcolor in (("collision", ro.collision, "x", "#e03131"),
                                        ("off-road", ro.offroad, "triangle-up", "#f08c00")):
        hit = np.flatnonzero(flags & ro.valid[:, 0])
        if len(hit):
            fig.add_trace(go.Scatter(x=ro.boxes[hit, 0, 0], y=ro.boxes[hit, 0, 1], mode="markers",
                                     name=f"{ro.label}: {name}", text=[f"step {s}" for s in hit], hoverinfo="text",
                                     marker=dict(symbol=symbol, size=9, color=mcolor)))
    if ro.candidates is not None:
        _add_candidates(fig, go, ro, t, ro.label, color)


def _add_candidates(fig: "go.Figure", go: Any, src: TrackFrames, t: int, label: str, color: str) -> None:
    """The top-k candidates of the planning step active at ``t`` as one trace (hover: the sub-scores)."""
    c = src.candidates
    assert c is not None
    p = int(np.searchsorted(c.steps, t, side="right")) - 1
    if p < 0:
        return
    x, y = _gapped(c.xy[p].astype(np.float64))
    subs = " ".join(f"{n}=%.2f" for n in SUBSCORE_LABELS)
    text = [f"#{r + 1} vocab {c.indices[p, r]}: score {c.scores[p, r]:.2f}, pi {c.policy[p, r]:.3f}, "
            + subs % tuple(c.subscores[p, r]) for r in range(c.k)]  # k hover labels
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{label}: top-{c.k}", text=np.repeat(text, 42),
                             hoverinfo="text", line=dict(color=color, width=0.8), opacity=0.6))
