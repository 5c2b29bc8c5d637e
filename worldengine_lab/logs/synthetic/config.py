"""Configuration of the embedded world generator.

Rare-event policy (``events_per_log``): every log keeps its own split draw from ``(seed, index)``; the split
then sets how many rare safety-critical events (``events.RARE_EVENT_TAGS``) the log attempts.

* ``test_rare``: held-out logs built around events - each attempts two (with fallback types, so nearly all
  get at least one). They are never used for pre-training or mining.
* ``mine``: the same rate as ``test_rare``, because failure mining needs the hard cases.
* ``pretrain`` and ``test_common``: a low base rate - a real fleet's logs hold rare events everywhere, so
  ordinary logs sometimes contain one too.

With the defaults every event type is present in well under 3 % of the 10-s windows tiling the default
dataset (``events.window_rates``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ...errors import WorldEngineLabError
from ..nuplan.schema import MAP_VERSIONS
from .events import RARE_EVENT_TAGS

__all__ = ["SynthConfig", "SPLITS", "GENERATOR_VERSION"]

GENERATOR_VERSION = "3"
SPLITS = ("pretrain", "mine", "test_common", "test_rare")


@dataclass(frozen=True)
class SynthConfig:
    """How the synthetic logs are made. Everything random is derived from ``(seed, log index)``."""

    log_duration_s: float = 80.0
    """Length of each log (lidar_pc time base, 20 Hz), s. Needs at least 5 scenes."""
    scene_duration_s: float = 10.0
    """Length of each scene (the devkit drops the first two and last two scenes of a log), s."""
    burn_in_s: float = 10.0
    """Traffic simulated before the log starts, so the first frame shows moving traffic, s."""
    vehicles_per_km: float = 14.0
    """Vehicle density per km of lane (capped by ``max_vehicles``)."""
    max_vehicles: int = 56
    """Upper bound on simulated vehicles per log, besides the ego."""
    route_fraction: float = 0.35
    """Share of vehicles spawned on the roadblocks of the ego's route (the rest on any lane)."""
    spawn_radius_m: float = 700.0
    """Vehicles are spawned on lanes within this distance of the ego's start, m."""
    bicycle_fraction: float = 0.03
    """Share of road users that are bicycles riding in the lane (urban maps only)."""
    long_vehicle_fraction: float = 0.08
    """Share of vehicles that are buses or trucks (length 8.5-10 m)."""
    walkers_per_walkway: float = 0.6
    """Expected pedestrians walking along each walkway."""
    crossers_per_intersection: int = 2
    """Pedestrians crossing on the walk phase at each intersection that has one."""
    static_objects: tuple[int, int] = (2, 6)
    """Inclusive range of static objects (cones, barriers, signs) placed off the lanes per log."""
    box_range_m: float = 80.0
    """A box is written for an object only while its centre is this close to the ego's box centre, m."""
    traffic_light_range_m: float = 80.0
    """Signal status rows are written for intersections whose centre is this close to the ego, m."""
    tag_interval_s: float = 1.0
    """Minimum time between two scenario tags of the same type, s."""
    split_fractions: tuple[tuple[str, float], ...] = (
        ("pretrain", 0.34), ("mine", 0.33), ("test_common", 0.13), ("test_rare", 0.20),
    )
    """Split name and share of logs; each log draws its split from ``(seed, index)``."""
    maps: tuple[str, ...] = tuple(MAP_VERSIONS)
    """Maps that logs are recorded on (all maps are always written)."""
    events_per_log: tuple[tuple[str, float], ...] = (
        ("pretrain", 0.3), ("mine", 3.0), ("test_common", 0.3), ("test_rare", 3.0),
    )
    """Split name and expected number of rare events a log of that split attempts (floor + Bernoulli of the
    fraction; see the module docstring for the policy). An attempted event happens only when the traffic
    offers its situation in time, so the number injected can be lower."""
    event_types: tuple[str, ...] = RARE_EVENT_TAGS
    """Rare event types that may be injected (a subset of ``events.RARE_EVENT_TAGS``)."""
    event_schedule: tuple[str, ...] = ()
    """If set, log ``i`` attempts exactly one event of type ``event_schedule[i % len]`` (no fallbacks; ``""``
    for none) instead of the per-split draw - for building worlds that contain given events."""

    def validate(self) -> "SynthConfig":
        """Raise ``WorldEngineLabError`` naming the bad field; return self."""
        if self.scene_duration_s <= 0 or self.log_duration_s < 5 * self.scene_duration_s:
            raise WorldEngineLabError(
                f"SynthConfig: log_duration_s must hold at least 5 scenes of {self.scene_duration_s} s, "
                f"received {self.log_duration_s}; raise log_duration_s or lower scene_duration_s")
        names = [n for n, _ in self.split_fractions]
        if any(n not in SPLITS for n in names) or abs(sum(f for _, f in self.split_fractions) - 1.0) > 1e-6:
            raise WorldEngineLabError(
                f"SynthConfig.split_fractions: expected shares of {SPLITS} summing to 1, received "
                f"{self.split_fractions}")
        unknown = [m for m in self.maps if m not in MAP_VERSIONS]
        if unknown or not self.maps:
            raise WorldEngineLabError(
                f"SynthConfig.maps: expected names from {tuple(MAP_VERSIONS)}, received {self.maps}")
        if self.burn_in_s < 0 or self.max_vehicles < 0 or self.box_range_m <= 0:
            raise WorldEngineLabError("SynthConfig: burn_in_s, max_vehicles must be >= 0 and box_range_m > 0")
        if any(n not in SPLITS or r < 0 for n, r in self.events_per_log):
            raise WorldEngineLabError(
                f"SynthConfig.events_per_log: expected (split in {SPLITS}, rate >= 0) pairs, received "
                f"{self.events_per_log}")
        bad = [t for t in (*self.event_types, *self.event_schedule) if t and t not in RARE_EVENT_TAGS]
        if bad:
            raise WorldEngineLabError(
                f"SynthConfig.event_types / event_schedule: unknown event types {bad}; expected names from "
                f"{RARE_EVENT_TAGS}")
        return self

    def event_rate(self, split: str) -> float:
        """Expected number of rare events attempted per log of ``split``."""
        return dict(self.events_per_log).get(split, 0.0)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (for the manifest)."""
        d = asdict(self)
        d["split_fractions"] = [list(x) for x in self.split_fractions]
        d["static_objects"] = list(self.static_objects)
        d["maps"] = list(self.maps)
        d["events_per_log"] = [list(x) for x in self.events_per_log]
        d["event_types"] = list(self.event_types)
        d["event_schedule"] = list(self.event_schedule)
        return d
