"""Scenario tags (``scenario_tag`` rows) derived from what the ego actually does in a log.

Each rule is a boolean condition per frame (plus, where relevant, the interacting object); a type fires at
most once per ``min_interval`` frames. Thresholds follow the spirit of the nuPlan scenario miners (spec §1.5).
Injected rare events add their own tags (``rare_event_tags``, types ``events.RARE_EVENT_TAGS``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..nuplan.schema import SCENARIO_TYPES
from .events import InjectedEvent, event_tag_frames
from .lane_graph import LaneGraph
from .road_network import TURN_LEFT, TURN_RIGHT, TURN_STRAIGHT
from .signals import GREEN

__all__ = ["TagInputs", "derive_tags", "rare_event_tags"]

_VEHICLE, _PEDESTRIAN, _BICYCLE, _CZONE = 0, 1, 2, 5  # schema.CATEGORY_NAMES indices


@dataclass(frozen=True)
class TagInputs:
    """Per-frame facts about the ego (T frames) and the other objects (A)."""

    speed: np.ndarray  # [T] float64 ego speed, m/s
    accel: np.ndarray  # [T] float64 ego longitudinal acceleration, m/s^2
    lat_accel: np.ndarray  # [T] float64 ego lateral acceleration, m/s^2
    centre: np.ndarray  # [T, 2] float64 ego box centre, m (any frame shared with agent_xy)
    elem: np.ndarray  # [T] int64 lane graph element under the ego's rear axle
    next_conn: np.ndarray  # [T] int64 next (or current) connector element, -1 none
    front_to_conn: np.ndarray  # [T] float64 ego front bumper to that connector's start, m (<0: entered)
    rear_on_conn: np.ndarray  # [T] float64 ego rear axle arc length along its current connector (nan: on a lane)
    conn_state: np.ndarray  # [T] int64 signal status of next_conn (GREEN/YELLOW/RED), -1 unsignalised
    unprotected: np.ndarray  # [T] bool a crossing movement with right of way over next_conn is green too
    lead: np.ndarray  # [T] int64 object index the ego follows, -1 none
    lead_gap: np.ndarray  # [T] float64 bumper-to-bumper gap to it, m
    agent_xy: np.ndarray  # [T, A, 2] float64 object centres, m
    agent_speed: np.ndarray  # [T, A] float64, m/s
    agent_valid: np.ndarray  # [T, A] bool object observed
    agent_category: np.ndarray  # [A] int64 schema.CATEGORY_NAMES index
    agent_length: np.ndarray  # [A] float64, m
    agent_on_crosswalk: np.ndarray  # [T, A] bool pedestrian walking on a crosswalk


def _sparse(cond: np.ndarray, every: int) -> np.ndarray:
    """Frames of ``cond [T]`` keeping at most one per ``every`` frames."""
    out, last = [], -every
    for f in np.flatnonzero(cond).tolist():
        if f - last >= every:
            out.append(f)
            last = f
    return np.array(out, np.int64)


def _rising(cond: np.ndarray) -> np.ndarray:
    """``cond [T]`` only at the frames where it becomes true."""
    prev = np.concatenate([[False], cond[:-1]])
    return cond & ~prev


def _nearest(dist: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Index of the nearest object satisfying ``mask [T, A]`` per frame, -1 none."""
    d = np.where(mask, dist, np.inf)
    idx = d.argmin(axis=1) if d.shape[1] else np.zeros(len(d), np.int64)
    return np.where(np.isfinite(d.min(axis=1)) if d.shape[1] else False, idx, -1)


