"""Process identity on this machine: a pid plus its start time, so a reused pid is never mistaken for a job.

A job process is the leader of its own session and process group (it was started with
``start_new_session=True``), so signals go to the whole group: whatever the job started (data loader workers,
a private Ray cluster) stops with it.
"""
from __future__ import annotations

import logging
import os
import signal
import time

import psutil

__all__ = ["process_start_time", "is_alive", "runs_job", "signal_group", "wait_gone", "START_TIME_TOLERANCE_S",
           "JOB_MODULE"]

logger = logging.getLogger(__name__)

START_TIME_TOLERANCE_S = 0.05
"""Largest difference between a recorded and a measured process start time that still means "same process", s."""

JOB_MODULE = "worldengine_lab.jobs"
"""The module a detached job process runs (``python -m worldengine_lab.jobs run ... --job-id J``)."""


def process_start_time(pid: int) -> float | None:
    """Start time of process ``pid`` in s since the epoch, or None if there is no such process."""
    try:
        return float(psutil.Process(int(pid)).create_time())
    except (psutil.Error, ValueError, OSError):
        return None


def is_alive(pid: int | None, started_at: float | None) -> bool:
    """Whether process ``pid`` runs (not a zombie) and, when ``started_at`` is given, is the one that started
    then (a different start time means the pid was reused)."""
    if pid is None or int(pid) <= 0:
        return False
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started_at is not None and abs(proc.create_time() - float(started_at)) > START_TIME_TOLERANCE_S:
            return False
        return True
    except (psutil.Error, ValueError, OSError):
        return False


def runs_job(pid: int, job_id: str) -> bool:
    """Whether process ``pid`` is a detached job process for ``job_id`` (judged by its command line), as
    opposed to, e.g., a notebook kernel that ran a job in-process with ``run_job``."""
    try:
        cmd = psutil.Process(int(pid)).cmdline()
    except (psutil.Error, ValueError, OSError):
        return False
    return JOB_MODULE in cmd and job_id in cmd


def signal_group(pid: int, started_at: float | None, sig: signal.Signals, job_id: str) -> bool:
    """Send ``sig`` to the process group led by ``pid`` (or to ``pid`` alone if it leads none), after checking
    that ``pid`` is still the recorded process and a detached process of job ``job_id``; return whether a
    signal was sent. Processes that merely host a job (a kernel calling ``run_job``) are never signalled."""
    if not is_alive(pid, started_at) or not runs_job(pid, job_id):
        return False
    try:
        if os.getpgid(int(pid)) == int(pid):
            os.killpg(int(pid), sig)
        else:
            os.kill(int(pid), sig)
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        logger.warning("cannot signal process %s (%s)", pid, exc)
        return False
    logger.debug("sent %s to process group %s", sig.name, pid)
    return True


def wait_gone(pid: int, started_at: float | None, timeout_s: float, poll_s: float = 0.05) -> bool:
    """Wait up to ``timeout_s`` for the process to exit (or turn zombie); return whether it is gone."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not is_alive(pid, started_at):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
