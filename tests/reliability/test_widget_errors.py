"""Widgets show exceptions raised in their callbacks in the UI (the ``error`` trait and the Output) instead of
dropping them. Each widget class has that test beside its other tests in ``tests/widgets``; this test keeps the
list complete: a new widget without such a test fails here."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# widget module -> (test file, test that triggers a failing callback and reads the error trait)
ERROR_TESTS = {
    "failure_browser": ("test_failure_browser.py", "test_callback_errors_reach_the_error_area"),
    "scenario_viewer": ("test_scenario_viewer.py", "test_callback_errors_reach_the_error_area"),
    "splat_preview": ("test_splat_preview.py", "test_errors_are_shown_in_the_widget"),
    "variant_editor": ("test_variant_editor.py", "test_callback_errors_are_shown_in_the_widget"),
    "job_launcher": ("test_job_widgets.py", "test_launcher_choices_and_validation"),
    "job_monitor": ("test_job_widgets.py", "test_monitor_polls_draws_cancels_and_reattaches"),
}


def _widget_modules() -> list[str]:
    out = []
    for p in sorted((REPO / "widgets").glob("*.py")):
        if p.name.startswith("_") or p.stem.endswith("_bench"):
            continue
        tree = ast.parse(p.read_text())
        if any(isinstance(n, ast.ClassDef) and any("Widget" in ast.unparse(b) for b in n.bases) for n in tree.body):
            out.append(p.stem)
    return out


def test_every_widget_has_a_callback_error_test() -> None:
    modules = _widget_modules()
    assert modules, "no widget modules found"
    missing = [m for m in modules if m not in ERROR_TESTS]
    assert not missing, f"widgets without a callback-error test listed here: {missing}"
    for module, (test_file, test_name) in ERROR_TESTS.items():
        if module not in modules:
            continue
        src = (REPO / "tests" / "widgets" / test_file).read_text()
        tree = ast.parse(src)
        fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == test_name), None)
        assert fn is not None, f"{test_file}::{test_name} is gone; {module} needs a callback-error test"
        assert ".error" in ast.unparse(fn) or "error" in ast.unparse(fn), f"{test_file}::{test_name} reads no error"
