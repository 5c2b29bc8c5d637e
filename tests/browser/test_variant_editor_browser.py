"""The VariantEditor in a real browser: a small notebook run in JupyterLab, a slider dragged with the mouse, and
the closed-loop readout updated from Python. A screenshot lands in ``test-artifacts/screenshots/``."""
from __future__ import annotations

import uuid

import pytest

from _browser import SCREENSHOTS, error_outputs, open_notebook, run_all

try:
    from playwright.sync_api import expect
except ImportError:  # the tests are skipped (see conftest.py); the module must still import
    expect = None

pytestmark = pytest.mark.browser

UI_TIMEOUT_MS = 60_000

# A scene the planner drives through untouched: the lead brakes gently and late. Dragging the deceleration slider
# to the right makes it brake hard (a rear-end collision) or beyond the limits (an infeasible edit): either way the
# verdict changes.
SOURCE = """\
import tempfile
from worldengine_lab.store import Workspace
from worldengine_lab.testing import make_scenario
from worldengine_lab.widgets import VariantEditor

ws = Workspace.open(tempfile.mkdtemp(prefix="wel-editor-"))
editor = VariantEditor(ws, make_scenario(num_agents=3, gap_m=25.0), "constant_velocity", op="hard_brake",
                       params={"lead": "veh1", "decel_mps2": 1.0, "onset_s": 0.5})
editor"""


def _write_notebook(root) -> str:
    import nbformat

    folder = root / f"editor-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SOURCE)]
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    nbformat.write(nb, folder / "editor.ipynb")
    return f"{folder.name}/editor.ipynb"


def test_dragging_a_slider_re_simulates_and_updates_the_readout(lab, page) -> None:
    path = _write_notebook(lab.root)
    open_notebook(page, lab, path)
    state = run_all(page, timeout_ms=120_000)
    assert state["errors"] == [], f"cells raised: {state['errors']}"
    assert error_outputs(page, ".jp-NotebookPanel:visible") == []
    editor = page.locator(".jp-NotebookPanel:visible .wel-variant-editor").first
    expect(editor).to_be_visible(timeout=UI_TIMEOUT_MS)
    verdict = editor.locator(".wel-verdict")
    expect(verdict).to_contain_text("pass", timeout=UI_TIMEOUT_MS)
    before = verdict.inner_text()
    seq_before = editor.get_attribute("data-seq") or "0"

    slider = editor.locator("input[type=range].wel-param[data-param='decel_mps2']")
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 4, y)
    page.mouse.down()
    for frac in (0.3, 0.6, 0.85, 0.97):  # a real drag: several moves with the button held
        page.mouse.move(box["x"] + frac * box["width"], y, steps=4)
    page.mouse.up()

    expect(editor).not_to_have_attribute("data-seq", seq_before, timeout=UI_TIMEOUT_MS)
    expect(verdict).not_to_have_text(before, timeout=UI_TIMEOUT_MS)
    after = verdict.inner_text()
    assert "fail" in after or "infeasible" in after, after
    if "infeasible" in after:
        expect(editor.locator(".wel-infeasible")).to_contain_text("decel_mps2", timeout=UI_TIMEOUT_MS)
    else:
        expect(editor.locator(".wel-ttc")).to_contain_text("min TTC", timeout=UI_TIMEOUT_MS)
    assert float(slider.input_value()) > 5.0
    roundtrip = editor.get_attribute("data-roundtrip-ms")
    print(f"slider-to-redraw round trip: {roundtrip} ms")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    editor.screenshot(path=str(SCREENSHOTS / "variant_editor.png"), timeout=30_000)
