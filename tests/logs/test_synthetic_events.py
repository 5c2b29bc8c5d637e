"""Rare safety-critical events in the embedded world: every type is injected, tagged in ``scenario_tag`` and
selectable through the nuPlan reader, physically happens, is avoided by the logged ego (no box overlaps, braking
within 8 m/s^2), and stays rare (<= 3 % of 10-s windows per type) on the default dataset.

Two worlds are generated once per module:

* ``world``: seven 80-s logs (seed 3), all ``test_rare``, where ``SynthConfig.event_schedule`` gives each log one
  event type feasible on its map - together all seven types (a log is redrawn when its type found no occasion).
* ``default16``: the first 16 logs of the default dataset (seed 0, default config). Logs depend only on
  ``(seed, index)``, so these are exactly the first half of the 32-log default dataset, spanning every split
  (the rates are measured on them instead of all 32 to keep the module fast).
"""
from __future__ import annotations

import sqlite3
from dataclasses import replace

import numpy as np
import pytest
import shapely
from shapely.affinity import rotate, translate
from shapely.geometry import LineString, box

from worldengine_lab.errors import WorldEngineLabError
from worldengine_lab.logs.nuplan import NuPlanDB, NuPlanLog
from worldengine_lab.logs.nuplan.map import find_map_file, load_map
from worldengine_lab.logs.synthetic import RARE_EVENT_TAGS, SynthConfig, log_specs, synthesize, window_rates
from worldengine_lab.logs.synthetic.episode import feasible_events
from worldengine_lab.logs.synthetic.events import EVENT_TYPES, TAG_REPEAT_S, TAG_SPAN_S, plan_attempts

SEED = 4
EGO_LENGTH, EGO_WIDTH, REAR_TO_CENTER = 5.176, 2.297, 1.461
DT = 0.05


def _schedule(seed: int, n: int, cfg: SynthConfig) -> tuple[str, ...]:
    """One event type per log, each feasible on the log's map, covering all types (rarest maps first)."""
    specs = log_specs(seed, n, cfg)
    feas = {m: feasible_events(m) for m in {s.map_name for s in specs}}
    sched = [""] * n
    for tag in sorted(RARE_EVENT_TAGS, key=lambda t: sum(t in f for f in feas.values())):
        free = [s.index for s in specs if not sched[s.index] and tag in feas[s.map_name]]
        sched[free[0]] = tag
    return tuple(sched)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cfg = SynthConfig(split_fractions=(("test_rare", 1.0),))
    cfg = replace(cfg, event_schedule=_schedule(SEED, 7, cfg))
    return synthesize(tmp_path_factory.mktemp("events"), seed=SEED, num_logs=7, config=cfg)


@pytest.fixture(scope="module")
def default16(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("default16"), seed=0, num_logs=16)


@pytest.fixture(scope="module")
def events(world):
    """(manifest log entry, event entry, NuPlanDB) for every injected event of ``world``."""
    out, dbs = [], []
    for entry, path in zip(world.manifest["logs"], world.db_paths):
        db = NuPlanDB(path)
        dbs.append(db)
        out += [(entry, ev, db) for ev in entry["rare_events"]]
    yield out
    for db in dbs:
        db.close()


def _event(events, tag: str):
    found = [(e, ev, db) for e, ev, db in events if ev["type"] == tag]
    assert found, f"no {tag} in the test world"
    return found[0]


def _ego(db: NuPlanDB) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ego box centre ``[S, 2]``, heading ``[S]`` and speed ``[S]`` of every sweep."""
    yaw = db.ego_yaw
    centre = db.ego_xy + REAR_TO_CENTER * np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
    return centre, yaw, db.ego_vel_local[:, 0]


def _track(db: NuPlanDB, token_hex: str, frames: np.ndarray) -> dict[str, np.ndarray]:
    """Boxes of one track at ``frames``: frame [K], xy [K, 2], yaw, speed [K], length, width."""
    b = db.boxes(frames)
    sel = np.array([bytes(t).hex() == token_hex for t in b["track"]], bool)
    order = np.argsort(b["sweep"][sel])
    return {"frame": frames[b["sweep"][sel][order]], "xy": b["xyyaw"][sel][order, :2],
            "yaw": b["xyyaw"][sel][order, 2], "speed": np.linalg.norm(b["vel"][sel][order], axis=1),
            "length": b["lwh"][sel][order, 0], "width": b["lwh"][sel][order, 1]}


def _in_ego_frame(db: NuPlanDB, frames: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitudinal / lateral position (m) of points ``xy [K, 2]`` relative to the ego box centre at ``frames``."""
    centre, yaw, _ = _ego(db)
    d = xy - centre[frames]
    c, s = np.cos(yaw[frames]), np.sin(yaw[frames])
    return c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]


