"""Fuzzed importers: damaged nuPlan logs and maps, and damaged real AV2 logs, only ever raise
WorldEngineLabError subclasses, never hang, and never leave anything in the workspace.

Each importer gets ``$WORLDENGINE_LAB_FUZZ_CASES`` cases (defaults below; the ``reliability_heavy`` marker
runs 10x as many). Damage kinds: truncation, bit flips, zeroed blocks, trailing garbage, empty files, missing
tables/columns/layers, wrong types, NaN/inf, absurd values, deleted and duplicated rows, broken JSON nodes.
The figures (cases tried, outcomes, error classes raised, time) land in ``test-artifacts/reliability/``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _fuzz import BAD_VALUES, CaseRunner, Mutation, fuzz_cases, record, run_case
from conftest import requires_av2
from worldengine_lab.logs.nuplan.schema import DB_TABLES, GPKG_LAYERS

BYTE_OPS = ("truncate", "bitflip", "zero_block", "garbage", "empty")
HEAVY = 10

ANNOTATION_COLUMNS = ("timestamp_ns", "track_uuid", "category", "length_m", "width_m", "height_m", "qw", "qx", "qy",
                      "qz", "tx_m", "ty_m", "tz_m", "num_interior_pts")
POSE_COLUMNS = ("timestamp_ns", "qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m")
FORECAST_COLUMNS = ("track_id", "object_type", "timestep", "position_x", "position_y", "heading", "velocity_x",
                    "velocity_y", "start_timestamp", "end_timestamp", "num_timestamps", "observed", "object_category",
                    "scenario_id", "focal_track_id", "city")


def _byte_ops(target: str) -> st.SearchStrategy[Mutation]:
    return st.builds(Mutation, target=st.just(target), op=st.sampled_from(BYTE_OPS),
                     fraction=st.floats(0.0, 1.0), seed=st.integers(0, 2**31))


def _sqlite_ops(target: str, tables: dict[str, list[str]]) -> st.SearchStrategy[Mutation]:
    pairs = [(t, c) for t, cols in tables.items() for c in cols]
    structural = st.builds(
        lambda tc, op, value, fraction, seed: Mutation(target, op, tc[0], tc[1], value, fraction, seed),
        st.sampled_from(pairs), st.sampled_from(("drop_table", "drop_column", "set_values", "set_values",
                                                 "set_values", "delete_rows")),
        st.sampled_from(BAD_VALUES), st.floats(0.0, 1.0), st.integers(0, 2**31))
    return st.one_of(_byte_ops(target), structural, structural)


def _arrow_ops(target: str, columns: tuple[str, ...]) -> st.SearchStrategy[Mutation]:
    structural = st.builds(
        lambda col, op, value, fraction, seed: Mutation(target, op, "", col, value, fraction, seed),
        st.sampled_from(columns), st.sampled_from(("drop_column", "set_values", "set_values", "set_values",
                                                   "cast_text", "delete_rows", "duplicate_rows")),
        st.sampled_from(BAD_VALUES), st.floats(0.0, 1.0), st.integers(0, 2**31))
    return st.one_of(_byte_ops(target), structural, structural)


def _json_ops(target: str) -> st.SearchStrategy[Mutation]:
    structural = st.builds(lambda op, value, seed: Mutation(target, op, value=value, seed=seed),
                           st.sampled_from(("json_delete", "json_set", "json_set")), st.sampled_from(BAD_VALUES),
                           st.integers(0, 2**31))
    return st.one_of(_byte_ops(target), structural, structural)


def _fuzz(name: str, kind: str, pristine: Path, strategy: st.SearchStrategy[Mutation], cases: int, tmp: Path,
          maps_root: str | None = None) -> dict:
    runner = CaseRunner()

    @settings(max_examples=cases, deadline=None, database=None, derandomize=os.environ.get("WORLDENGINE_LAB_FUZZ_SEED")
              is None, suppress_health_check=list(HealthCheck), print_blob=True)
    @given(mutation=strategy)
    def case(mutation: Mutation) -> None:
        work = tmp / f"case{len(runner.log)}"
        runner.run(run_case, kind, str(pristine), mutation, str(work), maps_root, mutation=mutation)

    try:
        case()
    finally:
        runner.close()
        figures = runner.summary(name)
        figures["failure_examples"] = runner.failures[:5]
        record(f"fuzz_{name}", figures)
    # every case runs (no early stop), so one run lists all the failures; each is reproducible from its mutation
    assert not runner.failures, f"{len(runner.failures)} of {runner.tried} cases failed:\n" + "\n".join(
        json.dumps(f, indent=1) for f in runner.failures[:5])
    assert runner.tried >= cases // 2, f"too few cases applied: {figures}"
    return figures


def _nuplan_targets(pristine: Path) -> tuple[str, str]:
    db = next((pristine / "logs").glob("*.db")).relative_to(pristine).as_posix()
    gpkg = next((pristine / "maps").rglob("map.gpkg")).relative_to(pristine).as_posix()
    return db, gpkg


def _nuplan_db_strategy(pristine: Path) -> st.SearchStrategy[Mutation]:
    db, _ = _nuplan_targets(pristine)
    return _sqlite_ops(db, {t: [c for c, _ in cols] for t, cols in DB_TABLES.items()})


def _nuplan_map_strategy(pristine: Path) -> st.SearchStrategy[Mutation]:
    _, gpkg = _nuplan_targets(pristine)
    layers = {name: ["fid", "geom"] + [c for c, _ in cols] for name, (_, cols) in GPKG_LAYERS.items()}
    layers.update({"gpkg_geometry_columns": ["table_name", "column_name", "srs_id"], "meta": ["key", "value"],
                   "gpkg_contents": ["table_name", "srs_id"]})
    return st.one_of(_sqlite_ops(gpkg, layers), _sqlite_ops(gpkg, layers), _json_ops("maps/nuplan-maps-v1.0.json"))


# ------------------------------------------------------------------------------------------------- tests
def test_fuzz_nuplan_db(nuplan_pristine: Path, tmp_path: Path, record_property) -> None:
    figures = _fuzz("nuplan_db", "nuplan", nuplan_pristine, _nuplan_db_strategy(nuplan_pristine), fuzz_cases(60),
                    tmp_path, maps_root=str(nuplan_pristine / "maps"))
    record_property("figures", figures)


def test_fuzz_nuplan_map(nuplan_pristine: Path, tmp_path: Path, record_property) -> None:
    figures = _fuzz("nuplan_map", "nuplan", nuplan_pristine, _nuplan_map_strategy(nuplan_pristine), fuzz_cases(40),
                    tmp_path)
    record_property("figures", figures)


def _av2_sensor_strategy(pristine: Path) -> st.SearchStrategy[Mutation]:
    name = pristine.name
    jmap = next((pristine / "map").glob("*.json")).relative_to(pristine.parent).as_posix()
    return st.one_of(_arrow_ops(f"{name}/annotations.feather", ANNOTATION_COLUMNS),
                     _arrow_ops(f"{name}/city_SE3_egovehicle.feather", POSE_COLUMNS), _json_ops(jmap))


def _av2_forecast_strategy(pristine: Path) -> st.SearchStrategy[Mutation]:
    name = pristine.name
    parquet = next(pristine.glob("*.parquet")).name
    jmap = next(pristine.glob("*.json")).name
    return st.one_of(_arrow_ops(f"{name}/{parquet}", FORECAST_COLUMNS), _json_ops(f"{name}/{jmap}"))


@requires_av2
def test_fuzz_av2_sensor_log(av2_sensor_pristine: Path, tmp_path: Path, record_property) -> None:
    figures = _fuzz("av2_sensor", "av2", av2_sensor_pristine.parent, _av2_sensor_strategy(av2_sensor_pristine),
                    fuzz_cases(50), tmp_path)
    record_property("figures", figures)


@requires_av2
def test_fuzz_av2_forecasting(av2_forecast_pristine: Path, tmp_path: Path, record_property) -> None:
    figures = _fuzz("av2_forecasting", "av2", av2_forecast_pristine.parent, _av2_forecast_strategy(av2_forecast_pristine),
                    fuzz_cases(40), tmp_path)
    record_property("figures", figures)


@pytest.mark.reliability_heavy
@pytest.mark.parametrize("which", ["nuplan_db", "nuplan_map", "av2_sensor", "av2_forecasting"])
def test_fuzz_heavy(which: str, nuplan_pristine: Path, tmp_path: Path, request) -> None:
    """Ten times the default number of cases per importer."""
    n = fuzz_cases(0) or 500
    if which == "nuplan_db":
        _fuzz("heavy_nuplan_db", "nuplan", nuplan_pristine, _nuplan_db_strategy(nuplan_pristine), n, tmp_path,
              maps_root=str(nuplan_pristine / "maps"))
    elif which == "nuplan_map":
        _fuzz("heavy_nuplan_map", "nuplan", nuplan_pristine, _nuplan_map_strategy(nuplan_pristine), n, tmp_path)
    elif which == "av2_sensor":
        p = request.getfixturevalue("av2_sensor_pristine")
        _fuzz("heavy_av2_sensor", "av2", p.parent, _av2_sensor_strategy(p), n, tmp_path)
    else:
        p = request.getfixturevalue("av2_forecast_pristine")
        _fuzz("heavy_av2_forecasting", "av2", p.parent, _av2_forecast_strategy(p), n, tmp_path)
