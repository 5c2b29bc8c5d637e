"""Imports into the workspace: nuPlan (embedded world) and AV2; a failed import writes nothing."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from worldengine_lab.errors import CorruptFileError, WorldEngineLabError
from worldengine_lab.scenarios.imports import import_av2, import_nuplan
from worldengine_lab.store import Workspace

AV2_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "av2"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    from worldengine_lab.logs.synthetic import synthesize

    return synthesize(tmp_path_factory.mktemp("world"), seed=5, num_logs=2)


def test_import_nuplan_and_reload(world, tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    splits = {e["log_id"]: e["split"] for e in world.manifest["logs"]}
    summary = import_nuplan(ws, world.data_root, maps_root=world.maps_root, stride_s=2.0, source="synthetic",
                            splits=splits, progress=False)
    cat = ws.catalog()
    assert summary["num_scenarios"] == len(cat) > 0
    assert set(cat["source"]) == {"synthetic"}
    assert set(cat["split"].dropna()) <= set(splits.values())
    # a catalogued window reloads lazily through the loader registry, identical to a direct read
    from worldengine_lab.logs.nuplan import NuPlanLog

    row = cat.iloc[3]
    s = ws.scenarios()[row["scenario_id"]]
    direct = NuPlanLog(row["path"], maps_root=world.maps_root).read(row["locator"])
    np.testing.assert_array_equal(s.agents.xy, direct.agents.xy)
    # re-import is idempotent
    import_nuplan(ws, world.data_root, maps_root=world.maps_root, stride_s=2.0, source="synthetic", progress=False)
    assert len(ws.catalog()) == len(cat)


def test_failed_import_writes_nothing(world, tmp_path: Path) -> None:
    data = tmp_path / "logs"
    data.mkdir()
    for p in world.db_paths:
        shutil.copy(p, data / p.name)
    bad = data / "2099.01.01.00.00.00_veh-99_00000_00001.db"  # sorts last: the good logs are read first
    bad.write_bytes(world.db_paths[0].read_bytes()[:50_000])
    ws = Workspace.open(tmp_path / "ws")
    before = ws.query("SELECT COUNT(*) AS n FROM imports")["n"].iat[0]
    with pytest.raises(CorruptFileError, match=bad.name):
        import_nuplan(ws, data, maps_root=world.maps_root, stride_s=2.0, progress=False)
    assert len(ws.catalog()) == 0
    assert ws.query("SELECT COUNT(*) AS n FROM imports")["n"].iat[0] == before


def test_unknown_tokens_raise(world, tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    with pytest.raises(WorldEngineLabError, match="none of the tokens"):
        import_nuplan(ws, world.data_root, maps_root=world.maps_root, tokens=["00" * 8], progress=False)


@pytest.mark.skipif(not AV2_ROOT.is_dir(), reason=f"Argoverse 2 fixture logs not found at {AV2_ROOT}")
def test_import_av2_folder(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws")
    summary = import_av2(ws, AV2_ROOT, stride_s=2.0, progress=False)
    cat = ws.catalog()
    assert summary["num_scenarios"] == len(cat) > 0
    assert {"av2", "av2_forecasting"} <= set(cat["source"])
    assert any("b87683ae" in p for p in summary["skipped"])  # annotations-only folder, no poses
    s = ws.scenarios(source="av2")[0]
    assert s.agents.num_agents > 1
