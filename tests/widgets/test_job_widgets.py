"""JobLauncher and JobMonitor, headless: driven through set_state as the front end would, asserted on traits,
``.selection`` and the store."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from worldengine_lab.jobs import Job, JobSpec, available_kinds, launch, list_jobs, unregister_kind
from worldengine_lab.mining import FailureFilter
from worldengine_lab.store import Workspace, curation
from worldengine_lab.widgets.job_launcher import JobLauncher, list_checkpoints
from worldengine_lab.widgets.job_monitor import JobMonitor

WIDGETS = Path(__file__).resolve().parents[2] / "widgets"


@pytest.fixture(autouse=True)
def registry_as_found() -> Iterator[None]:
    """Launching registers the ``posttrain`` kind; leave the registry as it was found."""
    had = "posttrain" in available_kinds()
    yield
    if not had:
        unregister_kind("posttrain")


@pytest.fixture
def ws(tmp_path) -> Iterator[Workspace]:
    """A workspace with two checkpoint-looking files under runs/ and a saved view; every job still running at the
    end is cancelled (no leftover processes)."""
    w = Workspace.open(tmp_path / "ws")
    for rel in ("runs/base/model.pt", "runs/base/last.pt", "runs/other/model.pt"):
        (w.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (w.root / rel).write_bytes(b"not a real checkpoint")
    curation.save_view(w, "collisions", FailureFilter(failure_types=("collision",)))
    yield w
    for job_id in list_jobs(w, status=["queued", "running"])["job_id"]:
        Job.attach(w, job_id).cancel()
    w.close()


def _wait(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_launcher_choices_and_validation(ws: Workspace) -> None:
    launcher = JobLauncher(ws)
    assert {r["name"] for r in launcher.recipes} >= {"rl_rare_rollouts", "rl_rare_rollouts_bwm", "sft_rare_logs"}
    assert [Path(p).name for p in launcher.checkpoints] == ["model.pt", "model.pt"]  # last.pt is no checkpoint
    assert launcher.checkpoints == list_checkpoints(ws) and launcher.base == launcher.checkpoints[0]
    assert [o["value"] for o in launcher.data_options] == ["latest", "collisions"]
    launcher.set_state({"recipe": "ppo"})
    assert launcher.recipe == "rl_rare_rollouts" and "expected" in launcher.error and "ppo" in launcher.error
    launcher.set_state({"iterations": 0})
    assert launcher.iterations == 4 and "iterations" in launcher.error
    launcher.set_state({"recipe": "rl_rare_rollouts_bwm", "iterations": 2, "finetune": "full", "lr": 1e-3,
                        "failures": "collisions"})
    assert launcher.error == ""
    spec = launcher.spec()
    assert spec.kind == "posttrain" and spec.params["recipe"] == "rl_rare_rollouts_bwm"
    assert spec.params["failures"] == "collisions" and spec.params["base"] == launcher.base
    assert spec.params["config"] == {"iterations": 2, "finetune": "full", "lr": 1e-3}
    launcher.set_state({"base": str(ws.root / "nowhere.pt")})
    launcher.set_state({"request": {"action": "launch", "seq": 1}})
    assert "checkpoint file" in launcher.error and launcher.selection is None and launcher.job_id == ""
    assert launcher.view.children[0] is launcher
    assert (WIDGETS / "job_launcher.js").read_text().count("export default") == 1


def test_launch_from_the_form_and_watch_it_fail_clearly(ws: Workspace) -> None:
    monitor = JobMonitor(ws, polling=False)
    launcher = JobLauncher(ws, monitor=monitor)
    launcher.set_state({"iterations": 1})
    launcher.set_state({"request": {"action": "launch", "seq": 1}})  # the Launch button
    assert launcher.error == "" and launcher.job_id.startswith("job-")
    job = launcher.selection
    assert isinstance(job, Job) and job.job_id == launcher.job_id
    assert monitor.selected_job == job.job_id and monitor.jobs[0]["job_id"] == job.job_id
    assert job.wait(timeout=120) == "failed"  # nothing is mined in this workspace
    monitor.set_state({"request": {"action": "refresh", "seq": 2}})
    assert monitor.detail["status"] == "failed" and "worldengine-lab mine" in monitor.detail["error"]
    assert monitor.selection.job_id == job.job_id
    monitor.close()


def test_monitor_polls_draws_cancels_and_reattaches(ws: Workspace) -> None:
    job = launch(JobSpec("selftest", params={"steps": 400, "step_s": 0.05}, workspace=str(ws.root)))
    monitor = JobMonitor(ws, poll_s=0.2)
    assert monitor.is_polling and monitor.selected_job == job.job_id
    _wait(lambda: monitor.detail.get("status") == "running" and (monitor.detail.get("step") or 0) >= 3,
          what="the poller to show the running job")
    _wait(lambda: "selftest/loss" in monitor.chosen_metrics, what="the metrics")
    assert monitor.metric_keys == ["selftest/loss", "selftest/sum_sq"]
    trace = monitor.figure.data[0]
    assert trace.name == "selftest/loss" and len(trace.x) >= 1
    monitor.set_state({"chosen_metrics": ["selftest/loss", "nope"]})
    assert "nope" in monitor.error and monitor.chosen_metrics == ["selftest/loss"]
    monitor.set_state({"chosen_metrics": ["selftest/sum_sq"]})
    assert [t.name for t in monitor.figure.data] == ["selftest/sum_sq"]

    again = JobMonitor(ws, polling=False)  # a new kernel: everything comes from the store
    assert again.selected_job == job.job_id and again.detail["status"] in ("running", "succeeded")
    again.close()

    monitor.set_state({"request": {"action": "cancel", "seq": 1}})  # the Cancel button
    assert monitor.error == "" and job.status() == "cancelled"
    _wait(lambda: monitor.detail.get("status") == "cancelled", what="the cancelled status")
    monitor.set_state({"request": {"action": "resume", "seq": 2}})
    assert job.status() in ("queued", "running")
    monitor.cancel()
    monitor.set_state({"request": {"action": "explode", "seq": 3}})
    assert "expected 'cancel', 'resume' or 'refresh'" in monitor.error

    monitor.set_state({"polling": False})
    assert not monitor.is_polling
    monitor.set_state({"polling": True})
    assert monitor.is_polling
    monitor.close()
    assert not monitor.is_polling
