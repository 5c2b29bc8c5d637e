"""Several processes writing one workspace at once: every write lands and no 'database is locked' escapes."""
from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading
import time

import pytest

from worldengine_lab.errors import WorkspaceError
from worldengine_lab.store import SCHEMA_VERSION, RetryPolicy, Workspace, retry_on_busy

NUM_WORKERS = 3
TAGS_PER_PROCESS = 300


def _tag_worker(root: str, worker: str, barrier) -> None:
    """Write TAGS_PER_PROCESS tag rows, one transaction each, starting together with the others."""
    ws = Workspace.open(root, create=False)
    barrier.wait(timeout=120)
    for k in range(TAGS_PER_PROCESS):
        ws.tag(f"sc{k % 10:03d}", f"{worker}-{k}")
    ws.close()


def _open_worker(root: str, barrier) -> None:
    barrier.wait(timeout=120)
    ws = Workspace.open(root)
    assert ws.schema_version == SCHEMA_VERSION
    ws.close()


def test_processes_write_tags_at_once(tmp_path, make_row):
    ws = Workspace.open(tmp_path)
    ws.add_scenarios([make_row(i) for i in range(10)])
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(NUM_WORKERS + 1)
    procs = [ctx.Process(target=_tag_worker, args=(str(tmp_path), f"w{i}", barrier)) for i in range(NUM_WORKERS)]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=120)
        for k in range(TAGS_PER_PROCESS):
            ws.tag(f"sc{k % 10:03d}", f"main-{k}")
    finally:
        for p in procs:
            p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * NUM_WORKERS
    tags = ws.query("SELECT tag FROM scenario_tags")["tag"]
    expected = {f"{w}-{k}" for w in ["main"] + [f"w{i}" for i in range(NUM_WORKERS)] for k in range(TAGS_PER_PROCESS)}
    assert len(tags) == len(expected) and set(tags) == expected
    assert ws.connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ws.close()


def _tag_with_inherited(ws: Workspace, worker: str) -> None:
    for k in range(50):
        ws.tag("sc000", f"{worker}-{k}")


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_reconnects_instead_of_sharing_the_parents_connection(tmp_path, make_row):
    ws = Workspace.open(tmp_path)
    ws.add_scenarios([make_row(0)])
    parent_conn = ws.connection()
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_tag_with_inherited, args=(ws, f"f{i}")) for i in range(2)]
    for p in procs:
        p.start()
    _tag_with_inherited(ws, "parent")
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert ws.connection() is parent_conn
    assert ws.query("SELECT COUNT(*) AS n FROM scenario_tags")["n"][0] == 150
    ws.close()


def test_processes_opening_a_fresh_workspace_migrate_once(tmp_path):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(NUM_WORKERS)
    root = tmp_path / "fresh"
    procs = [ctx.Process(target=_open_worker, args=(str(root), barrier)) for _ in range(NUM_WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * NUM_WORKERS
    ws = Workspace.open(root, create=False)
    assert ws.migrations()["version"].tolist() == list(range(1, SCHEMA_VERSION + 1))
    ws.close()


def test_retry_on_busy_backs_off_then_succeeds_or_gives_up():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "ok"

    fast = RetryPolicy(max_attempts=5, base_delay_s=0.001, max_delay_s=0.01)
    assert retry_on_busy(flaky, policy=fast) == "ok" and len(calls) == 3

    def always_busy():
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(WorkspaceError, match="stayed locked"):
        retry_on_busy(always_busy, policy=fast)

    def other_error():
        raise sqlite3.OperationalError("no such table: x")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_on_busy(other_error, policy=fast)


def test_a_writer_waits_for_another_connections_lock(tmp_path, make_row):
    ws = Workspace.open(tmp_path)
    ws.add_scenarios([make_row(0)])
    holder = sqlite3.connect(tmp_path / "workspace.sqlite", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    t = time.monotonic()
    assert ws.tag("sc000", "after-the-lock") == 1
    assert time.monotonic() - t >= 0.4
    release.join()
    holder.close()
    ws.close()