def _lateral_to_ego_lane(world, db: NuPlanDB, frame: int, xy: np.ndarray) -> np.ndarray:
    """Distance (m) of points ``xy [K, 2]`` from the centreline of the lane the ego drives on at ``frame``."""
    nmap = load_map(find_map_file(world.maps_root, db.info.map_name))
    centre, yaw, _ = _ego(db)
    best, line = np.inf, None
    for k in np.flatnonzero(~nmap.lane_is_connector):
        pts = nmap.centres[k]
        d = np.linalg.norm(pts - db.ego_xy[frame], axis=1)
        i = int(d.argmin())
        head = np.arctan2(*(pts[min(i + 1, len(pts) - 1)] - pts[max(i - 1, 0)])[::-1])
        if d[i] < best and np.cos(head - yaw[frame]) > 0.9:
            best, line = d[i], LineString(pts)
    assert line is not None and best < 1.0
    return shapely.distance(shapely.points(xy), line)


def _box(x, y, yaw, length, width):
    return rotate(translate(box(-length / 2, -width / 2, length / 2, width / 2), x, y), yaw, origin=(x, y),
                  use_radians=True)


# ---------------------------------------------------------------- definitions, config, split policy

def test_event_types_are_documented_frozen_dataclasses():
    assert tuple(EVENT_TYPES) == RARE_EVENT_TAGS and len(RARE_EVENT_TAGS) == 7
    for tag, cls in EVENT_TYPES.items():
        assert tag.startswith("rare_") and cls.__dataclass_params__.frozen
        assert "Triggers" in cls.__doc__ and "Avoid" in cls.__doc__, cls


def test_config_validates_event_fields():
    with pytest.raises(WorldEngineLabError, match="event_types"):
        SynthConfig(event_types=("rare_meteor",)).validate()
    with pytest.raises(WorldEngineLabError, match="events_per_log"):
        SynthConfig(events_per_log=(("train", 1.0),)).validate()
    cfg = SynthConfig()
    assert cfg.event_rate("test_rare") == cfg.event_rate("mine") > cfg.event_rate("pretrain") > 0
    assert cfg.event_rate("pretrain") == cfg.event_rate("test_common")
    assert cfg.to_dict()["event_types"] == list(RARE_EVENT_TAGS)


def test_plan_attempts():
    rng = np.random.default_rng(0)
    plans = [plan_attempts(2.0, RARE_EVENT_TAGS, (21.0, 57.0), rng, fallbacks=2, guarantee=True) for _ in range(200)]
    for p in plans:
        assert len(p) == 2 and p[0].types[0] != p[1].types[0] and p[0].start_s < p[1].start_s
        assert p[0].end_s <= p[1].start_s + 1e-9 or p[0].types[0] == "rare_unprotected_left_fast_oncoming"
        assert p[-1].last_resort == "rare_stalled_vehicle" and p[0].last_resort == ""
        assert all(21.0 <= a.start_s < a.latest_s <= 57.0 for a in p)
    assert {a.types[0] for p in plans for a in p} == set(RARE_EVENT_TAGS)
    assert plan_attempts(0.0, RARE_EVENT_TAGS, (21.0, 57.0), rng) == []
    assert [a.types for a in plan_attempts(0.0, RARE_EVENT_TAGS, (21.0, 57.0), rng, "rare_cut_in")] == \
        [("rare_cut_in",)]
    assert plan_attempts(0.0, ("rare_hard_brake",), (21.0, 57.0), rng, "rare_cut_in") == []


# ---------------------------------------------------------------- injected, recorded, tagged, selectable

def test_every_type_is_injected_and_recorded(world):
    m = world.manifest
    assert m["event_tags"] == list(RARE_EVENT_TAGS)
    got = [ev["type"] for e in m["logs"] for ev in e["rare_events"]]
    assert sorted(got) == sorted(RARE_EVENT_TAGS)
    for entry in m["logs"]:
        assert [ev["type"] for ev in entry["rare_events"]] == [m["config"]["event_schedule"][entry["index"]]]
        for ev in entry["rare_events"]:
            assert 20.0 <= ev["start_s"] <= 58.0 and ev["frame"] == round(ev["start_s"] / DT)
            assert len(ev["track_token"]) == 16 and len(ev["lidar_pc_token"]) == 16 and ev["params"]


