"""Rare, safety-critical events injected into the embedded world's traffic (its long tail).

Seven event types, each a frozen dataclass of the parameters drawn for one occurrence. Every event is
*hard but avoidable*: the parameters are drawn so that a driver who reacts when the hazard becomes visible
avoids it braking at most ~8 m/s^2 (the generator's own ego always does; see ``hazard_controller``), while a
driver who ignores it would collide. Each occurrence is tagged in ``scenario_tag`` with one of
``RARE_EVENT_TAGS`` at the sweep where the hazard begins and every 0.5 s for the next 2 s, with
``agent_track_token`` = the hazard agent's track.

Which logs get events (and how many) is decided per log by ``plan_attempts`` from ``SynthConfig`` (see
``SynthConfig.events_per_log`` for the split policy); when each one fires is decided online by the hazard
controller, because most events need a particular traffic situation (a lead vehicle, a green light...).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

import numpy as np

__all__ = [
    "RARE_EVENT_TAGS", "CutIn", "HardBrake", "PedestrianDartOut", "RedLightRunner", "StalledVehicle",
    "OncomingDrift", "UnprotectedLeftFastOncoming", "EVENT_TYPES", "EventAttempt", "InjectedEvent",
    "plan_attempts", "draw_params", "event_tag_frames", "window_rates", "TAG_REPEAT_S", "TAG_SPAN_S",
]

RARE_EVENT_TAGS: tuple[str, ...] = (
    "rare_cut_in", "rare_hard_brake", "rare_pedestrian_dart_out", "rare_red_light_runner", "rare_stalled_vehicle",
    "rare_oncoming_drift", "rare_unprotected_left_fast_oncoming",
)
TAG_REPEAT_S, TAG_SPAN_S = 0.5, 2.0  # a rare tag repeats every 0.5 s for 2 s after the hazard begins


@dataclass(frozen=True)
class CutIn:
    """Aggressive cut-in: a car in the neighbour lane (same direction) changes into the ego's lane just ahead
    of it, then brakes mildly.

    Triggers while the ego drives >= 8 m/s on a lane with a same-direction neighbour lane and room ahead, with
    room for the car before the ego's lead: the only car within 60 m in the neighbour lane becomes the cut-in
    car (if there is none, one appears 12-30 m behind, faster by ``overtake_mps``). It settles beside-ahead of
    the ego at the ego's speed with its rear ``gap_m`` ahead of the ego's front bumper (time gap < 1 s), then
    moves over in ``lane_change_s`` and brakes at ``brake_mps2`` for ``brake_s``. The hazard begins when the
    lateral move starts.
    Avoid: brake when it starts to move over (it is as fast as the ego then, so braking opens the gap again;
    the move takes >= 1.8 s).
    """

    gap_m: float  # bumper gap ahead of the ego when the lane change starts, m (4-8)
    overtake_mps: float  # speed above the ego's while catching up from behind, m/s (3-6)
    lane_change_s: float  # duration of the lateral move, s (1.8-2.8)
    brake_mps2: float  # mild braking after the move, m/s^2 (1.5-3)
    brake_s: float  # duration of that braking, s (1-2)


@dataclass(frozen=True)
class HardBrake:
    """The ego's lead vehicle brakes hard to a stop.

    Triggers when the ego (>= 5 m/s) follows a car (not a truck or bicycle) on its own path at 6-40 m with a
    time gap of 0.9-3 s and a similar speed (+- 3 m/s), the lead on a lane >= 15 m before its next junction.
    (When this event is planned for a log, a car sharing the ego's route starts 22-32 m ahead of it.) The lead
    then brakes at ``decel_mps2`` to a standstill, waits ``hold_s`` and drives on. The hazard begins with the
    braking.
    Avoid: brake at once, up to ~8 m/s^2 (the time gap leaves room since the lead needs >= 6 m/s^2 too).
    """

    decel_mps2: float  # braking of the lead, m/s^2 (6-8)
    hold_s: float  # standstill before it drives on, s (1-3)


@dataclass(frozen=True)
class PedestrianDartOut:
    """A pedestrian steps out from behind cars parked at the kerb into the ego's lane.

    Two or three cars stand half on the walkway along kerb lanes of the ego's route (that walkway has no other
    walkers), with a gap of 1.3-2 m between two of them; a pedestrian waits on the walkway behind the gap.
    Triggers when the ego (5-14 m/s, nobody ahead of it before the gap) would reach the gap in
    ``time_to_arrival_s`` at its speed: the pedestrian walks at ``speed_mps`` through the gap into the lane,
    stops ``depth_m`` beyond the lane edge for ``hesitate_s`` and walks back. The hazard begins when it starts
    walking.
    Avoid: brake to a stop before the gap as soon as the pedestrian moves between the cars (~0.6 s after it
    starts, leaving >= 1.2 s) and wait until it is back on the walkway.
    """

    speed_mps: float  # walking speed towards the lane, m/s (1.5-2.5)
    time_to_arrival_s: float  # ego time to the gap at its speed when the pedestrian starts, s (1.9-2.8)
    depth_m: float  # how far beyond the lane edge the pedestrian walks, m (1.2-2.2)
    hesitate_s: float  # standing in the lane, s (1-2)


@dataclass(frozen=True)
class RedLightRunner:
    """A cross-traffic car ignores its red light and crosses the junction while the ego has green.

    Triggers when the ego approaches a signalised junction on a green that lasts long enough, 4-7 s before it
    would reach the zone where its path crosses a movement (straight, or turning across) of a perpendicular
    approach that has red for that long and a clear lane: a car appears on that approach (mostly out of
    sight) and drives through its red at ``speed_mps``, reaching the crossing ``arrival_offset_s`` after the
    ego would. (When this event is planned, the ego's route leads through such a junction.) The hazard
    begins when the car is 3 s from its stop line without braking.
    Avoid: a car that does not slow down for its red is visibly going to run it - stop before the crossing
    zone (the ego needs <= ~4 m/s^2) and let it pass.
    """

    speed_mps: float  # speed of the runner, m/s (11-15)
    arrival_offset_s: float  # runner's arrival at the crossing zone minus the ego's (unperturbed), s (-0.4..0.4)


@dataclass(frozen=True)
class StalledVehicle:
    """A broken-down car stands still in the ego's lane.

    Triggers while the ego drives >= 3 m/s. If the ego follows a car 10-60 m ahead on a lane, that car's
    engine dies: it rolls to a stop at 2.5 m/s^2 >= 15 m before the next junction (the hazard begins then).
    Otherwise a stationary car appears ``distance_m`` ahead (out of sight; at most the drawn distance, down
    to 85 m where the lane layout needs) in the ego's lane, >= 12 m from the lane's start and 25 m from its
    end, provided no car between them will still be on the ego's path there; the hazard begins when the ego
    comes within 75 m. The car restarts after the ego has waited behind it for ``wait_s`` (at most 25 s).
    Avoid: stop behind it (there is room to brake comfortably).
    """

    distance_m: float  # ego front to the car's rear at set-up, m (85-110 when it appears; 10-60 for a lead)
    wait_s: float  # the car restarts after the ego has stood behind it this long, s (3-7)


@dataclass(frozen=True)
class OncomingDrift:
    """An oncoming car drifts over the centre line into the ego's lane for a few seconds, then returns.

    Triggers while the ego drives >= 6 m/s in the lane next to the centre line of an undivided two-way road
    with >= 70 m of lane ahead: an oncoming car appears 60-95 m ahead in the opposite lane (mostly out of
    sight). It drifts left by ``offset_m`` within ``ramp_s``, holds ``hold_s`` and drifts back within
    ``ramp_s``; its side then overlaps a car centred in the ego's lane. The drift starts when ego and car,
    at constant speeds, would meet ``meet_s`` later, ~0.5 s before the overlap ends - so an ego that ignores
    it collides - and only if nobody else is in the ego's lane next to it and an ego braking at 6 m/s^2 meets
    it >= 0.3 s after it is back (``hold_s`` is lengthened up to 2.5 s until this holds). The hazard begins
    when the drift starts.
    Avoid: brake early (a car coming over the line is visible) so that it is back in its lane when it passes.
    """

    offset_m: float  # lateral drift towards the ego's lane, m (1.6-2.0)
    ramp_s: float  # time to drift over / back, s (0.8-1.2)
    hold_s: float  # time over the line, s (0.8-1.6 drawn, up to 2.5 applied)
    meet_s: float  # unperturbed time to meet when the drift starts, s (set when it starts)


@dataclass(frozen=True)
class UnprotectedLeftFastOncoming:
    """The ego turns left across oncoming traffic (unprotected, on a shared green) while an oncoming car
    approaches much faster than the speed limit.

    Only on the map built around unprotected left turns (``us-pa-pittsburgh-hazelwood``); the ego's route is
    made to turn left at a signalised junction. Triggers when the ego, among the first in line on a green
    lasting long enough, is within 30 m of its turn and can still stop before the crossing zone at 3 m/s^2: a
    car appears on the opposite approach (mostly out of sight; it would not catch up with anyone before the
    junction) at ``speed_factor`` x the speed limit, ``time_to_zone_s`` from the crossing zone. The hazard
    begins when it is in sight.
    Avoid: judge its speed (the gap looks long enough at the speed limit) and wait until it has passed.
    """

    speed_factor: float  # speed of the oncoming car / speed limit (1.3-1.5)
    time_to_zone_s: float  # its time to the crossing zone when it appears, s (4-5, less on a short approach)


EVENT_TYPES: dict[str, type] = dict(zip(RARE_EVENT_TAGS, (
    CutIn, HardBrake, PedestrianDartOut, RedLightRunner, StalledVehicle, OncomingDrift,
    UnprotectedLeftFastOncoming)))

# relative weight of each type when a log's events are drawn: types possible on fewer maps, and types whose
# situation comes up less often, weigh more, so that every type is about equally frequent over a dataset
# (solved for the four maps with each type's measured share of attempts that find their situation)
_TYPE_WEIGHT = dict(zip(RARE_EVENT_TAGS, (0.17, 0.15, 0.35, 0.5, 0.08, 0.9, 4.5)))


def draw_params(tag: str, rng: np.random.Generator):
    """Random parameters of one event of type ``tag`` (one of ``RARE_EVENT_TAGS``)."""
    u = rng.uniform
    if tag == "rare_cut_in":
        return CutIn(u(4.0, 8.0), u(3.0, 6.0), u(1.8, 2.8), u(1.5, 3.0), u(1.0, 2.0))
    if tag == "rare_hard_brake":
        return HardBrake(u(6.0, 8.0), u(1.0, 3.0))
    if tag == "rare_pedestrian_dart_out":
        return PedestrianDartOut(u(1.5, 2.5), u(1.9, 2.8), u(1.2, 2.2), u(1.0, 2.0))
    if tag == "rare_red_light_runner":
        return RedLightRunner(u(11.0, 15.0), u(-0.4, 0.4))
    if tag == "rare_stalled_vehicle":
        return StalledVehicle(u(85.0, 110.0), u(3.0, 7.0))
    if tag == "rare_oncoming_drift":
        return OncomingDrift(u(1.6, 2.0), u(0.8, 1.2), u(0.8, 1.6), math.nan)
    if tag == "rare_unprotected_left_fast_oncoming":
        return UnprotectedLeftFastOncoming(u(1.3, 1.5), u(4.0, 5.0))
    raise KeyError(f"draw_params: unknown event type {tag!r}; expected one of {RARE_EVENT_TAGS}")


@dataclass(frozen=True)
class EventAttempt:
    """One planned event of a log: it may fire while the log time is in [start_s, end_s)."""

    types: tuple[str, ...]  # the planned type first, then fallbacks (armed from ``fallback_s``)
    start_s: float  # log time from which the hazard may begin, s
    end_s: float  # log time until which a hazard may be set up for this attempt, s
    fallback_s: float  # log time from which the fallback types are armed too, s
    latest_s: float  # log time until which a hazard set up for this attempt may begin, s
    last_resort: str = ""  # type armed from ``last_resort_s`` if the log has no event yet ("" none)
    last_resort_s: float = math.inf  # log time from which ``last_resort`` is armed, s


@dataclass(frozen=True)
class InjectedEvent:
    """An event that actually happened in a log."""

    tag: str  # one of RARE_EVENT_TAGS
    frame: int  # output frame (lidar_pc index) where the hazard begins
    agent: int  # object index of the hazard agent in the log's objects
    params: object  # the event's parameter dataclass

    def to_dict(self, frame_s: float) -> dict:
        d = {"type": self.tag, "start_s": round(self.frame * frame_s, 2), "frame": int(self.frame)}
        d["params"] = {k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else v)
                       for k, v in asdict(self.params).items() if not (isinstance(v, float) and math.isnan(v))}
        return d


def _count(rate: float, rng: np.random.Generator) -> int:
    whole = int(math.floor(rate))
    return whole + int(rng.random() < rate - whole)


def plan_attempts(rate: float, feasible: Iterable[str], window_s: tuple[float, float], rng: np.random.Generator,
                  schedule: str = "", fallbacks: int = 0, guarantee: bool = False) -> list[EventAttempt]:
    """The events a log attempts: ``rate`` expected events (floor + Bernoulli) of distinct types drawn among
    ``feasible`` by weight, each in its own equal share of ``window_s`` (log time, s), with up to ``fallbacks``
    other types (drawn alike; never the left turn or the stalled car) armed from halfway through the share in
    case the planned one finds no occasion. With ``guarantee`` the last attempt also arms a stalled vehicle
    (the type that finds an occasion almost always) over the last 40 % of its share if the log has no event
    by then.
    ``schedule`` (a type name) forces exactly one attempt of that type (no fallbacks) when feasible."""
    types = [t for t in RARE_EVENT_TAGS if t in set(feasible)]
    lo, hi = window_s
    if schedule:
        return [EventAttempt((schedule,), lo, hi, hi, hi)] if schedule in types else []
    n = min(_count(rate, rng), len(types))
    if n == 0 or hi <= lo:
        return []
    w = np.array([_TYPE_WEIGHT[t] for t in types])
    order = [types[i] for i in rng.choice(len(types), len(types), replace=False, p=w / w.sum())]
    chosen, rest = order[:n], order[n:]
    # a forced left turn shapes the ego's route from the start: that attempt goes first
    chosen.sort(key=lambda t: t != "rare_unprotected_left_fast_oncoming")
    # not as fallbacks: a left turn needs a route planned for it; a stalled car finds an occasion almost always
    # (it would crowd out the others) and is the last resort of held-out logs instead
    rest = [t for t in rest if t not in ("rare_unprotected_left_fast_oncoming", "rare_stalled_vehicle")]
    share = (hi - lo) / n
    out = []
    for k, tag in enumerate(chosen):
        a, b = lo + k * share, lo + (k + 1) * share
        extra = [rest[(k * fallbacks + i) % len(rest)] for i in range(min(fallbacks, len(rest)))] if rest else []
        last = guarantee and k == n - 1 and "rare_stalled_vehicle" in types
        # the ego's route leads to the junction of a left-turn event, but when it arrives is uncertain
        b_set = hi if tag == "rare_unprotected_left_fast_oncoming" else b
        out.append(EventAttempt((tag, *extra), a, b_set, a + 0.5 * (b - a), hi,
                                "rare_stalled_vehicle" if last else "", a + 0.6 * (b - a) if last else math.inf))
    return out


def event_tag_frames(frame: int, num_frames: int, frame_s: float) -> np.ndarray:
    """Frames of one event's tag rows: the begin frame, then every ``TAG_REPEAT_S`` on the log's 0.5 s grid
    for ``TAG_SPAN_S`` (so windows sampled on a 0.5 s / 1 s grid around the event carry the tag)."""
    step = int(round(TAG_REPEAT_S / frame_s))
    span = int(round(TAG_SPAN_S / frame_s))
    grid = np.arange((frame // step + 1) * step, frame + span + 1, step)
    out = np.concatenate([[frame], grid])
    return out[out < num_frames].astype(np.int64)


def window_rates(logs: Iterable[Mapping], window_s: float = 10.0) -> dict[str, float]:
    """Share of consecutive ``window_s`` windows tiling every log in which an event of each type is present
    (its tags span ``TAG_SPAN_S`` after its start, so an event may touch two windows).

    ``logs``: manifest entries (``duration_s`` and ``rare_events`` with ``type`` / ``start_s``).
    """
    counts = {t: 0 for t in RARE_EVENT_TAGS}
    total = 0
    for entry in logs:
        n_win = int(math.floor(float(entry["duration_s"]) / window_s + 1e-9))
        total += n_win
        hit: dict[str, set[int]] = {}
        for ev in entry.get("rare_events", []):
            first = int(ev["start_s"] // window_s)
            last = int(min(ev["start_s"] + TAG_SPAN_S, float(entry["duration_s"]) - 1e-6) // window_s)
            hit.setdefault(ev["type"], set()).update(k for k in range(first, last + 1) if k < n_win)
        for t, ws in hit.items():
            counts[t] = counts.get(t, 0) + len(ws)
    return {t: (c / total if total else 0.0) for t, c in counts.items()}
