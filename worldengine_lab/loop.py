"""The World Engine loop on one workspace, stage by stage: what ``worldengine-lab demo`` runs.

world → pre-train → mine → scenes → variants → post-train → evaluate → report

Each stage is one library call. A stage's *key* hashes its settings and the keys of the stages it reads, and
``<workspace>/loop/stages.json`` records the key and result of every finished stage, so a second run reuses what
is finished (and re-runs a stage, and everything after it, when its settings changed). Stages that train are
resumable on their own as well (``last.pt``), so an interrupted run continues mid-stage.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .artifacts import atomic_write_text
from .store import Workspace

__all__ = ["LoopConfig", "run_loop", "STAGES"]

logger = logging.getLogger(__name__)

STAGES = ("world", "pretrain", "mine", "scenes", "variants", "posttrain", "evaluate", "report")
"""The stages in order."""


@dataclass(frozen=True)
class LoopConfig:
    """Settings of the loop (defaults: the embedded benchmark on 2 CPU cores).

    Attributes:
        seed: world and training seed.
        num_logs: embedded-world logs (None: the default size).
        pretrain_epochs: imitation epochs of the base planner.
        mine_modes: evaluation modes used to mine failures.
        scenes_top_k: failure cases rebuilt as Gaussian scenes and rendered (front camera).
        variants_per_failure: variants requested per failed scenario (0: none); only valid, expert-solvable
            ones are kept (:func:`worldengine_lab.variants.generate.generate_variants`).
        variants_method: ``"parametric"`` (default; no model needed), ``"bwm"`` or ``"both"`` (the behaviour world
            model at ``bwm_checkpoint``, trained with ``worldengine-lab variants train-bwm``).
        bwm_checkpoint: the behaviour world model checkpoint (None: the workspace default).
        recipe: the full post-training recipe, the summary's ``worldengine`` row
            (:data:`worldengine_lab.training.rl.RECIPES`); ``"auto"`` picks rollouts + variants when variants
            exist, rollouts alone otherwise.
        compare_recipes: further rows of World Engine's table to post-train and evaluate from the same base
            (summary keys: ``sft_rare``, ``rl_common``, ``rl_rare``, ``rl_rare_rollouts``).
        posttrain_iterations: collect-and-train iterations of post-training.
        common_replay: common (non-failing) mine scenarios offered for replay.
        report_path: the HTML report written at the end (relative paths are relative to the working folder).
        max_scenarios: use at most this many scenarios of each split (seeded choice; None: all) — for quick
            runs and tests.
    """

    seed: int = 0
    num_logs: int | None = None
    pretrain_epochs: int = 14
    mine_modes: tuple[str, ...] = ("closed_loop",)
    scenes_top_k: int = 4
    variants_per_failure: int = 2
    variants_method: str = "parametric"
    bwm_checkpoint: str | None = None
    recipe: str = "auto"
    compare_recipes: tuple[str, ...] = ()
    posttrain_iterations: int = 3
    common_replay: int = 120
    report_path: str = "reports/evaluation.html"
    max_scenarios: int | None = None


@dataclass
class _State:
    path: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @staticmethod
    def load(ws: Workspace) -> "_State":
        path = ws.root / "loop" / "stages.json"
        stages = json.loads(path.read_text()) if path.exists() else {}
        return _State(path, stages)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.stages, indent=2, default=str))


def _key(name: str, settings: dict[str, Any], upstream: list[str]) -> str:
    blob = json.dumps({"stage": name, "settings": settings, "upstream": upstream}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Stop(Exception):
    """Raised after the last requested stage."""


def run_loop(workspace: Workspace, config: LoopConfig = LoopConfig(), progress: bool = True,
             echo: Callable[[str], None] | None = print, until: str = "report") -> dict[str, Any]:
    """Run (or resume) the stages up to ``until``; returns ``{stage: result}`` with each stage's seconds and
    whether it was reused, and ``"table"`` (the results table as text) when the loop ran to the end; the report
    stage's result names the HTML report and ``summary.json`` (:mod:`worldengine_lab.reports.summary`).
    ``echo`` prints one line per stage (None: quiet)."""
    if until not in STAGES:
        from .errors import DataFormatError

        raise DataFormatError(f"run_loop(until): expected one of {list(STAGES)}, received {until!r}")
    try:
        return _run(workspace, config, progress, echo, until)
    except _Stop as stop:
        return stop.args[0]


def _run(workspace: Workspace, config: LoopConfig, progress: bool, echo: Callable[[str], None] | None,
         until: str) -> dict[str, Any]:
    from .demo import embedded_world, import_embedded_world
    from .reports.summary import RECIPE_OF_KEY

    ws = workspace
    state = _State.load(ws)
    say = echo or (lambda _line: None)
    results: dict[str, Any] = {}
    keys: list[str] = []

    key_of: dict[str, str] = {}

    def stage(name: str, settings: dict[str, Any], fn: Callable[[Path], dict[str, Any]],
              upstream: list[str] | None = None, stop: bool = True) -> dict[str, Any]:
        """Run stage ``name`` unless its key (settings + ``upstream`` stage keys; default every earlier stage)
        matches the recorded one. ``stop``: end the loop here when ``until`` names this stage."""
        key = _key(name, settings, list(keys) if upstream is None else [key_of[u] for u in upstream])
        keys.append(key)
        key_of[name] = key
        rec = state.stages.get(name)
        if rec is not None and rec.get("key") == key:
            say(f"[{name:9s}] reused ({rec['seconds']:.0f} s when it ran)")
            results[name] = {**rec["result"], "seconds": rec["seconds"], "reused": True}
            if stop:
                maybe_stop(name)
            return rec["result"]
        folder = ws.root / "runs" / "loop" / f"{name.replace(':', '-')}-{key[:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        say(f"[{name:9s}] running ...")
        out = fn(folder)
        dt = time.perf_counter() - t
        state.stages[name] = {"key": key, "result": out, "seconds": dt}
        state.save()
        say(f"[{name:9s}] done in {dt:.0f} s")
        results[name] = {**out, "seconds": dt, "reused": False}
        if stop:
            maybe_stop(name)
        return out

    def maybe_stop(name: str) -> None:
        if name == until and until != STAGES[-1]:
            raise _Stop(results)

    cfg = config

    def split_ids(split: str) -> list[str]:
        ids = ws.scenario_ids(split=split)
        if cfg.max_scenarios is not None and len(ids) > cfg.max_scenarios:
            ids = sorted(random.Random(cfg.seed).sample(ids, cfg.max_scenarios))
        return ids

    def split_scenarios(split: str) -> list[Any]:
        ids = split_ids(split)
        return list(ws.scenarios(ids=ids)) if ids else []

    def world(_: Path) -> dict[str, Any]:
        w = embedded_world(ws, seed=cfg.seed, num_logs=cfg.num_logs)
        summary = import_embedded_world(ws, w)
        return {"num_logs": len(w.db_paths), "num_scenarios": summary["num_scenarios"],
                "by_split": ws.stats(source="synthetic")["by_split"]}

    stage("world", {"seed": cfg.seed, "num_logs": cfg.num_logs, "max_scenarios": cfg.max_scenarios}, world)

    def pretrain_stage(folder: Path) -> dict[str, Any]:
        from .training.imitation import ImitationConfig, pretrain

        path = pretrain(split_scenarios("pretrain"), folder, ImitationConfig(epochs=cfg.pretrain_epochs,
                                                                                seed=cfg.seed), progress=progress)
        return {"checkpoint": str(path)}

    base_ckpt = stage("pretrain", {"epochs": cfg.pretrain_epochs, "seed": cfg.seed}, pretrain_stage)["checkpoint"]

    def planner(path: str, pid: str) -> Any:
        from .planners.learned import LearnedPlanner

        return LearnedPlanner.from_checkpoint(path, planner_id=pid)

    def mine_stage(_: Path) -> dict[str, Any]:
        from .mining import mine

        res = mine(ws, planner(base_ckpt, "learned:base"), scenarios=split_scenarios("mine"), modes=cfg.mine_modes,
                   description=f"split=mine, {len(split_ids('mine'))} scenarios", progress=progress)
        failed = sorted({str(s) for s in res.failures["scenario_id"]}) if len(res.failures) else []
        counts = res.failures.groupby(["failure_type", "rule"]).size() if len(res.failures) else None
        return {"run_ids": res.run_ids, "failed_ids": failed,
                "counts": {f"{a}/{b}": int(n) for (a, b), n in counts.items()} if counts is not None else {},
                "summaries": {m: {k: float(v) for k, v in s.items() if isinstance(v, (int, float, np.number))}
                              for m, s in res.summaries.items()}}

    mined = stage("mine", {"modes": list(cfg.mine_modes)}, mine_stage)
    failed_ids: list[str] = mined["failed_ids"]

    def scenes_stage(folder: Path) -> dict[str, Any]:
        from .scene import build_scene, default_rig, render

        rig = default_rig().scaled(1 / 6).select(["CAM_F0"])
        out = []
        for s in ws.scenarios(ids=failed_ids[: cfg.scenes_top_k]) if failed_ids else []:  # a few thumbnails
            scene = build_scene(s, seed=cfg.seed)
            img = render(scene, rig, t=s.t0).rgb_uint8()[0]
            path = folder / f"{s.scenario_id}.npy"
            np.save(path, img, allow_pickle=False)
            out.append({"scenario_id": s.scenario_id, "render": str(path),
                        "num_gaussians": scene.background.num_gaussians + scene.actors.num_gaussians})
        return {"renders": out}

    stage("scenes", {"top_k": cfg.scenes_top_k}, scenes_stage)

    def variants_stage(_: Path) -> dict[str, Any]:
        if cfg.variants_per_failure <= 0 or not failed_ids:
            return {"variant_ids": [], "summary": {}}
        from .variants.generate import GenerateConfig, generate_variants

        res = generate_variants(ws, config=GenerateConfig(per_failure=cfg.variants_per_failure, seed=cfg.seed,
                                                          method=cfg.variants_method),
                                checkpoint=cfg.bwm_checkpoint, base=planner(base_ckpt, "learned:base"),
                                scenarios=list(ws.scenarios(ids=failed_ids)))
        return {"variant_ids": list(res.stored), "summary": res.summary()}

    variant_ids = stage("variants", {"per_failure": cfg.variants_per_failure, "seed": cfg.seed,
                                     "method": cfg.variants_method, "bwm": cfg.bwm_checkpoint},
                        variants_stage)["variant_ids"]
    main_recipe = cfg.recipe if cfg.recipe != "auto" else ("rl_rare_rollouts_bwm" if variant_ids else
                                                           "rl_rare_rollouts")
    # summary key -> training recipe; the main (full) recipe is the "worldengine" row
    rows: dict[str, str] = {"worldengine": main_recipe}
    for k in cfg.compare_recipes:
        if k not in RECIPE_OF_KEY or k in ("base", "worldengine"):
            from .errors import DataFormatError

            raise DataFormatError(f"LoopConfig.compare_recipes: expected keys from "
                                  f"{[r for r in RECIPE_OF_KEY if r not in ('base', 'worldengine')]}, received {k!r}")
        rows[k] = str(RECIPE_OF_KEY[k])
    pids = {"base": "learned:base", **{k: f"learned:{k}" for k in rows}}  # stored planner id per row

    def posttrain_data() -> Any:
        from .training.rl import PostTrainData
        from .variants.store import load_variant

        rare = list(ws.scenarios(ids=failed_ids)) if failed_ids else []
        fail = set(failed_ids)
        pool = [i for i in split_ids("mine") if i not in fail]
        common_ids = sorted(random.Random(cfg.seed).sample(pool, min(cfg.common_replay, len(pool))))
        common = list(ws.scenarios(ids=common_ids)) if common_ids else []
        variants = [load_variant(ws, v).scenario for v in variant_ids]
        return PostTrainData(rare=rare, common=common, variants=variants)

    def posttrain_stage(recipe: str) -> Callable[[Path], dict[str, Any]]:
        def run(folder: Path) -> dict[str, Any]:
            from .training.rl import PostTrainConfig, posttrain

            data = posttrain_data()
            path = posttrain(data, base_ckpt, folder, PostTrainConfig(recipe=recipe, iterations=cfg.posttrain_iterations,
                                                                      seed=cfg.seed), progress=progress)
            return {"checkpoint": str(path), "recipe": recipe, "num_rare": len(data.rare),
                    "num_variants": len(data.variants)}
        return run

    ckpts = {"base": base_ckpt}
    post_settings = {"iterations": cfg.posttrain_iterations, "replay": cfg.common_replay, "seed": cfg.seed}
    for k, r in rows.items():  # the full recipe first (stage "posttrain"), then the comparison rows
        name = "posttrain" if k == "worldengine" else f"posttrain:{k}"
        ckpts[k] = stage(name, {"recipe": r, **post_settings}, posttrain_stage(r),
                         upstream=["pretrain", "mine", "variants"], stop=k == "worldengine" and not cfg.compare_recipes
                         )["checkpoint"]
    maybe_stop("posttrain")

    def evaluate_stage(key: str) -> Callable[[Path], dict[str, Any]]:
        def run(_: Path) -> dict[str, Any]:
            from .mining import EvalConfig, WE_CLOSED_LOOP, evaluate_closed_loop, evaluate_open_loop, save_eval_run

            runs: dict[str, str] = {}
            p = planner(ckpts[key], pids[key])
            for split in EVAL_SPLITS:
                scen = split_scenarios(split)
                if not scen:
                    logger.warning("evaluate: split %s is empty in this world; its columns stay empty", split)
                    continue
                for mode in ("open_loop", "closed_loop"):
                    table = (evaluate_open_loop(scen, p) if mode == "open_loop" else
                             evaluate_closed_loop(scen, p, EvalConfig(sim=WE_CLOSED_LOOP)))
                    runs[f"{split}/{mode}"] = save_eval_run(
                        ws, table, pids[key], mode, description=f"split={split}, {len(scen)} scenarios", seed=cfg.seed)
            return {"planner": pids[key], "run_ids": runs}
        return run

    for k in pids:  # base, the full recipe, the comparison rows: each evaluated once per checkpoint
        stage(f"evaluate:{k}", {"planner": pids[k], "max_scenarios": cfg.max_scenarios}, evaluate_stage(k),
              upstream=["world", "pretrain" if k == "base" else ("posttrain" if k == "worldengine" else
                                                                 f"posttrain:{k}")], stop=False)
    maybe_stop("evaluate")

    def report_stage(folder: Path) -> dict[str, Any]:
        from .reports import run as run_report
        from .reports.summary import build_summary, write_summary

        labels = {_label(k, rows.get(k)): pids[k] for k in pids}
        res = run_report("evaluation", {"planners": labels, "seed": cfg.seed}, cfg.report_path, workspace=ws.root)
        summary = build_summary(ws, pids, config=dataclasses.asdict(cfg),
                                provenance={"report": str(res.html), "stage_keys": dict(key_of)}, seed=cfg.seed)
        path = write_summary(folder / "summary.json", summary)
        return {"html": str(res.html), "summary": str(path)}

    stage("report", {"path": cfg.report_path, "rows": pids, "max_scenarios": cfg.max_scenarios}, report_stage)
    results["table"] = _summary_table(ws, {_label(k, rows.get(k)): pids[k] for k in pids})
    return results


EVAL_SPLITS = ("test_common", "test_rare")
"""Splits every planner is evaluated on, each in open and closed loop."""


def _label(key: str, recipe: str | None) -> str:
    if key == "base":
        return "base model"
    text = _RECIPE_LABELS.get(str(recipe), str(recipe))
    return f"{text} (World Engine)" if key == "worldengine" else text


_RECIPE_LABELS = {
    "sft_rare_logs": "supervised fine-tuning on rare logs",
    "rl_common_logs": "RL post-training on common logs",
    "rl_rare_logs": "RL post-training on rare logs",
    "rl_rare_synthetic_replays": "RL post-training on rare synthetic replays",
    "rl_rare_rollouts": "RL post-training on rare rollouts",
    "rl_rare_rollouts_bwm": "RL post-training on rare rollouts + variants",
}


def _summary_table(ws: Workspace, planners: dict[str, str]) -> str:
    from .reports.tables import format_table, results_table

    return format_table(results_table(ws, planners)).to_string()
