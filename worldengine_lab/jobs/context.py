"""JobContext: what a job's function receives to report progress and metrics, keep checkpoints and stop on request.

A kind's function is ``fn(ctx: JobContext) -> dict | None``. It reads its parameters from ``ctx.params``,
keeps resumable state under ``ctx.checkpoint_dir`` (the same folder on every attempt), calls
``ctx.progress(step, total, message)`` and ``ctx.log_metrics(step, {...})`` as it goes, and calls
``ctx.check_cancelled()`` at safe points (it raises :class:`JobCancelled` once a cancel was requested). A
function that never checks is still stopped: the runner interrupts it shortly after the request.

Examples:
    >>> import tempfile
    >>> from worldengine_lab.datatypes.job import JobSpec
    >>> from worldengine_lab.jobs.store import insert_job
    >>> from worldengine_lab.store import Workspace
    >>> ws = Workspace.open(tempfile.mkdtemp())
    >>> spec = JobSpec("selftest", workspace=str(ws.root))
    >>> _ = insert_job(ws, spec, run_dir=str(ws.root / "runs" / spec.job_id))
    >>> ctx = JobContext(ws, spec.job_id, spec, ws.root / "runs" / spec.job_id)
    >>> ctx.progress(3, 10, "step 3/10")
    >>> ctx.log_metrics(3, {"selftest/loss": 0.25})
    >>> ctx.map_shards(sum, [[1, 2], [3]])
    [3, 3]
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

from ..datatypes.job import JobSpec
from ..store.workspace import Workspace
from . import store as _store
from .shards import ShardCallback, map_local

__all__ = ["JobContext", "JobCancelled", "CANCEL_FILENAME", "CHECKPOINT_DIRNAME"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

CANCEL_FILENAME = "CANCEL"
"""A file of this name in the run folder asks the job to stop (as the store's cancel flag does)."""
CHECKPOINT_DIRNAME = "checkpoints"
"""Sub-folder of the run folder for the kind's resumable state."""


class JobCancelled(BaseException):
    """The job was asked to stop (cancel flag, CANCEL file, SIGTERM).

    It derives from BaseException, as KeyboardInterrupt does, so that ``except Exception`` blocks in library
    code let it through and the job unwinds (``finally`` blocks run) to the runner, which records ``cancelled``.
    """


class JobContext:
    """Handle given to a kind's function while it runs as job ``job_id``.

    Attributes:
        workspace: the job's :class:`~worldengine_lab.store.Workspace`.
        job_id: the job's id; spec: its :class:`~worldengine_lab.datatypes.job.JobSpec`.
        run_dir: the job's run folder (``job.log`` and the kind's outputs; the same on every attempt).
        checkpoint_dir: ``run_dir/checkpoints``, created; keep resumable state here.
        attempt: 1 for the first run, 2 after one resume, ...
    """

    def __init__(self, workspace: Workspace, job_id: str, spec: JobSpec, run_dir: str | Path, attempt: int = 1,
                 progress_interval_s: float = 0.25) -> None:
        """Make a context (the runner does this; kinds only use one).

        Args:
            progress_interval_s: shortest time between two progress writes to the store, s (a final step and
                ``force=True`` always write).
        """
        self.workspace = workspace
        self.job_id = job_id
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / CHECKPOINT_DIRNAME
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.attempt = attempt
        self.progress_interval_s = progress_interval_s
        self._cancel = threading.Event()
        self._last_progress = -float("inf")
        self._pending: tuple[int, int | None, str] | None = None
        self._lock = threading.Lock()

    # -- what the kind reads ----------------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """``spec.params`` (kind-specific JSON parameters)."""
        return self.spec.params

    @property
    def seed(self) -> int:
        """``spec.seed``."""
        return self.spec.seed

    @property
    def backend(self) -> str:
        """``"local"`` or ``"ray"``."""
        return self.spec.backend

    # -- reporting --------------------------------------------------------------------------------------------
    def progress(self, step: int, total: int | None = None, message: str = "", force: bool = False) -> None:
        """Record progress: ``step`` of ``total`` steps done (None = unknown) and a short message.

        Writes are rate-limited to one per ``progress_interval_s``; the latest value is flushed by the runner.
        """
        with self._lock:
            self._pending = (int(step), None if total is None else int(total), str(message)[:500])
            now = time.monotonic()
            final = total is not None and step >= total
            if not (force or final or now - self._last_progress >= self.progress_interval_s):
                return
            self._last_progress = now
            pending, self._pending = self._pending, None
        self._write_progress(*pending)

    def flush(self) -> None:
        """Write a progress update held back by the rate limit."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._write_progress(*pending)

    def _write_progress(self, step: int, total: int | None, message: str) -> None:
        _store.update_job(self.workspace, self.job_id, step=step, total=total, message=message)

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        """Append one point per key at ``step`` to the job's curves (namespaced keys: ``losses/policy``).

        Logging a step again (after a resume replays it) replaces the point, so curves never duplicate steps.
        """
        _store.log_metrics(self.workspace, self.job_id, step, values)

    def event(self, event: str, message: str = "", step: int | None = None) -> None:
        """Append an event to the job's history (e.g. ``"resumed_from_checkpoint"``)."""
        _store.add_event(self.workspace, self.job_id, event, message, step)

    # -- stopping ---------------------------------------------------------------------------------------------
    @property
    def cancel_requested(self) -> bool:
        """Whether someone asked the job to stop (set by the runner's monitor thread or a signal)."""
        return self._cancel.is_set()

    def request_cancel(self) -> None:
        """Mark the job as asked to stop (the runner calls this; kinds need not)."""
        self._cancel.set()

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if a cancel was requested; call it at safe points (after a checkpoint)."""
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    # -- sharded work -----------------------------------------------------------------------------------------
    def map_shards(self, fn: Callable[[T], R], shards: Sequence[T], on_result: ShardCallback | None = None,
                   num_cpus_per_shard: float = 1.0) -> list[R]:
        """``[fn(s) for s in shards]``: in this process (backend ``local``) or spread over the Ray cluster
        (backend ``ray``, see :func:`~worldengine_lab.jobs.ray_backend.map_shards`). Results come in shard
        order; ``on_result(i, r)`` runs here as each finishes; a cancel request stops it between shards."""
        if self.backend == "ray":
            from .ray_backend import map_shards

            return map_shards(fn, shards, num_cpus_per_shard=num_cpus_per_shard, on_result=on_result,
                              check_stop=self.check_cancelled)
        return map_local(fn, shards, on_result=on_result, check_stop=self.check_cancelled)

    def __repr__(self) -> str:
        return f"JobContext({self.job_id!r}, kind={self.spec.kind!r}, attempt={self.attempt})"
