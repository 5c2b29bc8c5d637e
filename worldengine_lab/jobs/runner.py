"""The job process's side: claim the job in the store, run its kind's function, report, and finish cleanly.

:func:`run_job` is what ``python -m worldengine_lab.jobs run`` calls in the detached process (and what a test or
a notebook may call in-process to debug a kind). It

1. claims the row (``queued`` → ``running``, with this process's pid, start time and host; a job someone
   cancelled meanwhile is not started);
2. starts a monitor thread that stamps ``heartbeat_at`` every ``heartbeat_s`` and polls the cancel flag (store
   column and ``CANCEL`` file in the run folder) every ``poll_s``;
3. on ``backend="ray"`` connects to the Ray cluster (or starts a private one on 127.0.0.1);
4. calls the kind's function with a :class:`~worldengine_lab.jobs.JobContext`;
5. records ``succeeded`` (with the returned result), ``failed`` (with the error) or ``cancelled``.

Stopping: SIGTERM (and SIGINT) raise :class:`~worldengine_lab.jobs.JobCancelled` in the kind's function. When
the monitor sees a cancel request it tells the function through ``ctx.cancel_requested``, and if the function
has not stopped ``cooperative_grace_s`` later it sends SIGTERM to the main thread, so a kind that never checks
(or sleeps in a long call) still stops at its next Python instruction. This needs ``run_job`` to run in the main
thread (as in the job process); elsewhere only the cooperative check applies.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any, Mapping

from ..artifacts import utc_now_iso
from ..datatypes.job import JobSpec
from ..errors import WorldEngineLabError
from ..store.workspace import Workspace
from . import store as _store
from ._process import process_start_time
from .context import CANCEL_FILENAME, JobCancelled, JobContext
from .registry import resolve_kind

__all__ = ["run_job", "run_from_store", "EXIT_CODES", "HEARTBEAT_S"]

logger = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
"""Seconds between two heartbeats of a running job."""

EXIT_CODES: dict[str, int] = {"succeeded": 0, "failed": 1, "cancelled": 3, "not_started": 4}
"""Exit status of the job process per outcome."""


class _Monitor(threading.Thread):
    """Heartbeat and cancel polling beside the kind's function (a daemon thread of the job process)."""

    def __init__(self, ctx: JobContext, heartbeat_s: float, poll_s: float, cooperative_grace_s: float,
                 can_interrupt: bool) -> None:
        super().__init__(name=f"job-monitor-{ctx.job_id}", daemon=True)
        self.ctx = ctx
        self.heartbeat_s = heartbeat_s
        self.poll_s = poll_s
        self.grace_s = cooperative_grace_s
        self.can_interrupt = can_interrupt
        self.stopped = threading.Event()
        self.in_kind = False
        self.interrupted = False
        self._cancel_seen_at: float | None = None

    def _cancel_requested(self, beat: bool) -> bool:
        ws, job_id = self.ctx.workspace, self.ctx.job_id
        if (self.ctx.run_dir / CANCEL_FILENAME).exists():
            return True
        return _store.heartbeat(ws, job_id) if beat else _store.is_cancel_requested(ws, job_id)

    def run(self) -> None:
        next_beat = time.monotonic() + self.heartbeat_s
        while not self.stopped.wait(self.poll_s):
            now = time.monotonic()
            beat = now >= next_beat
            if beat:
                next_beat = now + self.heartbeat_s
            try:
                requested = self._cancel_requested(beat)
            except Exception as exc:  # noqa: BLE001 - a busy store must not kill the job; try again next poll
                logger.warning("job %s: heartbeat failed (%s); retrying", self.ctx.job_id, exc)
                continue
            if not requested:
                continue
            if self._cancel_seen_at is None:
                self._cancel_seen_at = now
                self.ctx.request_cancel()
                logger.info("job %s: cancel requested", self.ctx.job_id)
            if (self.can_interrupt and self.in_kind and not self.interrupted
                    and now - self._cancel_seen_at >= self.grace_s):
                self.interrupted = True
                logger.info("job %s: still running %.1f s after the cancel request; interrupting it",
                            self.ctx.job_id, now - self._cancel_seen_at)
                signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)  # wakes a blocking sleep too


def _jsonable(value: Any) -> Any:
    """``value`` as JSON data: numpy values as numbers and lists, other objects as ``str``, non-finite floats as
    None."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    def default(o: Any) -> Any:
        return o.tolist() if callable(getattr(o, "tolist", None)) else str(o)

    return clean(json.loads(json.dumps(value, default=default)))


def _error_text(exc: BaseException, limit: int = 2000) -> str:
    """``Type: message`` plus the innermost frames, cut to ``limit`` characters."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}" + (f" (at {where})" if where else "")
    return text[:limit]


def _claim(ws: Workspace, job_id: str) -> bool:
    pid = os.getpid()
    now = utc_now_iso()
    return _store.set_status(
        ws, job_id, "running", only_from=("queued",), event="started",
        note=f"pid {pid} on {_store.this_host()}", message="running", pid=pid,
        pid_started_at=process_start_time(pid), host=_store.this_host(), started_at=now, heartbeat_at=now)


