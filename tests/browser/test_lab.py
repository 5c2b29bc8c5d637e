"""The quickstart notebook in a real browser: run in JupyterLab, rendered by Voila, and its widgets driven.

Screenshots of every test land in ``test-artifacts/screenshots/``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from _browser import SCREENSHOTS, copy_notebook, error_outputs, open_and_run_all, open_in_voila

QUICKSTART = "00_quickstart.ipynb"

try:
    from playwright.sync_api import expect
except ImportError:  # the tests are skipped (see conftest.py); the module must still import
    expect = None

pytestmark = pytest.mark.browser

UI_TIMEOUT_MS = 30_000  # for the page to react once the kernel is idle (widgets render, traits sync)


def test_quickstart_renders_in_voila(page, voila, tmp_path: Path) -> None:
    server = voila(tmp_path / copy_notebook(tmp_path, QUICKSTART))
    open_in_voila(page, server)

    assert page.locator("#rendered_cells .jp-OutputArea-output").count() > 0
    assert error_outputs(page) == []
    expect(page.locator(".wel-failure-browser").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.locator(".wel-scenario-viewer").first).to_be_visible(timeout=UI_TIMEOUT_MS)


def _wait_until(page, predicate_js: str, arg, failure: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_function(predicate_js, arg=arg, polling=100, timeout=UI_TIMEOUT_MS)
    except PlaywrightTimeoutError:
        pytest.fail(f"{failure} (waited {UI_TIMEOUT_MS / 1000:.0f} s)")


_CANVAS_PIXELS_JS = "el => Array.from(el.querySelectorAll('canvas')).map(c => c.toDataURL()).join('|')"


def test_quickstart_widgets(lab, page) -> None:
    """Run the whole quickstart in JupyterLab (no cell raises, no error output), then drive both widgets."""
    state = open_and_run_all(page, lab, QUICKSTART)
    assert state["errors"] == [], f"cells raised: {state['errors']}"
    assert state["numExecuted"] == state["numCode"] > 0
    assert error_outputs(page, ".jp-NotebookPanel:visible") == []
    panel = page.locator(".jp-NotebookPanel:visible")
    viewer = panel.locator(".wel-scenario-viewer").first
    failures = panel.locator(".wel-failure-browser").first
    expect(viewer).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(failures).to_be_visible(timeout=UI_TIMEOUT_MS)

    # Scrubbing with the keyboard moves the viewer's time index and redraws its canvas. (The scrubber has to
    # keep its arrow keys from JupyterLab, whose command mode binds them to collapse/expand heading.)
    scrubber = viewer.locator("input[type=range].wel-scrubber").first
    expect(scrubber).to_be_visible(timeout=UI_TIMEOUT_MS)
    viewer.scroll_into_view_if_needed()
    t_before = viewer.get_attribute("data-t")
    pixels_before = viewer.evaluate(_CANVAS_PIXELS_JS)
    at_end = scrubber.evaluate("el => Number(el.value) >= Number(el.max)")
    scrubber.focus()
    for _ in range(3):
        page.keyboard.press("ArrowLeft" if at_end else "ArrowRight")
    expect(viewer).not_to_have_attribute("data-t", t_before or "", timeout=UI_TIMEOUT_MS)
    _wait_until(page, f"([el, before]) => ({_CANVAS_PIXELS_JS})(el) !== before",
                [viewer.element_handle(), pixels_before], "the viewer's canvas did not change after scrubbing")

    # Filtering by the second failure type changes the count (or it already equals that type's count).
    select = failures.locator("select.wel-filter-failure-type").first
    count = failures.locator(".wel-count").first
    expect(count).to_have_attribute("data-count", re.compile(r"^\d+$"), timeout=UI_TIMEOUT_MS)
    options = select.locator("option")
    assert options.count() >= 2, "the failure-type filter needs at least two options"
    label = options.nth(1).inner_text()
    count_before = count.get_attribute("data-count")
    select.select_option(index=1)
    labelled = re.search(r"\((\d+)\)\s*$", label)  # e.g. "collision (3)"
    _wait_until(page, """([el, before, expected]) => {
          const n = el.getAttribute('data-count');
          return n !== before || (expected !== null && n === expected);
        }""", [count.element_handle(), count_before, labelled.group(1) if labelled else None],
                f".wel-count stayed at {count_before} after filtering by {label!r}")
    # Element screenshots of both widgets after the interaction (linked from the README).
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    failures.scroll_into_view_if_needed()
    failures.screenshot(path=str(SCREENSHOTS / "failure_browser.png"), timeout=30_000)
    viewer.scroll_into_view_if_needed()
    viewer.screenshot(path=str(SCREENSHOTS / "scenario_viewer.png"), timeout=30_000)
