"""The embedded world writes real nuPlan files: schema, time base, chains, maps, topology, signals, safety,
determinism and atomic output (spec/data-formats.md §1.10)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import box
from shapely.affinity import rotate, translate

from worldengine_lab.errors import WorldEngineLabError
from worldengine_lab.logs.nuplan.geopackage import decode_geometry
from worldengine_lab.logs.nuplan.schema import (
    CATEGORY_NAMES, DB_TABLES, GPKG_LAYERS, LIDAR_CHANNEL, MAP_EPSG, MAP_LOCATIONS, MAP_VERSIONS, SCENARIO_TYPES,
)
from worldengine_lab.logs.synthetic import RARE_EVENT_TAGS, SPLITS, SynthConfig, load_result, log_specs, synthesize
from worldengine_lab.logs.synthetic import generate as generate_module

SMALL = SynthConfig(log_duration_s=50.0, max_vehicles=28)
LOG_NAME = re.compile(r"^\d{4}\.\d{2}\.\d{2}\.\d{2}\.\d{2}\.\d{2}_veh-\d{2}_\d{5}_\d{5}$")
REAR_AXLE_TO_CENTER = 1.461
EGO_LENGTH, EGO_WIDTH = 5.176, 2.297


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Four short logs, one per map (maps are assigned round-robin)."""
    return synthesize(tmp_path_factory.mktemp("world"), seed=3, num_logs=4, config=SMALL)


@pytest.fixture(scope="module")
def dbs(world):
    cons = {p: sqlite3.connect(p) for p in world.db_paths}
    yield cons
    for con in cons.values():
        con.close()


@pytest.fixture(scope="module")
def gpkgs(world):
    cons = {name: sqlite3.connect(world.maps_root / name / v / "map.gpkg") for name, v in MAP_VERSIONS.items()}
    yield cons
    for con in cons.values():
        con.close()


def _geoms(con: sqlite3.Connection, layer: str, cols: str = "fid") -> tuple[list[tuple], np.ndarray]:
    rows = con.execute(f'SELECT {cols}, geom FROM "{layer}" ORDER BY fid').fetchall()
    wkb = [decode_geometry(r[-1], layer) for r in rows]
    return [r[:-1] for r in rows], shapely.from_wkb(np.array(wkb, dtype=object)) if rows else np.array([])


def _map_of(con: sqlite3.Connection) -> str:
    return con.execute("SELECT map_version FROM log").fetchone()[0]


# ---------------------------------------------------------------- layout, manifest, splits

def test_output_layout_and_manifest(world):
    root = world.data_root
    index = json.loads((world.maps_root / "nuplan-maps-v1.0.json").read_text())
    assert set(index) == set(MAP_VERSIONS)
    for name, version in MAP_VERSIONS.items():
        assert index[name]["version"] == version and isinstance(index[name]["layers"], dict)
        assert (world.maps_root / name / version / "map.gpkg").is_file()
    manifest = json.loads(world.manifest_path.read_text())
    assert manifest == world.manifest and load_result(root) == world and world.root == root
    assert manifest["seed"] == 3 and manifest["num_logs"] == 4 and manifest["generator_version"]
    assert {e["map_name"] for e in manifest["logs"]} == set(MAP_VERSIONS)
    with pytest.raises(WorldEngineLabError, match="manifest.json"):
        load_result(root / "nuplan-v1.1")
    for entry, path in zip(manifest["logs"], world.db_paths):
        assert path == root / entry["path"] and path.is_file()
        assert path.parent.parent == root / "nuplan-v1.1" / "splits" and path.parent.name == entry["split"]
        assert entry["split"] in SPLITS and LOG_NAME.match(path.stem) and path.stem == entry["log_id"]
    assert not [p for p in root.iterdir() if p.name.startswith(".synth-")]


