"""NAVSIM interop: scene-filter YAML and per-token PDM CSV round trips and bad inputs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from worldengine_lab.errors import CorruptFileError, DataFormatError, MissingColumnError, MissingFileError
from worldengine_lab.logs.navsim import (
    PDM_CSV_COLUMNS, SceneFilterSpec, read_pdm_csv, read_scene_filter, write_pdm_csv, write_scene_filter,
)
from worldengine_lab.mining import mine_rare_cases

# the head of NAVSIM's own navtest.yaml, as NAVSIM ships it
NAVSIM_FILTER = """_target_: navsim.common.dataclasses.SceneFilter
_convert_: 'all'

num_history_frames: 4
num_future_frames: 10
frame_interval: 1
has_route: true

max_scenes: null
log_names:
  - '2021.06.03.12.02.06_veh-35_01100_01227'
  - '2021.09.09.17.18.51_veh-48_01462_01552'

tokens:
  - '5798a6e25f2553e4'
  - '3dc6b109b480502f'
"""


# -- scene filters ------------------------------------------------------------------------------------------
def test_scene_filter_round_trip_is_exact(tmp_path) -> None:
    tokens = ["5798a6e25f2553e4", "12345678e1234567", "0000000000000001", "3dc6b109b480502f"]
    spec = write_scene_filter(tmp_path / "navtrain_collision.yaml", tokens, log_names=["log_b", "log_a"],
                              num_history_frames=4, num_future_frames=8, frame_interval=2, has_route=False,
                              max_scenes=100, extra={"map_names": None})
    back = read_scene_filter(tmp_path / "navtrain_collision.yaml")
    assert back == spec
    assert back.tokens == tuple(tokens) and back.name == "navtrain_collision" and back.extra == {"map_names": None}
    # numeric-looking tokens stay strings for any YAML reader
    data = yaml.safe_load((tmp_path / "navtrain_collision.yaml").read_text())
    assert data["tokens"] == tokens and data["_target_"] == "navsim.common.dataclasses.SceneFilter"
    assert data["_convert_"] == "all"
    assert "'12345678e1234567'" in (tmp_path / "navtrain_collision.yaml").read_text()


def test_scene_filter_defaults_and_nulls(tmp_path) -> None:
    p = tmp_path / "all_scenes.yaml"
    spec = write_scene_filter(p, None, name="every scene")
    assert read_scene_filter(p) == spec == SceneFilterSpec(name="every scene", tokens=None)
    data = yaml.safe_load(p.read_text())
    assert data["tokens"] is None and data["log_names"] is None and data["num_history_frames"] == 4
    assert list(data)[:2] == ["_target_", "_convert_"]


def test_mined_lists_to_scene_filters(tmp_path) -> None:
    table = pd.DataFrame({"token": ["a1", "b2", "c3"], "no_at_fault_collisions": [1, 0, 1],
                          "drivable_area_compliance": [1, 1, 0], "ego_progress": [0.9, 0.0, 0.0]})
    for name, tokens in mine_rare_cases(table, "navtrain").items():
        write_scene_filter(tmp_path / f"{name}.yaml", tokens)
    assert read_scene_filter(tmp_path / "navtrain_collision.yaml").tokens == ("b2",)
    assert read_scene_filter(tmp_path / "navtrain_ep_1pct.yaml").tokens == ()


def test_reads_navsim_own_file(tmp_path) -> None:
    p = tmp_path / "navtest.yaml"
    p.write_text(NAVSIM_FILTER)
    spec = read_scene_filter(p)
    assert spec.name == "navtest" and spec.tokens == ("5798a6e25f2553e4", "3dc6b109b480502f")
    assert spec.log_names[0] == "2021.06.03.12.02.06_veh-35_01100_01227"
    assert (spec.num_history_frames, spec.num_future_frames, spec.frame_interval, spec.has_route,
            spec.max_scenes) == (4, 10, 1, True, None)
    again = write_scene_filter(tmp_path / "copy.yaml", spec.tokens, spec.log_names, name="navtest")
    assert read_scene_filter(tmp_path / "copy.yaml") == again == spec


def test_scene_filter_bad_inputs(tmp_path) -> None:
    with pytest.raises(MissingFileError, match="nope.yaml"):
        read_scene_filter(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(CorruptFileError, match="mapping"):
        read_scene_filter(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("tokens: [a, b\n")
    with pytest.raises(CorruptFileError, match="YAML"):
        read_scene_filter(tmp_path / "broken.yaml")
    (tmp_path / "other.yaml").write_text("_target_: navsim.agents.Agent\ntokens: ['a']\n")
    with pytest.raises(DataFormatError, match="_target_"):
        read_scene_filter(tmp_path / "other.yaml")
    (tmp_path / "int.yaml").write_text("tokens:\n  - 1234567812345678\n")
    with pytest.raises(DataFormatError, match=r"tokens\[0\].*quote"):
        read_scene_filter(tmp_path / "int.yaml")
    (tmp_path / "frames.yaml").write_text("num_history_frames: 0\ntokens: ['a']\n")
    with pytest.raises(DataFormatError, match="num_history_frames"):
        read_scene_filter(tmp_path / "frames.yaml")
    with pytest.raises(DataFormatError, match="tokens"):
        write_scene_filter(tmp_path / "s.yaml", "abc")
    with pytest.raises(DataFormatError, match="max_scenes"):
        write_scene_filter(tmp_path / "m.yaml", ["a"], max_scenes=0)
    with pytest.raises(DataFormatError, match="has_route"):
        write_scene_filter(tmp_path / "h.yaml", ["a"], has_route="yes")  # type: ignore[arg-type]
    with pytest.raises(DataFormatError, match="extra"):
        write_scene_filter(tmp_path / "e.yaml", ["a"], extra={"tokens": []})
    assert not any((tmp_path / n).exists() for n in ("s.yaml", "m.yaml", "h.yaml", "e.yaml"))
    assert not list(tmp_path.glob(".*.tmp"))


# -- PDM CSV ------------------------------------------------------------------------------------------------
def pdm_table() -> pd.DataFrame:
    return pd.DataFrame({
        "token": ["5798a6e25f2553e4", "0000000000000001", "3dc6b109b480502f"], "valid": [True, False, True],
        "no_at_fault_collisions": [1.0, np.nan, 0.5], "drivable_area_compliance": [1.0, np.nan, 1.0],
        "driving_direction_compliance": [1.0, np.nan, 0.5], "ego_progress": [0.123456789012345, np.nan, 0.625],
        "time_to_collision_within_bound": [1.0, np.nan, 0.0], "comfort": [1.0, np.nan, 1.0],
        "score": [0.8848, np.nan, 0.213541666666667],
    })


def test_pdm_csv_round_trip_and_average_row(tmp_path) -> None:
    t = pdm_table()
    p = write_pdm_csv(tmp_path / "2025.01.01.00.00.00.csv", t)
    back = read_pdm_csv(p)
    pd.testing.assert_frame_equal(back, t)
    lines = p.read_text().splitlines()
    assert lines[0] == "," + ",".join(PDM_CSV_COLUMNS)
    assert lines[1].startswith("0,5798a6e25f2553e4,True,") and lines[2] == "1,0000000000000001,False,,,,,,,"
    avg = pd.read_csv(p).iloc[-1]
    assert avg["token"] == "average" and not avg["valid"]  # one invalid row → NAVSIM's all(valid) is False
    assert avg["score"] == pytest.approx((0.8848 + 0.213541666666667) / 2)
    assert avg["ego_progress"] == pytest.approx((0.123456789012345 + 0.625) / 2)


def test_reads_navsim_layout_with_scenario_ids_and_extras(tmp_path) -> None:
    t = pdm_table().rename(columns={"token": "scenario_id"}).drop(columns=["valid"]).iloc[[0, 2]]
    t["lane_keeping"] = [1.0, 0.0]
    p = write_pdm_csv(tmp_path / "s.csv", t, extra_columns=["lane_keeping"], average_row=False)
    back = read_pdm_csv(p)
    assert back["token"].tolist() == ["5798a6e25f2553e4", "3dc6b109b480502f"] and back["valid"].all()
    assert back["lane_keeping"].tolist() == [1.0, 0.0] and list(back.columns[:9]) == list(PDM_CSV_COLUMNS)


def test_hand_written_navsim_csv(tmp_path) -> None:
    p = tmp_path / "navsim.csv"
    p.write_text(
        ",token,valid,no_at_fault_collisions,drivable_area_compliance,driving_direction_compliance,ego_progress,"
        "time_to_collision_within_bound,comfort,score\n"
        "0,0123,True,1.0,1.0,1.0,0.5,1.0,1.0,0.7916666666666666\n"
        "1,abcd,True,0.0,1.0,1.0,0.0,0.0,1.0,0.0\n"
        "2,average,True,0.5,1.0,1.0,0.25,0.5,1.0,0.3958333333333333\n")
    back = read_pdm_csv(p)
    assert back["token"].tolist() == ["0123", "abcd"]  # leading zeros kept, average dropped
    assert back["score"].tolist() == [0.7916666666666666, 0.0]


@pytest.mark.parametrize("mutate, error, match", [
    (lambda s: s.replace(",comfort", ",comfy"), MissingColumnError, "'comfort'"),
    (lambda s: s.replace("0,0123,True,1.0", "0,0123,True,1.5"), DataFormatError, r"\[0, 1\].*1.5"),
    (lambda s: s.replace("0,0123,True,1.0", "0,0123,True,abc"), DataFormatError, "expected a number"),
    (lambda s: s.replace("0,0123,True", "0,0123,maybe"), DataFormatError, "valid"),
    (lambda s: s.replace("1,abcd", "1,0123"), DataFormatError, "more than once"),
    (lambda s: s.replace("0,0123,True,1.0,", "0,0123,True,,"), DataFormatError, "valid row without a value"),
])
def test_pdm_csv_bad_inputs(tmp_path, mutate, error, match) -> None:
    good = (",token,valid,no_at_fault_collisions,drivable_area_compliance,driving_direction_compliance,ego_progress,"
            "time_to_collision_within_bound,comfort,score\n"
            "0,0123,True,1.0,1.0,1.0,0.5,1.0,1.0,0.79\n1,abcd,True,0.0,1.0,1.0,0.0,0.0,1.0,0.0\n")
    p = tmp_path / "bad.csv"
    p.write_text(mutate(good))
    with pytest.raises(error, match=match) as info:
        read_pdm_csv(p)
    assert "bad.csv" in str(info.value)


def test_pdm_csv_missing_and_empty_files(tmp_path) -> None:
    with pytest.raises(MissingFileError, match="none.csv"):
        read_pdm_csv(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(CorruptFileError, match="empty.csv"):
        read_pdm_csv(tmp_path / "empty.csv")


def test_write_pdm_csv_rejects_bad_tables(tmp_path) -> None:
    t = pdm_table()
    with pytest.raises(MissingColumnError, match="comfort"):
        write_pdm_csv(tmp_path / "a.csv", t.drop(columns=["comfort"]))
    with pytest.raises(DataFormatError, match="score"):
        write_pdm_csv(tmp_path / "b.csv", t.assign(score=[2.0, np.nan, 0.0]))
    with pytest.raises(DataFormatError, match="NaN only where valid is False"):
        write_pdm_csv(tmp_path / "c.csv", t.assign(valid=True))
    with pytest.raises(DataFormatError, match="reserved"):
        write_pdm_csv(tmp_path / "d.csv", t.assign(token=["average", "x", "y"]))
    assert not list(tmp_path.iterdir())
