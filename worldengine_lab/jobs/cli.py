"""``worldengine-lab jobs list|show|cancel|resume|logs|selftest``: the jobs of a workspace from a shell.

Each action is one library call (:func:`~worldengine_lab.jobs.list_jobs`, :meth:`~worldengine_lab.jobs.Job.attach`
and the :class:`~worldengine_lab.jobs.Job` methods, :func:`~worldengine_lab.jobs.launch`); the main CLI adds
this parser with :func:`add_jobs_parser` and calls :func:`run_jobs_command`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["add_jobs_parser", "run_jobs_command"]


def _workspace_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", type=Path, default=None,
                   help="workspace folder (default: $WORLDENGINE_LAB_WORKSPACE, else ./workspace)")


def add_jobs_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``jobs`` command and its actions to the main parser's subparsers ``sub``."""
    jobs = sub.add_parser("jobs", help="list, inspect, cancel and resume background jobs",
                          description="Background jobs (detached processes or Ray drivers) recorded in the "
                                      "workspace: status, progress, logs, cancel, resume.")
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    ls = jsub.add_parser("list", help="list the workspace's jobs, newest first",
                         description="One line per job: id, kind, status, progress, message. Jobs whose process "
                                     "is gone are marked failed first.")
    ls.add_argument("--status", nargs="*", default=None,
                    choices=["queued", "running", "succeeded", "failed", "cancelled"], help="only these statuses")
    ls.add_argument("--kind", default=None, help="only this kind")
    ls.add_argument("--limit", type=int, default=50, help="at most this many jobs (default 50)")
    ls.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    _workspace_arg(ls)

    show = jsub.add_parser("show", help="one job: its row, events and last metric values",
                           description="Print a job's status, progress, process, times, error, result, events "
                                       "and the last value of each metric.")
    show.add_argument("job_id", help="job id (see `jobs list`)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    _workspace_arg(show)

    cancel = jsub.add_parser("cancel", help="stop a job (flag, then SIGTERM, then SIGKILL)",
                             description="Ask the job to stop; a job that does not stop is signalled. Prints the "
                                         "final status and how long stopping took.")
    cancel.add_argument("job_id", help="job id")
    _workspace_arg(cancel)

    resume = jsub.add_parser("resume", help="restart a failed or cancelled job from its last checkpoint",
                             description="Start the job again under the same id and run folder; it continues from "
                                         "its last checkpoint.")
    resume.add_argument("job_id", help="job id")
    resume.add_argument("--wait", action="store_true", help="wait for it to finish and print the final status")
    _workspace_arg(resume)

    logs = jsub.add_parser("logs", help="print the end of a job's log",
                           description="Print the last lines of the job's job.log (its stdout and stderr).")
    logs.add_argument("job_id", help="job id")
    logs.add_argument("--tail", type=int, default=50, help="lines (default 50; 0 for all)")
    _workspace_arg(logs)

    st = jsub.add_parser("selftest", help="launch the diagnostic job and watch it finish",
                         description="Launch the diagnostic 'selftest' kind (counts steps with checkpoints, no "
                                     "training) as a detached job and wait for it: checks that jobs run here.")
    st.add_argument("--steps", type=int, default=20, help="steps (default 20)")
    st.add_argument("--step-s", type=float, default=0.05, help="seconds per step (default 0.05)")
    st.add_argument("--backend", choices=["local", "ray"], default="local", help="where it runs (default local)")
    st.add_argument("--ray-address", default=None, help="Ray cluster to attach to (default: a private local one)")
    st.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default 300)")
    _workspace_arg(st)
    return jobs


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value.item() if hasattr(value, "item") else value


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no jobs")
        return
    print(f"{'job_id':<30} {'kind':<18} {'status':<10} {'progress':>11}  message")
    for r in rows:
        step, total = r.get("step"), r.get("total")
        prog = "" if step is None else (f"{int(step)}/{int(total)}" if total is not None else f"{int(step)}")
        print(f"{r['job_id']:<30} {r['kind']:<18} {r['status']:<10} {prog:>11}  {r.get('message') or ''}")
        if r["status"] == "failed" and r.get("error"):
            print(f"{'':<30} error: {r['error']}")


def run_jobs_command(args: argparse.Namespace) -> int:
    """Run the ``jobs`` action in ``args``; print its result; return the exit status."""
    from ..artifacts import resolve_workspace
    from ..store import Workspace
    from . import Job, JobSpec, launch, list_jobs
    from .store import TERMINAL_STATUSES

    ws = Workspace.open(resolve_workspace(args.workspace))
    action = args.jobs_command
    if action == "list":
        frame = list_jobs(ws, status=args.status or None, kind=args.kind, limit=args.limit)
        rows = [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict("records")]
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
        else:
            _print_table(rows)
        return 0
    if action == "selftest":
        spec = JobSpec("selftest", params={"steps": args.steps, "step_s": args.step_s}, workspace=str(ws.root),
                       backend=args.backend, ray_address=args.ray_address)
        job = launch(spec)
        print(f"launched {job.job_id} (log {job.run_dir / 'job.log'})")
        status = job.wait(timeout=args.timeout)
        t = job.metrics(wide=True)
        print(f"{job.job_id}: {status}, {len(t)} metric steps, events: "
              f"{', '.join(job.events()['event'].tolist())}")
        return 0 if status == "succeeded" else 1
    job = Job.attach(ws, args.job_id)
    if action == "show":
        row = {k: _plain(v) for k, v in job.info().items()}
        row["result"] = json.loads(row.pop("result_json")) if row.get("result_json") else None
        row["spec"] = json.loads(row.pop("spec_json"))
        metrics = job.metrics()
        last = metrics.groupby("key").tail(1) if len(metrics) else metrics
        row["last_metrics"] = {r["key"]: {"step": int(r["step"]), "value": _plain(r["value"])}
                               for r in last.to_dict("records")}
        row["events"] = [{k: _plain(v) for k, v in e.items()} for e in job.events().to_dict("records")]
        if args.json:
            print(json.dumps(row, indent=2, default=str))
            return 0
        for key in ("job_id", "name", "kind", "status", "step", "total", "message", "backend", "attempt", "pid",
                    "host", "run_dir", "created_at", "started_at", "heartbeat_at", "finished_at", "error"):
            print(f"{key:<14} {row.get(key)}")
        print(f"{'result':<14} {json.dumps(row['result'], default=str)}")
        for k, v in row["last_metrics"].items():
            print(f"  {k:<40} step {v['step']:>7}  {v['value']}")
        print("events:")
        for e in row["events"]:
            print(f"  {e['time']}  {e['event']:<24} {e['message'] or ''}")
        return 0
    if action == "cancel":
        t0 = time.monotonic()
        status = job.cancel()
        print(f"{job.job_id}: {status} ({time.monotonic() - t0:.2f} s)")
        return 0 if status in TERMINAL_STATUSES else 1
    if action == "resume":
        job.resume()
        print(f"resumed {job.job_id} (attempt {job.info()['attempt']})")
        if args.wait:
            status = job.wait()
            print(f"{job.job_id}: {status}")
            return 0 if status == "succeeded" else 1
        return 0
    if action == "logs":
        print(job.logs(tail=None if args.tail == 0 else args.tail))
        return 0
    raise AssertionError(f"unhandled jobs action {action}")  # argparse guarantees a known action
