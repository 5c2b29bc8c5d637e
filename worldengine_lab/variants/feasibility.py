"""Kinematic feasibility of edited scenarios: the projection, the limit check and the on-road check.

* :func:`project` replaces the future (steps after ``t0``) of the given agents by the nearest trajectory that
  respects their class limits (:class:`~worldengine_lab.variants.FeasibilityConfig`): speed in
  ``[0, max]``, acceleration, deceleration, jerk, path curvature ``|kappa| <= tan(max steer) / wheelbase`` and
  lateral acceleration ``v^2 |kappa|``; yaw and ``vel_xy`` are recomputed from the new path and speeds. The
  algorithm is in :mod:`._projection` (vectorised over agents and time).
* :func:`check_kinematics` measures the same quantities on a scenario (finite differences of ``|vel_xy|``,
  ``yaw`` and ``xy``) and compares them with the limits: one row per agent.
* :func:`check_on_road` tells, per step, whether a vehicle's box (shrunk by a margin) lies on the map's drivable
  area (exact, strict point-in-polygon tests, vectorised with shapely; the drivable rings and holes of
  ``MapData``, or the lane polygons of :func:`~worldengine_lab.metrics.scoring_map.lane_rings` without them).
* :func:`project_edit` is what :func:`~worldengine_lab.variants.make_variant` calls after each op: it finds the
  agents the op changed, projects them, refuses the edit with :class:`~worldengine_lab.errors.InfeasibleEditError`
  (naming the op, the parameter, the reason and the fix) when the projection would change it too much or a
  vehicle leaves the road, and checks the result.

Frames and units: scenario local frame, metres, seconds, radians; arrays ``[T, N, ...]``.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from ..datatypes import EGO_INDEX, AgentType, Scenario
from ..errors import InfeasibleEditError
from ._edit import Tracks, with_tracks
from ._projection import project_arrays
from .limits import FeasibilityConfig, agent_classes

if TYPE_CHECKING:
    from .ops import Op

__all__ = ["project", "project_edit", "changed_agents", "check_kinematics", "kinematic_violations",
           "check_on_road", "KINEMATIC_COLUMNS"]

logger = logging.getLogger(__name__)

KINEMATIC_COLUMNS = ("max_speed_mps", "max_accel_mps2", "max_decel_mps2", "max_jerk_mps3", "max_curvature_1pm",
                     "max_lat_accel_mps2", "max_speed_gap_mps")
"""Measured columns of :func:`check_kinematics` (each compared with the limit of the same name)."""


def changed_agents(before: Scenario, after: Scenario, tol: float = 1e-4) -> np.ndarray:
    """Indices of agents whose future (steps after t0) differs between two scenarios, plus agents ``after``
    added; ``[K]`` int64."""
    a, b = before.agents, after.agents
    n = a.num_agents
    t0 = before.t0
    fut = slice(t0 + 1, None)
    moved = (np.abs(b.xy[fut, :n].astype(np.float64) - a.xy[fut].astype(np.float64)) > tol).any(axis=(0, 2))
    flips = (b.valid[fut, :n] != a.valid[fut]).any(axis=0)
    idx = np.flatnonzero(moved | flips)
    return np.concatenate([idx, np.arange(n, b.num_agents)]).astype(np.int64)


def project(scenario: Scenario, agents: Sequence[int] | np.ndarray,
            config: FeasibilityConfig = FeasibilityConfig()) -> Scenario:
    """Project the future of ``agents`` (indices; each must be observed at every step from t0 on) to
    kinematic feasibility; other agents and every agent's history are unchanged.

    Raises:
        InfeasibleEditError: an index is the ego, out of range, or not observed over the whole future.
    """
    out, _ = _project(scenario, np.asarray(agents, np.int64).reshape(-1), config)
    return out


def _project(s: Scenario, idx: np.ndarray, cfg: FeasibilityConfig):
    a = s.agents
    if not len(idx):
        return s, None
    if (idx <= EGO_INDEX).any() or (idx >= a.num_agents).any():
        raise InfeasibleEditError(f"project(agents): expected agent indices in [1, {a.num_agents}), received "
                                  f"{idx.tolist()}; the ego is driven by the planner and never projected")
    full = a.valid[s.t0:, idx].all(axis=0)
    if not full.all():
        raise InfeasibleEditError(f"project(agents): agents {a.track_ids[idx[~full]].tolist()} are not observed at "
                                  f"every step from t0 = {s.t0}; only complete futures can be projected")
    dt = s.dt
    p = a.xy[s.t0:, idx].astype(np.float64).transpose(1, 0, 2)  # [K, F+1, 2]
    yaw0 = a.yaw[s.t0, idx].astype(np.float64)
    v0 = np.linalg.norm(a.vel_xy[s.t0, idx].astype(np.float64), axis=-1)
    if s.t0 > 0:
        prev_ok = a.valid[s.t0 - 1, idx]
        v_prev = np.linalg.norm(a.vel_xy[s.t0 - 1, idx].astype(np.float64), axis=-1)
        a0 = np.where(prev_ok, (v0 - v_prev) / dt, 0.0)
    else:
        a0 = np.zeros_like(v0)
    lim = cfg.limit_arrays(a.agent_type[idx])
    res = project_arrays(p, yaw0, v0, a0, lim, cfg, dt)
    tr = Tracks.of(a)
    tr.xy[s.t0 + 1:, idx] = res.xy[:, 1:].transpose(1, 0, 2)
    tr.yaw[s.t0 + 1:, idx] = _wrap(res.yaw[:, 1:]).T
    vel = res.speed[..., None] * np.stack([np.cos(res.yaw), np.sin(res.yaw)], -1)
    tr.vel_xy[s.t0 + 1:, idx] = vel[:, 1:].transpose(1, 0, 2)
    logger.debug("projected %d agents of %s: path deviation %s m, progress error %s m", len(idx), s.scenario_id,
                 np.round(res.path_deviation_m, 3).tolist(), np.round(res.progress_error_m, 2).tolist())
    return with_tracks(s, tr), res


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def check_kinematics(scenario: Scenario, agents: Sequence[int] | np.ndarray | None = None,
                     config: FeasibilityConfig = FeasibilityConfig()) -> pd.DataFrame:
    """Measured extremes of the future of ``agents`` (default: every non-ego agent observed over the whole
    future) and whether each respects its class limit.

    Speed is ``|vel_xy|``; acceleration its difference over ``dt`` from t0 to t0+1 on; jerk the difference of
    those accelerations (history excluded); curvature ``|wrap(d yaw)| / |d xy|`` and lateral acceleration
    ``speed^2 * curvature`` on steps longer than ``config.min_moving_step_m``; the speed gap compares each step's
    length / dt with ``|vel_xy|`` (limit ``config.max_speed_gap_mps``). An agent faster than its class limit at
    now may keep that speed. Returns one row per agent: ``agent``, ``track_id``, ``agent_class``,
    :data:`KINEMATIC_COLUMNS`, ``limit_<column>`` for each and ``ok``.
    """
    s = scenario
    a = s.agents
    if agents is None:
        agents = np.flatnonzero(a.valid[s.t0:].all(axis=0))
        agents = agents[agents != EGO_INDEX]
    idx = np.asarray(agents, np.int64).reshape(-1)
    dt = s.dt
    sp = np.linalg.norm(a.vel_xy[s.t0:, idx].astype(np.float64), axis=-1)  # [F+1, K]
    acc = np.diff(sp, axis=0) / dt
    jerk = np.diff(acc, axis=0) / dt
    step = np.linalg.norm(np.diff(a.xy[s.t0:, idx].astype(np.float64), axis=0), axis=-1)
    dyaw = np.abs(_wrap(np.diff(a.yaw[s.t0:, idx].astype(np.float64), axis=0)))
    moving = step > config.min_moving_step_m
    kappa = np.where(moving, dyaw / np.maximum(step, 1e-9), 0.0)
    lat = kappa * sp[1:] ** 2
    gap = np.abs(step / dt - sp[1:])  # step length / dt against |vel_xy|: positions and velocities agree
    lim = config.limit_arrays(a.agent_type[idx])
    top = np.maximum(lim["max_speed_mps"], sp[0] if len(sp) else 0.0)
    measured = {
        "max_speed_mps": sp[1:].max(axis=0, initial=0.0), "max_accel_mps2": acc.max(axis=0, initial=0.0),
        "max_decel_mps2": (-acc).max(axis=0, initial=0.0), "max_jerk_mps3": np.abs(jerk).max(axis=0, initial=0.0),
        "max_curvature_1pm": kappa.max(axis=0, initial=0.0), "max_lat_accel_mps2": lat.max(axis=0, initial=0.0),
        "max_speed_gap_mps": gap.max(axis=0, initial=0.0)}
    limits = {c: (top if c == "max_speed_mps" else lim[c]) for c in KINEMATIC_COLUMNS if c != "max_speed_gap_mps"}
    limits["max_speed_gap_mps"] = np.full(len(idx), config.max_speed_gap_mps)
    tol = config.check_tolerance
    ok = np.ones(len(idx), bool)
    for c in KINEMATIC_COLUMNS:  # six named columns
        ok &= measured[c] <= limits[c] * (1.0 + tol) + 1e-6
    table = pd.DataFrame({"agent": idx, "track_id": a.track_ids[idx].astype(str),
                          "agent_class": agent_classes(a.agent_type[idx])})
    for c in KINEMATIC_COLUMNS:
        table[c] = measured[c]
        table[f"limit_{c}"] = limits[c]
    table["ok"] = ok
    return table


def kinematic_violations(table: pd.DataFrame, config: FeasibilityConfig = FeasibilityConfig()) -> list[str]:
    """One line per (agent, quantity) over its limit in a :func:`check_kinematics` table."""
    out = []
    tol = config.check_tolerance
    for c in KINEMATIC_COLUMNS:
        bad = table[table[c] > table[f"limit_{c}"] * (1.0 + tol) + 1e-6]
        out += [f"agent {r.track_id!r}: {c} = {getattr(r, c):.3f} > {getattr(r, 'limit_' + c):.3f}"
                for r in bad.itertuples()]
    return out


def check_on_road(scenario: Scenario, agent_index: int, margin_m: float | None = None,
                  config: FeasibilityConfig = FeasibilityConfig()) -> np.ndarray:
    """``[T]`` bool: at each step the agent's box, shrunk by ``margin_m`` (default ``config.on_road_margin_m``)
    on every side, lies inside the drivable area (its centre and four corners are, holes excluded).

    Only vehicles are checked; other classes, steps where the agent is not observed, and maps without drivable
    areas or lanes give True. Maps without drivable areas use the lane polygons instead.
    """
    margin = config.on_road_margin_m if margin_m is None else margin_m
    return _on_road(scenario, np.array([int(agent_index)]), margin)[:, 0]


def _drivable_polygons(s: Scenario):
    """Prepared shapely polygons of the drivable rings and their hole flags (lane polygons when the map has no
    drivable areas); None when the map has neither."""
    import shapely

    m = s.map
    if len(m.drivable_areas):
        rings, hole = m.drivable_areas, np.asarray(m.drivable_is_hole, bool)
        xy, valid = rings.xy.astype(np.float64), rings.valid
    elif m.num_lanes:
        from ..metrics.scoring_map import lane_rings

        lr = lane_rings(m)
        xy, valid, hole = lr.rings.numpy(), lr.valid.numpy(), np.zeros(m.num_lanes, bool)
    else:
        return None
    n = valid.sum(axis=1)
    keep = n >= 4  # a ring needs three corners plus the closing point
    if not keep.any():
        return None
    coords = xy[keep][valid[keep]]
    ring_of = np.repeat(np.arange(int(keep.sum())), n[keep])
    polys = shapely.polygons(shapely.linearrings(coords, indices=ring_of))
    shapely.prepare(polys)
    return polys, hole[keep]


def _on_road(s: Scenario, idx: np.ndarray, margin: float) -> np.ndarray:
    """``[T, K]`` bool :func:`check_on_road` of several agents at once (strict insideness, as the metrics)."""
    import shapely

    a = s.agents
    t = s.num_steps
    found = _drivable_polygons(s)
    if found is None:
        logger.debug("check_on_road(%s): the map has no drivable areas or lanes; nothing to check", s.scenario_id)
        return np.ones((t, len(idx)), bool)
    polys, hole = found
    is_vehicle = np.isin(a.agent_type[idx], [int(AgentType.VEHICLE), int(AgentType.EGO)])
    half = np.maximum(a.size_lwh[idx, :2].astype(np.float64) / 2.0 - margin, 0.0)  # [K, 2]
    yaw = a.yaw[:, idx].astype(np.float64)
    c, sn = np.cos(yaw), np.sin(yaw)
    fwd = np.stack([c, sn], -1) * half[None, :, :1]
    left = np.stack([-sn, c], -1) * half[None, :, 1:]
    centre = a.xy[:, idx].astype(np.float64)  # [T, K, 2]
    pts = np.stack([centre, centre + fwd + left, centre - fwd + left, centre - fwd - left, centre + fwd - left], 2)
    check = a.valid[:, idx] & is_vehicle[None, :]  # [T, K]
    inside = np.zeros(pts.shape[:3] + (len(polys),), bool)  # [T, K, 5, D]
    q = pts[check]  # [M, 5, 2]
    if len(q):
        hit = shapely.contains_xy(polys[:, None, None], q[None, ..., 0], q[None, ..., 1])  # [D, M, 5]
        inside[check] = np.moveaxis(hit, 0, -1)
    on = inside[..., ~hole].any(-1) & ~inside[..., hole].any(-1)
    return on.all(axis=2) | ~check


def _blame(op: "Op | None", constraint: str, default_fix: str) -> tuple[str, str, str]:
    if op is None:
        return "edit", "(none)", default_fix
    param, fix = op.blame.get(constraint, op.blame.get("kinematics", ("(op)", default_fix)))
    return op.describe(), param, fix


def project_edit(before: Scenario, after: Scenario, op: "Op | None" = None,
                 config: FeasibilityConfig = FeasibilityConfig()) -> Scenario:
    """Project the agents ``op`` changed between ``before`` and ``after`` and check the result.

    Raises:
        InfeasibleEditError: naming ``op``, the parameter and the reason, when the projection would move a path
            more than the class's ``path_tolerance_m`` (curvature), later speed bounds cannot be met braking
            from the speed at now, a vehicle the op moved sideways leaves the drivable area, or the projected
            future still breaks a limit.
    """
    idx = changed_agents(before, after)
    a = after.agents
    complete = a.valid[after.t0:, idx].all(axis=0) if len(idx) else np.zeros(0, bool)
    skipped = idx[~complete]
    if len(skipped):
        logger.debug("project_edit: agents %s have no complete future (removed); not projected",
                     a.track_ids[skipped].tolist())
    idx = idx[complete]
    out, res = _project(after, idx, config)
    if res is None:
        return out
    ids = [str(x) for x in a.track_ids[idx]]
    tol = config.limit_arrays(a.agent_type[idx])["path_tolerance_m"]
    far = res.path_deviation_m > tol
    if far.any():
        j = int(np.flatnonzero(far)[0])
        where, param, fix = _blame(op, "curvature", "a gentler edit")
        raise InfeasibleEditError(
            f"{where}: parameter {param!r}: agent {ids[j]!r} would need a path curvature above its limit "
            f"({config.limit_arrays(a.agent_type[idx[j:j + 1]])['max_curvature_1pm'][0]:.2f} 1/m); keeping within it "
            f"moves the path {res.path_deviation_m[j]:.2f} m (tolerance {tol[j]:.2f} m); use {fix}")
    if res.anchor_conflict.any():
        j = int(np.flatnonzero(res.anchor_conflict)[0])
        where, param, fix = _blame(op, "deceleration", "a gentler edit")
        raise InfeasibleEditError(
            f"{where}: parameter {param!r}: agent {ids[j]!r} cannot slow down in time for the speed its edited path "
            f"allows later (speed or lateral-acceleration limit) without braking harder than its limit; use {fix}")
    if op is not None and op.checks_on_road:
        on = _on_road(out, idx, config.on_road_margin_m)  # [T, K]
        # logged agents already off the road at now (parked on a verge) are not held to it; inserted ones are
        was_on = on[after.t0] | (idx >= before.agents.num_agents)
        off = ~on[after.t0:] & was_on[None, :]
        if off.any():
            step, j = (int(v[0]) for v in np.nonzero(off))
            where, param, fix = _blame(op, "off_road", "an edit that stays on the road")
            raise InfeasibleEditError(
                f"{where}: parameter {param!r}: vehicle {ids[j]!r} leaves the drivable area "
                f"{step * after.dt:.1f} s after now; use {fix}")
    bad = kinematic_violations(check_kinematics(out, idx, config), config)
    if bad:
        where, param, fix = _blame(op, "kinematics", "a gentler edit")
        raise InfeasibleEditError(f"{where}: parameter {param!r}: the projected future still breaks a limit "
                                  f"({'; '.join(bad[:3])}); use {fix}")
    return out