def derive_tags(x: TagInputs, g: LaneGraph, drive_on_left: bool, min_interval: int
                ) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Tags of one log -> (frames ``[G]``, types ``[G]``, object index or -1 ``[G]``), sorted by frame, type."""
    t_count = len(x.speed)
    v, a = x.speed, x.accel
    on_conn = g.is_connector[x.elem]
    has_next = x.next_conn >= 0
    nc = np.maximum(x.next_conn, 0)
    approaching = has_next & ~on_conn
    signalised = x.conn_state >= 0
    red = (x.conn_state >= 0) & (x.conn_state != GREEN)
    near_line = approaching & signalised & (x.front_to_conn < 6.0)
    dist = np.linalg.norm(x.agent_xy - x.centre[:, None, :], axis=-1)
    seen = x.agent_valid
    cat = x.agent_category[None, :]
    vehicle = seen & (cat == _VEHICLE)
    lead = x.lead
    has_lead = (lead >= 0) & (x.lead_gap < 25.0)
    lead_i = np.maximum(lead, 0)
    lead_speed = x.agent_speed[np.arange(t_count), lead_i] if x.agent_speed.shape[1] else np.zeros(t_count)
    lead_before_line = has_lead & (x.lead_gap < x.front_to_conn)
    stopped = v < 0.1
    turn = np.where(has_next, g.turn[nc], -1)
    far_turn, near_turn = (TURN_RIGHT, TURN_LEFT) if drive_on_left else (TURN_LEFT, TURN_RIGHT)
    enter = _rising(has_next & (x.front_to_conn <= 0.0) & (x.front_to_conn > -3.0))
    no_lead = -np.ones(t_count, np.int64)

    n_veh30 = (vehicle & (dist < 30.0)).sum(axis=1)
    peds20 = seen & (cat == _PEDESTRIAN) & (dist < 20.0)
    ped_cw = seen & x.agent_on_crosswalk & (dist < 20.0)
    long_near = vehicle & (x.agent_length[None, :] > 8.0) & (dist < 20.0)
    fast_near = vehicle & (x.agent_speed > 15.0) & (dist < 25.0)
    czone = seen & (cat == _CZONE) & (dist < 20.0)
    lead_cat = x.agent_category[lead_i] if len(x.agent_category) else np.zeros(t_count, np.int64)
    lead_len = x.agent_length[lead_i] if len(x.agent_length) else np.zeros(t_count)
    lo, hi = g.crosswalk_lo[x.elem], g.crosswalk_hi[x.elem]
    over_cw = on_conn & (x.rear_on_conn + 4.0 >= lo) & (x.rear_on_conn - 1.2 <= hi)

    rules: list[tuple[str, np.ndarray, np.ndarray, bool]] = [  # (type, condition, object, one-shot)
        ("stationary", stopped, no_lead, False),
        ("stationary_at_traffic_light_without_lead", stopped & near_line & red & ~lead_before_line, no_lead, False),
        ("stationary_at_traffic_light_with_lead", stopped & approaching & red & (x.front_to_conn < 40.0)
         & lead_before_line, lead, False),
        ("stopping_at_traffic_light_without_lead", (a < -0.5) & (v > 1.0) & approaching & red
         & (x.front_to_conn < 50.0) & ~lead_before_line, no_lead, False),
        ("stopping_at_traffic_light_with_lead", (a < -0.5) & (v > 1.0) & approaching & red
         & (x.front_to_conn < 50.0) & lead_before_line, lead, False),
        ("accelerating_at_traffic_light", (a > 0.5) & (v < 6.0) & near_line & (x.conn_state == GREEN), no_lead, False),
        ("accelerating_at_traffic_light_without_lead", (a > 0.5) & (v < 6.0) & near_line & (x.conn_state == GREEN)
         & ~has_lead, no_lead, False),
        ("accelerating_at_traffic_light_with_lead", (a > 0.5) & (v < 6.0) & near_line & (x.conn_state == GREEN)
         & has_lead, lead, False),
        ("on_stopline_traffic_light", approaching & signalised & (x.front_to_conn < 2.5), no_lead, False),
        ("on_intersection", on_conn, no_lead, False),
        ("on_traffic_light_intersection", on_conn & signalised, no_lead, False),
        ("traversing_intersection", on_conn & (v > 3.0), no_lead, False),
        ("traversing_traffic_light_intersection", on_conn & signalised & (v > 3.0), no_lead, False),
        ("traversing_crosswalk", over_cw & (v > 1.0), no_lead, False),
        ("starting_left_turn", enter & (turn == TURN_LEFT), no_lead, True),
        ("starting_right_turn", enter & (turn == TURN_RIGHT), no_lead, True),
        ("starting_straight_traffic_light_intersection_traversal", enter & (turn == TURN_STRAIGHT) & signalised,
         no_lead, True),
        ("starting_unprotected_cross_turn", enter & (turn == far_turn) & signalised & x.unprotected, no_lead, True),
        ("starting_protected_cross_turn", enter & (turn == far_turn) & signalised & ~x.unprotected, no_lead, True),
        ("starting_protected_noncross_turn", enter & (turn == near_turn) & signalised, no_lead, True),
        ("starting_low_speed_turn", enter & np.isin(turn, (TURN_LEFT, TURN_RIGHT)) & (v < 5.0), no_lead, True),
        ("starting_high_speed_turn", enter & np.isin(turn, (TURN_LEFT, TURN_RIGHT)) & (v >= 8.0), no_lead, True),
        ("following_lane_with_lead", ~on_conn & has_lead & (v > 3.0) & (np.abs(v - lead_speed) < 3.0), lead, False),
        ("following_lane_with_slow_lead", ~on_conn & has_lead & (v > 2.0) & (lead_speed < 0.6 * np.maximum(
            g.speed_limit[x.elem], 1.0)), lead, False),
        ("following_lane_without_lead", ~on_conn & ((lead < 0) | (x.lead_gap > 50.0)) & (v > 5.0), no_lead, False),
        ("stopping_with_lead", (a < -0.6) & (v > 1.0) & has_lead & (x.lead_gap < 20.0), lead, False),
        ("stationary_in_traffic", stopped & has_lead & (x.lead_gap < 6.0) & (n_veh30 >= 3), lead, False),
        ("behind_long_vehicle", has_lead & (lead_len > 8.0) & (lead_cat == _VEHICLE) & (x.lead_gap < 20.0),
         lead, False),
        ("behind_bike", has_lead & (lead_cat == _BICYCLE) & (x.lead_gap < 20.0), lead, False),
        ("near_multiple_vehicles", (v > 1.0) & (n_veh30 >= 6), no_lead, False),
        ("near_multiple_pedestrians", peds20.sum(axis=1) >= 3, _nearest(dist, peds20), False),
        ("near_pedestrian_on_crosswalk", ped_cw.any(axis=1), _nearest(dist, ped_cw), False),
        ("waiting_for_pedestrian_to_cross", stopped & approaching & (x.front_to_conn < 8.0)
         & (seen & x.agent_on_crosswalk & (dist < 15.0)).any(axis=1),
         _nearest(dist, seen & x.agent_on_crosswalk & (dist < 15.0)), False),
        ("near_long_vehicle", long_near.any(axis=1), _nearest(dist, long_near), False),
        ("near_high_speed_vehicle", fast_near.any(axis=1), _nearest(dist, fast_near), False),
        ("near_construction_zone_sign", czone.any(axis=1), _nearest(dist, czone), False),
        ("high_magnitude_speed", v > 15.0, no_lead, False),
        ("medium_magnitude_speed", (v >= 2.8) & (v <= 11.0), no_lead, False),
        ("low_magnitude_speed", (v > 0.3) & (v < 2.8), no_lead, False),
        ("high_lateral_acceleration", np.abs(x.lat_accel) > 1.8, no_lead, False),
    ]
    frames, types, agents = [], [], []
    for name, cond, obj, once in rules:
        assert name in SCENARIO_TYPES, name
        f = np.flatnonzero(cond) if once else _sparse(cond, min_interval)
        frames.append(f)
        types += [name] * len(f)
        agents.append(obj[f])
    fr = np.concatenate(frames).astype(np.int64)
    ag = np.concatenate(agents).astype(np.int64)
    order = np.lexsort((np.array(types, dtype=object).astype(str), fr)) if len(fr) else np.zeros(0, np.int64)
    return fr[order], tuple(types[i] for i in order), ag[order]


def rare_event_tags(tags: tuple[np.ndarray, tuple[str, ...], np.ndarray], events: list[InjectedEvent],
                    valid: np.ndarray, frame_s: float) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """``tags`` (as from ``derive_tags``) plus one row per rare event at its begin frame and every 0.5 s for
    the next 2 s (``events.event_tag_frames``) where the hazard agent's box is written (``valid [T, A]``);
    the agent is the interacting object. Sorted by frame, then type."""
    frames, types, agents = [tags[0]], list(tags[1]), [tags[2]]
    for ev in events:
        f = event_tag_frames(ev.frame, valid.shape[0], frame_s)
        f = f[(f == ev.frame) | valid[f, ev.agent]]
        frames.append(f)
        types += [ev.tag] * len(f)
        agents.append(np.full(len(f), ev.agent, np.int64))
    fr = np.concatenate(frames).astype(np.int64)
    ag = np.concatenate(agents).astype(np.int64)
    order = np.lexsort((np.array(types, dtype=object).astype(str), fr)) if len(fr) else np.zeros(0, np.int64)
    return fr[order], tuple(types[i] for i in order), ag[order]
