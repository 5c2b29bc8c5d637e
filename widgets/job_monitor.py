"""JobMonitor: the workspace's jobs, live: status, progress, a curve of chosen metrics, cancel and resume.

Everything shown is read from the workspace store (:func:`~worldengine_lab.jobs.list_jobs`,
:meth:`~worldengine_lab.jobs.Job.metrics`), so a monitor built in a new kernel re-attaches to jobs that kept
running while the old one restarted. The job table and the controls are an anywidget (``job_monitor.js``); the
curve is a plotly ``FigureWidget`` (one line per chosen metric against the step); both sit in one
``ipywidgets.VBox`` (:attr:`JobMonitor.view`), which is what displaying the monitor shows.

Polling: a daemon thread re-reads the store every ``poll_s`` seconds (reads are short SQLite queries on the
thread's own connection; the kernel is never blocked, and updates keep arriving while another cell runs). It stops
when the widget is closed (:meth:`JobMonitor.close`), when ``polling`` is set False, or when the monitor is
garbage-collected. The curve is redrawn only when the selected job's metrics changed.

Every button is one library call: cancel = :meth:`Job.cancel`, resume = :meth:`Job.resume`. Commands from the
front end go through the ``request`` trait (``{"action": "cancel" | "resume" | "refresh", "seq": n}``); errors
of handlers and of the poller show in the widget's error area (``error``).

Examples:
    >>> from worldengine_lab.store import Workspace                 # doctest: +SKIP
    >>> monitor = JobMonitor(Workspace.open("workspace"))           # doctest: +SKIP
    >>> monitor.set_state({"selected_job": monitor.jobs[0]["job_id"]})  # as the front end  # doctest: +SKIP
    >>> monitor.selection.metrics(wide=True).tail()                  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from pathlib import Path
from typing import Any, Mapping, Sequence

import anywidget
import ipywidgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import traitlets

from worldengine_lab.errors import WorldEngineLabError
from worldengine_lab.jobs import Job, list_jobs
from worldengine_lab.store.workspace import Workspace

from ._assets import esm
from ._guard import GuardedView, guarded, report_error

__all__ = ["JobMonitor", "DEFAULT_METRICS", "metric_curves"]

logger = logging.getLogger(__name__)

DEFAULT_METRICS: tuple[str, ...] = ("states/reward_of_selected", "train/loss", "rollout/real_success",
                                    "train/pg", "val/loss", "closed_loop/success_rate_pct")
"""Metrics drawn by default (those the selected job has; else its first three keys)."""

_ROW_KEYS = ("job_id", "name", "kind", "status", "step", "total", "message", "backend", "attempt", "created_at",
             "finished_at", "error")


def metric_curves(metrics: pd.DataFrame, keys: Sequence[str], title: str = "") -> go.Figure:
    """A line per metric key against the step, from a long :meth:`Job.metrics` frame (``step``, ``key``,
    ``value``)."""
    fig = go.Figure()
    for key in keys:
        rows = metrics[metrics["key"] == key] if len(metrics) else metrics
        fig.add_trace(go.Scatter(x=rows["step"].to_numpy(np.float64) if len(rows) else np.zeros(0),
                                 y=rows["value"].to_numpy(np.float64) if len(rows) else np.zeros(0),
                                 mode="lines+markers", name=key))
    fig.update_layout(title=title or None, xaxis_title="step", yaxis_title="value", height=320,
                      margin=dict(l=50, r=20, t=40 if title else 20, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    return value


def _brief(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the detail panel shows of a job's result: its scalar entries and flat dicts of scalars (lists of ids
    and nested records stay in the store: ``Job.result()``)."""
    if result is None:
        return None

    def scalar(v: Any) -> bool:
        return v is None or isinstance(v, (str, int, float, bool))

    out: dict[str, Any] = {}
    for k, v in result.items():
        if scalar(v):
            out[k] = v
        elif isinstance(v, Mapping) and all(scalar(x) for x in v.values()) and len(v) <= 32:
            out[k] = dict(v)
        elif isinstance(v, Mapping) and scalar(v.get("summary")):
            out[k] = v.get("summary")
    return out


class _Poller(threading.Thread):
    """Calls ``monitor._poll()`` every ``interval_s`` until stopped or the monitor is gone."""

    def __init__(self, monitor: "JobMonitor", interval_s: float) -> None:
        super().__init__(name="job-monitor-poll", daemon=True)
        self.ref = weakref.ref(monitor)
        self.interval_s = interval_s
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            monitor = self.ref()
            if monitor is None:
                return
            monitor._poll()
            del monitor


