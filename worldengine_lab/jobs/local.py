"""Launch a JobSpec as a detached process and watch, cancel, resume or re-attach to it through the store.

:func:`launch` records the job (``queued``) and starts ``python -m worldengine_lab.jobs run --workspace W
--job-id J`` in a new session (its own process group, no terminal, stdin from /dev/null, stdout and stderr
appended to ``<run_dir>/job.log``), so it keeps running when the notebook kernel that launched it exits. The
:class:`Job` handle reads everything from the workspace store, so another process gets the same view with
:meth:`Job.attach`.

Orphans: a job the store calls ``queued``/``running`` whose process is gone is marked ``failed`` with the error
"process <pid> exited without reporting (killed?)". On this host that is checked with the pid and its start
time (a reused pid is not mistaken for the job); for a job on another host, with its heartbeat: older than
``stale_after_s`` means lost. Every read through :class:`Job` and :func:`list_jobs` runs this check.

Examples:
    >>> job = launch(JobSpec("selftest", params={"steps": 5}, workspace="/tmp/ws"))  # doctest: +SKIP
    >>> job.wait(timeout=60)  # doctest: +SKIP
    'succeeded'
    >>> job.metrics(wide=True)  # doctest: +SKIP
"""
from __future__ import annotations

import datetime as _dt
import html
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifacts import atomic_write_text, utc_now_iso
from ..datatypes.job import JobSpec
from ..errors import WorkspaceError, WorldEngineLabError
from ..store.workspace import Workspace
from . import store as _store
from ._process import is_alive, process_start_time, runs_job, signal_group, wait_gone
from .context import CANCEL_FILENAME
from .registry import entry_point
from .runner import result_of

__all__ = ["launch", "Job", "list_jobs", "detect_orphans", "JobTimeoutError", "LOG_FILENAME", "STALE_AFTER_S"]

logger = logging.getLogger(__name__)

LOG_FILENAME = "job.log"
"""The job process's stdout and stderr, appended across attempts, in its run folder."""
STALE_AFTER_S = 60.0
"""A job on another host whose heartbeat is older than this is considered lost, s."""
EXIT_WAIT_S = 5.0
"""How long :meth:`Job.wait` waits for a finished job's process to exit, s."""


class JobTimeoutError(WorldEngineLabError, TimeoutError):
    """:meth:`Job.wait` ran out of time before the job finished."""


def _open_ws(workspace: Workspace | str | os.PathLike[str]) -> Workspace:
    return workspace if isinstance(workspace, Workspace) else Workspace.open(workspace, create=False)


def _age_s(iso: str | None) -> float | None:
    if not iso:
        return None
    then = _dt.datetime.fromisoformat(iso)
    return (_dt.datetime.now(_dt.timezone.utc) - then).total_seconds()


def _orphan_reason(row: dict[str, Any], stale_after_s: float) -> str | None:
    """Why an unfinished job's process is lost, or None if it may still be running."""
    if row["status"] not in _store.ACTIVE_STATUSES:
        return None
    if row["pid"] is None:  # recorded but never given a process (the launcher died in between)
        age = _age_s(row["heartbeat_at"] or row["created_at"])
        if row["status"] == "queued" and age is not None and age > stale_after_s:
            return f"no process was started for it within {age:.0f} s (the launcher exited?)"
        return None
    pid = int(row["pid"])
    if row["host"] == _store.this_host():
        return None if is_alive(pid, row["pid_started_at"]) else f"process {pid} exited without reporting (killed?)"
    age = _age_s(row["heartbeat_at"] or row["started_at"] or row["created_at"])
    if age is None or age < stale_after_s:
        return None
    return (f"process {pid} exited without reporting (killed?): no heartbeat from host {row['host']} for "
            f"{age:.0f} s")


def _check_orphan(ws: Workspace, row: dict[str, Any], stale_after_s: float = STALE_AFTER_S) -> dict[str, Any]:
    reason = _orphan_reason(row, stale_after_s)
    if reason is None:
        return row
    log = Path(row["run_dir"]) / LOG_FILENAME
    if _store.set_status(ws, row["job_id"], "failed", only_from=_store.ACTIVE_STATUSES, event="orphaned", note=reason,
                         error=f"{reason}; see {log}", message="failed"):
        logger.warning("job %s: %s", row["job_id"], reason)
    return _store.require_job(ws, row["job_id"])