def test_splits_are_drawn_per_log_and_follow_the_fractions():
    cfg = SynthConfig()
    specs = log_specs(7, 400, cfg)
    assert specs[:25] == log_specs(7, 25, cfg)  # a log depends only on (seed, index)
    counts = Counter(s.split for s in specs)
    for name, frac in cfg.split_fractions:
        assert abs(counts[name] / 400 - frac) < 0.06, (name, counts)
    assert len({s.log_name for s in specs}) == 400
    assert log_specs(8, 25, cfg) != specs[:25]
    only = SynthConfig(split_fractions=(("test_rare", 1.0),))
    assert {s.split for s in log_specs(7, 20, only)} == {"test_rare"}


# ---------------------------------------------------------------- .db schema and rows

def test_every_table_and_column_with_its_declared_type(dbs):
    for con in dbs.values():
        for table, cols in DB_TABLES.items():
            info = con.execute(f'PRAGMA table_info("{table}")').fetchall()
            assert [r[1] for r in info] == [c for c, _ in cols], table
            for (_, name, typ, notnull, _, pk), (_, decl) in zip(info, cols):
                assert typ == decl.split(" ")[0], (table, name, typ, decl)
                assert bool(notnull) == ("NOT NULL" in decl) and bool(pk) == ("PRIMARY KEY" in decl)


def test_tokens_are_8_byte_blobs(dbs):
    for con in dbs.values():
        for table, cols in DB_TABLES.items():
            for col, _ in cols:
                if col == "token" or col.endswith("_token"):
                    bad = con.execute(f'SELECT count(*) FROM "{table}" WHERE {col} IS NOT NULL AND '
                                      f'(typeof({col}) != "blob" OR length({col}) != 8)').fetchone()[0]
                    assert bad == 0, (table, col)
        tokens = [t for tab in DB_TABLES if tab != "category"
                  for (t,) in con.execute(f'SELECT token FROM "{tab}"')]
        assert len(tokens) == len(set(tokens))


def test_time_base_lidar_and_ego_pose(dbs):
    for con in dbs.values():
        assert con.execute("SELECT channel FROM lidar").fetchall() == [(LIDAR_CHANNEL,)]
        rows = con.execute("SELECT pc.timestamp, ep.timestamp FROM lidar_pc pc JOIN ego_pose ep "
                           "ON ep.token = pc.ego_pose_token ORDER BY pc.timestamp").fetchall()
        pc_ts, ep_ts = np.array(rows).T
        assert len(pc_ts) == 1000 and np.all(np.diff(pc_ts) == 50_000)
        assert np.all(ep_ts != pc_ts) and np.all(np.abs(ep_ts - pc_ts) < 1000)
        start = con.execute("SELECT timestamp FROM log").fetchone()[0]
        assert pc_ts[0] == start and 1.6e15 < start < 1.7e15


def _check_chain(rows: list[tuple]) -> None:
    """rows = (token, prev, next) in time order: a doubly linked list with NULL ends."""
    toks = [r[0] for r in rows]
    assert rows[0][1] is None and rows[-1][2] is None
    for i in range(1, len(rows)):
        assert rows[i][1] == toks[i - 1] and rows[i - 1][2] == toks[i]


def test_prev_next_chains(dbs):
    for con in dbs.values():
        _check_chain(con.execute("SELECT token, prev_token, next_token FROM lidar_pc ORDER BY timestamp").fetchall())
        boxes = con.execute("SELECT b.track_token, b.token, b.prev_token, b.next_token, pc.timestamp FROM lidar_box b "
                            "JOIN lidar_pc pc ON pc.token = b.lidar_pc_token ORDER BY b.track_token, pc.timestamp")
        by_track: dict[bytes, list] = {}
        for track, tok, prev, nxt, ts in boxes:
            by_track.setdefault(track, []).append((tok, prev, nxt, ts))
        assert by_track
        for rows in by_track.values():
            _check_chain([r[:3] for r in rows])
            ts = np.array([r[3] for r in rows])
            assert np.all(np.diff(ts) == 50_000)  # one box per (track, lidar_pc), no gaps in a track
        n_tracks = con.execute("SELECT count(*) FROM track").fetchone()[0]
        assert n_tracks == len(by_track)


