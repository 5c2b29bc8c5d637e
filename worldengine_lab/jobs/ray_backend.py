"""Ray: run a JobSpec against a Ray cluster, and spread scenario shards over Ray workers.

A ``backend="ray"`` job runs in the same detached process as a local job (so it outlives the notebook kernel
and keeps the same status, heartbeat, cancel and resume), and that process is the Ray *driver*: it attaches to
``spec.ray_address`` or, when that is None, starts a private single-node cluster on 127.0.0.1 with
``spec.resources["num_cpus"]`` CPUs, which stops with the job. The kind's sharded work
(``ctx.map_shards``, e.g. evaluation shards of scenario ids) runs as Ray tasks; their results come back to the
driver, which writes them to the store. On a multi-node cluster the workspace must be on a file system that
every node mounts at the same path.

Ray is optional (``pip install "ray[default]"``, the ``ray`` extra) and imported only here, on first use. Before
importing it this module sets ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (keep the node on the loopback address,
127.0.0.1) and ``RAY_USAGE_STATS_ENABLED=0`` (no usage statistics) unless they are set already.

Examples:
    >>> from worldengine_lab.jobs.ray_backend import map_shards  # doctest: +SKIP
    >>> map_shards(sum, [[1, 2], [3, 4]], num_cpus=2)  # doctest: +SKIP
    [3, 7]
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from ..errors import BackendUnavailableError, MissingDependencyError, WorldEngineLabError
from .shards import ShardCallback, StopCheck

if TYPE_CHECKING:
    from ..datatypes.job import JobSpec
    from .local import Job

__all__ = ["require_ray", "is_available", "connect", "disconnect", "map_shards", "node_addresses", "launch",
           "RAY_ENV_DEFAULTS"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

RAY_ENV_DEFAULTS: dict[str, str] = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray reads it at import: single node on 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",
}
"""Environment variables set (when unset) before ``import ray``."""

LOCAL_START_ATTEMPTS = 2
"""Attempts to start a private local cluster (Ray gives its daemons 30 s; a busy machine can miss that)."""

_lock = threading.Lock()
_owned = False  # whether this process started (and so must stop) the Ray connection


def require_ray() -> ModuleType:
    """Import and return ``ray`` (setting :data:`RAY_ENV_DEFAULTS` first); raise MissingDependencyError if it is
    not installed."""
    if "ray" not in sys.modules:
        for key, value in RAY_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
    elif os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "0":
        logger.warning("ray was imported before worldengine_lab could set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0; a "
                       "local cluster may bind a non-loopback address. Set it before importing ray.")
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(
            f"backend 'ray' needs the ray package, which is not installed ({exc}); install it with "
            f"pip install \"ray[default]\" (or pip install -e \".[ray]\"), or use backend='local'") from exc
    return ray


def is_available() -> bool:
    """Whether ray can be imported here (without importing it)."""
    import importlib.util

    return "ray" in sys.modules or importlib.util.find_spec("ray") is not None


def connect(address: str | None = None, num_cpus: float | None = None, num_gpus: float | None = None) -> dict[str, Any]:
    """Connect this process to Ray: attach to ``address``, or (None) start a private local cluster on 127.0.0.1
    with ``num_cpus`` CPUs (default: all) and no dashboard. A connection that already exists is reused.

    Returns:
        ``{"address": gcs address, "nodes": [node ip, ...], "started": whether this call started it}``.
    Raises:
        MissingDependencyError without ray; BackendUnavailableError if the cluster cannot be reached.
    """
    global _owned
    ray = require_ray()
    with _lock:
        started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if address is None:
                kwargs["address"] = "local"  # never attach to a stale cluster left by `ray start`
                if num_cpus is not None:
                    kwargs["num_cpus"] = max(1, int(round(num_cpus)))
                if num_gpus:
                    kwargs["num_gpus"] = int(num_gpus)
            else:
                kwargs["address"] = address
                kwargs.pop("include_dashboard")
            attempts = 1 if address is not None else LOCAL_START_ATTEMPTS
            for attempt in range(1, attempts + 1):
                try:
                    _init_keeping_sigterm(ray, kwargs)
                    break
                except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError, ...
                    _shutdown_quietly(ray)  # stop what a failed start left behind
                    if attempt < attempts:
                        logger.warning("ray: starting a local cluster failed (%s); trying again", exc)
                        continue
                    where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
                    raise BackendUnavailableError(
                        f"Could not start or reach {where} after {attempts} attempt(s) ({type(exc).__name__}: {exc}); "
                        f"expected the address of a running head ('host:port', e.g. from `ray status`) or a machine "
                        f"with CPU time to spare for Ray's daemons (an overloaded machine delays them past Ray's "
                        f"30-s start-up limit); check the address, retry when the machine is less busy, or use "
                        f"backend='local'") from exc
            started = _owned = True
        info = {"address": ray.get_runtime_context().gcs_address, "nodes": node_addresses(), "started": started}
    how = "reusing the connection to" if not started else ("attached to" if address else "started a local cluster at")
    logger.info("ray: %s %s (nodes %s)", how, info["address"], info["nodes"])
    return info


def _init_keeping_sigterm(ray: ModuleType, kwargs: dict[str, Any]) -> None:
    """``ray.init(**kwargs)``, then put back the SIGTERM handler it replaces with ``sys.exit`` (the job runner's
    handler turns SIGTERM into a recorded cancellation; a notebook keeps its own)."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    try:
        ray.init(**kwargs)
    finally:
        if in_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _shutdown_quietly(ray: ModuleType) -> None:
    try:
        ray.shutdown()
    except Exception as exc:  # noqa: BLE001 - cleaning up after a failed start is best effort
        logger.debug("ray.shutdown after a failed start: %s", exc)