def detect_orphans(workspace: Workspace | str | os.PathLike[str], stale_after_s: float = STALE_AFTER_S) -> list[str]:
    """Mark every unfinished job whose process is gone as ``failed``; return their ids."""
    ws = _open_ws(workspace)
    rows = _store.list_job_rows(ws, status=_store.ACTIVE_STATUSES)
    lost = []
    for row in rows.to_dict("records"):
        row = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}  # NaN -> None
        if _check_orphan(ws, row, stale_after_s)["status"] == "failed":
            lost.append(row["job_id"])
    return lost


def list_jobs(workspace: Workspace | str | os.PathLike[str], status: str | list[str] | None = None,
              kind: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """Jobs of the workspace, newest first (orphans marked first): id, name, kind, status, progress, process,
    times, error."""
    ws = _open_ws(workspace)
    detect_orphans(ws)
    rows = _store.list_job_rows(ws, status=status, kind=kind, limit=limit)
    cols = ["job_id", "name", "kind", "status", "step", "total", "message", "backend", "attempt", "pid", "host",
            "created_at", "started_at", "finished_at", "error", "run_dir"]
    return rows[cols]


def _spawn(ws: Workspace, job_id: str, run_dir: Path, num_cpus: float) -> subprocess.Popen[bytes]:
    """Start the detached job process and record its pid and start time."""
    cmd = [sys.executable, "-m", "worldengine_lab.jobs", "run", "--workspace", str(ws.root), "--job-id", job_id]
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    threads = str(max(1, int(num_cpus)))
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(key, threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with open(run_dir / LOG_FILENAME, "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, close_fds=True)
    except OSError as exc:
        note = f"could not start the job process ({exc})"
        _store.set_status(ws, job_id, "failed", only_from=("queued",), note=note, error=note, message="failed")
        raise WorkspaceError(f"Job {job_id}: {note}; expected to run {' '.join(cmd)} (check that the run folder "
                             f"{run_dir} is writable and the Python environment is intact)") from exc
    _store.update_job(ws, job_id, pid=proc.pid, pid_started_at=process_start_time(proc.pid),
                      host=_store.this_host())
    logger.info("job %s: started process %d (log %s)", job_id, proc.pid, run_dir / LOG_FILENAME)
    return proc


def launch(spec: JobSpec, run_dir: str | os.PathLike[str] | None = None) -> "Job":
    """Record ``spec`` as a new job and start it in a detached process; return its :class:`Job` handle.

    Args:
        spec: the job; ``backend="ray"`` makes the process a Ray driver (see ``ray_backend``).
        run_dir: the job's run folder (default ``<workspace>/runs/<job_id>``).
    Raises:
        WorldEngineLabError: the kind is not available (e.g. ``posttrain`` before its package registers it),
            or its function cannot be imported by another process. MissingDependencyError: backend ``ray``
            without ray installed. WorkspaceError: a job with this id exists.
    """
    entry = entry_point(spec.kind)
    if not entry:
        raise WorldEngineLabError(
            f"kind {spec.kind!r} is registered with a function another process cannot import (a lambda, a nested "
            f"function or one defined in __main__); register a module-level function of an importable module, or "
            f"run it in this process with worldengine_lab.jobs.run_job(spec)")
    if spec.backend == "ray":
        from .ray_backend import is_available, require_ray

        if not is_available():
            require_ray()
    ws = Workspace.open(spec.workspace)
    folder = Path(run_dir) if run_dir is not None else ws.root / "runs" / spec.job_id
    folder.mkdir(parents=True, exist_ok=True)
    _store.insert_job(ws, spec, str(folder), entry)
    atomic_write_text(folder / "spec.json", spec.to_json())
    _store.update_job(ws, spec.job_id, attempt=1)
    proc = _spawn(ws, spec.job_id, folder, spec.num_cpus)
    return Job(ws, spec.job_id, process=proc)


class Job:
    """Handle of one job in a workspace; every method reads or writes the store, so handles in different
    processes agree. Get one from :func:`launch` or :meth:`attach`."""

    def __init__(self, workspace: Workspace | str | os.PathLike[str], job_id: str,
                 process: subprocess.Popen[bytes] | None = None) -> None:
        self.workspace = _open_ws(workspace)
        self.job_id = job_id
        self._proc = process
        self.last_cancel_s: float | None = None
        """Seconds the last :meth:`cancel` took until the job stopped."""

    @classmethod
    def attach(cls, workspace: Workspace | str | os.PathLike[str], job_id: str) -> "Job":
        """The handle of an existing job (from another process, a new kernel, the CLI)."""
        ws = _open_ws(workspace)
        _store.require_job(ws, job_id)
        return cls(ws, job_id)

    # -- reading --------------------------------------------------------------------------------------------------
    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def info(self) -> dict[str, Any]:
        """The job's row (status, progress, pid, times, error, ...) after the orphan check."""
        self._reap()
        return _check_orphan(self.workspace, _store.require_job(self.workspace, self.job_id))

    def status(self) -> str:
        """``queued`` | ``running`` | ``succeeded`` | ``failed`` | ``cancelled``."""
        return str(self.info()["status"])

    @property
    def spec(self) -> JobSpec:
        """The job's :class:`~worldengine_lab.datatypes.job.JobSpec`."""
        return JobSpec.from_json(_store.require_job(self.workspace, self.job_id)["spec_json"])

    @property
    def run_dir(self) -> Path:
        """The job's run folder (checkpoints, ``job.log``)."""
        return Path(_store.require_job(self.workspace, self.job_id)["run_dir"])

    def progress(self) -> dict[str, Any]:
        """``{"status", "step", "total", "message"}``."""
        row = self.info()
        return {k: row[k] for k in ("status", "step", "total", "message")}

    def result(self) -> dict[str, Any] | None:
        """What the kind returned (None until the job succeeded)."""
        return result_of(self.info())

    def metrics(self, wide: bool = False) -> pd.DataFrame:
        """The job's metric points: long (``step``, ``key``, ``value``, ``time``) or, with ``wide``, one row per
        step and one column per key."""
        long = _store.read_metrics(self.workspace, self.job_id)
        if not wide:
            return long
        if not len(long):
            return pd.DataFrame(index=pd.Index([], name="step"))
        return long.pivot(index="step", columns="key", values="value").rename_axis(columns=None)

    def events(self) -> pd.DataFrame:
        """The job's history: ``time``, ``event``, ``step``, ``message``."""
        return _store.read_events(self.workspace, self.job_id)

    def logs(self, tail: int | None = 50) -> str:
        """The last ``tail`` lines of ``job.log`` (all with None); ``""`` before the process wrote any."""
        path = self.run_dir / LOG_FILENAME
        if not path.exists():
            return ""
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines if tail is None else lines[-tail:])

    # -- waiting and stopping -------------------------------------------------------------------------------------
    def wait(self, timeout: float | None = None, poll_s: float = 0.2) -> str:
        """Block until the job finished (and its process on this host exited, at most ``exit_wait_s`` more);
        return its status. Raises JobTimeoutError after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if status in _store.TERMINAL_STATUSES:
                self._wait_exit(EXIT_WAIT_S)
                return status
            if deadline is not None and time.monotonic() >= deadline:
                row = self.info()
                raise JobTimeoutError(
                    f"Job {self.job_id} is still {status} after {timeout} s (step {row['step']} of {row['total']}: "
                    f"{row['message']!r}); wait longer, or cancel it with Job.cancel()")
            time.sleep(poll_s)

    def _wait_exit(self, timeout_s: float) -> bool:
        """Wait for the job's process on this host to exit (it may still be shutting down after reporting)."""
        row = _store.require_job(self.workspace, self.job_id)
        if row["pid"] is None or row["host"] != _store.this_host():
            return True
        if self._proc is not None and self._proc.pid == row["pid"]:
            try:
                self._proc.wait(timeout=timeout_s)  # also reaps it
                self._proc = None
                return True
            except subprocess.TimeoutExpired:
                return False
        return wait_gone(int(row["pid"]), row["pid_started_at"], timeout_s)

    def _wait_stopped(self, row: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Poll until the job is finished in the store or its process is gone (at most ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._reap()
            row = _store.require_job(self.workspace, self.job_id)
            if row["status"] not in _store.ACTIVE_STATUSES:
                return row
            if row["pid"] is not None and not is_alive(int(row["pid"]), row["pid_started_at"]):
                return row
            if time.monotonic() >= deadline:
                return row
            time.sleep(0.05)

    def cancel(self, grace_s: float = 2.5, term_grace_s: float = 1.5) -> str:
        """Stop the job; return its final status (``cancelled`` unless it finished first).

        Raises the cancel flag (and writes ``CANCEL`` in the run folder) so the job stops by itself; after
        ``grace_s`` sends SIGTERM to its process group; after ``term_grace_s`` more, SIGKILL. With the defaults a
        job stops within 5 s. Only detached job processes are signalled: a job on another host, or one running
        inside a notebook kernel (``run_job``), only gets the flag (its runner then interrupts the kind).
        :attr:`last_cancel_s` records how long it took.
        """
        t0 = time.monotonic()
        row = self.info()
        if row["status"] not in _store.ACTIVE_STATUSES:
            return str(row["status"])
        _store.request_cancel(self.workspace, self.job_id)
        try:
            (Path(row["run_dir"]) / CANCEL_FILENAME).touch()
        except OSError as exc:
            logger.debug("job %s: could not write the CANCEL file (%s)", self.job_id, exc)
        if row["status"] == "queued":  # not started yet: its process will find it cancelled and exit
            _store.set_status(self.workspace, self.job_id, "cancelled", only_from=("queued",),
                              note="cancelled before it started", error="cancelled before it started",
                              message="cancelled")
        how = "stopped after the cancel request"
        if (row["host"] == _store.this_host() and row["pid"] is not None
                and runs_job(int(row["pid"]), self.job_id)):
            pid, started = int(row["pid"]), row["pid_started_at"]
            for sig, wait_s in ((None, grace_s), (signal.SIGTERM, term_grace_s), (signal.SIGKILL, 2.0)):
                if sig is not None:
                    if not signal_group(pid, started, sig, self.job_id):  # gone, or not a detached job process
                        break
                    how = f"stopped by {sig.name}"
                if self._wait_exit(wait_s):
                    break
        else:  # another host, or a process that hosts the job in-process: only the flag reaches it
            self._wait_stopped(row, grace_s + term_grace_s)
        row = _store.require_job(self.workspace, self.job_id)
        if row["status"] in _store.ACTIVE_STATUSES and (row["pid"] is None or not is_alive(int(row["pid"]),
                                                                                            row["pid_started_at"])):
            note = f"cancelled: process {row['pid']} {how} without reporting"
            _store.set_status(self.workspace, self.job_id, "cancelled", note=note, error=note, message="cancelled")
        self._reap()
        self.last_cancel_s = time.monotonic() - t0
        status = self.status()
        logger.info("job %s: cancel -> %s in %.2f s", self.job_id, status, self.last_cancel_s)
        return status

    def resume(self) -> "Job":
        """Start a ``failed`` or ``cancelled`` job again under the same id and run folder: the kind continues
        from its last checkpoint, the step counter and metric curves continue, and ``attempt`` grows by one.

        Raises WorkspaceError if the job is still unfinished (cancel it first) or succeeded (launch a new spec).
        """
        row = self.info()
        status = row["status"]
        if status in _store.ACTIVE_STATUSES:
            raise WorkspaceError(f"Job {self.job_id} is {status} (expected failed or cancelled to resume); wait for it "
                                 f"or cancel it first with Job.cancel()")
        if status == "succeeded":
            raise WorkspaceError(f"Job {self.job_id} succeeded already (expected failed or cancelled to resume); "
                                 f"launch a new spec to run it again: dataclasses.replace(job.spec, created_at='')")
        spec = JobSpec.from_json(row["spec_json"])
        if spec.backend == "ray":
            from .ray_backend import is_available, require_ray

            if not is_available():
                require_ray()
        attempt = int(row["attempt"] or 0) + 1
        if not _store.set_status(
                self.workspace, self.job_id, "queued", only_from=("failed", "cancelled"), event="resumed",
                note=f"attempt {attempt}, after step {row['step']}", error=None, finished_at=None, result_json=None,
                cancel_requested=0, pid=None, pid_started_at=None, attempt=attempt, message="queued (resumed)",
                heartbeat_at=utc_now_iso()):
            raise WorkspaceError(f"Job {self.job_id}: its status changed while resuming (now "
                                 f"{_store.require_job(self.workspace, self.job_id)['status']!r}); try again")
        run_dir = Path(row["run_dir"])
        (run_dir / CANCEL_FILENAME).unlink(missing_ok=True)
        self._proc = _spawn(self.workspace, self.job_id, run_dir, spec.num_cpus)
        return self

    # -- display --------------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        row = _store.get_job(self.workspace, self.job_id) or {}
        return (f"Job({self.job_id!r}, kind={row.get('kind')!r}, status={row.get('status')!r}, "
                f"step={row.get('step')}/{row.get('total')})")

    def _repr_html_(self) -> str:
        row = self.info()
        keys = ("job_id", "name", "kind", "status", "step", "total", "message", "backend", "attempt", "pid", "host",
                "created_at", "started_at", "finished_at", "error", "run_dir")
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(row.get(k)))}</td></tr>"
                       for k in keys)
        return f"<table><caption>Job</caption>{body}</table>"
