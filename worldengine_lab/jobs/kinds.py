"""The built-in job kinds of the loop, each a thin wrapper over one library call.

Parameters come from ``JobSpec.params``; the job's ``seed`` seeds the call. Unknown parameter keys are an error.

``pretrain`` → :func:`worldengine_lab.training.imitation.pretrain` in the job's run folder (which is its
training run folder: ``config.json``, ``samples.pt``, ``metrics.jsonl``, ``last.pt``, ``model.pt``). Resuming
continues from ``last.pt``. Params: ``split`` (default ``"pretrain"``), ``limit`` (first N scenarios),
``config`` (overrides of :class:`~worldengine_lab.training.imitation.ImitationConfig` fields; ``seed``
defaults to the job's).

``mine`` → :func:`worldengine_lab.mining.pipeline.mine`. Params: ``planner`` (a ``load_planner`` spec or a
checkpoint path), ``split``, ``modes``, ``agents`` (``log_replay`` | ``reactive``), ``tracking`` (``perfect``
| ``lqr``), ``batch_size``, ``percentile``, ``limit``, ``description``. Mining is one call: a resumed
``mine`` job runs it again (new run ids).

``posttrain`` → :func:`worldengine_lab.training.rl.posttrain` on the data
:func:`worldengine_lab.training.posttrain_data.select_posttrain_data` chooses. Params: ``base`` (the base
checkpoint, required; absolute or relative to the workspace folder), ``recipe`` (a key of
:data:`~worldengine_lab.training.rl.RECIPES`, default ``"rl_rare_rollouts"``), ``failures`` (``"latest"``, an
evaluation run id or a saved view name), ``common_split`` (default ``"mine"``), ``common_limit`` (default 256),
``variants`` (load the failures' variants; default: when the recipe uses them), ``config`` (overrides of
:class:`~worldengine_lab.training.rl.PostTrainConfig` fields; ``sim`` as a dict of
:class:`~worldengine_lab.sim.SimConfig` fields; ``seed`` defaults to the job's). The chosen ids are kept in
``checkpoints/posttrain_data.json`` and the training run folder is ``checkpoints/posttrain``, so a resumed job
trains on the same data and continues from its ``last.pt`` (same step counter and curves). Progress counts
finished iterations; every line of the run's ``metrics.jsonl`` is copied into the job's metrics. The kind is
made available by :func:`register_loop_kinds` (``worldengine-lab train posttrain --background`` and the
``JobLauncher`` widget call it; call it before ``jobs.launch(JobSpec("posttrain", ...))`` elsewhere).

``evaluate`` → :func:`worldengine_lab.mining.evaluate.evaluate_open_loop` /
:func:`~worldengine_lab.mining.evaluate.evaluate_closed_loop` over shards of the split's scenario ids (on the
``ray`` backend each shard runs on a Ray worker), then :func:`worldengine_lab.mining.store.save_eval_run` by
this process. Each finished shard is kept under ``checkpoints/`` so a resumed job evaluates only the rest.
Params: ``planner``, ``split``, ``modes`` (default both), ``agents``, ``tracking``, ``batch_size``,
``limit``, ``num_shards`` (default: 1 per 64 scenarios, at least the job's CPUs), ``description``.

``generate_variants`` → :func:`worldengine_lab.variants.generate.generate_variants`: variants of an evaluation
run's failure cases, checked (valid, expert-solvable, critical for ``base``) and stored with their lineage. Params:
``failures`` (an evaluation run id or ``"latest"``, the default), ``method`` (``"parametric"``, the default,
``"bwm"`` or ``"both"``), ``per_failure`` (default 4), ``limit`` (first N failure cases), ``checkpoint`` (the
behaviour world model for ``bwm`` / ``both``; absolute or relative to the workspace folder; default
``<workspace>/models/bwm/bwm.pt``), ``base`` (a ``load_planner`` spec or checkpoint whose criticality is
measured; default the expert), ``keep_all``, ``solvable_parents_only``, ``batch_size``; the request seed is the
job's. Generation is one call and idempotent (same request, same variant ids, stored once): a resumed job runs it
again. The kind is made available by :func:`register_loop_kinds`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..artifacts import atomic_write_text
from ..errors import WorkspaceError, WorldEngineLabError
from .context import JobContext
from .registry import register_kind
from .shards import split_shards

__all__ = ["pretrain_job", "posttrain_job", "mine_job", "evaluate_job", "evaluate_shard", "generate_variants_job",
           "PARAMS", "POSTTRAIN_ENTRY", "GENERATE_VARIANTS_ENTRY", "register_loop_kinds", "posttrain_config"]

logger = logging.getLogger(__name__)

_EVAL_KEYS = ("planner", "split", "modes", "agents", "tracking", "batch_size", "limit", "description")
PARAMS: dict[str, tuple[str, ...]] = {
    "pretrain": ("split", "limit", "config"),
    "mine": _EVAL_KEYS + ("percentile",),
    "evaluate": _EVAL_KEYS + ("num_shards",),
    "posttrain": ("base", "recipe", "failures", "common_split", "common_limit", "variants", "config"),
    "generate_variants": ("failures", "method", "per_failure", "limit", "checkpoint", "base", "keep_all",
                          "solvable_parents_only", "batch_size"),
}
"""Accepted ``params`` keys per built-in kind."""


def _check_params(kind: str, params: Mapping[str, Any], required: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(params) - set(PARAMS[kind]))
    if unknown:
        raise WorldEngineLabError(f"{kind} job params: unknown keys {unknown}; expected a subset of "
                                  f"{list(PARAMS[kind])}")
    missing = [k for k in required if params.get(k) in (None, "")]
    if missing:
        raise WorldEngineLabError(f"{kind} job params: expected {missing} (e.g. {{'planner': 'expert', 'split': "
                                  f"'mine'}}), received {dict(params)}")


def _ids(ctx: JobContext, split: str, limit: Any) -> list[str]:
    ids = ctx.workspace.scenario_ids(split=split)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise WorldEngineLabError(f"{ctx.spec.kind} job params['limit']: expected an int >= 1, received {limit!r}")
        ids = ids[:limit]
    if not ids:
        raise WorkspaceError(f"{ctx.spec.kind} job: split {split!r} of workspace {ctx.workspace.root} holds no "
                             f"scenarios; run `worldengine-lab demo` or import data and assign splits first")
    return ids


# -- pretrain -----------------------------------------------------------------------------------------------------
class _MetricsFollower(threading.Thread):
    """Copies new lines of a ``metrics.jsonl`` into the job's metrics and progress every ``every_s`` seconds.

    Pre-training logs train lines (``train/*`` keys, ``epoch`` counted from 0) every 10 steps and one line at the
    end of each epoch (validation keys, ``epoch`` counted from 1), which gives the steps per epoch and so the total.
    """

    def __init__(self, ctx: JobContext, path: Path, epochs: int, every_s: float = 1.0) -> None:
        super().__init__(name=f"metrics-follower-{ctx.job_id}", daemon=True)
        self.ctx, self.path, self.epochs, self.every_s = ctx, path, epochs, every_s
        self.offset = 0
        self.step = 0
        self.total: int | None = None
        self.stop_event = threading.Event()
        self._lock = threading.Lock()

    def pump(self) -> None:
        """Copy the whole lines written since the last call (safe to call from any thread)."""
        with self._lock:
            self._pump()

    def _pump(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # only whole lines; a line being written waits for the next pump
        if end == 0:
            return
        self.offset += end
        for line in data[:end].decode("utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            self.step = step = int(rec.get("step", 0))
            values = {k: v for k, v in rec.items() if k not in ("step", "time", "epoch", "iteration")
                      and isinstance(v, (int, float)) and not isinstance(v, bool)}
            if values:
                self.ctx.log_metrics(step, values)
            epoch = rec.get("epoch")
            if not isinstance(epoch, int):
                continue
            if any(k.startswith("train/") for k in rec):
                self.ctx.progress(step, self.total, f"epoch {epoch + 1}/{self.epochs}")
            elif epoch > 0:  # the end-of-epoch line
                self.total = step // epoch * self.epochs
                self.ctx.progress(step, self.total, f"epoch {epoch}/{self.epochs} done", force=True)

    def run(self) -> None:
        while not self.stop_event.wait(self.every_s):
            try:
                self.pump()
            except Exception as exc:  # noqa: BLE001 - metrics copying is best effort while training runs
                logger.warning("job %s: copying %s failed (%s)", self.ctx.job_id, self.path, exc)

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=5.0)
        self.pump()


def _imitation_config(overrides: Any, seed: int) -> Any:
    from ..planners.features import FeatureConfig
    from ..training.imitation import ImitationConfig

    if not isinstance(overrides, dict):
        raise WorldEngineLabError(f"pretrain job params['config']: expected a dict of ImitationConfig fields, "
                                  f"received {type(overrides).__name__}")
    names = {f.name for f in dataclasses.fields(ImitationConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise WorldEngineLabError(f"pretrain job params['config']: unknown ImitationConfig fields {unknown}; "
                                  f"expected a subset of {sorted(names)}")
    values = {"seed": seed, **overrides}
    if "offsets_s" in values:
        values["offsets_s"] = tuple(values["offsets_s"])
    if isinstance(values.get("features"), dict):
        values["features"] = FeatureConfig.from_dict(values["features"])
    return ImitationConfig(**values)


def pretrain_job(ctx: JobContext) -> dict[str, Any]:
    """Imitation pre-training on a split (see the module docstring); returns checkpoint and metrics paths."""
    from ..training.imitation import pretrain

    p = ctx.params
    _check_params("pretrain", p)
    cfg = _imitation_config(p.get("config", {}), ctx.seed)
    split = p.get("split", "pretrain")
    ids = _ids(ctx, split, p.get("limit"))
    scenarios = ctx.workspace.scenarios(ids=ids)
    follower = _MetricsFollower(ctx, ctx.run_dir / "metrics.jsonl", cfg.epochs)
    ctx.progress(0, None, f"building training states from {len(ids)} scenarios", force=True)
    follower.start()
    try:
        path = pretrain(scenarios, ctx.run_dir, cfg, progress=False)
    finally:
        follower.finish()
    return {"checkpoint": str(path), "run_dir": str(ctx.run_dir), "metrics_path": str(ctx.run_dir / "metrics.jsonl"),
            "split": split, "num_scenarios": len(ids)}


# -- posttrain ----------------------------------------------------------------------------------------------------
POSTTRAIN_ENTRY = "worldengine_lab.jobs.kinds:posttrain_job"
"""Where the ``posttrain`` kind's function lives (what the job records and its process imports)."""

_DATA_MANIFEST = "posttrain_data.json"
_RUN_FOLDER = "posttrain"


def posttrain_config(overrides: Any, recipe: str | None, seed: int) -> Any:
    """A :class:`~worldengine_lab.training.rl.PostTrainConfig` from JSON ``overrides`` of its fields (``sim`` as a
    dict of :class:`~worldengine_lab.sim.SimConfig` fields applied to the default's), the ``recipe`` param and
    the job's ``seed`` (the default of ``seed``).

    Raises:
        WorldEngineLabError: unknown fields, a ``recipe`` that disagrees with ``overrides["recipe"]``, or
            values PostTrainConfig rejects.
    """
    from ..training.rl import PostTrainConfig

    where = "posttrain job params['config']"
    if not isinstance(overrides, dict):
        raise WorldEngineLabError(f"{where}: expected a dict of PostTrainConfig fields, received "
                                  f"{type(overrides).__name__}")
    names = {f.name for f in dataclasses.fields(PostTrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise WorldEngineLabError(f"{where}: unknown PostTrainConfig fields {unknown}; expected a subset of "
                                  f"{sorted(names)}")
    values = {"seed": seed, **overrides}
    if recipe is not None:
        if "recipe" in overrides and overrides["recipe"] != recipe:
            raise WorldEngineLabError(f"posttrain job params: 'recipe' is {recipe!r} and params['config']['recipe'] "
                                      f"is {overrides['recipe']!r}; expected one recipe, give it once")
        values["recipe"] = recipe
    if "log_offsets_s" in values:
        values["log_offsets_s"] = tuple(float(x) for x in values["log_offsets_s"])
    sim = values.get("sim")
    if isinstance(sim, dict):
        sim_names = {f.name for f in dataclasses.fields(PostTrainConfig.sim)} - {"dtype", "idm", "tracker"}
        bad = sorted(set(sim) - sim_names)
        if bad:
            raise WorldEngineLabError(f"{where}['sim']: unknown or non-JSON SimConfig fields {bad}; expected a "
                                      f"subset of {sorted(sim_names)}")
        sim = dict(sim)
        if "reactive_types" in sim:
            sim["reactive_types"] = tuple(int(x) for x in sim["reactive_types"])
        values["sim"] = dataclasses.replace(PostTrainConfig.sim, **sim)
    try:
        cfg = PostTrainConfig(**values)
        cfg.validate()
    except TypeError as exc:
        raise WorldEngineLabError(f"{where}: could not build PostTrainConfig ({exc}); expected JSON values of its "
                                  f"fields") from exc
    return cfg


def _base_checkpoint(ctx: JobContext, base: Any) -> Path:
    if not isinstance(base, str) or not base:
        raise WorldEngineLabError(f"posttrain job params['base']: expected the path of a base checkpoint (model.pt "
                                  f"of a pretrain run), received {base!r}")
    path = Path(base)
    if not path.is_absolute():
        path = ctx.workspace.root / path
    if not path.is_file():
        raise WorkspaceError(f"posttrain job params['base']: no checkpoint at {path} (expected a model.pt file); "
                             f"train one with `worldengine-lab train pretrain` and pass its path")
    return path


def _finished_iterations(run: Path) -> int:
    """Iterations the run folder's ``last.pt`` records (0 when there is none)."""
    from ..tensor_files import load_training_state

    found = load_training_state(run / "last.pt", "post-training state", "delete it to restart the run")
    return 0 if found is None else int(found[0]["iteration"])


def posttrain_job(ctx: JobContext) -> dict[str, Any]:
    """RL post-training of a base checkpoint on mined failures (see the module docstring); returns the
    checkpoint, run folder, data summary and the last logged values."""
    from ..training.posttrain_data import PostTrainSelection, select_posttrain_data
    from ..training.rl import RECIPES, posttrain

    p = ctx.params
    _check_params("posttrain", p, required=("base",))
    cfg = posttrain_config(p.get("config", {}), p.get("recipe"), ctx.seed)
    base = _base_checkpoint(ctx, p.get("base"))
    recipe = RECIPES[cfg.recipe]
    manifest = ctx.checkpoint_dir / _DATA_MANIFEST
    if manifest.exists():  # a resumed job trains on exactly the data of its first attempt
        selection = PostTrainSelection.from_dict(json.loads(manifest.read_text()))
    else:
        want_variants = p.get("variants")
        if want_variants is None:
            want_variants = recipe.variants or recipe.data == "variants"
        limit = p.get("common_limit", 256)
        selection = select_posttrain_data(ctx.workspace, failures=str(p.get("failures", "latest")),
                                          common_split=p.get("common_split", "mine"),
                                          common_limit=None if limit is None else int(limit),
                                          variants=bool(want_variants), seed=ctx.seed)
        atomic_write_text(manifest, json.dumps(selection.to_dict()))
    ctx.event("posttrain_data", selection.summary())
    data = selection.load(ctx.workspace)
    run = ctx.checkpoint_dir / _RUN_FOLDER
    done = _finished_iterations(run)
    ctx.progress(done, cfg.iterations, f"{cfg.recipe}: {'resuming after' if done else 'starting'} iteration "
                 f"{done}/{cfg.iterations} on {selection.summary()}", force=True)
    follower = _MetricsFollower(ctx, run / "metrics.jsonl", epochs=0)
    last: dict[str, float] = {}

    def on_iteration(finished: int, values: dict[str, float]) -> None:
        follower.pump()
        last.clear()
        last.update(values)
        reward = values.get("states/reward_of_selected")
        shown = "" if reward is None else f", reward of selected {reward:.3f}"
        ctx.progress(finished, cfg.iterations, f"iteration {finished}/{cfg.iterations} done{shown}", force=True)
        ctx.check_cancelled()  # last.pt is written: a safe point to stop

    follower.start()
    try:
        path = posttrain(data, base, run, cfg, progress=False, on_iteration=on_iteration)
    finally:
        follower.finish()
    finished = _finished_iterations(run)
    ctx.progress(max(finished, done), max(finished, done), f"finished: {path.name}", force=True)
    return {"checkpoint": str(path), "run_dir": str(run), "metrics_path": str(run / "metrics.jsonl"),
            "recipe": cfg.recipe, "base_checkpoint": str(base), "iterations": finished,
            "data": selection.to_dict() | {"summary": selection.summary()},
            "num_rare": len(selection.rare_ids), "num_common": len(selection.common_ids),
            "num_variants": len(selection.variant_ids), "last_values": last}


def register_loop_kinds() -> list[str]:
    """(Re-)register the loop's kinds that live in this module (``posttrain``, ``generate_variants``; both are
    built into the registry too, so this only restores them after an override); idempotent. Returns their
    names.

    Examples:
        >>> from worldengine_lab.jobs import available_kinds
        >>> register_loop_kinds(), "generate_variants" in available_kinds()
        (['posttrain', 'generate_variants'], True)
    """
    register_kind("posttrain", POSTTRAIN_ENTRY)
    register_kind("generate_variants", GENERATE_VARIANTS_ENTRY)
    return ["posttrain", "generate_variants"]


# -- generate_variants --------------------------------------------------------------------------------------------
GENERATE_VARIANTS_ENTRY = "worldengine_lab.jobs.kinds:generate_variants_job"
"""Where the ``generate_variants`` kind's function lives."""

_METHODS = ("parametric", "bwm", "both")


def _positive_int(p: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = p.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorldEngineLabError(f"generate_variants job params[{key!r}]: expected an int >= 1, received {value!r}")
    return value


def generate_variants_job(ctx: JobContext) -> dict[str, Any]:
    """Make, check and store variants of mined failures (see the module docstring); returns the generation
    summary, the stored variant ids and the candidate counts."""
    from ..variants.generate import GenerateConfig, generate_variants

    p = ctx.params
    _check_params("generate_variants", p)
    method = p.get("method", "parametric")
    if method not in _METHODS:
        raise WorldEngineLabError(f"generate_variants job params['method']: expected one of {list(_METHODS)}, "
                                  f"received {method!r}")
    for key in ("keep_all", "solvable_parents_only"):
        if key in p and not isinstance(p[key], bool):
            raise WorldEngineLabError(f"generate_variants job params[{key!r}]: expected true or false, received "
                                      f"{p[key]!r}")
    per_failure = _positive_int(p, "per_failure", 4)
    limit = _positive_int(p, "limit", None)
    batch_size = _positive_int(p, "batch_size", 32)
    checkpoint = p.get("checkpoint")
    if checkpoint is not None:
        if not isinstance(checkpoint, str) or not checkpoint:
            raise WorldEngineLabError(f"generate_variants job params['checkpoint']: expected a checkpoint path, "
                                      f"received {checkpoint!r}")
        path = Path(checkpoint)
        checkpoint = str(path if path.is_absolute() else ctx.workspace.root / path)
    base = None
    if p.get("base") not in (None, ""):
        from ..planners.registry import load_planner

        base = load_planner(str(p["base"]))
    config = GenerateConfig(per_failure=int(per_failure or 4), seed=ctx.seed, method=method,
                            keep_all=bool(p.get("keep_all", False)),
                            solvable_parents_only=bool(p.get("solvable_parents_only", True)),
                            batch_size=int(batch_size or 32))
    failures = str(p.get("failures", "latest"))
    ctx.progress(0, 1, f"generating {method} variants of the failure cases of {failures!r}", force=True)
    result = generate_variants(ctx.workspace, failures, config, checkpoint=checkpoint, base=base, limit=limit)
    summary = _finite(result.summary())
    for m in ("bwm", "parametric"):
        if m in summary:
            values = {f"{m}/{k}": float(summary[m][k]) for k in ("valid_rate", "critical_rate", "num_stored")
                      if summary[m][k] is not None}
            if values:
                ctx.log_metrics(0, values)
    ctx.progress(1, 1, f"{len(result.stored)} variants stored", force=True)
    return {"summary": summary, "stored": list(result.stored), "num_candidates": int(len(result.table)),
            "failures": failures, "method": method}


def _finite(x: Any) -> Any:
    """``x`` with NaN / infinite floats as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(x, Mapping):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if hasattr(x, "item") and callable(x.item):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# -- evaluation settings shared by mine and evaluate --------------------------------------------------------------
def _eval_settings(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params
    modes = p.get("modes", ["open_loop", "closed_loop"])
    modes = [modes] if isinstance(modes, str) else list(modes)
    return {"planner": str(p["planner"]), "tracking": p.get("tracking", "perfect"),
            "agents": p.get("agents", "log_replay"), "batch_size": int(p.get("batch_size", 32)), "modes": modes,
            "seed": ctx.seed}


def _eval_config(s: Mapping[str, Any]) -> Any:
    from ..mining.evaluate import WE_CLOSED_LOOP, EvalConfig

    return EvalConfig(sim=dataclasses.replace(WE_CLOSED_LOOP, agents=s["agents"], tracking=s["tracking"]),
                      batch_size=s["batch_size"], seed=s["seed"])


def mine_job(ctx: JobContext) -> dict[str, Any]:
    """Evaluate a planner on a split and mine, cluster, rank and store its failures; returns the mining summary."""
    from ..mining.pipeline import mine
    from ..planners.registry import load_planner

    p = ctx.params
    _check_params("mine", p, required=("planner", "split"))
    s = _eval_settings(ctx)
    ids = _ids(ctx, p["split"], p.get("limit"))
    ctx.progress(0, 1, f"mining {s['planner']} on {len(ids)} scenarios of {p['split']}", force=True)
    planner = load_planner(s["planner"], tracking=s["tracking"])
    result = mine(ctx.workspace, planner, scenarios=ctx.workspace.scenarios(ids=ids), split=p["split"],
                  modes=s["modes"], config=_eval_config(s),
                  percentile=float(p.get("percentile", 1.0)), description=p.get("description", ""))
    for i, (mode, summary) in enumerate(result.summaries.items()):
        ctx.log_metrics(i, {f"{mode}/pdms": float(summary["pdms"]),
                            f"{mode}/success_rate_pct": float(summary["success_rate_pct"])})
    ctx.progress(1, 1, f"{len(result.cases)} failure cases", force=True)
    return result.to_dict()


# -- evaluate -----------------------------------------------------------------------------------------------------
def evaluate_shard(task: Mapping[str, Any]) -> pd.DataFrame:
    """Evaluate one shard: ``task`` holds ``workspace``, ``ids``, ``mode`` and the :func:`_eval_settings` keys.

    A module-level function, so Ray workers import it; it opens the workspace itself (read-only use).
    """
    from ..mining.evaluate import evaluate_closed_loop, evaluate_open_loop
    from ..planners.registry import load_planner
    from ..store.workspace import Workspace

    ws = Workspace.open(task["workspace"], create=False)
    try:
        scenarios = list(ws.scenarios(ids=list(task["ids"])))
        planner = load_planner(task["planner"], tracking=task["tracking"])
        fn = evaluate_open_loop if task["mode"] == "open_loop" else evaluate_closed_loop
        return fn(scenarios, planner, config=_eval_config(task))
    finally:
        ws.close()


def evaluate_job(ctx: JobContext) -> dict[str, Any]:
    """Sharded evaluation of a planner on a split, stored as one evaluation run per mode (see the module
    docstring); returns run ids and summaries."""
    from ..mining.evaluate import summarize
    from ..mining.store import save_eval_run
    from ..sim.rollout import _planner_id
    from ..planners.registry import load_planner

    p = ctx.params
    _check_params("evaluate", p, required=("planner", "split"))
    s = _eval_settings(ctx)
    manifest = ctx.checkpoint_dir / "evaluate.json"
    if manifest.exists():  # a resumed job evaluates exactly the set (and shards) of its first attempt
        plan = json.loads(manifest.read_text())
    else:
        ids = _ids(ctx, p["split"], p.get("limit"))
        n = p.get("num_shards") or max(int(ctx.spec.num_cpus), -(-len(ids) // 64))
        plan = {"ids": ids, "shards": split_shards(ids, int(n))}
        atomic_write_text(manifest, json.dumps(plan))
    shards: list[list[str]] = plan["shards"]
    pid = _planner_id(load_planner(s["planner"], tracking=s["tracking"]))
    desc = p.get("description") or f"split={p['split']}, {len(plan['ids'])} scenarios"
    total = len(shards) * len(s["modes"])
    done = 0
    run_ids: dict[str, str] = {}
    summaries: dict[str, dict[str, float]] = {}
    for m, mode in enumerate(s["modes"]):
        files = [ctx.checkpoint_dir / f"{mode}-shard{i:04d}.parquet" for i in range(len(shards))]
        todo = [i for i, f in enumerate(files) if not f.exists()]
        done += len(shards) - len(todo)
        ctx.progress(done, total, f"{mode}: {len(shards) - len(todo)}/{len(shards)} shards", force=True)

        def keep(j: int, table: pd.DataFrame, mode: str = mode, todo: list[int] = todo,
                 files: list[Path] = files) -> None:
            nonlocal done
            tmp = files[todo[j]].with_suffix(".tmp")
            table.to_parquet(tmp, index=False)
            tmp.replace(files[todo[j]])
            done += 1
            ctx.progress(done, total, f"{mode}: shard {todo[j] + 1}/{len(shards)} done")

        tasks = [{**s, "workspace": str(ctx.workspace.root), "ids": shards[i], "mode": mode} for i in todo]
        ctx.map_shards(evaluate_shard, tasks, on_result=keep)
        table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        saved = ctx.checkpoint_dir / f"{mode}-run.json"  # a resumed job does not store a mode twice
        if saved.exists():
            run_ids[mode] = json.loads(saved.read_text())["run_id"]
        else:
            run_ids[mode] = save_eval_run(ctx.workspace, table, pid, mode, desc, {**s, "split": p["split"]},
                                          seed=ctx.seed)
            atomic_write_text(saved, json.dumps({"run_id": run_ids[mode]}))
        summary = summarize(table)
        summaries[mode] = {k: float(v) for k, v in summary.items()}
        ctx.log_metrics(m, {f"{mode}/pdms": float(summary["pdms"]),
                            f"{mode}/success_rate_pct": float(summary["success_rate_pct"])})
    return {"planner_id": pid, "run_ids": run_ids, "summaries": summaries, "num_scenarios": len(plan["ids"]),
            "num_shards": len(shards)}