def run_job(spec: JobSpec, job_id: str | None = None, *, run_dir: str | os.PathLike[str] | None = None,
            heartbeat_s: float = HEARTBEAT_S, poll_s: float = 0.25, cooperative_grace_s: float = 0.5) -> dict[str, Any]:
    """Run job ``job_id`` (default ``spec.job_id``) in this process and record the outcome; return its row.

    A job that has no row yet is inserted first (so a kind can be debugged in a notebook with
    ``run_job(spec)``); the run folder is then ``run_dir`` or ``<workspace>/runs/<job_id>``.

    Args:
        heartbeat_s: seconds between heartbeats; poll_s: seconds between cancel-flag polls;
        cooperative_grace_s: seconds a kind has to stop by itself after a cancel request before it is
            interrupted.
    Returns:
        The job's ``jobs`` row after the run (``status`` is ``succeeded``, ``failed`` or ``cancelled``; a job
        that was not ``queued`` is returned unchanged and not run).
    """
    job_id = job_id or spec.job_id
    ws = Workspace.open(spec.workspace)
    _store.ensure_job_tables(ws)
    row = _store.get_job(ws, job_id)
    if row is None:
        if job_id != spec.job_id:
            raise WorldEngineLabError(f"run_job: no job {job_id!r} in {ws.root} and it is not spec.job_id "
                                      f"({spec.job_id!r}); launch the spec or pass job_id=spec.job_id")
        from .registry import entry_point

        folder = Path(run_dir) if run_dir is not None else ws.root / "runs" / job_id
        row = _store.insert_job(ws, spec, str(folder), entry_point(spec.kind))
        _store.update_job(ws, job_id, attempt=1)
        row = _store.require_job(ws, job_id)
    if not _claim(ws, job_id):
        now = _store.require_job(ws, job_id)
        logger.warning("job %s: not started, its status is %r (expected 'queued')", job_id, now["status"])
        return now
    folder = Path(row["run_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    ctx = JobContext(ws, job_id, spec, folder, attempt=max(int(row["attempt"] or 1), 1))
    in_main = threading.current_thread() is threading.main_thread()
    monitor = _Monitor(ctx, heartbeat_s, poll_s, cooperative_grace_s, can_interrupt=in_main)
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        ctx.request_cancel()
        if monitor.in_kind and not getattr(on_signal, "raised", False):
            on_signal.raised = True  # type: ignore[attr-defined]
            raise JobCancelled(f"job {job_id} received {signal.Signals(signum).name}")

    if in_main:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    status, error, result = "failed", None, None
    ray_connected = False
    monitor.start()
    try:
        try:
            monitor.in_kind = True
            fn = resolve_kind(spec.kind, row.get("entry_point") or "")
            if spec.backend == "ray":
                from .ray_backend import connect

                info = connect(spec.ray_address, num_cpus=spec.num_cpus, num_gpus=spec.resources.get("num_gpus"))
                ray_connected = bool(info["started"])  # a connection that existed before stays open
            logger.info("job %s: running kind %r (attempt %d, backend %s)", job_id, spec.kind, ctx.attempt,
                        spec.backend)
            result = fn(ctx)
            monitor.in_kind = False
            status = "succeeded"
        except (JobCancelled, KeyboardInterrupt) as exc:
            monitor.in_kind = False
            status, error = "cancelled", f"cancelled: {exc}" if str(exc) else "cancelled"
            logger.info("job %s: %s", job_id, error)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any error of the kind is the job's failure
            monitor.in_kind = False
            status, error = "failed", _error_text(exc)
            logger.error("job %s failed:\n%s", job_id, "".join(traceback.format_exception(exc)))
        finally:
            monitor.in_kind = False
            if ray_connected:
                from .ray_backend import disconnect

                disconnect()
    finally:
        monitor.stopped.set()
        monitor.join(timeout=5.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    try:
        ctx.flush()
    except Exception as exc:  # noqa: BLE001 - the final status below matters more than the last progress line
        logger.warning("job %s: could not write the last progress (%s)", job_id, exc)
    values: dict[str, Any] = {"error": error, "heartbeat_at": utc_now_iso(), "message": status}
    if status == "succeeded":
        values["result_json"] = json.dumps(_jsonable(result if result is not None else {}))
    if not _store.set_status(ws, job_id, status, only_from=("running",), note=error or "", **values):
        logger.warning("job %s: finished as %s but its row was changed meanwhile to %r", job_id, status,
                       _store.require_job(ws, job_id)["status"])
    final = _store.require_job(ws, job_id)
    ws.close()  # this call's connections (main and monitor threads); the object reconnects if used again
    return final


def run_from_store(workspace: str | os.PathLike[str], job_id: str) -> int:
    """Run the job whose row is in ``workspace`` (the detached process's entry); return the exit status
    (:data:`EXIT_CODES`)."""
    ws = Workspace.open(workspace, create=False)
    row = _store.require_job(ws, job_id)
    spec = JobSpec.from_json(row["spec_json"])
    if Path(spec.workspace) != ws.root:
        # the workspace folder was moved or opened through another path: report to the one we were given
        import dataclasses

        spec = dataclasses.replace(spec, workspace=str(ws.root))
    final = run_job(spec, job_id)
    if final["status"] == "running" or final["status"] == "queued":
        return EXIT_CODES["not_started"]
    return EXIT_CODES.get(final["status"], 1)


def result_of(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parsed ``result_json`` of a job row (None until it succeeded)."""
    text = row.get("result_json")
    return json.loads(text) if text else None