def test_tags_point_at_the_hazard_and_are_selectable(world, events):
    for entry, ev, db in events:
        tags = db.tags
        rows = tags[tags["type"] == ev["type"]].sort_values("idx")
        assert int(rows["idx"].iloc[0]) == ev["frame"] and rows["agent_track_hex"].iloc[0] == ev["track_token"]
        assert rows["agent_track_hex"].notna().all()
        span = (rows["idx"].to_numpy() - ev["frame"]) * DT
        assert span.max() <= TAG_SPAN_S + 1e-9 and len(rows) >= 3
        later = rows["idx"].to_numpy()[1:]
        assert np.all(later % round(TAG_REPEAT_S / DT) == 0)  # on the log's 0.5 s grid
        log = NuPlanLog(db.path, maps_root=world.maps_root)
        sel = log.select(tags=[ev["type"]])
        assert ev["lidar_pc_token"] in set(sel["token"]) and len(sel) == len(rows)
        assert all(ev["type"] in t for t in sel["tags"])
        scenario = log.read(ev["lidar_pc_token"])
        assert ev["type"] in scenario.tags


# ---------------------------------------------------------------- the hazards happen

def test_hard_brake_lead_decelerates_hard(world, events):
    _, ev, db = _event(events, "rare_hard_brake")
    tr = _track(db, ev["track_token"], np.arange(ev["frame"], ev["frame"] + 80))
    v = tr["speed"]
    decel = -(v[4:] - v[:-4]) / (4 * DT)
    assert decel.max() > 5.0 and v.min() < 0.5
    lon, _ = _in_ego_frame(db, tr["frame"][:1], tr["xy"][:1])
    assert 5.0 < lon[0] < 50.0 and _lateral_to_ego_lane(world, db, ev["frame"], tr["xy"][:1])[0] < 0.5  # the lead


def test_cut_in_moves_into_the_ego_lane_with_a_short_gap(world, events):
    _, ev, db = _event(events, "rare_cut_in")
    p = ev["params"]
    frames = np.arange(ev["frame"], ev["frame"] + int((p["lane_change_s"] + 1.0) / DT))
    tr = _track(db, ev["track_token"], frames)
    dist = _lateral_to_ego_lane(world, db, ev["frame"], tr["xy"])
    assert dist[0] > 2.5 and dist[-1] < 0.3  # from the neighbour lane into the ego's lane
    lon, _ = _in_ego_frame(db, tr["frame"], tr["xy"])
    gap = lon - tr["length"] / 2 - EGO_LENGTH / 2
    _, _, v = _ego(db)
    assert 0.5 < gap[0] < 10.0 and gap[0] / v[ev["frame"]] < 1.0
    assert np.all(gap > 0)  # always ahead of the ego


def test_pedestrian_steps_into_the_ego_lane(world, events):
    _, ev, db = _event(events, "rare_pedestrian_dart_out")
    tr = _track(db, ev["track_token"], np.arange(ev["frame"], ev["frame"] + 120))
    dist = _lateral_to_ego_lane(world, db, ev["frame"], tr["xy"])
    assert dist[0] > 3.0 and dist.min() < (EGO_WIDTH + 0.55) / 2  # from behind the cars into the ego's path
    assert 1.4 < tr["speed"].max() < 2.6
    _, _, v = _ego(db)
    assert v[ev["frame"]] > 4.0 and v[ev["frame"]:ev["frame"] + 120].min() < 0.2 * v[ev["frame"]]  # it stops


def test_red_light_runner_crosses_on_red(world, events):
    _, ev, db = _event(events, "rare_red_light_runner")
    frames = np.arange(ev["frame"], ev["frame"] + 100)
    tr = _track(db, ev["track_token"], frames)
    nmap = load_map(find_map_file(world.maps_root, db.info.map_name))
    conns = np.flatnonzero(nmap.lane_is_connector & nmap.conn_signalized)
    lights = db.traffic_lights(frames)
    crossed = 0
    for f, xy, yaw, v in zip(tr["frame"], tr["xy"], tr["yaw"], tr["speed"]):
        best = None
        for k in conns:  # the signalised connector the runner is on (nearest centreline, same heading)
            pts = nmap.centres[k]
            d = np.linalg.norm(pts - xy, axis=1)
            i = int(d.argmin())
            head = np.arctan2(*(pts[min(i + 1, len(pts) - 1)] - pts[max(i - 1, 0)])[::-1])
            if d[i] < 0.5 and 0 < i < len(pts) - 1 and np.cos(head - yaw) > 0.95:
                best = int(nmap.lane_fids[k])
        if best is None or v < 3.0:
            continue
        at = (lights["sweep"] == f - frames[0]) & (lights["lane_connector_id"] == best)
        assert at.any() and np.all(lights["status"][at] == 2), f  # red while it drives through
        crossed += 1
    assert crossed >= 10


