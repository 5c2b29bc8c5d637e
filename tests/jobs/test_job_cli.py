"""``worldengine-lab jobs``: --help everywhere; selftest, list, show, logs, cancel and resume on real jobs."""
from __future__ import annotations

import json
import time

import pytest

from worldengine_lab.cli import main
from worldengine_lab.jobs import Job, JobSpec, launch
from worldengine_lab.store import Workspace


@pytest.mark.parametrize("argv", [["jobs"], ["jobs", "list"], ["jobs", "show"], ["jobs", "cancel"],
                                  ["jobs", "resume"], ["jobs", "logs"], ["jobs", "selftest"]], ids=" ".join)
def test_help_on_every_jobs_action(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0 and "usage: worldengine-lab jobs" in capsys.readouterr().out


def test_selftest_list_show_logs(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    w = ["--workspace", str(ws.root)]
    assert main(["jobs", "selftest", "--steps", "4", "--step-s", "0", *w]) == 0
    out = capsys.readouterr().out
    assert "succeeded, 4 metric steps" in out
    job_id = out.split()[1]
    assert main(["jobs", "list", "--json", *w]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["job_id"], r["status"], r["step"]) for r in rows] == [(job_id, "succeeded", 4)]
    assert main(["jobs", "list", *w]) == 0
    assert job_id in capsys.readouterr().out
    assert main(["jobs", "show", job_id, "--json", *w]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["last_metrics"]["selftest/loss"] == {"step": 4, "value": 0.2}
    assert shown["spec"]["kind"] == "selftest" and shown["result"]["steps"] == 4
    assert main(["jobs", "logs", job_id, "--tail", "5", *w]) == 0
    assert "selftest" in capsys.readouterr().out
    assert main(["jobs", "show", "job-nope", *w]) == 2
    assert "No job 'job-nope'" in capsys.readouterr().err


def test_cancel_and_resume_from_the_command_line(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    w = ["--workspace", str(ws.root)]
    job = launch(JobSpec("selftest", params={"steps": 12, "step_s": 0.05, "checkpoint_every": 2},
                         workspace=str(ws.root)))
    while (job.info()["step"] or 0) < 3:
        time.sleep(0.05)
    assert main(["jobs", "cancel", job.job_id, *w]) == 0
    assert f"{job.job_id}: cancelled" in capsys.readouterr().out
    assert main(["jobs", "resume", job.job_id, *w]) == 0
    assert "attempt 2" in capsys.readouterr().out
    resumed = Job.attach(ws, job.job_id)
    assert resumed.wait(timeout=30) == "succeeded"
    assert resumed.result()["resumed_after_step"] >= 2
    assert main(["jobs", "resume", job.job_id, *w]) == 2  # nothing to resume after success
    assert "succeeded already" in capsys.readouterr().err