def test_log_scenes_routes_and_goals(dbs, gpkgs):
    for con in dbs.values():
        map_name, location = con.execute("SELECT map_version, location FROM log").fetchone()
        assert map_name in MAP_VERSIONS and location == MAP_LOCATIONS[map_name]
        scenes = con.execute(
            "SELECT token, name, goal_ego_pose_token, roadblock_ids FROM scene ORDER BY name").fetchall()
        assert len(scenes) >= 5 and len({s[1] for s in scenes}) == len(scenes)
        gpkg = gpkgs[map_name]
        known = {r[0] for r in gpkg.execute(
            "SELECT fid FROM lane_groups_polygons UNION SELECT fid FROM lane_group_connectors")}
        poses = {r[0] for r in con.execute("SELECT token FROM ego_pose")}
        for token, _, goal, ids in scenes:
            assert goal in poses
            assert ids and "," not in ids and ids == " ".join(ids.split())
            assert all(int(x) in known for x in ids.split())
            n = con.execute("SELECT count(*) FROM lidar_pc WHERE scene_token = ?", (token,)).fetchone()[0]
            assert n >= 190
        # the route of the first scene starts where the ego is
        first = con.execute("SELECT ep.x, ep.y FROM lidar_pc pc JOIN ego_pose ep ON ep.token = pc.ego_pose_token "
                            "ORDER BY pc.timestamp LIMIT 1").fetchone()
        rb = int(scenes[0][3].split()[0])
        layer = "lane_groups_polygons" if rb < 20_000 else "lane_group_connectors"
        (blob,), = gpkg.execute(f"SELECT geom FROM {layer} WHERE fid = ?", (rb,)).fetchall()
        poly = shapely.from_wkb(decode_geometry(blob))
        assert poly.buffer(1.0).contains(shapely.Point(first))


def test_pickled_columns_are_plain_lists(dbs):
    class NoClasses(pickle.Unpickler):
        def find_class(self, module, name):
            raise AssertionError(f"pickle references {module}.{name}")

    def load(blob):
        value = NoClasses(io.BytesIO(blob)).load()
        assert type(value) is list
        return value

    for con in dbs.values():
        (t, r), = con.execute("SELECT translation, rotation FROM lidar").fetchall()
        assert len(load(t)) == 3 and len(load(r)) == 4
        cams = con.execute("SELECT channel, translation, rotation, intrinsic, distortion, width, height FROM camera")
        channels = set()
        for ch, t, r, k, d, w, h in cams:
            channels.add(ch)
            q = np.array(load(r))
            assert len(load(t)) == 3 and abs(np.linalg.norm(q) - 1) < 1e-9
            assert np.array(load(k)).shape == (3, 3) and len(load(d)) == 5 and (w, h) == (1920, 1080)
        assert channels == {"CAM_F0", "CAM_B0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2"}


def test_categories_tags_and_signal_rows(dbs, gpkgs):
    all_types = set()
    for con in dbs.values():
        assert {r[0] for r in con.execute("SELECT name FROM category")} == set(CATEGORY_NAMES)
        assert con.execute("SELECT count(*) FROM track t LEFT JOIN category c ON c.token = t.category_token "
                           "WHERE c.name IS NULL").fetchone()[0] == 0
        tags = con.execute("SELECT type, agent_track_token FROM scenario_tag").fetchall()
        tracks = {r[0] for r in con.execute("SELECT token FROM track")}
        assert all(ty in SCENARIO_TYPES or ty in RARE_EVENT_TAGS for ty, _ in tags)
        assert all(tr is None or tr in tracks for _, tr in tags)
        all_types |= {ty for ty, _ in tags}
        gpkg = gpkgs[_map_of(con)]
        signalised = {r[0] for r in gpkg.execute(
            "SELECT fid FROM lane_connectors WHERE traffic_light_stop_line_fids != ''")}
        used = {r[0] for r in con.execute("SELECT DISTINCT lane_connector_id FROM traffic_light_status")}
        assert used <= signalised
        statuses = {r[0] for r in con.execute("SELECT DISTINCT status FROM traffic_light_status")}
        assert statuses <= {"green", "yellow", "red"}
    assert len(all_types) >= 8


