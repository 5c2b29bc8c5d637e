"""The data-scaling report end to end on a tiny embedded world: bases at two data shares, the smallest
post-trained, closed-loop success on test-rare, the equivalent multiple, and a standalone HTML report."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worldengine_lab.demo import run_demo


@pytest.mark.slow
def test_data_scaling_report_runs_on_a_tiny_world(tmp_path: Path) -> None:
    pytest.importorskip("papermill")
    from worldengine_lab.reports import run
    from worldengine_lab.store import Workspace
    from worldengine_lab.training.scaling import ScalingConfig, run_data_scaling

    ws_root = tmp_path / "ws"
    run_demo(workspace=ws_root, seed=1, num_logs=4, echo=False, until="world")
    params = {"fractions": [0.5, 1.0], "epochs": 1, "iterations": 1, "common_replay": 4, "max_scenarios": 6,
              "resamples": 200, "seed": 1}
    res = run("data_scaling", params, tmp_path / "out" / "data_scaling.html", workspace=ws_root)
    html = res.html.read_text()
    assert "equivalent multiple of pre-training data" in html and "Report provenance" in html
    assert "plotly" in html.lower()
    eq = res.provenance["equivalent_multiple"]
    assert set(eq) >= {"multiple", "ci95", "equivalent_fraction", "slope_per_doubling", "note"}
    # the study is resumable: the same call reuses the trained runs and the stored evaluations
    again = run_data_scaling(Workspace.open(ws_root), ScalingConfig(
        fractions=(0.5, 1.0), epochs=1, iterations=1, common_replay=4, max_scenarios=6, resamples=200, seed=1))
    pts = again.points
    assert list(pts["kind"]) == ["pretrained", "pretrained", "post-trained"] and (pts["n"] > 0).all()
    assert ((pts["low"] <= pts["success"]) & (pts["success"] <= pts["high"])).all()
    assert again.success.shape == (int(pts["n"].iloc[0]), 3) and set(np.unique(again.success)) <= {0.0, 1.0}
    got = again.equivalent
    assert got["multiple"] == pytest.approx(eq["multiple"], nan_ok=True)
    assert json.loads((again.run_root / "config.json").read_text())["fractions"] == [0.5, 1.0]