class JobMonitor(GuardedView, anywidget.AnyWidget):
    """Live view of the workspace's jobs.

    Args:
        source: a :class:`~worldengine_lab.store.Workspace` (or its folder) — all its jobs — or a
            :class:`~worldengine_lab.jobs.Job` (its workspace's jobs, that one selected).
        kind: only jobs of this kind (e.g. ``"posttrain"``); None for all.
        limit: at most this many jobs, newest first.
        poll_s: seconds between two reads of the store.
        polling: start polling at once (set the ``polling`` trait to start or stop later).
        metrics: the metric keys drawn first (default: :data:`DEFAULT_METRICS` the job has).
    """

    _esm = esm("job_monitor.js")
    _css = Path(__file__).parent / "job_monitor.css"

    jobs = traitlets.List(traitlets.Dict()).tag(sync=True)
    """One record per job, newest first: id, name, kind, status, step, total, message, backend, attempt, times,
    error."""
    selected_job = traitlets.Unicode("").tag(sync=True)
    detail = traitlets.Dict().tag(sync=True)
    """The selected job's record plus ``run_dir`` and ``result`` (what the kind returned, once it succeeded)."""
    metric_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Every metric key of the selected job."""
    chosen_metrics = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """The keys drawn on the curve."""
    polling = traitlets.Bool(True).tag(sync=True)
    poll_s = traitlets.Float(2.0).tag(sync=True)
    request = traitlets.Dict().tag(sync=True)
    """A command from the front end: ``{"action": "cancel" | "resume" | "refresh", "seq": n}``."""
    status = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, source: Workspace | Job | str | os.PathLike[str], kind: str | None = None, limit: int = 50,
                 poll_s: float = 2.0, polling: bool = True, metrics: Sequence[str] | None = None) -> None:
        self._depth = 0
        self._in_message = False
        self.output = ipywidgets.Output()
        job = source if isinstance(source, Job) else None
        ws = job.workspace if job is not None else source
        if isinstance(ws, (str, os.PathLike)):
            ws = Workspace.open(ws, create=False)
        if not isinstance(ws, Workspace):
            raise WorldEngineLabError(f"JobMonitor(source): expected a Workspace, its folder or a Job, received "
                                      f"{type(source).__name__}")
        if not (isinstance(poll_s, (int, float)) and poll_s > 0):
            raise WorldEngineLabError(f"JobMonitor(poll_s): expected seconds > 0, received {poll_s!r}")
        self.workspace = ws
        self.kind = kind
        self.limit = int(limit)
        self._preferred = tuple(metrics) if metrics is not None else DEFAULT_METRICS
        self._lock = threading.RLock()
        self._curve_key: tuple[Any, ...] | None = None
        self._poller: _Poller | None = None
        self._closed = False
        super().__init__(poll_s=float(poll_s), polling=bool(polling))
        self.figure = go.FigureWidget(metric_curves(pd.DataFrame({"step": [], "key": [], "value": []}), []))
        self.view = ipywidgets.VBox([self, self.figure, self.output])
        self.observe(self._on_selected, names=["selected_job"])
        self.observe(self._on_chosen, names=["chosen_metrics"])
        self.observe(self._on_request, names=["request"])
        self.observe(self._on_polling, names=["polling", "poll_s"])
        self.refresh()
        if job is not None:
            self.select(job.job_id)
        elif self.jobs:
            self.select(self.jobs[0]["job_id"])
        if self.polling:
            self._start_poller()

    # -- display ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop polling and close the widget (and its curve)."""
        self._closed = True
        self._stop_poller()
        self.figure.close()
        super().close()

    # -- public state -------------------------------------------------------------------------------------
    @property
    def selection(self) -> Job | None:
        """The selected :class:`~worldengine_lab.jobs.Job` (None when no job is selected)."""
        return Job.attach(self.workspace, self.selected_job) if self.selected_job else None

    @property
    def is_polling(self) -> bool:
        """Whether the poller thread runs."""
        return self._poller is not None and self._poller.is_alive()

    def select(self, job_id: str) -> None:
        """Select a job (as clicking its row does)."""
        self.selected_job = job_id

    # -- library calls behind the buttons ---------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the job list, the selected job and its curve from the store."""
        with self._lock:
            table = list_jobs(self.workspace, kind=self.kind, limit=self.limit)
            rows = [{k: _plain(v) for k, v in rec.items() if k in _ROW_KEYS} for rec in table.to_dict("records")]
            if rows != self.jobs:
                self.jobs = rows
            self._update_detail()

    def cancel(self) -> str:
        """Cancel the selected job (:meth:`Job.cancel`); return its final status."""
        job = self._require_selection("cancel")
        self.status = f"cancelling {job.job_id} ..."
        final = job.cancel()
        self.status = f"{job.job_id}: {final}"
        self.refresh()
        return final

    def resume(self) -> Job:
        """Resume the selected failed or cancelled job from its last checkpoint (:meth:`Job.resume`)."""
        job = self._require_selection("resume").resume()
        self.status = f"resumed {job.job_id}"
        self.refresh()
        return job

    # -- handlers -------------------------------------------------------------------------------------------
    @guarded
    def _on_selected(self, change: Mapping[str, Any]) -> None:
        with self._lock:
            self._curve_key = None
            self.chosen_metrics = []
            self._update_detail()

    @guarded
    def _on_chosen(self, change: Mapping[str, Any]) -> None:
        unknown = [k for k in change["new"] if k not in self.metric_keys]
        if unknown:
            self.chosen_metrics = [k for k in change["new"] if k in self.metric_keys]
            raise WorldEngineLabError(f"JobMonitor.chosen_metrics: the job has no metric(s) {unknown}; expected some "
                                      f"of {list(self.metric_keys)}")
        with self._lock:
            self._curve_key = None
            self._update_curve()

    @guarded
    def _on_request(self, change: Mapping[str, Any]) -> None:
        req = dict(change["new"] or {})
        if not req:
            return
        action = req.get("action")
        if action == "cancel":
            self.cancel()
        elif action == "resume":
            self.resume()
        elif action == "refresh":
            self.refresh()
        else:
            raise WorldEngineLabError(f"JobMonitor.request: action: expected 'cancel', 'resume' or 'refresh', "
                                      f"received {action!r}")

    @guarded
    def _on_polling(self, change: Mapping[str, Any]) -> None:
        if change["name"] == "poll_s" and not change["new"] > 0:
            self.poll_s = change["old"]
            raise WorldEngineLabError(f"JobMonitor.poll_s: expected seconds > 0, received {change['new']!r}")
        self._stop_poller()
        if self.polling and not self._closed:
            self._start_poller()

    # -- polling --------------------------------------------------------------------------------------------
    def _start_poller(self) -> None:
        self._poller = _Poller(self, self.poll_s)
        self._poller.start()

    def _stop_poller(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.stop_event.set()
            if poller is not threading.current_thread():
                poller.join(timeout=5.0)

    def _poll(self) -> None:
        """One poll (the poller thread's call): refresh, with errors shown in the error area."""
        if self._closed:
            return
        try:
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - a busy store or a deleted workspace: show it, keep polling
            report_error(self, exc, "poll")

    # -- reading --------------------------------------------------------------------------------------------
    def _update_detail(self) -> None:
        if not self.selected_job:
            if self.detail:
                self.detail = {}
            return
        job = Job(self.workspace, self.selected_job)
        row = job.info()
        detail = {k: _plain(row.get(k)) for k in _ROW_KEYS}
        detail["run_dir"] = str(row.get("run_dir") or "")
        detail["result"] = _brief(job.result())
        if detail != self.detail:
            self.detail = detail
        self._update_curve(job)

    def _update_curve(self, job: Job | None = None) -> None:
        """Redraw the curve when the selected job's metrics (or the chosen keys) changed."""
        if not self.selected_job:
            return
        job = job or Job(self.workspace, self.selected_job)
        metrics = job.metrics()
        keys = sorted(set(metrics["key"])) if len(metrics) else []
        if keys != self.metric_keys:
            self.metric_keys = keys
        if not self.chosen_metrics and keys:
            chosen = [k for k in self._preferred if k in keys] or keys[:3]
            self.chosen_metrics = chosen  # its handler draws
            return
        stamp = (self.selected_job, tuple(self.chosen_metrics), len(metrics),
                 float(metrics["step"].max()) if len(metrics) else None,
                 str(metrics["time"].max()) if len(metrics) and "time" in metrics else None)
        if stamp == self._curve_key:
            return
        self._curve_key = stamp
        fig = metric_curves(metrics, list(self.chosen_metrics), title=f"{self.selected_job}")
        same = [t.name for t in self.figure.data] == [t.name for t in fig.data]
        if not same:
            self.figure.data = ()
            self.figure.add_traces(list(fig.data))
        with self.figure.batch_update():
            if same:
                for old, new in zip(self.figure.data, fig.data):
                    old.x, old.y = new.x, new.y
            self.figure.layout.title = fig.layout.title

    def _require_selection(self, what: str) -> Job:
        job = self.selection
        if job is None:
            raise WorldEngineLabError(f"JobMonitor.{what}: expected a selected job, received none; click a job in "
                                      f"the list (or call .select(job_id)) first")
        return job