def test_ego_pose_is_consistent(dbs, gpkgs):
    for con in dbs.values():
        rows = np.array(con.execute(
            "SELECT ep.x, ep.y, ep.qw, ep.qx, ep.qy, ep.qz, ep.vx, ep.vy, ep.epsg FROM lidar_pc pc JOIN ego_pose ep "
            "ON ep.token = pc.ego_pose_token ORDER BY pc.timestamp").fetchall())
        xy, q, v = rows[:, :2], rows[:, 2:6], rows[:, 6:8]
        assert np.allclose(np.linalg.norm(q, axis=1), 1.0) and np.allclose(q[:, 1:3], 0.0)
        assert np.all(rows[:, 8] == MAP_EPSG[_map_of(con)])
        yaw = 2 * np.arctan2(q[:, 3], q[:, 0])
        step = np.diff(xy, axis=0)
        moving = np.linalg.norm(step, axis=1) > 0.2
        d = np.angle(np.exp(1j * (np.arctan2(step[:, 1], step[:, 0]) - yaw[:-1])))
        assert np.all(np.abs(d[moving]) < 0.15)  # heading follows the motion of the rear axle
        speed = np.linalg.norm(step, axis=1) / 0.05
        assert np.allclose(v[:-1, 0][moving], speed[moving], atol=0.5) and np.all(v[:, 1] == 0)
        assert v[:, 0].max() < 30 and np.all(v[:, 0] >= 0)
        # the ego stays on the drivable area
        gpkg = gpkgs[_map_of(con)]
        area = shapely.union_all(np.concatenate([_geoms(gpkg, layer)[1] for layer in (
            "road_segments", "intersections", "generic_drivable_areas", "carpark_areas")]))
        centre = xy + REAR_AXLE_TO_CENTER * np.stack([np.cos(yaw), np.sin(yaw)], 1)
        assert shapely.contains_xy(area.buffer(0.5), centre[::20, 0], centre[::20, 1]).all()


def _box(x: float, y: float, yaw: float, length: float, width: float):
    return rotate(translate(box(-length / 2, -width / 2, length / 2, width / 2), x, y), yaw, origin=(x, y),
                  use_radians=True)


def test_no_boxes_overlap(dbs):
    """Ego, vehicles, bicycles, pedestrians and static objects never overlap (every 7th lidar_pc)."""
    for con in dbs.values():
        ego = {pc: (x, y, yaw) for pc, x, y, yaw in (
            (pc, x, y, 2 * np.arctan2(qz, qw)) for pc, x, y, qw, qz in con.execute(
                "SELECT pc.token, ep.x, ep.y, ep.qw, ep.qz FROM lidar_pc pc JOIN ego_pose ep "
                "ON ep.token = pc.ego_pose_token"))}
        boxes = con.execute(
            "SELECT lidar_pc_token, x, y, yaw, length, width FROM lidar_box").fetchall()
        per_pc: dict[bytes, list] = {}
        for pc, *b in boxes:
            per_pc.setdefault(pc, []).append(b)
        checked = 0
        for pc in sorted(per_pc)[::7]:
            x, y, yaw = ego[pc]
            polys = [_box(x + REAR_AXLE_TO_CENTER * np.cos(yaw), y + REAR_AXLE_TO_CENTER * np.sin(yaw), yaw,
                          EGO_LENGTH, EGO_WIDTH)] + [_box(*b) for b in per_pc[pc]]
            tree = shapely.STRtree(polys)
            a, b = tree.query(polys, predicate="intersects")
            for i, j in zip(a, b):
                if i < j:
                    assert polys[i].intersection(polys[j]).area < 1e-6, (pc.hex(), i, j)
            checked += 1
        assert checked > 50


