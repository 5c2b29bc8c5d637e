"""Fixtures for real-browser tests: one JupyterLab server and one Debian chromium per session, a fresh page
per test, Voila on demand, and a screenshot of every browser test in ``test-artifacts/screenshots/``.

Tests here are marked ``@pytest.mark.browser`` and skipped when ``/usr/bin/chromium`` or playwright is missing.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from _browser import (CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, TIMEOUT_MS, VoilaServer, missing_browser_reason,
                      start_lab, start_voila, stop_process)


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Runs before the item's fixtures, so a machine without chromium never starts a server.
    if item.get_closest_marker("browser") is not None:
        reason = missing_browser_reason()
        if reason:
            pytest.skip(f"browser test skipped: {reason}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # Keep each phase's report on the item so the page fixture knows whether the test passed.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """A JupyterLab server for the session (127.0.0.1, random port, token, isolated Jupyter dirs).

    Notebooks opened in it run on a ``python3`` kernel spec that points at this interpreter.
    """
    server = start_lab(tmp_path_factory.mktemp("lab"))
    try:
        argv = server.api("/api/kernelspecs")["kernelspecs"]["python3"]["spec"]["argv"]
        assert argv[0] == sys.executable, f"python3 kernel runs {argv[0]}, expected {sys.executable}"
        yield server
    finally:
        stop_process(server.proc)


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory):
    """One persistent Debian chromium context (temporary profile) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            context.set_default_timeout(TIMEOUT_MS)
            yield context
        finally:
            context.close()
    finally:
        pw.stop()


def _artifact_name(item: pytest.Item) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", item.name).strip("_")


@pytest.fixture
def page(browser_context, request: pytest.FixtureRequest):
    """A new page per test. Afterwards a screenshot is saved as ``test-artifacts/screenshots/<test>.png``
    (pass or fail); on failure the browser console goes to ``<test>.console.txt`` beside it."""
    pg = browser_context.new_page()
    console: list[str] = []
    pg.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
    pg.on("pageerror", lambda err: console.append(f"[pageerror] {err}"))
    yield pg
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = _artifact_name(request.node)
    try:
        pg.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, timeout=30_000)
    except Exception as exc:  # a screenshot must never hide the test's own result
        print(f"screenshot of {name} failed: {exc}", file=sys.stderr)
    report = getattr(request.node, "report_call", None)
    log = SCREENSHOTS / f"{name}.console.txt"
    if report is not None and report.failed:
        log.write_text("\n".join(console) + "\n")
    else:
        log.unlink(missing_ok=True)
    pg.close()


@pytest.fixture
def voila(tmp_path: Path):
    """Factory: ``voila(notebook_path)`` serves that notebook with Voila until the test ends."""
    servers: list[VoilaServer] = []

    def start(notebook: Path) -> VoilaServer:
        server = start_voila(Path(notebook), tmp_path / f"voila-{len(servers)}")
        servers.append(server)
        return server

    yield start
    for server in servers:
        stop_process(server.proc)

