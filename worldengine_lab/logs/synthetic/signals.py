"""Fixed-time traffic-signal plans: one cycle per signalised intersection, evaluated at any time.

Approaches of a junction are grouped into *axes* (approaches whose headings are parallel or opposite). Each
axis gets a green phase shared by its through, near-side and far-side movements; with ``protected_left`` the
turns across oncoming traffic of axes with a dedicated turn lane (3+ lanes) get their own earlier phase.
Phases never overlap: every green is followed by ``YELLOW_S`` of yellow and ``ALL_RED_S`` of all-red, and
nodes with ``ped_phase`` end the cycle with an all-red pedestrian walk interval. Perpendicular approaches are
therefore never green together; turns across oncoming traffic on a shared green are unprotected and yield
(traffic model).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import geometry as geo
from .lane_graph import LaneGraph
from .road_network import TURN_LEFT, TURN_RIGHT, RoadNetwork

__all__ = ["SignalPlan", "make_signal_plan", "signal_states", "walk_clock", "YELLOW_S", "ALL_RED_S",
           "GREEN", "YELLOW", "RED", "WALK_SPEED_MPS"]

YELLOW_S, ALL_RED_S = 4.0, 2.0
GREEN, YELLOW, RED = 0, 1, 2  # TrafficLightStatusType codes
WALK_SPEED_MPS = 1.2
_AXIS_TOL = np.deg2rad(45.0)


@dataclass(frozen=True)
class SignalPlan:
    """Timings over M signalised connectors (``LaneGraph.signal_fids`` order) and I intersections."""

    green_start: np.ndarray  # [M] float64 s into the cycle
    green_s: np.ndarray  # [M] float64 green duration, s
    signal_node: np.ndarray  # [M] int32 intersection index of each signalised connector
    cycle_s: np.ndarray  # [I] float64 cycle length of each intersection, s (nan: unsignalised)
    offset_s: np.ndarray  # [I] float64 cycle offset, s
    walk_start: np.ndarray  # [I] float64 start of the pedestrian walk interval in the cycle (nan: none)
    walk_s: np.ndarray  # [I] float64 walk duration, s


def make_signal_plan(net: RoadNetwork, g: LaneGraph, rng: np.random.Generator) -> SignalPlan:
    """Seeded fixed-time plan for every signalised intersection of ``net``."""
    m = len(g.signal_fids)
    n_inter = len(net.intersections)
    green_start, green_s = np.zeros(m), np.zeros(m)
    signal_node = np.full(m, -1, np.int32)
    cycle, offset = np.full(n_inter, np.nan), np.zeros(n_inter)
    walk_start, walk_s = np.full(n_inter, np.nan), np.full(n_inter, np.nan)
    far_turn = TURN_RIGHT if net.drive_on_left else TURN_LEFT
    elems = np.flatnonzero(g.signal >= 0)
    lane_groups_all = g.lane_group[~g.is_connector]
    for ni, inter in enumerate(net.intersections):
        mine = elems[g.node[elems] == ni]
        if not inter.signalised or mine.size == 0:
            continue
        heads = g.pts_yaw[g.elem_p0[mine]]
        axes: list[float] = []
        axis_of = np.zeros(mine.size, np.int64)
        approach_order = np.lexsort((g.fid[mine], g.lane_group[mine]))
        for k in approach_order:
            h = heads[k]
            for a, ref in enumerate(axes):
                if min(abs(geo.wrap_angle(h - ref)), abs(geo.wrap_angle(h - ref - np.pi))) < _AXIS_TOL:
                    axis_of[k] = a
                    break
            else:
                axes.append(float(h))
                axis_of[k] = len(axes) - 1
        main = int(np.argmax(np.bincount(axis_of, minlength=len(axes))))  # the axis with most movements
        t = 0.0
        for a in range(len(axes)):
            members = mine[axis_of == a]
            groups = [members]
            widest = max(int(np.count_nonzero(lane_groups_all == lg)) for lg in np.unique(g.lane_group[members]))
            if inter.protected_left and widest >= 3:  # only approaches with a dedicated turn lane
                far = members[g.turn[members] == far_turn]
                if far.size:
                    groups = [far, members[g.turn[members] != far_turn]]
            for gi, grp in enumerate(groups):
                if len(groups) == 2 and gi == 0:
                    dur = float(rng.uniform(6.0, 8.0))
                else:
                    dur = float(rng.uniform(14.0, 20.0) if a == main else rng.uniform(9.0, 13.0))
                green_start[g.signal[grp]] = t
                green_s[g.signal[grp]] = dur
                t += dur + YELLOW_S + ALL_RED_S
        signal_node[g.signal[mine]] = ni
        if inter.ped_phase:
            widths_m = [float(np.linalg.norm(cw.path[1] - cw.path[0])) for cw in net.crosswalks
                        if cw.intersection_fid == inter.fid]
            if widths_m:
                walk_start[ni] = t
                walk_s[ni] = max(widths_m) / WALK_SPEED_MPS + 3.0
                t += walk_s[ni] + ALL_RED_S
        cycle[ni] = t
        offset[ni] = float(rng.uniform(0.0, t))
    return SignalPlan(green_start, green_s, signal_node, cycle, offset, walk_start, walk_s)


def signal_states(plan: SignalPlan, times_s: np.ndarray) -> np.ndarray:
    """Status code (GREEN / YELLOW / RED) of every signalised connector: ``times_s [T]`` -> ``[T, M]`` int8."""
    node = plan.signal_node
    tau = np.mod(times_s[:, None] + plan.offset_s[node][None, :], plan.cycle_s[node][None, :])
    rel = tau - plan.green_start[None, :]
    green = (rel >= 0.0) & (rel < plan.green_s[None, :])
    yellow = (rel >= plan.green_s[None, :]) & (rel < plan.green_s[None, :] + YELLOW_S)
    return np.where(green, GREEN, np.where(yellow, YELLOW, RED)).astype(np.int8)


def walk_clock(plan: SignalPlan, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pedestrian walk clock per intersection: ``times_s [T]`` -> (time since the current cycle's walk
    interval began ``[T, I]`` in s, negative before it, nan where there is none; cycle counter ``[T, I]``)."""
    cycle = np.where(np.isnan(plan.cycle_s), 1.0, plan.cycle_s)[None, :]
    shifted = times_s[:, None] + plan.offset_s[None, :]
    cyc = np.floor_divide(shifted, cycle)
    rel = shifted - cyc * cycle - plan.walk_start[None, :]
    return rel, cyc.astype(np.int64)
