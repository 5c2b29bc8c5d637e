"""Lineage: deterministic ids, op records round trip, variants of variants, the workspace store, and a mild variant
that the expert planner still drives through in closed loop."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from worldengine_lab.datatypes.variant import Variant, canonical_ops_json, variant_id
from worldengine_lab.errors import CorruptFileError, InfeasibleEditError, ScenarioValidationError, WorkspaceError
from worldengine_lab.mining.evaluate import evaluate_closed_loop
from worldengine_lab.planners import load_planner
from worldengine_lab.store import Workspace
from worldengine_lab.store.schema import split_statements
from worldengine_lab.variants import (VARIANTS_DDL, CutIn, HardBrake, RedLightRun, RemoveAgent, SpeedScale,
                                      list_variants, load_variant, make_variant, op_from_dict, save_variant,
                                      scenario_from_bytes, scenario_to_bytes, variants_migration)

from _variant_scenes import straight_road

OPS = (CutIn(agent="auto", gap_m=8.0, duration_s=2.5, onset_s=0.5), HardBrake(lead="veh2", decel_mps2=4.0,
                                                                             onset_s=3.5))


def test_same_request_gives_the_same_id_and_the_same_scenario(road):
    a = make_variant(road, OPS, seed=3, objective="cut-in then brake")
    b = make_variant(road, [op.to_dict() for op in OPS], seed=3, objective="another objective")
    assert a.variant_id == b.variant_id == a.scenario.scenario_id
    assert a.variant_id == f"straight~{a.hash8}" and len(a.hash8) == 8
    assert scenario_to_bytes(a.scenario.with_agents(a.scenario.agents, meta={})) == \
        scenario_to_bytes(b.scenario.with_agents(b.scenario.agents, meta={}))  # bytes equal but for the objective


def test_different_seed_or_parameters_give_different_ids(road):
    base = make_variant(road, OPS, seed=0).variant_id
    assert make_variant(road, OPS, seed=1).variant_id != base
    assert make_variant(road, OPS, seed=None).variant_id != base
    other = (OPS[0], dataclasses.replace(OPS[1], decel_mps2=4.5))
    assert make_variant(road, other, seed=0).variant_id != base
    assert make_variant(road, OPS[::-1][1:], seed=0).variant_id != base
    # ints and floats of the same value are the same request
    assert variant_id("p", [HardBrake(decel_mps2=4)]) == variant_id("p", [HardBrake(decel_mps2=4.0)])


def test_ops_json_round_trip(road):
    v = make_variant(road, OPS, seed=7)
    records = json.loads(v.ops_json())
    assert [r["op"] for r in records] == ["cut_in", "hard_brake"]
    rebuilt = tuple(op_from_dict(r) for r in records)
    assert rebuilt == v.ops
    assert canonical_ops_json(rebuilt, 7) == canonical_ops_json(v.ops, 7)
    as_records = Variant(parent_id=v.parent_id, ops=tuple(records), scenario=v.scenario, seed=7)
    assert as_records.variant_id == v.variant_id  # records and op objects hash the same


def test_variant_keeps_its_lineage_in_the_scenario(road):
    v = make_variant(road, [RemoveAgent(agent="veh2")], objective="empty lane")
    s = v.scenario
    assert s.provenance.source == "variant" and dict(s.provenance.extra)["parent_id"] == "straight"
    assert {"variant", "variant:remove_agent"} <= s.tags and road.tags <= s.tags
    assert s.meta["parent_id"] == "straight" and s.meta["objective"] == "empty lane"
    child = make_variant(s, [SpeedScale(agent="veh1", factor=0.8)])
    assert child.parent_id == v.variant_id and child.variant_id.startswith(v.variant_id + "~")
    with pytest.raises(ScenarioValidationError, match="expected the variant id"):
        Variant(parent_id="straight", ops=v.ops, scenario=road)
    with pytest.raises(InfeasibleEditError, match="at least one op"):
        make_variant(road, [])


def test_scenario_file_round_trip_keeps_every_field(crossing):
    s = make_variant(crossing, [RedLightRun()]).scenario
    back = scenario_from_bytes(scenario_to_bytes(s))
    for name in ("xy", "yaw", "vel_xy", "size_lwh", "agent_type", "valid", "track_ids"):
        np.testing.assert_array_equal(getattr(back.agents, name), getattr(s.agents, name))
    np.testing.assert_array_equal(back.traffic_lights.status, s.traffic_lights.status)
    np.testing.assert_array_equal(back.map.drivable_areas.xy, s.map.drivable_areas.xy)
    np.testing.assert_array_equal(back.map.signalized_lanes, s.map.signalized_lanes)
    assert (back.scenario_id, back.t0, back.dt, back.tags, back.provenance, dict(back.meta)) == \
        (s.scenario_id, s.t0, s.dt, s.tags, s.provenance, dict(s.meta))
    with pytest.raises(CorruptFileError):
        scenario_from_bytes(b"not a zip")


def test_store_saves_once_and_loads_back(tmp_path, road):
    ws = Workspace.open(tmp_path / "ws")
    v = make_variant(road, OPS, seed=3, objective="cut-in then brake")
    assert save_variant(ws, v) == v.variant_id
    again = make_variant(road, OPS, seed=3, objective="cut-in then brake")
    assert save_variant(ws, again) == v.variant_id  # same request: not duplicated
    save_variant(ws, make_variant(road, OPS, seed=4))
    table = list_variants(ws, parent_id="straight")
    assert len(table) == 2 and set(table["variant_id"]) >= {v.variant_id}
    row = table[table["variant_id"] == v.variant_id].iloc[0]
    assert row["seed"] == 3 and row["objective"] == "cut-in then brake" and row["ops"][1]["op"] == "hard_brake"
    assert row["scenario_path"].startswith("artifacts/variants/") and len(row["scenario_sha256"]) == 64
    back = load_variant(ws, v.variant_id)
    assert back.variant_id == v.variant_id and back.ops == v.ops and back.seed == 3
    np.testing.assert_array_equal(back.scenario.agents.xy, v.scenario.agents.xy)
    with pytest.raises(WorkspaceError, match="no variant"):
        load_variant(ws, "straight~00000000")
    (ws.root / row["scenario_path"]).write_bytes(b"tampered")
    with pytest.raises(CorruptFileError, match="sha256 mismatch"):
        load_variant(ws, v.variant_id)


def test_migration_4_ddl_is_idempotent(tmp_path):
    m = variants_migration()
    assert m.version == 4 and m.sql == VARIANTS_DDL
    ws = Workspace.open(tmp_path / "ws")
    with ws.transaction() as conn:
        for _ in range(2):  # IF NOT EXISTS: safe before or after the table was made on first use
            for stmt in split_statements(VARIANTS_DDL):
                conn.execute(stmt)
    cols = set(ws.query("SELECT name FROM pragma_table_info('variants')")["name"])
    assert cols == {"variant_id", "parent_id", "ops_json", "seed", "objective", "code_version", "created_at", "user",
                    "scenario_path", "scenario_sha256"}


def test_expert_still_succeeds_on_a_mild_hard_brake_variant():
    """The variant is harder (a planner that ignores the lead runs into it) but stays avoidable."""
    parent = straight_road(lead_gap_m=20.0, neighbour_dx_m=None)  # 15 m bumper gap at 10 m/s
    v = make_variant(parent, [HardBrake(lead="auto", decel_mps2=4.0, onset_s=0.5)], objective="mild lead brake")
    expert = evaluate_closed_loop([v.scenario], load_planner("expert")).iloc[0]
    assert expert["scenario_id"] == v.variant_id
    assert bool(expert["success"]) and expert["failure_type"] == "none", expert.to_dict()
    blind = evaluate_closed_loop([v.scenario], load_planner("constant_velocity")).iloc[0]
    assert not bool(blind["success"]) and blind["failure_type"] == "collision"
