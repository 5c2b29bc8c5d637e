"""The adversarial-variants notebook executes top to bottom with papermill on tiny parameters (what CI runs)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "03_adversarial_variants.ipynb"


@pytest.mark.slow
def test_variants_notebook_runs(tmp_path: Path) -> None:
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out-03_adversarial_variants.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3", progress_bar=False,
                               cwd=str(tmp_path), parameters={"workspace": str(tmp_path / "ws"), "num_logs": 1,
                                                              "max_scenarios": 4, "per_failure": 1, "limit": 2})
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    views = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                for c in nb["cells"] for o in c.get("outputs", []))
    assert views >= 1  # the editor was displayed
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "python side of a change:" in text and "variants from" in text
