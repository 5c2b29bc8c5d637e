"""Jobs: a :class:`~worldengine_lab.datatypes.job.JobSpec` run as a detached local process or on Ray, reporting
status, progress, metrics and events into the workspace store; cancel, resume and re-attach from anywhere.

``store`` (the jobs tables), ``registry`` (kinds by name), ``context`` (what a kind's function receives),
``runner`` (the job process's side), ``local`` (launch a detached process, the :class:`Job` handle, orphans),
``ray_backend`` (Ray cluster and ``map_shards``; ray is imported only when used), ``shards``, ``kinds``
(pretrain, mine, evaluate), ``selftest`` (the diagnostic kind) and ``cli`` (``worldengine-lab jobs``).

Names load on first use (module ``__getattr__``), so importing this package (e.g. to build the CLI parser)
stays cheap.

Examples:
    >>> from worldengine_lab.jobs import JobSpec, launch  # doctest: +SKIP
    >>> job = launch(JobSpec("selftest", params={"steps": 10}, workspace="workspace"))  # doctest: +SKIP
    >>> job.wait(60), job.metrics(wide=True).tail(2)  # doctest: +SKIP
"""
import importlib

# module -> public names it provides
_LAZY: dict[str, tuple[str, ...]] = {
    "worldengine_lab.datatypes.job": ("JobSpec", "JOB_KINDS", "JOB_BACKENDS", "DIAGNOSTIC_KIND"),
    "worldengine_lab.jobs.context": ("JobContext", "JobCancelled"),
    "worldengine_lab.jobs.local": ("Job", "JobTimeoutError", "launch", "list_jobs", "detect_orphans"),
    "worldengine_lab.jobs.registry": ("register_kind", "unregister_kind", "resolve_kind", "available_kinds",
                                      "PENDING_KINDS"),
    "worldengine_lab.jobs.runner": ("run_job",),
    "worldengine_lab.jobs.shards": ("split_shards", "map_local"),
    "worldengine_lab.jobs.ray_backend": ("map_shards",),
    "worldengine_lab.jobs.store": ("JOBS_DDL", "JOB_STATUSES", "ensure_job_tables"),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "JobSpec",
    "JOB_KINDS",
    "JOB_BACKENDS",
    "DIAGNOSTIC_KIND",
    "Job",
    "JobContext",
    "JobCancelled",
    "JobTimeoutError",
    "launch",
    "list_jobs",
    "detect_orphans",
    "run_job",
    "register_kind",
    "unregister_kind",
    "resolve_kind",
    "available_kinds",
    "PENDING_KINDS",
    "split_shards",
    "map_local",
    "map_shards",
    "JOBS_DDL",
    "JOB_STATUSES",
    "ensure_job_tables",
]


def __getattr__(name: str) -> object:
    """Load a public name (see ``_LAZY``) on first use."""
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
