"""The diagnostic job kind ``selftest``: counts steps, logs a known curve and checkpoints, with no training.

It exercises everything a real job does (progress, metrics, checkpoints, resume, cancel, sharded work on the
``ray`` backend) in a few seconds, so tests and ``worldengine-lab jobs selftest`` can check the job machinery on
any machine.

Parameters (``JobSpec.params``):

* ``steps`` (int, default 20): steps in all.
* ``step_s`` (float, default 0.05): sleep per step, s.
* ``checkpoint_every`` (int, default 5): steps between checkpoints (``checkpoints/selftest.json``).
* ``fail_at`` (int or None): raise a RuntimeError at this step (to test failure reporting).
* ``num_shards`` (int, default 2): shards of the per-step work given to ``ctx.map_shards``.
* ``ignore_cancel`` (bool, default False): swallow cancel requests and SIGTERM, like a hung job, so that a
  cancel has to end it with SIGKILL (to test that escalation); the shards are then summed in-process.

Each step ``k`` logs ``selftest/loss = 1 / (k + 1)`` and ``selftest/sum_sq = sum of i*i for i in [0, k)``
(computed shard by shard), so a curve is easy to check for gaps and restarts.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Mapping

from ..artifacts import atomic_write_text
from ..errors import WorldEngineLabError
from .context import JobCancelled, JobContext
from .shards import split_shards

__all__ = ["selftest_job", "sum_of_squares", "expected_loss", "CHECKPOINT_NAME"]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "selftest.json"
"""The checkpoint file in ``ctx.checkpoint_dir``: ``{"step": k}``."""


def sum_of_squares(values: list[int]) -> int:
    """``sum(i * i for i in values)`` (the per-shard work; a module-level function, so Ray workers import it)."""
    return int(sum(int(i) * int(i) for i in values))


def expected_loss(step: int) -> float:
    """The ``selftest/loss`` value logged at ``step``: ``1 / (step + 1)``."""
    return 1.0 / (step + 1.0)


def _param(params: Mapping[str, Any], key: str, default: Any, kind: type) -> Any:
    value = params.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and int(value) != value):
        raise WorldEngineLabError(f"selftest params[{key!r}]: expected a {kind.__name__}, received {value!r}")
    return kind(value)


def selftest_job(ctx: JobContext) -> dict[str, Any]:
    """Count ``steps`` steps (see the module docstring); resume from ``checkpoints/selftest.json``."""
    p = ctx.params
    unknown = sorted(set(p) - {"steps", "step_s", "checkpoint_every", "fail_at", "num_shards", "ignore_cancel"})
    if unknown:
        raise WorldEngineLabError(f"selftest params: unknown keys {unknown}; expected steps, step_s, "
                                  f"checkpoint_every, fail_at, num_shards, ignore_cancel")
    ignore_cancel = p.get("ignore_cancel", False)
    if not isinstance(ignore_cancel, bool):
        raise WorldEngineLabError(f"selftest params['ignore_cancel']: expected a bool, received {ignore_cancel!r}")
    steps = _param(p, "steps", 20, int)
    step_s = _param(p, "step_s", 0.05, float)
    every = _param(p, "checkpoint_every", 5, int)
    fail_at = _param(p, "fail_at", None, int)
    num_shards = _param(p, "num_shards", 2, int)
    if steps < 1 or every < 1 or step_s < 0 or num_shards < 1:
        raise WorldEngineLabError(f"selftest params: expected steps >= 1, checkpoint_every >= 1, step_s >= 0, "
                                  f"num_shards >= 1, received {steps}, {every}, {step_s}, {num_shards}")
    ckpt = ctx.checkpoint_dir / CHECKPOINT_NAME
    start = 0
    if ckpt.exists():
        start = int(json.loads(ckpt.read_text())["step"])
        ctx.event("resumed_from_checkpoint", f"continuing after step {start} of {steps}", step=start)
        logger.info("selftest %s: resuming after step %d", ctx.job_id, start)
    ctx.progress(start, steps, f"step {start}/{steps}", force=True)
    warned = False
    for step in range(start + 1, steps + 1):
        try:
            if not ignore_cancel:
                ctx.check_cancelled()
            time.sleep(step_s)
        except JobCancelled:
            if not ignore_cancel:
                raise
            if not warned:
                logger.warning("selftest %s: ignoring the cancel request (params['ignore_cancel'])", ctx.job_id)
                warned = True
        if fail_at is not None and step == fail_at:
            raise RuntimeError(f"selftest: failing at step {step} as asked (params['fail_at'] = {fail_at})")
        shards = split_shards(list(range(step)), num_shards)
        if ignore_cancel:  # ctx.map_shards would honour the cancel request between shards
            parts = [sum_of_squares(s) for s in shards]
        else:
            parts = ctx.map_shards(sum_of_squares, shards, num_cpus_per_shard=0.5)
        ctx.log_metrics(step, {"selftest/loss": expected_loss(step), "selftest/sum_sq": float(sum(parts))})
        ctx.progress(step, steps, f"step {step}/{steps}")
        if step % every == 0 or step == steps:
            atomic_write_text(ckpt, json.dumps({"step": step}))
    return {"steps": steps, "resumed_after_step": start, "checkpoint": str(ckpt), "backend": ctx.backend}
