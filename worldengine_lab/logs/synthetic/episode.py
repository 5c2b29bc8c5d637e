"""One synthetic log: simulate the traffic of a map and assemble everything the .db holds (``LogContent``).

This is the only place where traffic (``traffic``, ``pedestrians``, ``signals``) meets the file format
(``db_writer``): it converts the local-frame simulation into global UTM arrays, picks which boxes are
observed, cuts scenes, builds their routes and derives scenario tags.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..nuplan.schema import MAP_LOCATIONS
from .config import SynthConfig
from .db_writer import LogContent
from .lane_graph import CONFLICT_CROSS, LaneGraph, build_lane_graph
from .pedestrians import PEDESTRIAN, place_static_objects, simulate_pedestrians
from .road_network import RoadNetwork
from .road_spec import INTERSECTION_TYPES
from .signals import GREEN, make_signal_plan, signal_states
from .tags import TagInputs, derive_tags
from .traffic import EGO_FRONT_M, REAR_AXLE_TO_CENTER_M, Vehicles, simulate_vehicles

__all__ = ["LogSpec", "MapAssets", "make_log", "FRAME_US", "SIM_DT_S"]

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

    @classmethod
    def build(cls, network: RoadNetwork) -> "MapAssets":
        return cls(network, build_lane_graph(network))


def make_log(spec: LogSpec, assets: MapAssets, cfg: SynthConfig, seed: int) -> tuple[LogContent, dict]:
    """Simulate log ``spec`` and return its content and a few statistics for the manifest."""
    net, g = assets.network, assets.graph
    rng = np.random.default_rng([seed, spec.index, 0x5EED])
    plan = make_signal_plan(net, g, rng)
    steps = int(round(cfg.log_duration_s / SIM_DT_S))
    burn = int(round(cfg.burn_in_s / SIM_DT_S))
    sim_times = (np.arange(burn + steps) - burn) * SIM_DT_S
    urban = bool(net.walkways)
    veh = simulate_vehicles(g, signal_states(plan, sim_times), cfg, rng, SIM_DT_S, steps, burn, 2, urban,
                            _ego_start(net, g, rng))
    t_count = 2 * steps
    dt = SIM_DT_S / 2
    times = np.arange(t_count) * dt
    lights = signal_states(plan, times)  # [T, M]
    peds = simulate_pedestrians(net, plan, cfg, rng, times)
    statics = place_static_objects(net, cfg, rng)

    # ego (vehicle 0): rear axle on its path
    rear, yaw, v = veh.xy[:, 0], veh.yaw[:, 0], veh.speed[:, 0]
    heading = np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)
    centre = rear + REAR_AXLE_TO_CENTER_M * heading
    yaw_rate = np.gradient(np.unwrap(yaw), dt)
    accel = veh.accel[:, 0]

    # objects: other vehicles, pedestrians, static objects
    n_veh, n_ped, n_static = veh.xy.shape[1] - 1, peds.xy.shape[1], len(statics.xy)
    vyaw = veh.yaw[:, 1:]
    xy = np.concatenate([veh.xy[:, 1:], peds.xy, np.broadcast_to(statics.xy, (t_count, n_static, 2))], axis=1)
    obj_yaw = np.concatenate([vyaw, peds.yaw, np.broadcast_to(statics.yaw, (t_count, n_static))], axis=1)
    speed = np.concatenate([veh.speed[:, 1:], peds.speed, np.zeros((t_count, n_static))], axis=1)
    size = np.concatenate([np.stack([veh.length[1:], veh.width[1:], veh.height[1:]], axis=1), peds.size,
                           statics.size], axis=0)
    category = np.concatenate([veh.category[1:], np.full(n_ped, PEDESTRIAN), statics.category]).astype(np.int64)
    vel = speed[..., None] * np.stack([np.cos(obj_yaw), np.sin(obj_yaw)], axis=-1)
    dist = np.linalg.norm(xy - centre[:, None, :], axis=-1)
    valid = dist <= cfg.box_range_m
    n_obj = xy.shape[1]
    confidence = np.clip(rng.uniform(0.8, 1.0, n_obj)[None, :] + rng.normal(0.0, 0.02, (t_count, n_obj)), 0.5, 1.0)
    on_cw = np.concatenate([np.zeros((t_count, n_veh), bool), peds.on_crosswalk,
                            np.zeros((t_count, n_static), bool)], axis=1)

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
    tags = derive_tags(TagInputs(
        speed=v, accel=accel, lat_accel=v * yaw_rate, centre=centre, elem=veh.elem[:, 0], next_conn=nc,
        front_to_conn=veh.next_conn_dist[:, 0] - EGO_FRONT_M,
        rear_on_conn=np.where(g.is_connector[veh.elem[:, 0]], -veh.next_conn_dist[:, 0], np.nan),
        conn_state=conn_state, unprotected=_unprotected(g, nc, lights), lead=np.where(lead_v > 0, lead_v - 1, -1),
        lead_gap=veh.lead_gap[:, 0], agent_xy=xy, agent_speed=speed, agent_valid=valid, agent_category=category,
        agent_length=size[:, 0], agent_on_crosswalk=on_cw,
    ), g, net.drive_on_left, int(round(cfg.tag_interval_s / dt)))

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
    stats = dict(num_vehicles=int(n_veh), num_pedestrians=int(n_ped), num_static_objects=int(n_static),
                 num_scenes=int(len(starts)), num_lidar_pcs=int(t_count), num_tags=int(len(tags[0])),
                 ego_mean_speed_mps=round(float(v.mean()), 2), kinematic_clamps=int(veh.num_clamps))
    return content, stats


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