def test_pedestrians_use_walkways_and_static_objects_stay_off_lanes(dbs, gpkgs):
    seen_static = 0
    for con in dbs.values():
        gpkg = gpkgs[_map_of(con)]
        walk = shapely.union_all(np.concatenate([_geoms(gpkg, "walkways")[1], _geoms(gpkg, "crosswalks")[1]]))
        lanes = shapely.union_all(np.concatenate([_geoms(gpkg, "lanes_polygons")[1],
                                                  _geoms(gpkg, "gen_lane_connectors_scaled_width_polygons")[1]]))
        rows = con.execute("SELECT b.x, b.y, b.yaw, b.length, b.width, c.name FROM lidar_box b JOIN track t "
                           "ON t.token = b.track_token JOIN category c ON c.token = t.category_token "
                           "WHERE c.name != 'vehicle' AND c.name != 'bicycle' AND b.track_token NOT IN "
                           "(SELECT agent_track_token FROM scenario_tag WHERE type = 'rare_pedestrian_dart_out' "
                           "AND agent_track_token IS NOT NULL)").fetchall()  # dart-out hazards leave the walkway
        peds = np.array([r[:2] for r in rows if r[5] == "pedestrian"]).reshape(-1, 2)[::5]
        if len(peds):
            assert shapely.contains_xy(walk.buffer(0.3), peds[:, 0], peds[:, 1]).all()
        statics = {r[:5] for r in rows if r[5] != "pedestrian"}
        seen_static += len(statics)
        assert all(_box(*b).intersection(lanes).area < 1e-6 for b in statics)
    assert seen_static > 0


# ---------------------------------------------------------------- maps

def test_gpkg_layers_columns_and_crs(gpkgs):
    for name, con in gpkgs.items():
        epsg = MAP_EPSG[name]
        meta = dict(con.execute("SELECT key, value FROM meta"))
        assert meta["projectedCoordSystem"] == f"epsg:{epsg}" and meta["geographicCoordSystem"] == "epsg:4326"
        assert con.execute("SELECT srs_id FROM gpkg_spatial_ref_sys WHERE srs_id = ?", (epsg,)).fetchone()
        for layer, (gtype, cols) in GPKG_LAYERS.items():
            info = {r[1]: r[2] for r in con.execute(f'PRAGMA table_info("{layer}")')}
            assert info.get("fid") == "INTEGER" and info.get("geom") == gtype, layer
            assert all(info.get(c) == t for c, t in cols), layer
            assert con.execute("SELECT data_type, srs_id FROM gpkg_contents WHERE table_name = ?",
                               (layer,)).fetchone() == ("features", epsg)
            assert con.execute("SELECT geometry_type_name, srs_id FROM gpkg_geometry_columns WHERE table_name = ?",
                               (layer,)).fetchone() == (gtype, epsg)
            _, geoms = _geoms(con, layer)
            if len(geoms):
                assert all(g.geom_type.upper() == gtype and g.is_valid and not g.is_empty for g in geoms), layer
                xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
                assert 1.6e5 < xmin < xmax < 8.4e5 and 1e5 < ymin < ymax < 1e7, (layer, xmin, ymin)
        for layer in ("lanes_polygons", "lane_connectors", "lane_groups_polygons", "intersections", "baseline_paths",
                      "boundaries", "road_segments"):
            assert con.execute(f'SELECT count(*) FROM "{layer}"').fetchone()[0] > 0, layer


