"""The ``worldengine-lab`` command line: one entry point, ``--help`` on every subcommand.

Every subcommand is a thin wrapper over one library call, so the same work runs from a notebook cell.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import DataFormatError, WorldEngineLabError

__all__ = ["main", "build_parser"]


def _add_workspace(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", type=Path, default=None,
                   help="workspace folder (default: $WORLDENGINE_LAB_WORKSPACE, else ./workspace)")


def _add_window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--history", type=float, default=2.0, help="seconds of history before 'now' (default 2)")
    p.add_argument("--future", type=float, default=8.0, help="seconds after 'now' (default 8)")
    p.add_argument("--dt", type=float, default=0.1, help="output step in seconds (default 0.1 = 10 Hz)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="worldengine-lab",
        description="worldengine_lab: mine planner failures in driving logs, vary them, post-train, report.",
    )
    parser.add_argument("--version", action="version", version=f"worldengine_lab {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # data ------------------------------------------------------------------------------------------------
    data = sub.add_parser("data", help="create, import and summarise driving data",
                          description="Create the embedded world, import logs into the workspace, print statistics.")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = dsub.add_parser("synth", help="generate the embedded world as nuPlan .db logs and .gpkg maps",
                            description="Generate a seeded procedural city and traffic, written as real nuPlan files.")
    synth.add_argument("--out", type=Path, required=True, help="output folder (created; must not hold a dataset)")
    synth.add_argument("--seed", type=int, default=0, help="generator seed (same seed, identical files)")
    synth.add_argument("--logs", type=int, default=None, help="number of logs (default: the demo dataset size)")

    imp = dsub.add_parser("import", help="import scenario windows from nuPlan or Argoverse 2 into the workspace",
                          description="Index scenario windows of a dataset in the workspace catalog (one transaction).")
    isub = imp.add_subparsers(dest="source", metavar="SOURCE", required=True)
    inu = isub.add_parser("nuplan", help="nuPlan .db logs (a file or a folder searched recursively)",
                          description="Import nuPlan logs; maps come from --maps-root or $NUPLAN_MAPS_ROOT.")
    inu.add_argument("path", type=Path, help="a .db log or a folder of logs (default $NUPLAN_DATA_ROOT)", nargs="?")
    inu.add_argument("--maps-root", type=Path, default=None, help="nuPlan maps folder (default $NUPLAN_MAPS_ROOT)")
    inu.add_argument("--tags", nargs="*", default=None, help="only windows tagged with these scenario types")
    inu.add_argument("--tokens", nargs="*", default=None, help="only these lidar_pc tokens (hex)")
    inu.add_argument("--stride", type=float, default=None, help="one window every STRIDE seconds instead of tags")
    inu.add_argument("--source-name", default="nuplan", help="catalog source label (default nuplan)")
    _add_window(inu)
    _add_workspace(inu)
    iav = isub.add_parser("av2", help="Argoverse 2 sensor logs or motion-forecasting scenarios",
                          description="Import AV2 logs (a log folder, a split folder, or forecasting scenarios).")
    iav.add_argument("path", type=Path, nargs="?", help="AV2 folder (default $AV2_DATA_ROOT)")
    iav.add_argument("--stride", type=float, default=1.0, help="window stride within a sensor log, s (default 1)")
    _add_window(iav)
    _add_workspace(iav)

    stats = dsub.add_parser("stats", help="print catalog statistics of the workspace",
                            description="Counts per source, map, location, tag and split; total duration.")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_workspace(stats)

    # demo ------------------------------------------------------------------------------------------------
    demo = sub.add_parser("demo", help="run the World Engine loop on the embedded default",
                          description="world -> pre-train -> mine -> scenes -> variants -> post-train -> evaluate "
                                      "-> report (reports/evaluation.html). A second run reuses finished stages "
                                      "(keyed by their settings).")
    demo.add_argument("--seed", type=int, default=0, help="world and training seed (default 0)")
    demo.add_argument("--logs", type=int, default=None, help="number of logs (default: the demo dataset size)")
    demo.add_argument("--until", default="report", help="stop after this stage (world, pretrain, mine, scenes, "
                                                        "variants, posttrain, evaluate, report)")
    demo.add_argument("--epochs", type=int, default=None, help="pre-training epochs (default 14)")
    demo.add_argument("--iterations", type=int, default=None, help="post-training iterations (default 3)")
    demo.add_argument("--report", default=None, help="HTML report path (default reports/evaluation.html)")
    demo.add_argument("--max-scenarios", type=int, default=None,
                      help="use at most this many scenarios per split (quick runs; default: all)")
    demo.add_argument("--compare", nargs="*", default=None, metavar="RECIPE",
                      help="further rows of World Engine's table to post-train and evaluate from the same base: "
                           "sft_rare rl_common rl_rare rl_rare_rollouts (default: none; base and the full "
                           "recipe always run)")
    demo.add_argument("--variants-method", default=None, choices=("parametric", "bwm", "both"),
                      help="how failures are varied (default parametric; bwm/both need a behaviour world model "
                           "from `worldengine-lab variants train-bwm`)")
    _add_workspace(demo)

    # train -----------------------------------------------------------------------------------------------
    train = sub.add_parser("train", help="train the learned planner",
                           description="Imitation pre-training (and, later, RL post-training) of the learned planner.")
    tsub = train.add_subparsers(dest="train_command", metavar="STAGE", required=True)
    pre = tsub.add_parser(
        "pretrain", help="imitation pre-training on a split",
        description="Build states (features, expert futures, PDM-teacher sub-scores of every vocabulary candidate), "
                    "fit the trajectory vocabulary and train the scorer; resumes from the run folder's last.pt.",
        epilog="example: worldengine-lab train pretrain --split pretrain --out workspace/runs/base")
    pre.add_argument("--split", default="pretrain", help="catalog split to learn from (default pretrain)")
    pre.add_argument("--out", type=Path, default=None,
                     help="run folder (default <workspace>/runs/pretrain-<split>-seed<seed>); re-running resumes")
    pre.add_argument("--vocab-size", type=int, default=256, help="trajectory vocabulary size (default 256)")
    pre.add_argument("--epochs", type=int, default=14, help="training epochs (default 14)")
    pre.add_argument("--batch-size", type=int, default=64, help="states per step (default 64)")
    pre.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    pre.add_argument("--data-fraction", type=float, default=1.0, help="share of the split used, seeded (default 1)")
    pre.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that passes this time")
    pre.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    _add_workspace(pre)
    post = tsub.add_parser(
        "posttrain", help="RL post-training of a checkpoint on its mined failures (World Engine recipes)",
        description="Select the data (mined failure scenarios, a sample of common ones, the failures' stored "
                    "variants) and post-train the base checkpoint with a World Engine recipe; in the foreground "
                    "with a progress bar, or as a detached background job. Re-running with the same --out "
                    "resumes from its last.pt.",
        epilog="example: worldengine-lab train posttrain --recipe rl_rare_rollouts --base workspace/runs/"
               "pretrain-pretrain-seed0/model.pt --failures latest --iterations 4")
    post.add_argument("--recipe", default="rl_rare_rollouts", metavar="NAME",
                      help="a recipe of training.rl.RECIPES (default rl_rare_rollouts; rl_rare_rollouts_bwm is "
                           "World Engine's full recipe; an unknown name lists them all)")
    post.add_argument("--base", type=Path, required=True, metavar="CKPT",
                      help="base checkpoint (model.pt of `train pretrain`)")
    post.add_argument("--failures", default="latest", metavar="latest|RUN_ID|VIEW",
                      help="which failures: the latest mining (default), an evaluation run id, or a saved view")
    post.add_argument("--common-split", default="mine", help="split of the common (replay) scenarios (default mine)")
    post.add_argument("--common-limit", type=int, default=256, metavar="N",
                      help="at most N common scenarios, a seeded sample (default 256)")
    post.add_argument("--out", type=Path, default=None,
                      help="run folder (default <workspace>/runs/posttrain-<recipe>-seed<seed>; with --background "
                           "the job's folder); re-running resumes")
    post.add_argument("--iterations", type=int, default=4, help="collect-then-train iterations (default 4)")
    post.add_argument("--finetune", choices=["lora", "full"], default="lora",
                      help="LoRA adapters on the planning head (default) or all parameters")
    post.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate (default 2e-4)")
    post.add_argument("--max-minutes", type=float, default=None, help="stop after the iteration that passes this time")
    post.add_argument("--seed", type=int, default=0, help="seed of the data sample and the run (default 0)")
    post.add_argument("--background", action="store_true",
                      help="launch a detached job, print its id and return (watch it with `worldengine-lab jobs`)")
    _add_workspace(post)

    # mine ------------------------------------------------------------------------------------------------
    mine = sub.add_parser(
        "mine", help="evaluate a planner on a split and mine, cluster and rank its failures",
        description="Evaluate a planner open loop and/or closed loop on a workspace split, store the runs, "
                    "classify failures by the rare-case rules, cluster overlapping windows into ranked cases "
                    "and print a report (success rate, PDMS, failures per rule/type, top cases, rare tags).",
        epilog="example: worldengine-lab mine --planner expert --split test_common")
    mine.add_argument("--planner", required=True, metavar="SPEC",
                      help="expert | pdm_closed | constant_velocity | log_replay | path/to/checkpoint.pt")
    mine.add_argument("--split", required=True, help="catalog split to evaluate (e.g. mine, test_common, test_rare)")
    mine.add_argument("--modes", nargs="+", choices=["open_loop", "closed_loop"], default=["open_loop", "closed_loop"],
                      help="evaluation modes, in order (default: both)")
    mine.add_argument("--agents", choices=["log_replay", "reactive"], default="log_replay",
                      help="closed-loop agents: replay the log (NR, default) or IDM-reactive (R)")
    mine.add_argument("--tracking", choices=["perfect", "lqr"], default="perfect",
                      help="closed-loop plan execution: ego placed on its plan (default) or LQR tracker; the "
                           "expert scores its proposals the same way")
    mine.add_argument("--batch-size", type=int, default=32, help="scenarios simulated together (default 32)")
    mine.add_argument("--percentile", type=float, default=1.0,
                      help="low-progress rule percentile p in [0, 100] (default 1)")
    mine.add_argument("--limit", type=int, default=None, metavar="N",
                      help="only the first N scenarios of the split (quick looks)")
    mine.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    mine.add_argument("--json", action="store_true", help="print JSON (summaries, counts, top cases) instead")
    _add_workspace(mine)

    # jobs ------------------------------------------------------------------------------------------------
    from .jobs.cli import add_jobs_parser

    add_jobs_parser(sub)

    # variants --------------------------------------------------------------------------------------------
    _add_variants_parser(sub)

    # report ----------------------------------------------------------------------------------------------
    from .reports.cli import add_report_parser

    add_report_parser(sub)

    # bench -----------------------------------------------------------------------------------------------
    from .bench import BENCHMARKS

    bench = sub.add_parser("bench", help="run a benchmark and print its figures",
                           description="Run a named benchmark; --json prints exactly one JSON object on stdout.")
    bench.add_argument("name", choices=sorted(BENCHMARKS), help="benchmark name")
    bench.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    bench.add_argument("--quick", action="store_true", help="smaller sizes (for smoke tests)")
    bench.add_argument("--checkpoint", default=None,
                       help="behaviour world model checkpoint (bench variants; default "
                            "$WORLDENGINE_LAB_BWM_CHECKPOINT, else one is trained)")
    return parser


def _add_variants_parser(sub: argparse._SubParsersAction) -> None:
    """``variants generate`` and ``variants train-bwm`` (library: worldengine_lab.variants.generate / .bwm_train)."""
    var = sub.add_parser("variants", help="generate harder variants of mined failures; train the behaviour model",
                         description="Variants of mined failures (behaviour world model under adversarial guidance, "
                                     "or parametric edits), checked for validity and expert solvability, stored "
                                     "with lineage.")
    vsub = var.add_subparsers(dest="variants_command", metavar="ACTION", required=True)
    gen = vsub.add_parser("generate", help="make, check and store K variants per failure case",
                          description="For each failure case of an evaluation run: K variants, checked (valid, "
                                      "expert-solvable in closed loop, critical), the valid and solvable ones stored "
                                      "with lineage. The same request gives the same variant ids.",
                          epilog="example: worldengine-lab variants generate --failures latest --per-failure 4")
    gen.add_argument("--failures", default="latest", metavar="RUN_ID", help="evaluation run id or 'latest'")
    gen.add_argument("--per-failure", type=int, default=4, metavar="K", help="variants per case and method (4)")
    gen.add_argument("--seed", type=int, default=0, help="request seed (default 0)")
    gen.add_argument("--method", choices=["bwm", "parametric", "both"], default="bwm", help="generator (bwm)")
    gen.add_argument("--checkpoint", type=Path, default=None,
                     help="behaviour world model (default <workspace>/models/bwm/bwm.pt)")
    gen.add_argument("--planner", default=None, metavar="SPEC", help="base planner for criticality (expert)")
    gen.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N failure cases")
    gen.add_argument("--keep-all", action="store_true", help="store invalid and unsolvable variants too")
    gen.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_workspace(gen)
    tr = vsub.add_parser("train-bwm", help="train the behaviour world model on a split",
                         description="Train the trajectory diffusion model of non-ego agents (per-agent noise "
                                     "levels) on a catalog split and write its checkpoint.",
                         epilog="example: worldengine-lab variants train-bwm --split pretrain --max-minutes 9")
    tr.add_argument("--split", default="pretrain", help="catalog split to learn from (default pretrain)")
    tr.add_argument("--epochs", type=int, default=None, help="passes over the split (default 40)")
    tr.add_argument("--max-minutes", type=float, default=9.0, help="stop after this wall-clock budget (9)")
    tr.add_argument("--out", type=Path, default=None, help="checkpoint (default <workspace>/models/bwm/bwm.pt)")
    tr.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    _add_workspace(tr)


def _variants(args: argparse.Namespace) -> int:
    """``worldengine-lab variants generate | train-bwm``."""
    from .artifacts import resolve_workspace
    from .store import Workspace
    from .variants.generate import GenerateConfig, default_checkpoint, generate_variants

    ws = Workspace.open(resolve_workspace(args.workspace))
    if args.variants_command == "train-bwm":
        from dataclasses import replace

        from .variants.bwm_train import BWMTrainConfig, train_bwm

        scenarios = list(ws.scenarios(split=args.split))
        if not scenarios:
            raise WorldEngineLabError(f"variants train-bwm --split {args.split!r}: no scenarios in that split of "
                                      f"{ws.root}; run `worldengine-lab demo` or import data first")
        cfg = replace(BWMTrainConfig(), max_minutes=args.max_minutes, seed=args.seed,
                      **({"epochs": args.epochs} if args.epochs else {}))
        res = train_bwm(scenarios, cfg, out=args.out or default_checkpoint(ws), progress=True)
        print(f"checkpoint: {res.checkpoint} (model {res.model_hash}; {res.num_steps} steps in {res.seconds:.0f} s, "
              f"final loss {res.epoch_losses[-1]:.4f})")
        return 0
    if args.per_failure < 1:
        raise WorldEngineLabError(f"variants generate --per-failure: expected >= 1, received {args.per_failure}")
    base = None
    if args.planner:
        from .planners.registry import load_planner

        base = load_planner(args.planner)
    res = generate_variants(ws, args.failures, GenerateConfig(per_failure=args.per_failure, seed=args.seed,
                                                              method=args.method, keep_all=args.keep_all),
                            checkpoint=args.checkpoint, base=base, limit=args.limit)
    print(json.dumps(res.summary(), indent=2, default=str) if args.json else res.report())
    return 0


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def _print_stats(stats: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(stats, indent=2, sort_keys=True, default=str))
        return
    print(f"scenarios: {stats.get('num_scenarios', 0)}   total duration: {stats.get('total_duration_s', 0.0):.1f} s")
    total = max(int(stats.get("num_scenarios", 0)), 1)
    rare = {k: v for k, v in (stats.get("by_tag") or {}).items() if k.startswith("rare_")}
    if rare:
        print("\nrare events (tag at the window's 'now', share of windows):")
        for name, count in sorted(rare.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {name:<58} {count:>7}  {100.0 * count / total:5.2f} %")
    for key in ("by_source", "by_map", "by_location", "by_split", "by_tag"):
        counts = stats.get(key) or {}
        if not counts:
            continue
        print(f"\n{key.replace('by_', 'per ')}:")
        for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:25]:
            print(f"  {name:<58} {n:>7}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return _dispatch(args)
    except WorldEngineLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _mine(args: argparse.Namespace) -> int:
    """``worldengine-lab mine``: load_planner + mining.pipeline.mine; the report (or JSON) on stdout."""
    from dataclasses import replace

    from .artifacts import resolve_workspace
    from .mining.evaluate import WE_CLOSED_LOOP, EvalConfig
    from .mining.pipeline import mine
    from .planners.registry import load_planner
    from .store import Workspace

    if args.batch_size < 1:
        raise WorldEngineLabError(f"mine --batch-size: expected an integer >= 1, received {args.batch_size}")
    if args.limit is not None and args.limit < 1:
        raise WorldEngineLabError(f"mine --limit: expected an integer >= 1, received {args.limit}")
    if not 0.0 <= args.percentile <= 100.0:
        raise WorldEngineLabError(f"mine --percentile: expected a number in [0, 100], received {args.percentile}")

    ws = Workspace.open(resolve_workspace(args.workspace))
    planner = load_planner(args.planner, tracking=args.tracking)
    config = EvalConfig(sim=replace(WE_CLOSED_LOOP, agents=args.agents, tracking=args.tracking),
                        batch_size=args.batch_size, seed=args.seed)
    scenarios = ws.scenarios(split=args.split)
    if args.limit is not None:
        scenarios = scenarios.head(args.limit)
    result = mine(ws, planner, scenarios=scenarios, split=args.split, modes=args.modes, config=config,
                  percentile=args.percentile, progress=True)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(result.report())
    return 0


def _train_posttrain(args: argparse.Namespace) -> int:
    """``worldengine-lab train posttrain``: training.posttrain_data + training.rl.posttrain in the foreground, or
    one ``posttrain`` job (jobs.launch) with ``--background``."""
    from .artifacts import resolve_workspace
    from .store import Workspace

    ws = Workspace.open(resolve_workspace(args.workspace))
    base = args.base.expanduser().resolve()
    if not base.is_file():
        raise WorldEngineLabError(f"train posttrain --base: expected a checkpoint file (model.pt of `worldengine-lab "
                                  f"train pretrain`), found nothing at {base}")
    overrides = {"iterations": args.iterations, "finetune": args.finetune, "lr": args.lr,
                 "max_minutes": args.max_minutes}
    if args.background:
        from .jobs import JobSpec, launch
        from .jobs.kinds import register_loop_kinds

        register_loop_kinds()
        spec = JobSpec("posttrain", name=f"posttrain-{args.recipe}"[:128], workspace=str(ws.root), seed=args.seed,
                       params={"base": str(base), "recipe": args.recipe, "failures": args.failures,
                               "common_split": args.common_split, "common_limit": args.common_limit,
                               "config": overrides})
        job = launch(spec, run_dir=args.out)
        print(job.job_id)
        print(f"watch it: worldengine-lab jobs show {job.job_id} --workspace {ws.root}", file=sys.stderr)
        return 0
    from .jobs.kinds import posttrain_config
    from .training.posttrain_data import posttrain_data
    from .training.rl import RECIPES, posttrain

    config = posttrain_config(overrides, args.recipe, args.seed)
    recipe = RECIPES[config.recipe]
    data = posttrain_data(ws, failures=args.failures, common_split=args.common_split, common_limit=args.common_limit,
                          variants=recipe.variants or recipe.data == "variants", seed=args.seed)
    out = args.out or Path(ws.root) / "runs" / f"posttrain-{args.recipe}-seed{args.seed}"
    path = posttrain(data, base, out, config, progress=True)
    print(f"checkpoint: {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    """``worldengine-lab train pretrain``: training.imitation.pretrain on a workspace split."""
    if args.train_command == "posttrain":
        return _train_posttrain(args)
    from .artifacts import resolve_workspace
    from .store import Workspace
    from .training.imitation import ImitationConfig, pretrain

    ws = Workspace.open(resolve_workspace(args.workspace))
    scenarios = ws.scenarios(split=args.split)
    if len(scenarios) == 0:
        raise WorldEngineLabError(f"train pretrain --split {args.split!r}: no scenarios in that split of {ws.root}; "
                                  "run `worldengine-lab demo` or import data and assign splits first")
    config = ImitationConfig(vocab_size=args.vocab_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             data_fraction=args.data_fraction, max_minutes=args.max_minutes, seed=args.seed)
    out = args.out or Path(ws.root) / "runs" / f"pretrain-{args.split}-seed{args.seed}"
    path = pretrain(scenarios, out, config, progress=True)
    print(f"checkpoint: {path}")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    import os

    if args.command == "data":
        if args.data_command == "synth":
            from .logs.synthetic import synthesize

            res = synthesize(args.out, seed=args.seed, **({"num_logs": args.logs} if args.logs else {}))
            print(f"wrote {len(res.db_paths)} logs to {res.data_root} and maps to {res.maps_root}")
            return 0
        if args.data_command == "import":
            from .scenarios.imports import import_av2, import_nuplan
            from .store import Workspace

            ws = Workspace.open(args.workspace)
            if args.source == "nuplan":
                path = args.path or os.environ.get("NUPLAN_DATA_ROOT")
                if not path:
                    raise WorldEngineLabError("no nuPlan path given; pass PATH or set NUPLAN_DATA_ROOT")
                summary = import_nuplan(
                    ws, path, maps_root=args.maps_root, tags=args.tags, tokens=args.tokens, stride_s=args.stride,
                    history_s=args.history, future_s=args.future, dt=args.dt, source=args.source_name,
                )
            else:
                path = args.path or os.environ.get("AV2_DATA_ROOT")
                if not path:
                    raise WorldEngineLabError("no Argoverse 2 path given; pass PATH or set AV2_DATA_ROOT")
                summary = import_av2(ws, path, stride_s=args.stride, history_s=args.history,
                                     future_s=args.future, dt=args.dt)
            print(f"imported {summary['num_scenarios']} scenarios from {summary['num_logs']} logs "
                  f"into {ws.root} (import {summary['import_id']})")
            return 0
        if args.data_command == "stats":
            from .store import Workspace

            _print_stats(Workspace.open(args.workspace).stats(), args.json)
            return 0
    if args.command == "demo":
        from .demo import run_demo

        run_demo(workspace=args.workspace, seed=args.seed, num_logs=args.logs, until=args.until,
                 epochs=args.epochs, iterations=args.iterations, report=args.report,
                 max_scenarios=args.max_scenarios, compare=args.compare, variants_method=args.variants_method)
        return 0
    if args.command == "mine":
        return _mine(args)
    if args.command == "train":
        return _train(args)
    if args.command == "jobs":
        from .jobs.cli import run_jobs_command

        return run_jobs_command(args)
    if args.command == "variants":
        return _variants(args)
    if args.command == "report":
        from .reports.cli import run_report_command

        return run_report_command(args)
    if args.command == "bench":
        from .bench import run_benchmark

        if args.checkpoint is not None and args.name != "variants":
            raise DataFormatError(f"bench {args.name}: --checkpoint applies to `bench variants` only")
        extra = {"checkpoint": args.checkpoint} if args.checkpoint is not None else {}
        result = run_benchmark(args.name, quick=args.quick, **extra)
        if args.json:
            print(json.dumps(result))
        else:
            for k, v in result.items():
                print(f"{k:<32} {v}")
        return 0
    raise AssertionError(f"unhandled command {args.command}")  # argparse guarantees a known command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
