"""The workspace store under crashes and contention.

* A writer (curation notes and decisions, and saved variants) is killed with SIGKILL at random points
  ``WORLDENGINE_LAB_STORE_KILLS`` times (default 60; 100 with ``WORLDENGINE_LAB_RELIABILITY_HEAVY=1``): every record it reported committed is present,
  ``PRAGMA integrity_check`` is ok, and every stored variant's file exists with the recorded sha256 (no partial
  variant).
* The test process plus 3 job processes write 1,000 curation records each at once
  (``WORLDENGINE_LAB_STORE_RECORDS``): all present, no "database is locked" reaches a caller.
  (``tests/store/test_store_concurrency.py`` covers tags and migrations with 300 rows per process; this one
  is the curation API at the issue's volume.)
"""
from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path

import pytest

from _fuzz import record
from _workers import write_records, write_variants_forever
from worldengine_lab.artifacts import sha256_file
from worldengine_lab.store import Workspace
from worldengine_lab.store.curation import decisions, notes

KILLS = int(os.environ.get("WORLDENGINE_LAB_STORE_KILLS", "100" if os.environ.get("WORLDENGINE_LAB_RELIABILITY_HEAVY")
                           else "60"))
RECORDS = int(os.environ.get("WORLDENGINE_LAB_STORE_RECORDS", "1000"))
JOBS = 3


def _ctx() -> mp.context.BaseContext:
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["worldengine_lab.store", "worldengine_lab.variants", "_workers"])
    return ctx


def _committed(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = path.read_text().split("\n")
    return [line for line in lines[:-1] if line]  # the last line may be cut by the kill


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_writers_killed_at_random_points_lose_nothing_committed(tmp_path: Path, record_property) -> None:
    root = tmp_path / "ws"
    Workspace.open(root).close()
    ctx = _ctx()
    rng = random.Random(0)
    log_records, log_variants = tmp_path / "records.log", tmp_path / "variants.log"
    t0 = time.monotonic()
    for attempt in range(KILLS):
        if attempt % 2 == 0:
            log = log_records
            p = ctx.Process(target=write_records, args=(str(root), f"k{attempt}", 10**6, None, str(log)))
        else:
            log = log_variants
            p = ctx.Process(target=write_variants_forever, args=(str(root), str(log), attempt * 10**6))
        before = len(_committed(log))
        p.start()
        deadline = time.monotonic() + 60
        while len(_committed(log)) <= before and p.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)  # the writer is writing: it has committed at least one record
        time.sleep(rng.uniform(0.0, 0.05))  # then a random point: mid-transaction, mid-file, between the two
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
        assert p.exitcode == -signal.SIGKILL, f"attempt {attempt}: the writer ended by itself ({p.exitcode})"
    seconds = time.monotonic() - t0

    ws = Workspace.open(root)
    try:
        assert ws.connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rec = _committed(log_records)
        have_notes = set(notes(ws)["scenario_id"])
        have_decisions = set(decisions(ws, latest=False)["subject_id"])
        lost = [r for r in rec if r not in have_notes or r not in have_decisions]
        assert not lost, f"{len(lost)} committed records missing, e.g. {lost[:5]}"
        var = _committed(log_variants)
        rows = ws.query("SELECT variant_id, scenario_path, scenario_sha256 FROM variants")
        missing = sorted(set(var) - set(rows["variant_id"]))
        assert not missing, f"{len(missing)} committed variants missing, e.g. {missing[:3]}"
        partial = [v for v, rel, digest in rows.itertuples(index=False)
                   if not (ws.root / rel).is_file() or sha256_file(ws.root / rel) != digest]
        assert not partial, f"variants whose file is missing or differs from its hash: {partial[:3]}"
        figures = {"kills": KILLS, "records_committed": len(rec), "variants_committed": len(var),
                   "variant_rows": len(rows), "records_lost": 0, "partial_variants": 0, "integrity_check": "ok",
                   "seconds": round(seconds, 1)}
    finally:
        ws.close()
    assert figures["records_committed"] > KILLS // 4 and figures["variants_committed"] > KILLS // 4
    record("store_kills", figures)
    record_property("figures", figures)


def test_three_jobs_and_the_kernel_write_curation_records_at_once(tmp_path: Path, record_property) -> None:
    root = tmp_path / "ws"
    ws = Workspace.open(root)
    ctx = _ctx()
    barrier = ctx.Barrier(JOBS + 1)
    procs = [ctx.Process(target=write_records, args=(str(root), f"job{i}", RECORDS, barrier)) for i in range(JOBS)]
    for p in procs:
        p.start()
    t0 = time.monotonic()
    try:
        write_records(str(root), "kernel", RECORDS, barrier)  # raises if a lock error reached this caller
    finally:
        for p in procs:
            p.join(300)
    seconds = time.monotonic() - t0
    assert [p.exitcode for p in procs] == [0] * JOBS  # a lock error in a job exits non-zero
    got = notes(ws)
    writers = ["kernel"] + [f"job{i}" for i in range(JOBS)]
    expected = {f"{w}-{k}" for w in writers for k in range(RECORDS)}
    assert len(got) == len(expected) and set(got["scenario_id"]) == expected
    assert set(decisions(ws)["subject_id"]) == expected
    assert ws.connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ws.close()
    figures = {"writers": JOBS + 1, "records_per_writer": RECORDS, "transactions": 2 * RECORDS * (JOBS + 1),
               "records_lost": 0, "lock_errors": 0, "seconds": round(seconds, 1),
               "transactions_per_s": round(2 * RECORDS * (JOBS + 1) / seconds)}
    record("store_concurrency", figures)
    record_property("figures", figures)
