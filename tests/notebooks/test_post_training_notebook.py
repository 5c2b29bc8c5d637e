"""The post-training notebook executes top to bottom with papermill on tiny parameters (what CI runs)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "04_post_training.ipynb"


@pytest.mark.slow
def test_post_training_notebook_runs(tmp_path: Path) -> None:
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out-04_post_training.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3", progress_bar=False,
                               cwd=str(tmp_path), parameters={"workspace": str(tmp_path / "ws"), "num_logs": 1,
                                                              "pretrain_scenarios": 4, "mine_scenarios": 6,
                                                              "iterations": 1, "job_timeout_s": 240.0})
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    views = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                for c in nb["cells"] for o in c.get("outputs", []))
    assert views >= 2  # the launcher and the monitor were displayed
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "succeeded" in text  # the background job finished
    assert (tmp_path / "ws" / "runs" / "posttrain-rl_rare_rollouts-seed0" / "model.pt").is_file()