def test_gpkg_topology(gpkgs):
    for con in gpkgs.values():
        def q(sql: str, con: sqlite3.Connection = con) -> list[tuple]:
            return con.execute(sql).fetchall()

        lanes = q("SELECT fid, lane_fid, lane_group_fid, left_boundary_fid, right_boundary_fid, speed_limit_mps "
                  "FROM lanes_polygons")
        conns = q("SELECT fid, exit_lane_fid, entry_lane_fid, lane_group_connector_fid, traffic_light_stop_line_fids, "
                  "speed_limit_mps FROM lane_connectors")
        lane_ids, conn_ids = {r[0] for r in lanes}, {r[0] for r in conns}
        groups = {r[0] for r in q("SELECT fid FROM lane_groups_polygons")}
        gconns = {r[0]: r[1:] for r in q("SELECT fid, from_lane_group_fid, to_lane_group_fid, intersection_fid "
                                         "FROM lane_group_connectors")}
        bounds = {r[0] for r in q("SELECT fid FROM boundaries")}
        stops = {r[0] for r in q("SELECT fid FROM stop_polygons")}
        inters = {r[0] for r in q("SELECT fid FROM intersections")}
        assert all(r[0] == r[1] for r in lanes)
        assert all(r[2] in groups and r[3] in bounds and r[4] in bounds and 5 < r[5] < 30 for r in lanes)
        for _, exit_l, entry_l, gc, stop_fids, speed in conns:
            assert exit_l in lane_ids and entry_l in lane_ids and gc in gconns and 2 < speed < 30
            assert all(int(s) in stops for s in stop_fids.replace(",", " ").split())
        assert all(a in groups and b in groups and i in inters for a, b, i in gconns.values())
        poly_rows = q("SELECT lane_connector_fid, left_boundary_fid, right_boundary_fid "
                      "FROM gen_lane_connectors_scaled_width_polygons")
        assert sorted(r[0] for r in poly_rows) == sorted(conn_ids)
        assert all(r[1] in bounds and r[2] in bounds for r in poly_rows)
        assert all(a in bounds and b in bounds for a, b in q(
            "SELECT left_boundary_fid, right_boundary_fid FROM lane_groups_polygons"))
        paths = q("SELECT lane_fid, lane_connector_fid FROM baseline_paths")
        assert Counter(r[0] for r in paths if r[0] is not None) == Counter(lane_ids)
        assert Counter(r[1] for r in paths if r[1] is not None) == Counter(conn_ids)
        assert all((a is None) != (b is None) for a, b in paths)
        # roadblock, roadblock-connector, lane and connector ids never collide
        assert not (groups & set(gconns)) and not (lane_ids & conn_ids) and not ((groups | set(gconns)) & lane_ids)
        # lanes never link to lanes directly: every lane reaches others through connectors, and has a way out
        assert {r[1] for r in conns} == lane_ids


def test_drivable_area_covers_lanes_and_connectors(gpkgs):
    for name, con in gpkgs.items():
        area = shapely.union_all(np.concatenate([_geoms(con, layer)[1] for layer in (
            "road_segments", "intersections", "generic_drivable_areas", "carpark_areas")]))
        for layer in ("lanes_polygons", "gen_lane_connectors_scaled_width_polygons"):
            polys = _geoms(con, layer)[1]
            total = shapely.area(polys).sum()
            missing = shapely.area(shapely.difference(polys, area)).sum()
            assert missing < 1e-3 * total, (name, layer, missing, total)


def test_baseline_paths_follow_lanes(gpkgs):
    for con in gpkgs.values():
        rows, lines = _geoms(con, "baseline_paths", "fid, lane_fid, lane_connector_fid")
        lane_rows, lane_polys = _geoms(con, "lanes_polygons")
        poly_of = {r[0]: p for r, p in zip(lane_rows, lane_polys)}
        conn_rows, conn_lines = _geoms(con, "lane_connectors")
        line_of = {r[0]: ln for r, ln in zip(conn_rows, conn_lines)}
        for (_, lane, conn), line in zip(rows, lines):
            if lane is not None:
                assert poly_of[lane].buffer(0.01).contains(line)
            else:
                assert line.equals_exact(line_of[conn], 1e-6)
        # a connector starts where its exit lane's path ends and ends where its entry lane's path starts
        path_of = {lane: ln for (_, lane, _), ln in zip(rows, lines) if lane is not None}
        for fid, exit_l, entry_l in con.execute("SELECT fid, exit_lane_fid, entry_lane_fid FROM lane_connectors"):
            c = np.asarray(line_of[fid].coords)
            assert np.allclose(c[0], np.asarray(path_of[exit_l].coords)[-1], atol=1e-6)
            assert np.allclose(c[-1], np.asarray(path_of[entry_l].coords)[0], atol=1e-6)


