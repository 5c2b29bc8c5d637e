"""The ``posttrain`` job kind: launched detached on a one-log embedded world (read in the job process through the
nuPlan reader), its metrics reach the store, a SIGKILLed run resumes on the same step counter and data, and
``worldengine-lab train posttrain`` in the foreground and the background."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
import torch

from worldengine_lab.cli import main
from worldengine_lab.jobs import Job, JobSpec, available_kinds, launch, run_job, unregister_kind
from worldengine_lab.jobs._process import wait_gone
from worldengine_lab.jobs.kinds import posttrain_config, register_loop_kinds
from worldengine_lab.mining import save_eval_run, save_failure_cases
from worldengine_lab.planners.features import FeatureConfig
from worldengine_lab.planners.learned import load_checkpoint
from worldengine_lab.scenarios.imports import import_nuplan
from worldengine_lab.store import Workspace
from worldengine_lab.training.imitation import ImitationConfig, pretrain

TINY_BASE = ImitationConfig(vocab_size=6, offsets_s=(0.0,), epochs=1, batch_size=8, val_fraction=0.0, d_model=16,
                            layers=1, heads=2, teacher_tracking="perfect",
                            features=FeatureConfig(max_agents=4, max_lanes=4, lane_points=8))
TINY_RL = {"epochs_per_iteration": 1, "batch_size": 4, "log_offsets_s": [0.0], "lora_rank": 2,
           "sim": {"replan_period_s": 4.0}}  # one visited state per scenario and iteration


@pytest.fixture(autouse=True)
def posttrain_kind() -> Iterator[None]:
    """The ``posttrain`` kind registered for the test, and the registry left as it was found."""
    had = "posttrain" in available_kinds()
    register_loop_kinds()
    yield
    if not had:
        unregister_kind("posttrain")


@pytest.fixture(scope="module")
def world_and_base(tmp_path_factory) -> tuple[Any, Path]:
    """A one-log embedded world and a tiny imitation checkpoint trained on four of its windows."""
    from worldengine_lab.logs.synthetic import synthesize

    root = tmp_path_factory.mktemp("posttrain-job")
    world = synthesize(root / "world", seed=0, num_logs=1)
    ws = Workspace.open(root / "base-ws")
    import_nuplan(ws, world.data_root, maps_root=world.maps_root, stride_s=1.0, source="synthetic", progress=False)
    base = pretrain(list(ws.scenarios().head(4)), root / "base", TINY_BASE, progress=False)
    ws.close()
    return world, base


def _prepare(ws: Workspace, world: Any, num_failed: int = 2) -> list[str]:
    """Import the world into ``ws`` (split 'mine') and store a closed-loop run whose first ``num_failed``
    windows failed by collision (one failure case each); returns the failed ids."""
    import_nuplan(ws, world.data_root, maps_root=world.maps_root, stride_s=1.0, source="synthetic", progress=False)
    ids = ws.scenario_ids()
    ws.set_split(ids, "mine")
    failed, passed = ids[:num_failed], ids[num_failed:num_failed + 4]
    n_f, n_p = len(failed), len(passed)
    results = pd.DataFrame({"scenario_id": failed + passed, "no_at_fault_collisions": [0.0] * n_f + [1.0] * n_p,
                            "drivable_area_compliance": 1.0, "ego_progress": 0.6,
                            "time_to_collision_within_bound": 1.0, "comfort": 1.0,
                            "driving_direction_compliance": 1.0, "score": [0.0] * n_f + [0.8] * n_p})
    run = save_eval_run(ws, results, "tiny", "closed_loop", "test windows", {}, seed=0)
    save_failure_cases(ws, run, pd.DataFrame({"case_id": [f"collision-{i}" for i in failed], "rule": "collision",
                                              "scenario_id": failed, "count": 1, "members": [[i] for i in failed],
                                              "score": 0.0}))
    return failed


def _spec(ws: Workspace, base: Path, iterations: int) -> JobSpec:
    return JobSpec("posttrain", params={"base": str(base), "recipe": "rl_rare_rollouts", "common_limit": 2,
                                        "config": {**TINY_RL, "iterations": iterations}},
                   workspace=str(ws.root), seed=3)


def test_posttrain_job_runs_detached_and_reports(ws: Workspace, world_and_base) -> None:
    world, base = world_and_base
    failed = _prepare(ws, world)
    job = launch(_spec(ws, base, iterations=2))
    assert job.wait(timeout=240) == "succeeded", job.info()["error"] or job.logs()
    info = job.info()
    assert info["step"] == info["total"] == 2
    result = job.result()
    assert result["iterations"] == 2 and result["num_rare"] == 2 and result["num_common"] == 2
    assert sorted(result["data"]["rare_ids"]) == sorted(failed)
    model, *_ = load_checkpoint(result["checkpoint"])
    assert not any("lora_" in k for k in model.state_dict())
    assert Path(result["run_dir"]) == job.run_dir / "checkpoints" / "posttrain"
    wide = job.metrics(wide=True)
    assert {"states/reward_of_selected", "rollout/real_success", "states/num"} <= set(wide.columns)
    assert "iteration" not in wide.columns
    lines = [json.loads(x) for x in Path(result["metrics_path"]).read_text().splitlines()]
    assert set(job.metrics()["key"]) == {k for r in lines for k in r} - {"step", "time", "iteration"}
    assert "posttrain_data" in set(job.events()["event"])


def test_killed_posttrain_job_resumes_on_the_same_step_counter(ws: Workspace, world_and_base) -> None:
    world, base = world_and_base
    _prepare(ws, world)
    job = launch(_spec(ws, base, iterations=4))
    deadline = time.monotonic() + 180
    while (job.info()["step"] or 0) < 1:  # the first iteration is done and checkpointed
        assert job.status() in ("queued", "running"), job.info()["error"] or job.logs()
        assert time.monotonic() < deadline, "the first iteration did not finish in time"
        time.sleep(0.1)
    row = job.info()
    os.killpg(int(row["pid"]), signal.SIGKILL)
    assert wait_gone(int(row["pid"]), row["pid_started_at"], 10.0)
    assert job.status() == "failed" and "killed?" in job.info()["error"]
    run = job.run_dir / "checkpoints" / "posttrain"
    done = torch.load(run / "last.pt", weights_only=True)
    assert 1 <= done["iteration"] < 4
    per_iteration = done["step"] // done["iteration"]
    steps_before = set(job.metrics()["step"])

    job.resume()
    assert job.wait(timeout=240) == "succeeded", job.info()["error"] or job.logs()
    final = torch.load(run / "last.pt", weights_only=True)
    assert final["iteration"] == 4 and final["step"] == 4 * per_iteration  # continued, not restarted
    info = job.info()
    assert info["attempt"] == 2 and info["step"] == info["total"] == 4
    assert set(job.metrics()["step"]) > steps_before and max(job.metrics()["step"]) == final["step"]
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)
    assert {"resumed", "orphaned"} <= set(job.events()["event"])


def test_posttrain_params_are_checked_before_training(ws: Workspace, world_and_base) -> None:
    _, base = world_and_base
    row = run_job(JobSpec("posttrain", params={"base": str(base), "colour": "red"}, workspace=str(ws.root)))
    assert row["status"] == "failed" and "unknown keys ['colour']" in row["error"]
    row = run_job(JobSpec("posttrain", params={"base": str(base), "config": {"epochs": 3}}, workspace=str(ws.root)))
    assert row["status"] == "failed" and "unknown PostTrainConfig fields ['epochs']" in row["error"]
    row = run_job(JobSpec("posttrain", params={"base": "nowhere.pt"}, workspace=str(ws.root)))
    assert row["status"] == "failed" and "no checkpoint at" in row["error"]
    row = run_job(JobSpec("posttrain", params={"base": str(base)}, workspace=str(ws.root)))
    assert row["status"] == "failed" and "worldengine-lab mine" in row["error"]
    cfg = posttrain_config({"sim": {"replan_period_s": 2.0}, "log_offsets_s": [0, 1]}, "rl_rare_logs", 5)
    assert cfg.recipe == "rl_rare_logs" and cfg.seed == 5 and cfg.sim.replan_period_s == 2.0
    assert cfg.sim.tracking == "perfect" and cfg.log_offsets_s == (0.0, 1.0)


def test_cli_posttrain_help_foreground_and_background(ws: Workspace, world_and_base, capsys) -> None:
    _, base = world_and_base
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "posttrain", "--help"])
    assert exit_info.value.code == 0
    assert "--background" in capsys.readouterr().out
    args = ["train", "posttrain", "--base", str(base), "--workspace", str(ws.root), "--iterations", "1"]
    assert main(args) == 2  # nothing mined: the message says which command to run
    assert "worldengine-lab mine" in capsys.readouterr().err
    assert main(args + ["--recipe", "ppo"]) == 2
    assert "rl_rare_rollouts_bwm" in capsys.readouterr().err
    assert main(args + ["--background"]) == 0
    job_id = capsys.readouterr().out.strip()
    job = Job.attach(ws, job_id)
    assert job.spec.kind == "posttrain" and job.spec.params["config"]["iterations"] == 1
    assert job.wait(timeout=120) == "failed" and "worldengine-lab mine" in job.info()["error"]
