"""Shared fixtures of the reliability tests: pristine datasets to damage, and a figures summary at the end."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _fuzz import AV2_DATA, RESULTS  # noqa: E402

AV2_LOG = "adcf7d18-0510-35b0-a2fa-b4cea13a6d76"
AV2_FORECAST = "forecasting/0a1e6f0a-1817-4a98-b02e-db8c9327d151"

requires_av2 = pytest.mark.skipif(
    not AV2_DATA.is_dir(), reason=f"AV2 fixture data not found at {AV2_DATA} (the 'shared' folder beside the repo root)"
)


@pytest.fixture(scope="session")
def nuplan_pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short embedded-world log as ``logs/<name>.db`` and its map as ``maps/...`` (real nuPlan formats)."""
    from worldengine_lab.logs.synthetic import SynthConfig, synthesize

    world = synthesize(tmp_path_factory.mktemp("world"), seed=0, num_logs=1,
                       config=SynthConfig(log_duration_s=30.0, scene_duration_s=5.0, max_vehicles=12))
    out = tmp_path_factory.mktemp("nuplan-pristine")
    db = Path(world.db_paths[0])
    (out / "logs").mkdir()
    shutil.copy(db, out / "logs" / db.name)
    map_name = world.manifest["logs"][0]["map_name"]
    maps = Path(world.maps_root)
    (out / "maps").mkdir()
    shutil.copy(maps / "nuplan-maps-v1.0.json", out / "maps" / "nuplan-maps-v1.0.json")
    shutil.copytree(maps / map_name, out / "maps" / map_name)
    return out


@pytest.fixture(scope="session")
def av2_sensor_pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of one real AV2 sensor log (the files the import reads: poses, annotations, vector map)."""
    if not AV2_DATA.is_dir():
        pytest.skip(f"AV2 fixture data not found at {AV2_DATA}")
    src = AV2_DATA / AV2_LOG
    out = tmp_path_factory.mktemp("av2-pristine") / AV2_LOG
    (out / "map").mkdir(parents=True)
    for name in ("annotations.feather", "city_SE3_egovehicle.feather"):
        shutil.copy(src / name, out / name)
    for p in (src / "map").glob("log_map_archive_*.json"):
        shutil.copy(p, out / "map" / p.name)
    return out


@pytest.fixture(scope="session")
def av2_forecast_pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real AV2 motion-forecasting scenario (parquet + map JSON)."""
    if not AV2_DATA.is_dir():
        pytest.skip(f"AV2 fixture data not found at {AV2_DATA}")
    src = AV2_DATA / AV2_FORECAST
    out = tmp_path_factory.mktemp("av2-forecast") / src.name
    shutil.copytree(src, out)
    for p in out.iterdir():
        p.chmod(0o644)
    return out


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    """Print the figures the reliability tests recorded in this run."""
    if not RESULTS.is_dir():
        return
    started = getattr(config, "_reliability_started", None)
    rows = []
    for p in sorted(RESULTS.glob("*.json")):
        if started is not None and p.stat().st_mtime < started:
            continue
        rows.append((p.stem, json.loads(p.read_text())))
    if not rows:
        return
    terminalreporter.section("reliability figures")
    for name, fig in rows:
        brief = {k: v for k, v in fig.items() if not isinstance(v, (list, dict)) or k in ("outcomes",)}
        terminalreporter.write_line(f"{name}: {json.dumps(brief, sort_keys=True)}")


def pytest_configure(config) -> None:
    import time

    config._reliability_started = time.time() - 1.0


def pytest_collection_modifyitems(config, items) -> None:
    """``reliability_heavy`` tests run only when selected (``-m reliability_heavy``) or with
    ``WORLDENGINE_LAB_RELIABILITY_HEAVY=1``."""
    import os

    if "reliability_heavy" in (config.getoption("markexpr") or "") or os.environ.get("WORLDENGINE_LAB_RELIABILITY_HEAVY"):
        return
    skip = pytest.mark.skip(reason="heavy reliability run; select it with -m reliability_heavy "
                                   "or WORLDENGINE_LAB_RELIABILITY_HEAVY=1")
    for item in items:
        if "reliability_heavy" in item.keywords:
            item.add_marker(skip)
