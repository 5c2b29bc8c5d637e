"""One synthetic log: simulate the traffic of a map and assemble everything the .db holds (``LogContent``).

This is the only place where traffic (``traffic``, ``pedestrians``, ``signals``) meets the file format
(``db_writer``): it converts the local-frame simulation into global UTM arrays, picks which boxes are
observed, cuts scenes, builds their routes and derives scenario tags. When the log's split asks for rare
events (``SynthConfig.events_per_log``), a ``HazardController`` steers the traffic simulation and the
events that happened are tagged and returned for the manifest.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..nuplan.schema import MAP_LOCATIONS
from .config import SynthConfig
from .dart_out import PED_SIZE_M
from .db_writer import LogContent
from .events import RARE_EVENT_TAGS, InjectedEvent, plan_attempts
from .hazard_controller import HazardController
from .lane_graph import CONFLICT_CROSS, LaneGraph, build_lane_graph
from .lane_relations import LaneRelations, build_lane_relations
from .pedestrians import PEDESTRIAN, place_static_objects, simulate_pedestrians
from .road_network import RoadNetwork
from .road_spec import INTERSECTION_TYPES
from .signals import GREEN, make_signal_plan, signal_states
from .tags import TagInputs, derive_tags, rare_event_tags
from .traffic import EGO_FRONT_M, REAR_AXLE_TO_CENTER_M, VEHICLE, Vehicles, simulate_vehicles

__all__ = ["LogSpec", "MapAssets", "make_log", "FRAME_US", "SIM_DT_S", "event_window", "feasible_events"]

FRAME_US = 50_000  # lidar_pc spacing (20 Hz), us
SIM_DT_S = 0.1  # traffic model step, s (two output frames per step)


@dataclass(frozen=True)
class LogSpec:
    """Identity of one log, drawn from (seed, index) by the generator."""

    index: int
    log_name: str
    map_name: str
    split: str
    vehicle_name: str
    date: str  # YYYY-MM-DD
    start_us: int  # us since the Unix epoch


@dataclass(frozen=True)
class MapAssets:
    """A map built once and shared by its logs."""

    network: RoadNetwork
    graph: LaneGraph
    relations: LaneRelations
    feasible_events: tuple[str, ...]  # rare event types this map can host

    @classmethod
    def build(cls, network: RoadNetwork) -> "MapAssets":
        g = build_lane_graph(network)
        rel = build_lane_relations(network, g)
        return cls(network, g, rel, _feasible_events(network, g, rel))


def _feasible_events(net: RoadNetwork, g: LaneGraph, rel: LaneRelations) -> tuple[str, ...]:
    """Rare event types whose road situation exists on the map (whether a log meets it is decided online)."""
    lane = ~g.is_connector
    straight_cross = (g.conflict >= 0) & (g.signal >= 0)[:, None] & (g.signal >= 0)[None, :]
    ok = {
        "rare_cut_in": bool(np.any(lane & ((rel.left >= 0) | (rel.right >= 0)) & (g.length >= 120.0))),
        "rare_hard_brake": True,
        "rare_pedestrian_dart_out": bool(np.any(lane & (rel.walkway >= 0) & (g.length >= 60.0))),
        "rare_red_light_runner": bool(straight_cross.any()),
        "rare_stalled_vehicle": True,
        "rare_oncoming_drift": bool(np.any(lane & (rel.opposite >= 0) & (g.length >= 80.0))),
        # the map built around unprotected left turns (layouts.unprotected_left)
        "rare_unprotected_left_fast_oncoming": net.layout == "unprotected_left",
    }
    return tuple(t for t in RARE_EVENT_TAGS if ok[t])


def event_window(cfg: SynthConfig) -> tuple[float, float]:
    """Log times (s) within which rare hazards may begin: inside the scenes the devkit keeps (it drops the first
    two and last two), leaving 1 s before and the tag span plus 1 s after."""
    n_scenes = int(cfg.log_duration_s // cfg.scene_duration_s)
    return 2 * cfg.scene_duration_s + 1.0, (n_scenes - 2) * cfg.scene_duration_s - 3.0


def _attempts(spec: LogSpec, assets: MapAssets, cfg: SynthConfig, rng: np.random.Generator) -> list:
    """The rare events log ``spec`` attempts (``events.plan_attempts``)."""
    feasible = [t for t in assets.feasible_events if t in cfg.event_types]
    lo, hi = event_window(cfg)
    if cfg.event_schedule:
        return plan_attempts(0.0, feasible, (lo, hi), rng, cfg.event_schedule[spec.index % len(cfg.event_schedule)])
    rate = min(cfg.event_rate(spec.split), max(1.0, (hi - lo) // 14.0))  # room for >= 14 s per event
    # logs built around events (rate >= 1) get fallback types in case the planned one finds no occasion;
    # held-out rare-event logs also a last resort, so that each of them holds an event
    return plan_attempts(rate, feasible, (lo, hi), rng, fallbacks=2 if rate >= 1.0 else 0,
                         guarantee=spec.split == "test_rare")


_RETRIES = 4  # a held-out rare-event log whose traffic offered no event is drawn again (new seed stream)


def make_log(spec: LogSpec, assets: MapAssets, cfg: SynthConfig, seed: int
             ) -> tuple[LogContent, dict, list[InjectedEvent]]:
    """Simulate log ``spec``; return its content, a few statistics for the manifest and the rare events that
    happened in it. A log that must hold an event - a ``test_rare`` log, or one given a type by
    ``SynthConfig.event_schedule`` - in which none found its situation (e.g. the ego stood at a red light
    throughout) is simulated again from the next random stream, up to ``_RETRIES`` times."""
    scheduled = cfg.event_schedule[spec.index % len(cfg.event_schedule)] if cfg.event_schedule else ""
    must = (scheduled in assets.feasible_events if cfg.event_schedule
            else spec.split == "test_rare" and cfg.event_rate(spec.split) > 0)
    for retry in range(_RETRIES + 1):
        content, stats, events = _make_log(spec, assets, cfg, seed, retry)
        if events or not must:
            break
    stats["redraws"] = retry
    return content, stats, events


def feasible_events(map_name: str) -> tuple[str, ...]:
    """Rare event types whose road situation exists on map ``map_name`` (builds the map)."""
    from ..nuplan.schema import MAP_EPSG
    from .layouts import MAP_ORIGINS, layout_for
    from .network_builder import build_network

    net = build_network(layout_for(map_name), map_name, MAP_EPSG[map_name], MAP_ORIGINS[map_name])
    g = build_lane_graph(net)
    return _feasible_events(net, g, build_lane_relations(net, g))


def _make_log(spec: LogSpec, assets: MapAssets, cfg: SynthConfig, seed: int, retry: int
              ) -> tuple[LogContent, dict, list[InjectedEvent]]:
    net, g = assets.network, assets.graph
    stream = [seed, spec.index] + ([retry] if retry else [])
    rng = np.random.default_rng(stream + [0x5EED])
    plan = make_signal_plan(net, g, rng)
    steps = int(round(cfg.log_duration_s / SIM_DT_S))
    burn = int(round(cfg.burn_in_s / SIM_DT_S))
    sim_times = (np.arange(burn + steps) - burn) * SIM_DT_S
    urban = bool(net.walkways)
    sim_lights = signal_states(plan, sim_times)
    ev_rng = np.random.default_rng(stream + [0xE7E47])
    attempts = _attempts(spec, assets, cfg, ev_rng)
    ctl = None
    if attempts:
        horizon = (g.speed_limit.max() * 1.1) * (steps + burn) * SIM_DT_S + 150.0
        ctl = HazardController(net, g, assets.relations, sim_lights, SIM_DT_S, burn, attempts, ev_rng,
                               cfg.box_range_m, horizon)
    veh = simulate_vehicles(g, sim_lights, cfg, rng, SIM_DT_S, steps, burn, 2, urban, _ego_start(net, g, rng),
                            hooks=ctl)
    t_count = 2 * steps
    dt = SIM_DT_S / 2
    times = np.arange(t_count) * dt
    lights = signal_states(plan, times)  # [T, M]
    peds = simulate_pedestrians(net, plan, cfg, rng, times,
                                frozenset(ctl.excluded_walkways()) if ctl is not None else frozenset())
    statics = place_static_objects(net, cfg, rng)
    hz = _hazard_objects(ctl, times)

    # ego (vehicle 0): rear axle on its path
    rear, yaw, v = veh.xy[:, 0], veh.yaw[:, 0], veh.speed[:, 0]
    heading = np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)
    centre = rear + REAR_AXLE_TO_CENTER_M * heading
    yaw_rate = np.gradient(np.unwrap(yaw), dt)
    accel = veh.accel[:, 0]

    # objects: other vehicles (a cut-in car's two simulated halves as one track), pedestrians (walkers,
    # crossers, dart-out), parked cars, static objects
    v_xy, v_yaw, v_speed, v_present, obj_of, keep = _vehicle_objects(veh, ctl.merges if ctl is not None else [])
    n_veh, n_ped, n_static = v_xy.shape[1], peds.xy.shape[1], len(statics.xy)
    n_dart, n_park = hz["ped_xy"].shape[1], len(hz["park_xy"])
    n_fixed = n_park + n_static
    fixed_xy = np.concatenate([hz["park_xy"], statics.xy])
    xy = np.concatenate([v_xy, peds.xy, hz["ped_xy"], np.broadcast_to(fixed_xy, (t_count, n_fixed, 2))], axis=1)
    obj_yaw = np.concatenate([v_yaw, peds.yaw, hz["ped_yaw"],
                              np.broadcast_to(np.concatenate([hz["park_yaw"], statics.yaw]), (t_count, n_fixed))],
                             axis=1)
    speed = np.concatenate([v_speed, peds.speed, hz["ped_speed"], np.zeros((t_count, n_fixed))], axis=1)
    size = np.concatenate([np.stack([veh.length, veh.width, veh.height], axis=1)[keep], peds.size,
                           np.full((n_dart, 3), [PED_SIZE_M, PED_SIZE_M, 1.7]), hz["park_size"], statics.size], axis=0)
    category = np.concatenate([veh.category[keep], np.full(n_ped + n_dart, PEDESTRIAN), np.full(n_park, VEHICLE),
                               statics.category]).astype(np.int64)
    vel = speed[..., None] * np.stack([np.cos(obj_yaw), np.sin(obj_yaw)], axis=-1)
    dist = np.linalg.norm(xy - centre[:, None, :], axis=-1)
    present = np.concatenate([v_present, np.ones((t_count, n_ped + n_dart + n_fixed), bool)], axis=1)
    valid = (dist <= cfg.box_range_m) & present
    n_obj = xy.shape[1]
    confidence = np.clip(rng.uniform(0.8, 1.0, n_obj)[None, :] + rng.normal(0.0, 0.02, (t_count, n_obj)), 0.5, 1.0)
    on_cw = np.concatenate([np.zeros((t_count, n_veh), bool), peds.on_crosswalk,
                            np.zeros((t_count, n_dart + n_fixed), bool)], axis=1)

    # signal status rows for intersections near the ego
    inter_xy = np.array([it.centre for it in net.intersections]).reshape(-1, 2)
    sig_xy = inter_xy[plan.signal_node] if len(g.signal_fids) else np.zeros((0, 2))  # [M, 2]
    near_sig = np.linalg.norm(sig_xy[None, :, :] - centre[:, None, :], axis=-1) <= cfg.traffic_light_range_m
    light_status = np.where(near_sig, lights, -1).astype(np.int8)

    starts, roadblocks = _scenes(veh, g, int(round(cfg.scene_duration_s / dt)))

    # scenario tags
    nc = veh.next_conn[:, 0]
    sig = np.where(nc >= 0, g.signal[np.maximum(nc, 0)], -1)
    conn_state = np.where(sig >= 0, lights[np.arange(t_count), np.maximum(sig, 0)] if lights.size else -1, -1)
    lead_v = veh.lead[:, 0]
    lead_obj = np.where(lead_v > 0, obj_of[np.maximum(lead_v, 0)], -1)
    tags = derive_tags(TagInputs(
        speed=v, accel=accel, lat_accel=v * yaw_rate, centre=centre, elem=veh.elem[:, 0], next_conn=nc,
        front_to_conn=veh.next_conn_dist[:, 0] - EGO_FRONT_M,
        rear_on_conn=np.where(g.is_connector[veh.elem[:, 0]], -veh.next_conn_dist[:, 0], np.nan),
        conn_state=conn_state, unprotected=_unprotected(g, nc, lights), lead=lead_obj,
        lead_gap=veh.lead_gap[:, 0], agent_xy=xy, agent_speed=speed, agent_valid=valid, agent_category=category,
        agent_length=size[:, 0], agent_on_crosswalk=on_cw,
    ), g, net.drive_on_left, int(round(cfg.tag_interval_s / dt)))
    events = _injected_events(ctl, burn, obj_of, n_veh + n_ped, valid)
    tags = rare_event_tags(tags, events, valid, dt)

    origin = np.array(net.origin_xy)
    sign = rng.choice(np.array([-1, 1]), t_count)
    content = LogContent(
        log_name=spec.log_name, map_name=spec.map_name, location=MAP_LOCATIONS[spec.map_name],
        vehicle_name=spec.vehicle_name, date=spec.date, start_us=spec.start_us, epsg=net.epsg,
        timestamps_us=spec.start_us + FRAME_US * np.arange(t_count, dtype=np.int64),
        ego_pose_offset_us=sign * rng.integers(40, 450, t_count),
        ego_xy=rear + origin, ego_yaw=yaw, ego_vel=np.stack([v, np.zeros(t_count)], axis=1),
        ego_acc=np.stack([accel, v * yaw_rate], axis=1), ego_yaw_rate=yaw_rate,
        agent_xy=xy + origin, agent_yaw=obj_yaw, agent_vel=vel, agent_size=size, agent_category=category,
        agent_valid=valid, agent_confidence=confidence,
        scene_starts=starts, scene_roadblocks=tuple(roadblocks), scene_goal_frame=np.full(len(starts), t_count - 1),
        tag_frame=tags[0], tag_type=tags[1], tag_agent=tags[2],
        light_fids=g.signal_fids, light_status=light_status,
    )
    stats = dict(num_vehicles=int(v_present.any(axis=0).sum() + n_park), num_pedestrians=int(n_ped + n_dart),
                 num_static_objects=int(n_static), num_scenes=int(len(starts)), num_lidar_pcs=int(t_count),
                 num_tags=int(len(tags[0])), ego_mean_speed_mps=round(float(v.mean()), 2),
                 kinematic_clamps=int(veh.num_clamps), ego_kinematic_clamps=int(veh.num_ego_clamps))
    return content, stats, events


def _vehicle_objects(veh: Vehicles, merges: list[tuple[int, int]]):
    """Vehicles other than the ego as objects. A merge (j, k) - vehicle k continues vehicle j's track (the
    cut-in car after its lane change) - becomes one object. Returns xy ``[T, V, 2]``, yaw, speed and present
    ``[T, V]``, the object index of every fleet vehicle ``[N]`` (-1: the ego) and which vehicles are objects
    of their own ``[N]``."""
    xy, yaw, speed, present = (a[:, 1:].copy() for a in (veh.xy, veh.yaw, veh.speed, veh.present))
    n = veh.xy.shape[1]
    keep = np.ones(n, bool)
    keep[0] = False
    for j, k in merges:
        sel = present[:, k - 1]
        for arr in (xy, yaw, speed):
            arr[sel, j - 1] = arr[sel, k - 1]
        present[:, j - 1] |= sel
        keep[k] = False
    obj_of = np.where(keep, np.cumsum(keep) - 1, -1)
    for j, k in merges:
        obj_of[k] = obj_of[j]
    cols = keep[1:]
    return xy[:, cols], yaw[:, cols], speed[:, cols], present[:, cols], obj_of, keep


def _hazard_objects(ctl: HazardController | None, times: np.ndarray) -> dict[str, np.ndarray]:
    """Dart-out pedestrians (``[T, P, ...]``) and parked cars (``[C, ...]``) of the log's hazards."""
    t_count = len(times)
    if ctl is None:
        return dict(ped_xy=np.zeros((t_count, 0, 2)), ped_yaw=np.zeros((t_count, 0)), ped_speed=np.zeros((t_count, 0)),
                    park_xy=np.zeros((0, 2)), park_yaw=np.zeros(0), park_size=np.zeros((0, 3)))
    ped_xy, ped_yaw, ped_speed = ctl.pedestrian_tracks(times)
    park_xy, park_yaw, park_size = ctl.parked_cars()
    return dict(ped_xy=ped_xy, ped_yaw=ped_yaw, ped_speed=ped_speed, park_xy=park_xy, park_yaw=park_yaw,
                park_size=park_size)


