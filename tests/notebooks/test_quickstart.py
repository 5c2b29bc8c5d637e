"""The quickstart notebook executes top to bottom with papermill on tiny parameters."""
from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "00_quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path: Path) -> None:
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), parameters={"workspace": str(tmp_path / "ws"), "num_logs": 1, "seed": 2},
        kernel_name="python3", progress_bar=False, cwd=str(tmp_path),
    )
    assert out.stat().st_size > 0
