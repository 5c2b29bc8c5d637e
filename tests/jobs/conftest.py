"""Fixtures for the jobs tests: a fresh workspace whose job processes are all stopped at teardown, and one local
Ray cluster per session (on 127.0.0.1) for the Ray tests."""
from __future__ import annotations

import os
import signal
from typing import Iterator

import pytest

from worldengine_lab.jobs._process import is_alive, runs_job, wait_gone
from worldengine_lab.jobs.store import list_job_rows
from worldengine_lab.store import Workspace


def kill_job_processes(ws: Workspace) -> list[int]:
    """SIGKILL the process group of every detached job process of ``ws`` that still runs; return their pids.

    Jobs run in-process (``run_job``) record this process's pid; they are skipped."""
    killed = []
    rows = list_job_rows(ws)
    for row in rows.to_dict("records"):
        pid, started = row["pid"], row["pid_started_at"]
        if pid is None or pid != pid:  # None or NaN
            continue
        pid, started = int(pid), (None if started != started else started)
        if pid == os.getpid() or not runs_job(pid, row["job_id"]):
            continue
        if is_alive(pid, started) and not wait_gone(pid, started, 3.0):  # a finished job may still be exiting
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            wait_gone(pid, started, 5.0)
            killed.append(pid)
    return killed


@pytest.fixture
def ws(tmp_path) -> Iterator[Workspace]:
    """A fresh workspace; every job process started in it is killed at teardown (no leftovers)."""
    w = Workspace.open(tmp_path / "ws")
    yield w
    leftovers = kill_job_processes(w)
    w.close()
    assert not leftovers, f"job processes still running after the test: {leftovers}"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[dict]:
    """One private Ray cluster on 127.0.0.1 with 2 CPUs for the whole session (started on first use)."""
    from worldengine_lab.jobs.ray_backend import connect, disconnect, is_available

    if not is_available():
        pytest.skip("ray is not installed")

    info = connect(None, num_cpus=2)
    yield info
    disconnect()