def _injected_events(ctl: HazardController | None, burn: int, obj_of: np.ndarray, first_dart: int,
                     valid: np.ndarray) -> list[InjectedEvent]:
    """The hazards that began, with their frame (moved to the first frame within 2 s where the agent's box is
    written, if it is not at the begin) and the agent's object index."""
    out = []
    for ev in ctl.events if ctl is not None else []:
        agent = int(obj_of[ev.agent[1]]) if ev.agent[0] == "vehicle" else first_dart + ev.agent[1]
        frame = 2 * (ev.step - burn)
        seen = np.flatnonzero(valid[frame:frame + 41, agent])
        out.append(InjectedEvent(ev.tag, frame + int(seen[0]) if len(seen) else frame, agent, ev.params))
    return out


def _scenes(veh: Vehicles, g: LaneGraph, per_scene: int) -> tuple[np.ndarray, list[str]]:
    """Scene start frames ``[S]`` (consecutive snippets of ``per_scene`` frames) and each scene's route: the
    roadblocks of the ego's route from the scene start to just past the goal (the log's last pose)."""
    t_count = veh.elem.shape[0]
    starts = np.arange(0, t_count - per_scene + 1, per_scene, dtype=np.int64)
    route = veh.routes[0][veh.routes[0] >= 0]
    k_goal = min(int(veh.route_index[-1, 0]) + 2, len(route) - 1)
    roadblocks = []
    for st in starts:
        ids = g.roadblock[route[int(veh.route_index[st, 0]):k_goal + 1]]
        keep = np.concatenate([[True], ids[1:] != ids[:-1]])
        roadblocks.append(" ".join(str(int(x)) for x in ids[keep]))
    return starts, roadblocks