def test_stalled_vehicle_stands_in_the_ego_lane(events):
    _, ev, db = _event(events, "rare_stalled_vehicle")
    frames = np.arange(ev["frame"], min(ev["frame"] + 400, db.num_sweeps))
    tr = _track(db, ev["track_token"], frames)
    still = tr["speed"] < 1e-6
    assert still.sum() * DT >= 3.0
    spot = tr["xy"][still].mean(axis=0)
    assert np.linalg.norm(tr["xy"][still] - spot, axis=1).max() < 1e-6  # it does not move
    centre, _, _ = _ego(db)
    ahead = np.linalg.norm(centre[ev["frame"]:] - spot, axis=1)
    assert ahead.min() < 1.0 and ahead[0] > 10.0  # ahead, on the ego's own path (the ego drives there later)


def test_oncoming_car_drifts_into_the_ego_lane_and_back(world, events):
    _, ev, db = _event(events, "rare_oncoming_drift")
    p = ev["params"]
    total = 2 * p["ramp_s"] + p["hold_s"]
    tr = _track(db, ev["track_token"], np.arange(ev["frame"] - 10, ev["frame"] + int((total + 1.0) / DT)))
    dist = _lateral_to_ego_lane(world, db, ev["frame"], tr["xy"])
    overlap = (EGO_WIDTH + tr["width"][0]) / 2  # closer than this it overlaps a car centred in the ego lane
    assert dist[0] > overlap + 0.8 and dist.min() < overlap - 0.3 and dist[-1] > overlap + 0.8
    assert np.cos(tr["yaw"][0] - db.ego_yaw[ev["frame"]]) < -0.9  # oncoming


def test_unprotected_left_against_a_fast_oncoming_car(world, events):
    _, ev, db = _event(events, "rare_unprotected_left_fast_oncoming")
    frames = np.arange(ev["frame"], min(ev["frame"] + 200, db.num_sweeps))
    tr = _track(db, ev["track_token"], frames)
    nmap = load_map(find_map_file(world.maps_root, db.info.map_name))
    lane = np.flatnonzero(~nmap.lane_is_connector)
    dist = [np.linalg.norm(nmap.centres[k] - tr["xy"][0], axis=1).min() for k in lane]
    limit = nmap.speed_limit[lane[int(np.argmin(dist))]]
    assert tr["speed"][0] > 1.25 * limit
    assert np.cos(tr["yaw"][0] - db.ego_yaw[ev["frame"]]) < -0.9  # oncoming
    _, _, v = _ego(db)
    closest = int(np.argmin(np.linalg.norm(tr["xy"] - _ego(db)[0][tr["frame"]], axis=1)))
    assert v[tr["frame"][closest]] < 3.0  # the ego waits while it passes
    turn = np.angle(np.exp(1j * (db.ego_yaw[-1] - db.ego_yaw[ev["frame"]])))
    yaw_rate = np.diff(np.unwrap(db.ego_yaw[ev["frame"]:])) / DT
    assert turn > 0.8 or yaw_rate.max() > 0.2  # and then turns left


# ---------------------------------------------------------------- avoided by the logged ego

def test_no_overlaps_in_event_logs(events):
    """No box overlaps the ego box at any sweep of an event log; no two boxes overlap around the events."""
    for _, ev, db in events:
        centre, yaw, _ = _ego(db)
        frames = np.arange(db.num_sweeps)
        b = db.boxes(frames)
        polys = shapely.polygons(_corners(b["xyyaw"], b["lwh"]))
        ego = shapely.polygons(_corners(np.column_stack([centre, yaw]),
                                        np.tile([EGO_LENGTH, EGO_WIDTH, 0.0], (len(frames), 1))))
        inter = shapely.area(shapely.intersection(polys, ego[b["sweep"]]))
        assert inter.max() < 1e-6, (ev["type"], b["sweep"][inter.argmax()])
        around = (b["sweep"] >= ev["frame"] - 40) & (b["sweep"] <= ev["frame"] + 240)
        for f in np.unique(b["sweep"][around])[::2]:
            p = polys[b["sweep"] == f]
            i, j = shapely.STRtree(p).query(p, predicate="intersects")
            k = i < j
            assert not k.any() or shapely.area(shapely.intersection(p[i[k]], p[j[k]])).max() < 1e-6, (ev["type"], f)


