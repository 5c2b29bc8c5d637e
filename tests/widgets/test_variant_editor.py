"""VariantEditor, headless: driven through set_state as the front end would, asserted on traits, ``.selection``
and the store; plus the library functions behind it (worldengine_lab.variants.editing)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from worldengine_lab.errors import InfeasibleEditError
from worldengine_lab.planners import ConstantVelocityPlanner
from worldengine_lab.store import Workspace, curation
from worldengine_lab.testing import make_scenario
from worldengine_lab.variants import BehaviourWorldModel, BWMConfig, BWMFeatureConfig, list_variants, load_variant
from worldengine_lab.variants.editing import EDITABLE_OPS, EditSession, build_op, op_specs
from worldengine_lab.widgets import VariantEditor
from worldengine_lab.widgets._arrays import from_bytes

WIDGETS = Path(__file__).resolve().parents[2] / "widgets"


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace.open(tmp_path / "ws")


@pytest.fixture
def parent():
    """Ego at 10 m/s with a lead 25 m ahead (centre to centre) and one more car behind it, lane 1 of a straight road."""
    return make_scenario(num_agents=3, gap_m=25.0)


@pytest.fixture
def editor(ws, parent) -> VariantEditor:
    return VariantEditor(ws, parent, ConstantVelocityPlanner(), op="hard_brake",
                         params={"lead": "veh1", "decel_mps2": 2.0, "onset_s": 3.0})


def test_op_specs_cover_the_ten_ops_from_their_dataclasses(parent) -> None:
    specs = op_specs(parent)
    assert list(specs) == list(EDITABLE_OPS) and len(specs) == 10
    brake = {p.name: p for p in specs["hard_brake"].params}
    assert brake["decel_mps2"].kind == "number" and brake["decel_mps2"].unit == "m/s²"
    assert "deceleration" in brake["decel_mps2"].doc.lower()  # the attribute docstring of the field
    assert brake["lead"].kind == "agent" and brake["lead"].choices[:2] == ("auto", "veh1")
    dart = {p.name: p for p in specs["pedestrian_dart_out"].params}
    assert dart["spawn"].kind == "vector" and dart["spawn"].auto and dart["walk_m"].optional
    insert = {p.name: p for p in specs["insert_agent"].params}
    assert "path" not in insert and insert["pose"].components == ("x_m", "y_m", "yaw_rad")
    for spec in specs.values():  # every form's defaults build its op
        assert build_op(spec.name, spec.defaults()).name == spec.name
    with pytest.raises(InfeasibleEditError, match="unknown parameters"):
        build_op("hard_brake", {"decel": 3.0})


def test_session_evaluates_edits_and_reports_infeasible_ones(parent) -> None:
    session = EditSession(parent, ConstantVelocityPlanner())
    base = session.evaluate()
    assert base.feasible and base.success and base.variant is None
    hard = session.evaluate([build_op("hard_brake", {"lead": "veh1", "decel_mps2": 8.0, "onset_s": 0.5})])
    assert hard.feasible and not hard.success and hard.failure_type == "collision" and hard.min_ttc_s == 0.0
    assert hard.variant is not None and hard.variant.parent_id == parent.scenario_id and hard.valid
    bad = session.evaluate([build_op("hard_brake", {"lead": "veh1", "decel_mps2": 40.0, "onset_s": 0.5})])
    assert not bad.feasible and "decel_mps2" in bad.error and bad.to_dict()["success"] is None


def test_changing_a_parameter_re_evaluates_and_updates_the_readouts(editor: VariantEditor) -> None:
    assert editor.outcome["success"] is True and editor.outcome["seq"] == 0
    before = bytes(editor._payload)
    editor.set_state({"params": {"lead": "veh1", "decel_mps2": 8.0, "onset_s": 0.5}, "seq": 1})
    out = editor.outcome
    assert out["seq"] == 1 and out["feasible"] and out["success"] is False and out["failure_type"] == "collision"
    assert out["min_ttc_s"] == 0.0 and out["variant_id"].startswith("test-0~") and editor.latency_ms > 0
    assert bytes(editor._payload) != before
    boxes = from_bytes(editor._payload[:int(np.prod(editor._meta["arrays"]["boxes"]["shape"])) * 4],
                       editor._meta["arrays"]["boxes"]["shape"])
    assert boxes.shape == (101, 3, 5)
    assert editor.selection[0].variant_id == out["variant_id"]
    editor.set_state({"op": "remove_agent"})  # another op: its form defaults, evaluated
    assert editor.params == {"agent": "veh1"} and editor.outcome["ops"][0]["op"] == "remove_agent"


def test_an_infeasible_edit_shows_the_reason_not_a_crash(editor: VariantEditor) -> None:
    editor.set_state({"params": {"lead": "veh1", "decel_mps2": 40.0, "onset_s": 0.5}, "seq": 2})
    out = editor.outcome
    assert out["feasible"] is False and "decel_mps2" in out["error"] and out["seq"] == 2
    assert editor.error == "" and editor.selection == []
    editor.set_state({"params": {"lead": "nobody", "decel_mps2": 4.0, "onset_s": 0.5}, "seq": 3})
    assert editor.outcome["feasible"] is False and "nobody" in editor.outcome["error"]


def test_accept_stores_the_variant_and_records_a_decision(editor: VariantEditor, ws: Workspace) -> None:
    editor.set_state({"params": {"lead": "veh1", "decel_mps2": 6.0, "onset_s": 1.0}, "seq": 1})
    vid = editor.outcome["variant_id"]
    editor.set_state({"note": "hard but fair"})
    editor.set_state({"request": {"action": "accept", "seq": 1}})
    assert editor.error == "" and vid in editor.status
    rows = curation.decisions(ws, kind="variant")
    assert rows[["subject_id", "decision", "note"]].values.tolist() == [[vid, "accept", "hard but fair"]]
    assert list_variants(ws)["variant_id"].tolist() == [vid]
    assert load_variant(ws, vid).op_records()[0]["decel_mps2"] == 6.0
    editor.set_state({"params": {"lead": "veh1", "decel_mps2": 3.0, "onset_s": 1.0}, "seq": 2})
    editor.reject(note="too soft")  # a rejection is recorded; the variant is not stored
    assert curation.decisions(ws, kind="variant")["decision"].tolist() == ["accept", "reject"]
    assert len(list_variants(ws)) == 1


def test_callback_errors_are_shown_in_the_widget(editor: VariantEditor) -> None:
    editor.set_state({"params": {"lead": "veh1", "decel_mps2": 40.0, "onset_s": 0.5}, "seq": 1})
    editor.set_state({"request": {"action": "accept", "seq": 2}})  # nothing feasible to accept
    assert "no feasible variant to accept" in editor.error
    editor.set_state({"op": "no_such_op"})
    assert "expected one of" in editor.error and editor.op == "hard_brake"
    editor.set_state({"request": {"action": "launch", "seq": 3}})
    assert "expected 'accept' or 'reject'" in editor.error
    editor.set_state({"params": {"lead": "veh1", "decel_mps2": 2.0, "onset_s": 3.0}, "seq": 4})
    assert editor.error == ""  # the next message clears it


def test_gallery_of_behaviour_model_samples_and_selection(editor: VariantEditor) -> None:
    features = BWMFeatureConfig(max_agents=8, history_steps=5, horizon_steps=40, waypoint_stride=4,
                                max_map_elements=4, element_points=4)
    torch.manual_seed(0)
    model = BehaviourWorldModel(BWMConfig(features=features, d_model=32, num_layers=1, num_heads=2, pair_dim=8,
                                          diffusion_steps=20, sample_steps=4, dropout=0.0)).eval()
    samples = editor.sample(model, num_samples=2)
    assert len(editor.gallery) == len(samples) == 2 and editor._gallery_meta["arrays"]
    assert {g["index"] for g in editor.gallery} == {0, 1}
    editor.set_state({"selected": 1})
    assert editor.outcome["variant_id"] == samples[1].variant_id == editor.selection[0].variant_id
    editor.set_state({"params": {"lead": "veh1", "decel_mps2": 5.0, "onset_s": 1.0}, "seq": 5})
    assert editor.selected == -1 and editor.outcome["ops"][0]["op"] == "hard_brake"


def test_front_end_files_and_lazy_export() -> None:
    import worldengine_lab.widgets as w

    assert "VariantEditor" in w.__all__
    js = (WIDGETS / "variant_editor.js").read_text()
    assert "export default" in js and "wel-verdict" in js and "data-roundtrip-ms" in js.replace("roundtripMs",
                                                                                                "roundtrip-ms")
    assert (WIDGETS / "variant_editor.css").read_text().startswith("/*")
