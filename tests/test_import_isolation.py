"""The library never imports the UI stack: importing it (and its main packages) leaves ipywidgets, anywidget,
plotly and worldengine_lab.widgets out of sys.modules. Checked in a fresh interpreter."""
from __future__ import annotations

import json
import subprocess
import sys

PACKAGES = (
    "worldengine_lab", "worldengine_lab.store", "worldengine_lab.store.curation", "worldengine_lab.mining",
    "worldengine_lab.mining.failure_filter", "worldengine_lab.mining.failure_table", "worldengine_lab.scenarios",
    "worldengine_lab.planners", "worldengine_lab.sim", "worldengine_lab.metrics",
)
FORBIDDEN = ("ipywidgets", "anywidget", "plotly", "worldengine_lab.widgets")

_SCRIPT = f"""
import importlib, json, sys
for name in {PACKAGES!r}:
    importlib.import_module(name)
# names loaded on first use (module __getattr__) count too
import worldengine_lab.mining as mining
mining.mine, mining.EvalConfig
bad = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in {FORBIDDEN!r}))
json.dump(bad, sys.stdout)
"""


def test_library_imports_no_ui_packages() -> None:
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