def test_conflicting_connectors_are_never_green_together(dbs, gpkgs):
    """Conflict = same intersection, centrelines meet, different roadblocks, perpendicular approaches.
    (Opposite approaches share a green: turns across them are unprotected and yield.)"""
    for con in dbs.values():
        gpkg = gpkgs[_map_of(con)]
        rows, lines = _geoms(gpkg, "lane_connectors", "fid, exit_lane_group_fid, intersection_fid")
        by_inter: dict[int, list] = {}
        for (fid, group, inter), line in zip(rows, lines):
            c = np.asarray(line.coords)
            by_inter.setdefault(inter, []).append((fid, group, line, np.arctan2(*(c[1] - c[0])[::-1])))
        conflicts = set()
        for items in by_inter.values():
            for i, (fa, ga, la, ha) in enumerate(items):
                for fb, gb, lb, hb in items[i + 1:]:
                    angle = abs(np.angle(np.exp(1j * (ha - hb))))
                    if ga != gb and la.intersects(lb) and np.deg2rad(45) < angle < np.deg2rad(135):
                        conflicts.add((min(fa, fb), max(fa, fb)))
        green: dict[bytes, set] = {}
        for pc, fid in con.execute("SELECT lidar_pc_token, lane_connector_id FROM traffic_light_status "
                                   "WHERE status = 'green'"):
            green.setdefault(pc, set()).add(fid)
        assert green or _map_of(con) == "sg-one-north"
        for fids in green.values():
            for a in fids:
                for b in fids:
                    assert (a, b) not in conflicts, (a, b)


# ---------------------------------------------------------------- determinism and atomicity

def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    cfg = SynthConfig(log_duration_s=60.0, max_vehicles=20)
    a = synthesize(tmp_path / "a", seed=11, num_logs=2, config=cfg)
    code = ("import sys; from worldengine_lab.logs.synthetic import SynthConfig, synthesize; "
            "synthesize(sys.argv[1], seed=11, num_logs=2, config=SynthConfig(log_duration_s=60.0, max_vehicles=20))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], check=True, env=env, timeout=120)
    da, db = _digest(a.data_root), _digest(tmp_path / "b")
    assert len(da) == 4 + 1 + 2 + 1 and da == db
    c = synthesize(tmp_path / "c", seed=12, num_logs=2, config=cfg)
    dbs_of = lambda d: {v for k, v in d.items() if k.endswith(".db")}  # noqa: E731
    assert not dbs_of(_digest(c.data_root)) & dbs_of(da)


def test_failed_run_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_write(path, content):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_write(path, content)

    real_write = generate_module.write_log
    monkeypatch.setattr(generate_module, "write_log", failing_write)
    out = tmp_path / "fresh"
    with pytest.raises(RuntimeError, match="disk full"):
        synthesize(out, seed=0, num_logs=3, config=SMALL)
    assert len(calls) == 2 and not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    calls.clear()
    with pytest.raises(RuntimeError):
        synthesize(existing, seed=0, num_logs=3, config=SMALL)
    assert [p.name for p in existing.iterdir()] == ["notes.txt"]


def test_existing_dataset_needs_overwrite(world, tmp_path):
    with pytest.raises(WorldEngineLabError, match="overwrite"):
        synthesize(world.data_root, seed=3, num_logs=1, config=SMALL)
    with pytest.raises(WorldEngineLabError, match="5 scenes"):
        SynthConfig(log_duration_s=30.0).validate()
