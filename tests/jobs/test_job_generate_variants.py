"""The ``generate_variants`` job kind: parameters checked in this process, and one detached local job on a tiny
workspace (one log of the embedded world, failures mined with the constant-velocity planner)."""
from __future__ import annotations

import json

import pytest

from worldengine_lab.jobs import JobSpec, available_kinds, launch, run_job, unregister_kind
from worldengine_lab.jobs.kinds import register_loop_kinds
from worldengine_lab.store import Workspace
from worldengine_lab.variants import list_variants


@pytest.fixture(autouse=True)
def kinds_registered():
    had = "generate_variants" in available_kinds()
    register_loop_kinds()
    yield
    if not had:
        unregister_kind("generate_variants")


def test_generate_variants_params_are_checked(ws: Workspace) -> None:
    row = run_job(JobSpec("generate_variants", params={"method": "parametric", "colour": "red"},
                          workspace=str(ws.root)))
    assert row["status"] == "failed" and "unknown keys ['colour']" in row["error"]
    row = run_job(JobSpec("generate_variants", params={"method": "magic"}, workspace=str(ws.root)))
    assert row["status"] == "failed" and "expected one of ['parametric', 'bwm', 'both']" in row["error"]
    row = run_job(JobSpec("generate_variants", params={"per_failure": 0}, workspace=str(ws.root)))
    assert row["status"] == "failed" and "per_failure" in row["error"]
    row = run_job(JobSpec("generate_variants", params={}, workspace=str(ws.root)))
    assert row["status"] == "failed" and "no failure cases" in row["error"]


def test_generate_variants_job_runs_detached_and_stores_variants(ws: Workspace) -> None:
    from worldengine_lab.demo import embedded_world, import_embedded_world
    from worldengine_lab.mining import WE_CLOSED_LOOP, EvalConfig, mine
    from worldengine_lab.planners import load_planner

    world = embedded_world(ws, seed=0, num_logs=1)
    import_embedded_world(ws, world)
    scenarios = list(ws.scenarios().head(6))
    result = mine(ws, load_planner("constant_velocity"), scenarios=scenarios, modes=["closed_loop"],
                  config=EvalConfig(sim=WE_CLOSED_LOOP))
    assert len(result.cases) >= 1
    job = launch(JobSpec("generate_variants", workspace=str(ws.root), seed=3,
                         params={"method": "parametric", "per_failure": 1, "limit": 2, "keep_all": True,
                                 "solvable_parents_only": False}))
    status = job.wait(timeout=240)
    info = job.info()
    assert status == "succeeded", f"{info['error']}\n{job.logs()}"
    out = json.loads(info["result_json"])
    stored = list_variants(ws)
    assert out["method"] == "parametric" and out["stored"] == stored["variant_id"].tolist()
    assert out["num_candidates"] == len(out["stored"]) >= 1
    assert (stored["seed"] == 3).all()
