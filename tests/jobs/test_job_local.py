"""Detached local jobs: progress watched from the store, kill + resume, cancel, orphans, attach from elsewhere.

Timings measured here are recorded as test properties (``record_property``), not asserted tightly.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime

import pytest

from worldengine_lab.artifacts import utc_now_iso
from worldengine_lab.jobs import Job, JobSpec, launch, list_jobs
from worldengine_lab.jobs._process import wait_gone
from worldengine_lab.jobs.selftest import expected_loss
from worldengine_lab.store import Workspace


def selftest(ws: Workspace, **params) -> JobSpec:
    return JobSpec("selftest", params=params, workspace=str(ws.root))


def wait_for(job: Job, predicate, timeout_s: float = 20.0, poll_s: float = 0.05) -> dict:
    """Poll the job's row (as a widget would) until ``predicate(row)``; return the row."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = job.info()
        if predicate(row):
            return row
        assert time.monotonic() < deadline, f"timed out waiting; last row {row}\nlog:\n{job.logs()}"
        time.sleep(poll_s)


def test_progress_is_visible_in_the_store_while_it_runs(ws: Workspace) -> None:
    job = launch(selftest(ws, steps=25, step_s=0.05))
    seen = []
    row = wait_for(job, lambda r: seen.append((r["status"], r["step"])) or r["status"] in ("succeeded", "failed"))
    assert row["status"] == "succeeded", job.logs()
    running_steps = [s for st, s in seen if st == "running" and s is not None]
    assert running_steps and running_steps == sorted(running_steps)  # watched it advance, never backwards
    assert 0 < len(set(running_steps))
    assert row["step"] == row["total"] == 25 and row["pid"] and row["attempt"] == 1
    wide = job.metrics(wide=True)
    assert wide.index.tolist() == list(range(1, 26))
    assert wide["selftest/sum_sq"].tolist() == [float(sum(i * i for i in range(k))) for k in range(1, 26)]
    assert job.result()["resumed_after_step"] == 0
    assert [e for e in job.events()["event"]] == ["launched", "started", "succeeded"]
    assert "running kind 'selftest'" in job.logs(tail=20)


def test_sigkill_then_resume_continues_the_step_counter_and_curve(ws: Workspace, record_property) -> None:
    steps = 40
    job = launch(selftest(ws, steps=steps, step_s=0.04, checkpoint_every=5))
    row = wait_for(job, lambda r: (r["step"] or 0) >= 12)
    pid = int(row["pid"])
    os.killpg(pid, signal.SIGKILL)
    kill_time = utc_now_iso()
    assert wait_gone(pid, row["pid_started_at"], 5.0)

    # orphan detection: the process is gone and never reported
    lost = job.info()
    assert lost["status"] == "failed"
    assert lost["error"].startswith(f"process {pid} exited without reporting (killed?)")
    assert "orphaned" in job.events()["event"].tolist()
    checkpoint = json.loads((job.run_dir / "checkpoints" / "selftest.json").read_text())["step"]
    logged = job.metrics()
    last_logged = int(logged.loc[logged["key"] == "selftest/loss", "step"].max())
    # metrics are committed before each checkpoint; the progress row is rate-limited and may lag both
    assert checkpoint % 5 == 0 and 10 <= checkpoint <= last_logged

    t0 = time.monotonic()
    job.resume()
    assert job.wait(timeout=30) == "succeeded", job.logs()
    record_property("resume_to_done_s", round(time.monotonic() - t0, 2))
    done = job.info()
    assert done["attempt"] == 2 and done["step"] == steps and done["pid"] != pid
    assert job.result()["resumed_after_step"] == checkpoint
    events = job.events()
    resumed = events[events["event"] == "resumed_from_checkpoint"]
    assert resumed["step"].tolist() == [checkpoint]

    curve = job.metrics()
    loss = curve[curve["key"] == "selftest/loss"]
    assert loss["step"].tolist() == list(range(1, steps + 1))  # one point per step: no gap, no duplicate
    assert loss["value"].tolist() == pytest.approx([expected_loss(k) for k in range(1, steps + 1)])
    kill = datetime.fromisoformat(kill_time)
    times = [datetime.fromisoformat(t) for t in loss["time"]]
    assert all(t < kill for t in times[:checkpoint])  # the first attempt's points up to the checkpoint are kept
    assert all(t > kill for t in times[checkpoint:])  # the rest came from the resumed attempt: no restart at 1


def test_cancel_stops_a_cooperative_job_quickly(ws: Workspace, record_property) -> None:
    job = launch(selftest(ws, steps=10_000, step_s=0.05))
    wait_for(job, lambda r: (r["step"] or 0) >= 2)
    assert job.cancel() == "cancelled"
    record_property("cancel_cooperative_s", round(job.last_cancel_s, 2))
    assert job.last_cancel_s < 10.0
    row = job.info()
    assert row["finished_at"] and row["cancel_requested"] == 1
    assert "cancel_requested" in job.events()["event"].tolist()


def test_cancel_interrupts_a_job_blocked_in_a_long_step(ws: Workspace, record_property) -> None:
    """One step sleeps 60 s and never checks the flag: the runner interrupts it (SIGTERM to its main thread)."""
    job = launch(selftest(ws, steps=2, step_s=60.0))
    wait_for(job, lambda r: r["status"] == "running")
    time.sleep(0.3)
    assert job.cancel() == "cancelled"
    record_property("cancel_blocked_s", round(job.last_cancel_s, 2))
    assert job.last_cancel_s < 10.0
    assert "cancelled" in (job.info()["error"] or "")


def test_cancel_kills_a_job_that_ignores_it(ws: Workspace, record_property) -> None:
    """A hung job (it swallows the flag and SIGTERM) is stopped with SIGKILL and recorded as cancelled."""
    job = launch(selftest(ws, steps=10_000, step_s=0.05, ignore_cancel=True))
    wait_for(job, lambda r: (r["step"] or 0) >= 2)
    assert job.cancel(grace_s=1.0, term_grace_s=1.0) == "cancelled"
    record_property("cancel_sigkill_s", round(job.last_cancel_s, 2))
    assert job.last_cancel_s < 10.0
    assert "stopped by SIGKILL without reporting" in job.info()["error"]
    assert "ignoring the cancel request" in job.logs()


def test_attach_from_other_processes_and_survive_the_launcher(ws: Workspace) -> None:
    """A process launches a job and exits at once; the job keeps running. This process and a third one attach
    by id and see the same job."""
    launcher = textwrap.dedent(f"""
        from worldengine_lab.jobs import JobSpec, launch
        job = launch(JobSpec("selftest", params={{"steps": 15, "step_s": 0.05}}, workspace={str(ws.root)!r}))
        print(job.job_id)
    """)
    out = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip().splitlines()[-1]
    job = Job.attach(ws, job_id)
    assert job.wait(timeout=30) == "succeeded", job.logs()

    reader = textwrap.dedent(f"""
        import json
        from worldengine_lab.jobs import Job
        job = Job.attach({str(ws.root)!r}, {job_id!r})
        print(json.dumps({{"status": job.status(), "steps": len(job.metrics(wide=True)), "pid": job.info()["pid"]}}))
    """)
    out = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"status": "succeeded", "steps": 15, "pid": job.info()["pid"]}
    listed = list_jobs(ws)
    assert listed["job_id"].tolist() == [job_id] and listed["status"].tolist() == ["succeeded"]
