"""Batch generation: checked variants stored with lineage, the same request giving the same ids."""
from __future__ import annotations

import json

import pytest
from _bwm_helpers import constant_velocity_model, one_thread  # noqa: F401
from _variant_scenes import straight_road

from worldengine_lab.errors import WorkspaceError
from worldengine_lab.store import Workspace
from worldengine_lab.variants import (GenerateConfig, GuidanceConfig, generate_variants, list_variants, load_variant,
                                      model_hash)

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = GuidanceConfig(grid_size_m=200.0, iterations=2, final_iterations=5)


def _parents():
    return [straight_road(lead_gap_m=25.0, neighbour_dx_m=8.0)]


def test_generate_stores_checked_variants_with_lineage_and_is_idempotent(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    model = constant_velocity_model()
    cfg = GenerateConfig(per_failure=2, seed=3, method="both", guidance=FAST)
    first = generate_variants(ws, config=cfg, model=model, scenarios=_parents())
    table = first.table
    assert set(table["method"]) == {"bwm", "parametric"} and len(table) == 4
    assert {"valid", "expert_success", "critical", "base_min_ttc_s", "stored"} <= set(table.columns)
    assert list(table.loc[table["stored"], "variant_id"]) == first.stored
    assert (table.loc[table["stored"], "valid"] & table.loc[table["stored"], "expert_success"]).all()
    rows = list_variants(ws)
    assert sorted(rows["variant_id"]) == sorted(first.stored) and (rows["parent_id"] == "straight").all()
    for vid in first.stored:  # lineage round-trips through the store
        v = load_variant(ws, vid)
        rec = v.op_records()[0]
        assert v.seed == 3 and v.parent_id == "straight"
        if rec["op"] == "bwm_sample":
            assert rec["sampler"] == "bwm" and rec["checkpoint"] == model_hash(model) and rec["attacker"]
    again = generate_variants(ws, config=cfg, model=model, scenarios=_parents())
    assert list(again.table["variant_id"]) == list(table["variant_id"]) and again.stored == first.stored
    assert len(list_variants(ws)) == len(rows)
    summary = again.summary()
    assert summary["num_parents"] == 1 and 0.0 <= summary["bwm"]["valid_rate"] <= 1.0
    json.dumps(summary, default=str)
    assert "stored" in again.report()


def test_generate_needs_failure_cases_or_a_model(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    with pytest.raises(WorkspaceError, match="no failure cases"):
        generate_variants(ws, "latest", GenerateConfig(method="parametric"))
    with pytest.raises(WorkspaceError, match="expected method"):
        generate_variants(ws, config=GenerateConfig(method="nope"), scenarios=_parents())  # type: ignore[arg-type]
    from worldengine_lab.errors import MissingFileError

    with pytest.raises(MissingFileError, match="train-bwm"):
        generate_variants(ws, config=GenerateConfig(method="bwm"), scenarios=_parents())


def test_cli_parses_the_variants_commands():
    from worldengine_lab.cli import build_parser

    p = build_parser()
    a = p.parse_args(["variants", "generate", "--failures", "latest", "--per-failure", "2", "--seed", "1",
                      "--method", "both"])
    assert (a.command, a.variants_command, a.per_failure, a.seed, a.method) == ("variants", "generate", 2, 1, "both")
    b = p.parse_args(["variants", "train-bwm", "--epochs", "3", "--max-minutes", "0.5"])
    assert (b.variants_command, b.epochs, b.max_minutes) == ("train-bwm", 3, 0.5)
