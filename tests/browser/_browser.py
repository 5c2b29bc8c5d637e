"""Real-browser helpers: JupyterLab and Voila servers, notebook copies, and page actions.

The fixtures in ``conftest.py`` build on these; tests import the page helpers directly
(``from _browser import open_and_run_all``).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")

# Debian's chromium as root, offline: no sandbox, no GPU, and nothing that phones home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Generous on purpose: CI machines have two shared cores and the first import of the stack is slow.
TIMEOUT_MS = 120_000
SERVER_START_S = 120.0

ERROR_MIME = "application/vnd.jupyter.stderr"
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|There was an error when executing cell")


def missing_browser_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (install Debian's chromium: `make browser`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


# ---------------------------------------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, num_lines: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-num_lines:])


def wait_until_up(probe, proc: subprocess.Popen, log: Path, what: str, deadline_s: float = SERVER_START_S) -> None:
    """Poll ``probe()`` until it returns True; fail with the end of the log if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready; "
                               f"end of {log}:\n{log_tail(log)}")
        if probe():
            return
        time.sleep(0.25)
    raise TimeoutError(f"{what} was not ready after {deadline_s:.0f} s; end of {log}:\n{log_tail(log)}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def tcp_open(port: int) -> bool:
    """Readiness without an HTTP request (a GET of a Voila page would start a kernel)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the server, wait, SIGKILL it, then kill whatever of its children is left."""
    import psutil

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    for kid in kids:
        try:
            if kid.is_running() and kid.status() != psutil.STATUS_ZOMBIE:
                kid.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(kids, timeout=5)


def isolated_env(base: Path) -> dict[str, str]:
    """Environment for a server under ``base``: private config, runtime, data and IPython dirs.

    The data dir holds a ``python3`` kernel spec that runs this interpreter, so kernels started by the
    server or by Voila import the same environment as the tests, whatever the user has installed.
    """
    data = base / "data"
    spec_dir = data / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)", "language": "python", "metadata": {"debugger": True}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    env = {**os.environ,
           "JUPYTER_CONFIG_DIR": str(base / "config"),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
           "JUPYTER_DATA_DIR": str(data),
           "JUPYTER_PATH": str(data),
           "IPYTHONDIR": str(base / "ipython")}
    env.pop("JUPYTER_PREFER_ENV_PATH", None)
    return env


# ---------------------------------------------------------------------------------------------- JupyterLab

@dataclass
class LabServer:
    """A running JupyterLab: ``url`` has no trailing slash; notebooks live under ``root``."""

    url: str
    token: str
    root: Path
    log: Path
    proc: subprocess.Popen

    def api(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.url}{path}?token={self.token}", timeout=10) as resp:
            return json.load(resp)


def start_lab(base: Path) -> LabServer:
    """Start JupyterLab on 127.0.0.1 (random free port, token) with its root, settings and state under ``base``."""
    root = base / "root"
    root.mkdir(parents=True, exist_ok=True)
    settings = base / "settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = isolated_env(base)
    token = secrets.token_hex(16)
    last_error: Exception | None = None
    for attempt in range(3):  # a free port can be taken between the probe and the bind
        port = free_port()
        log = base / f"lab-{attempt}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                 "--ServerApp.port_retries=0", f"--ServerApp.token={token}", "--allow-root",
                 f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={base / 'workspaces'}",
                 f"--LabApp.user_settings_dir={settings}", "--LabApp.expose_app_in_browser=True",
                 "--ServerApp.terminals_enabled=False"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
        server = LabServer(f"http://127.0.0.1:{port}", token, root, log, proc)
        try:
            wait_until_up(lambda: http_ok(f"{server.url}/api/status?token={token}"), proc, log, "JupyterLab")
            return server
        except RuntimeError as exc:  # exited early: retry on another port
            last_error = exc
        except BaseException:
            stop_process(proc)
            raise
    raise RuntimeError(f"JupyterLab did not start in 3 attempts: {last_error}")


def copy_notebook(root: Path, name: str) -> str:
    """Copy ``notebooks/<name>`` into a fresh folder under ``root``; return its path relative to ``root``.

    Stored outputs and execution counts are cleared, so a run's progress is unambiguous, and every copy
    gets its own folder, so files the notebook writes next to itself never leak between tests.
    """
    import nbformat

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    folder = root / f"run-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / Path(name).name)
    # Only the notebook is copied: it must not read files that sit beside it in notebooks/.
    return f"{folder.name}/{Path(name).name}"


_RUN_STATE_JS = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model || !panel.sessionContext) return null;
  const cells = Array.from(panel.content.model.cells);
  const code = cells.filter(c => c.type === 'code' && c.sharedModel.getSource().trim() !== '');
  const errors = [];
  for (const c of code) {
    for (const o of c.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(`${o.ename}: ${o.evalue}`);
    }
  }
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return {
    numCode: code.length,
    numExecuted: code.filter(c => c.executionCount !== null).length,
    numRunning: code.filter(c => c.executionState === 'running').length,
    kernel: kernel ? kernel.status : 'none',
    errors,
  };
}"""


def notebook_state(page) -> dict | None:
    """Execution state of the current notebook from JupyterLab's model (independent of cell windowing)."""
    return page.evaluate(_RUN_STATE_JS)


