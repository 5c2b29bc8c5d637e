"""The built-in kinds run through the job runner in this process (the same code path as a detached job, without
the process): evaluate (sharded, resumable by shard), mine and pretrain on hand-made scenarios."""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

import pytest

from worldengine_lab.datatypes import Scenario
from worldengine_lab.jobs import JobSpec, run_job
from worldengine_lab.jobs import store as jstore
from worldengine_lab.mining import load_eval_results
from worldengine_lab.scenarios import register_loader, unregister_loader
from worldengine_lab.store import Workspace
from worldengine_lab.testing import make_scenario

SOURCE = "jobs-test"


def blocked(scenario_id: str) -> Scenario:
    """Ego at 10 m/s with a vehicle stopped 25 m ahead in its lane: constant velocity rear-ends it."""
    s = make_scenario(num_agents=2, seed=0)
    xy, vel = s.agents.xy.copy(), s.agents.vel_xy.copy()
    xy[:, 1, 0] = xy[s.t0, 0, 0] + 25.0
    vel[:, 1] = 0.0
    return dataclasses.replace(s, scenario_id=scenario_id, agents=dataclasses.replace(s.agents, xy=xy, vel_xy=vel))


def clean(scenario_id: str) -> Scenario:
    return dataclasses.replace(make_scenario(num_agents=2, seed=1), scenario_id=scenario_id)


BUILDERS = {"blocked": blocked, "clean": clean}


def _load(row: Mapping[str, Any]) -> Scenario:
    return BUILDERS[row["locator"]](row["scenario_id"])


@pytest.fixture
def handmade(ws: Workspace) -> Workspace:
    """Split 'mine' holds the blocked and the clean scenario."""
    register_loader(SOURCE, _load)
    ws.add_scenarios(
        [{"scenario_id": sid, "source": SOURCE, "path": "/handmade", "locator": sid, "log_id": f"log-{sid}",
          "map_name": "test-straight", "start_time_s": 0.0, "duration_s": 10.0, "num_steps": 101, "t0": 20,
          "num_agents": 2, "window": {"history_s": 2.0, "future_s": 8.0, "dt": 0.1}} for sid in BUILDERS],
        import_meta={"source": SOURCE, "path": "/handmade"})
    ws.set_split(list(BUILDERS), "mine")
    yield ws
    unregister_loader(SOURCE)


def test_evaluate_job_shards_stores_runs_and_resumes_by_shard(handmade: Workspace) -> None:
    spec = JobSpec("evaluate", params={"planner": "constant_velocity", "split": "mine", "num_shards": 2,
                                       "modes": ["closed_loop"], "batch_size": 2}, workspace=str(handmade.root))
    row = run_job(spec)
    assert row["status"] == "succeeded", row["error"]
    result = json.loads(row["result_json"])
    assert result["num_shards"] == 2 and result["summaries"]["closed_loop"]["success_rate_pct"] == 50.0
    stored = load_eval_results(handmade, result["run_ids"]["closed_loop"]).set_index("scenario_id")
    assert stored.loc["blocked", "failure_type"] == "collision" and stored.loc["clean", "failure_type"] == "none"
    ckpt = handmade.root / "runs" / spec.job_id / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("*.parquet")) == ["closed_loop-shard0000.parquet",
                                                              "closed_loop-shard0001.parquet"]
    assert row["step"] == row["total"] == 2
    assert jstore.read_metrics(handmade, spec.job_id)["key"].tolist() == ["closed_loop/pdms",
                                                                          "closed_loop/success_rate_pct"]

    # a second attempt over the same run folder reuses the finished shards and the stored run
    jstore.set_status(handmade, spec.job_id, "queued", only_from=("succeeded",))
    again = run_job(spec)
    assert json.loads(again["result_json"])["run_ids"] == result["run_ids"]
    assert len(handmade.query("SELECT * FROM eval_runs")) == 1


def test_mine_job_stores_ranked_cases(handmade: Workspace) -> None:
    spec = JobSpec("mine", params={"planner": "constant_velocity", "split": "mine", "modes": ["closed_loop"]},
                   workspace=str(handmade.root))
    row = run_job(spec)
    assert row["status"] == "succeeded", row["error"]
    result = json.loads(row["result_json"])
    assert [c["case_id"] for c in result["top_cases"]] == ["collision-blocked"]


def test_kind_params_are_checked(handmade: Workspace) -> None:
    row = run_job(JobSpec("mine", params={"planner": "constant_velocity", "split": "mine", "colour": "red"},
                          workspace=str(handmade.root)))
    assert row["status"] == "failed" and "unknown keys ['colour']" in row["error"]
    row = run_job(JobSpec("evaluate", params={"planner": "constant_velocity", "split": "nowhere"},
                          workspace=str(handmade.root)))
    assert row["status"] == "failed" and "split 'nowhere'" in row["error"]


def test_pretrain_job_trains_and_copies_its_curve(handmade: Workspace) -> None:
    tiny = {"vocab_size": 4, "offsets_s": [0.0], "epochs": 2, "batch_size": 2, "val_fraction": 0.0, "d_model": 16,
            "layers": 1, "heads": 2, "features": {"max_agents": 2, "max_lanes": 4, "lane_points": 8}}
    spec = JobSpec("pretrain", params={"split": "mine", "config": tiny}, workspace=str(handmade.root), seed=1)
    row = run_job(spec)
    assert row["status"] == "succeeded", row["error"]
    result = json.loads(row["result_json"])
    assert result["checkpoint"].endswith("model.pt")
    run_dir = handmade.root / "runs" / spec.job_id
    assert (run_dir / "last.pt").exists() and json.loads((run_dir / "config.json").read_text())["seed"] == 1
    assert row["step"] == row["total"] == 2  # 1 step per epoch (2 states, batch 2) x 2 epochs
