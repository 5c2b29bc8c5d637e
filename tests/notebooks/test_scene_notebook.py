"""The scene-reconstruction notebook executes top to bottom with papermill on tiny parameters."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "02_scene_reconstruction.ipynb"


@pytest.mark.slow
def test_scene_reconstruction_notebook_runs(tmp_path: Path) -> None:
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out-02_scene_reconstruction.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), kernel_name="python3", progress_bar=False, cwd=str(tmp_path),
        parameters={"workspace": str(tmp_path / "ws"), "num_logs": 1, "seed": 0, "rig_scale": 1 / 48,
                    "preview_scale": 1 / 24, "fit_steps": 20, "fit_size": [64, 36], "fit_max_gaussians": 1500,
                    "ply_path": str(tmp_path / "bg.ply")})
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "heldout_psnr_db" in text and "re-render" in text and "Gaussians, SH degree 0" in text
    views = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert views >= 2  # the scenario viewer and the splat preview
    assert (tmp_path / "bg.ply").is_file()