def open_notebook(page, lab: LabServer, path: str):
    """Open ``path`` (relative to the server root) in a fresh workspace; return the visible notebook panel
    once the kernel reports ``Idle`` in the status bar."""
    workspace = f"t{uuid.uuid4().hex[:10]}"  # a new workspace plus reset: no tabs restored from earlier runs
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{path}?token={lab.token}&reset")
    panel = page.locator(".jp-NotebookPanel:visible")
    panel.wait_for(timeout=TIMEOUT_MS)
    page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for(timeout=TIMEOUT_MS)
    return panel


def _click_run_all(page, attempts: int = 3) -> None:
    """Run > Run All Cells. The item is disabled until the notebook is the active widget, so on a miss
    close the menu, select the first cell and try again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    menu = page.locator("li.lm-MenuBar-item", has_text="Run").first
    item = page.locator(".lm-Menu-item:not(.lm-mod-disabled)",
                        has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))).first
    for _ in range(attempts):
        menu.click()
        try:
            item.click(timeout=15_000)
            return
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
            page.locator(".jp-NotebookPanel:visible .jp-Cell .jp-InputPrompt").first.click()
    raise AssertionError(f"'Run All Cells' was not enabled in the Run menu after {attempts} tries")


def run_all(page, timeout_ms: int = 300_000) -> dict:
    """Run all cells through the Run menu and wait until every code cell has run (or one raised) and the
    kernel is idle again. Returns the final :func:`notebook_state`."""
    _click_run_all(page)
    page.wait_for_function(
        f"""() => {{
          const s = ({_RUN_STATE_JS})();
          if (!s || s.numRunning > 0 || s.kernel !== 'idle') return false;
          return s.numExecuted === s.numCode || s.errors.length > 0;
        }}""",
        timeout=timeout_ms, polling=250)
    page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for(timeout=TIMEOUT_MS)
    return notebook_state(page)


def open_and_run_all(page, lab: LabServer, name: str) -> dict:
    """Copy ``notebooks/<name>`` into the server root, open it, run all cells, wait for the end.

    Returns the notebook's state dict (``numCode``, ``numExecuted``, ``errors``, ``kernel``, ``path``).
    """
    path = copy_notebook(lab.root, name)
    open_notebook(page, lab, path)
    state = run_all(page)
    state["path"] = path
    return state


def error_outputs(page, scope: str = "body") -> list[str]:
    """Texts of rendered outputs that are tracebacks (stderr outputs may hold harmless warnings)."""
    texts = page.locator(f"{scope} .jp-OutputArea-output[data-mime-type='{ERROR_MIME}']").all_inner_texts()
    return [t for t in texts if _TRACEBACK.search(t)]


# ---------------------------------------------------------------------------------------------- Voila

@dataclass
class VoilaServer:
    url: str  # the rendered notebook, token included
    log: Path
    proc: subprocess.Popen


def start_voila(notebook: Path, base: Path) -> VoilaServer:
    """Serve one notebook with Voila on 127.0.0.1 (random free port, token). Readiness is a TCP connect:
    every GET of the page starts a kernel and runs the notebook."""
    base.mkdir(parents=True, exist_ok=True)
    env = isolated_env(base)
    token = secrets.token_hex(16)
    last_error: Exception | None = None
    for attempt in range(3):
        port = free_port()
        log = base / f"voila-{attempt}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "voila", notebook.name, f"--port={port}", "--no-browser",
                 "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", f"--token={token}",
                 "--show_tracebacks=True"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=notebook.parent)
        try:
            wait_until_up(lambda: tcp_open(port), proc, log, "Voila")
            return VoilaServer(f"http://127.0.0.1:{port}/?token={token}", log, proc)
        except RuntimeError as exc:
            last_error = exc
        except BaseException:
            stop_process(proc)
            raise
    raise RuntimeError(f"Voila did not start in 3 attempts: {last_error}")


def open_in_voila(page, server: VoilaServer, timeout_ms: int = 300_000) -> None:
    """Load the Voila page and wait until the notebook has finished executing and rendering."""
    page.goto(server.url, wait_until="commit", timeout=timeout_ms)
    # While the kernel runs the cells Voila shows #loading ("Executing 3 of 6"); when it is done it removes
    # the spinner and shows #rendered_cells. readyState alone is not enough: it is "complete" earlier.
    page.wait_for_function(
        """() => {
          const cells = document.querySelector('#rendered_cells');
          const loading = document.querySelector('#loading');
          return cells !== null && cells.offsetParent !== null && (loading === null || loading.offsetParent === null);
        }""",
        timeout=timeout_ms, polling=250)