def _unprotected(g: LaneGraph, nc: np.ndarray, lights: np.ndarray) -> np.ndarray:
    """``[T]`` bool: a crossing movement with right of way over connector ``nc [T]`` is green at the same time."""
    pair = g.conflict[np.maximum(nc, 0)]  # [T, E]
    pc = np.maximum(pair, 0)
    rival = (pair >= 0) & (g.conflict_kind[pc] == CONFLICT_CROSS) & g.other_has_priority[pc] & (g.signal >= 0)[None]
    if not lights.size:
        return np.zeros(len(nc), bool)
    rival_green = lights[:, np.maximum(g.signal, 0)] == GREEN
    return (nc >= 0) & (rival & rival_green).any(axis=1)


def _ego_start(net: RoadNetwork, g: LaneGraph, rng: np.random.Generator) -> tuple[int, float] | None:
    """On maps with lane merges or branches the ego usually starts 100-450 m before one (else: random)."""
    kinds = {it.fid: it.intersection_type for it in net.intersections}
    merging = (INTERSECTION_TYPES["lane_branch"], INTERSECTION_TYPES["lane_merge"])
    hot = sorted({c.exit_lane_fid for c in net.connectors if kinds[c.intersection_fid] in merging})
    if not hot or rng.random() >= 0.75:
        return None
    e = int(np.flatnonzero(g.fid == hot[int(rng.integers(len(hot)))])[0])
    return e, float(max(0.1 * g.length[e], g.length[e] - rng.uniform(100.0, 450.0)))