def _corners(xyyaw: np.ndarray, lwh: np.ndarray) -> np.ndarray:
    c, s = np.cos(xyyaw[:, 2])[:, None], np.sin(xyyaw[:, 2])[:, None]
    lx = np.array([0.5, 0.5, -0.5, -0.5]) * lwh[:, :1]
    ly = np.array([0.5, -0.5, -0.5, 0.5]) * lwh[:, 1:2]
    return np.stack([xyyaw[:, :1] + c * lx - s * ly, xyyaw[:, 1:2] + s * lx + c * ly], axis=-1)


def test_ego_reacts_within_physical_limits(events):
    for _, ev, db in events:
        _, _, v = _ego(db)
        decel = -np.diff(v) / DT
        assert decel.max() <= 8.0 + 1e-6, ev["type"]
        if ev["type"] in ("rare_cut_in", "rare_hard_brake", "rare_pedestrian_dart_out", "rare_oncoming_drift",
                          "rare_stalled_vehicle"):
            after = v[ev["frame"]:ev["frame"] + 200]
            assert after.min() < v[ev["frame"]] - 1.0 or after.min() < 0.3, ev["type"]  # it brakes


# ---------------------------------------------------------------- splits and rates on the default dataset

def test_rates_and_splits_on_the_default_dataset(default16):
    logs = default16.manifest["logs"]
    rates = window_rates(logs)
    assert set(rates) == set(RARE_EVENT_TAGS)
    assert max(rates.values()) <= 0.03, rates
    assert sum(len(e["rare_events"]) for e in logs) >= 5
    for e in logs:
        if e["split"] == "test_rare":
            assert e["rare_events"], e["log_id"]  # held-out logs are built around events
    rare_splits = [e for e in logs if e["split"] in ("test_rare", "mine")]
    base = [e for e in logs if e["split"] in ("pretrain", "test_common")]
    per_log = lambda es: sum(len(e["rare_events"]) for e in es) / max(len(es), 1)  # noqa: E731
    assert rare_splits and base and per_log(rare_splits) > per_log(base)
    with sqlite3.connect(default16.db_paths[0]) as con:  # tags of event logs point at tracks
        assert con.execute("SELECT count(*) FROM scenario_tag WHERE type LIKE 'rare_%' AND "
                           "agent_track_token IS NULL").fetchone()[0] == 0


def test_window_rates_counts_each_window_once():
    logs = [{"duration_s": 80.0, "rare_events": [{"type": "rare_cut_in", "start_s": 29.0},
                                                  {"type": "rare_cut_in", "start_s": 31.0}]},
            {"duration_s": 80.0, "rare_events": []}]
    rates = window_rates(logs)
    assert rates["rare_cut_in"] == pytest.approx(2 / 16) and rates["rare_hard_brake"] == 0.0  # windows 2 and 3


# ---------------------------------------------------------------- the demo's import around events

def test_rare_split_holds_the_windows_around_each_event(world, tmp_path):
    """test_rare gets only windows whose "now" lies -1.5 .. +2.0 s from a hazard's start, tagged with its type."""
    from worldengine_lab.demo import import_embedded_world
    from worldengine_lab.store import Workspace

    ws = Workspace.open(tmp_path / "ws")
    summary = import_embedded_world(ws, world)
    cat = ws.catalog(split="test_rare")
    assert summary["num_scenarios"] == len(cat) > 0
    events = [(e["log_id"], ev) for e in world.manifest["logs"] for ev in e["rare_events"]]
    assert events
    for log_id, ev in events:
        rows = cat[(cat["log_id"] == log_id) & cat["tags"].map(lambda t: ev["type"] in t)]
        assert 1 <= len(rows) <= 8, (log_id, ev["type"])
    # each window's "now" (its start + t0 steps) is within the offsets of an event of its log
    db_start = {e["log_id"]: NuPlanDB(world.root / e["path"]).timestamps_us[0] / 1e6 for e in world.manifest["logs"]}
    now = cat["start_time_s"] + cat["t0"] * cat["duration_s"] / (cat["num_steps"] - 1)
    for (log_id, t), tags in zip(zip(cat["log_id"], now - cat["log_id"].map(db_start)), cat["tags"]):
        starts = [ev["start_s"] for lid, ev in events if lid == log_id and ev["type"] in tags]
        assert any(-1.5 - 0.06 <= t - s <= 2.0 + 0.06 for s in starts), (log_id, t, starts)