def disconnect() -> None:
    """Shut down the Ray connection if :func:`connect` made it (a private local cluster stops with it)."""
    global _owned
    if "ray" not in sys.modules:
        return
    import ray

    with _lock:
        if _owned and ray.is_initialized():
            ray.shutdown()
        _owned = False


def node_addresses() -> list[str]:
    """IP addresses of the cluster's live nodes (``127.0.0.1`` for a local cluster)."""
    ray = require_ray()
    return [str(n.get("NodeManagerAddress")) for n in ray.nodes() if n.get("Alive", True)]


def map_shards(fn: Callable[[T], R], shards: Sequence[T], *, num_cpus_per_shard: float = 1.0,
               address: str | None = None, num_cpus: float | None = None, on_result: ShardCallback | None = None,
               check_stop: StopCheck | None = None, poll_s: float = 0.5, max_retries: int = 1) -> list[R]:
    """``[fn(s) for s in shards]`` as Ray tasks; results in shard order.

    Connects first if needed (:func:`connect` with ``address`` / ``num_cpus``). ``fn`` must be importable by
    the workers (a module-level function of an installed package) and each shard and result picklable.
    ``on_result(i, r)`` runs in this process as shard ``i`` finishes (write results to the store there).
    ``check_stop()`` runs every ``poll_s`` seconds; if it raises, the remaining tasks are cancelled and the
    exception propagates.

    Raises:
        WorldEngineLabError naming the shard whose task failed (with the worker's error).
    """
    ray = require_ray()
    if not ray.is_initialized():
        connect(address, num_cpus=num_cpus)
    if not shards:
        return []
    remote = ray.remote(num_cpus=num_cpus_per_shard, max_retries=max_retries)(fn)
    refs = [remote.remote(s) for s in shards]
    index = {ref: i for i, ref in enumerate(refs)}
    results: dict[int, R] = {}
    pending = list(refs)
    try:
        while pending:
            if check_stop is not None:
                check_stop()
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=poll_s, fetch_local=True)
            for ref in ready:
                i = index[ref]
                try:
                    results[i] = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - Ray wraps worker errors in RayTaskError
                    raise WorldEngineLabError(
                        f"map_shards: shard {i} of {len(shards)} failed on a Ray worker "
                        f"({type(exc).__name__}: {str(exc).strip()[:1500]}); fix the error above, or run the "
                        f"shard locally with fn(shards[{i}]) to debug it") from exc
                if on_result is not None:
                    on_result(i, results[i])
    except BaseException:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception as exc:  # noqa: BLE001 - best effort: the task may have finished meanwhile
                logger.debug("ray.cancel failed: %s", exc)
        raise
    return [results[i] for i in range(len(refs))]


def launch(spec: "JobSpec") -> "Job":
    """Launch ``spec`` (``backend="ray"``) as a detached driver process; see :func:`worldengine_lab.jobs.launch`.

    Raises MissingDependencyError here, in the launching process, when ray is not installed.
    """
    if spec.backend != "ray":
        raise WorldEngineLabError(f"ray_backend.launch: expected a JobSpec with backend='ray', received "
                                  f"{spec.backend!r}; use worldengine_lab.jobs.launch for any backend")
    if not is_available():
        require_ray()  # raises the install hint
    from .local import launch as _launch

    return _launch(spec)
