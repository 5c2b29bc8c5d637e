"""The analyst notebooks execute top to bottom with papermill on tiny parameters (what CI runs)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _run(name: str, tmp_path: Path, **parameters: object) -> dict:
    papermill = pytest.importorskip("papermill")
    out = tmp_path / f"out-{name}"
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters, kernel_name="python3",
                               progress_bar=False, cwd=str(tmp_path))
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return nb


def _widget_views(nb: dict) -> int:
    return sum("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for c in nb["cells"] for o in c.get("outputs", []))


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path: Path) -> None:
    nb = _run("00_quickstart.ipynb", tmp_path, workspace=str(tmp_path / "ws"), num_logs=1, seed=2, max_scenarios=8)
    assert _widget_views(nb) >= 2  # the failure browser and the scenario viewer were displayed


@pytest.mark.slow
def test_failure_mining_notebook_runs(tmp_path: Path) -> None:
    nb = _run("01_failure_mining.ipynb", tmp_path, workspace=str(tmp_path / "ws"), num_logs=2, seed=0,
              max_scenarios=12, export_yaml=str(tmp_path / "view.yaml"))
    assert _widget_views(nb) >= 1
