"""JobSpec, the jobs tables, the kind registry and the in-process runner (no subprocesses)."""
from __future__ import annotations

import dataclasses
import os
import re
import sqlite3

import pytest

from worldengine_lab.artifacts import utc_now_iso
from worldengine_lab.datatypes.job import JobSpec
from worldengine_lab.errors import ScenarioValidationError, WorldEngineLabError
from worldengine_lab.jobs import (
    JOBS_DDL, Job, available_kinds, detect_orphans, ensure_job_tables, launch, map_local, register_kind, run_job,
    split_shards, unregister_kind,
)
from worldengine_lab.jobs import store as jstore
from worldengine_lab.jobs._process import process_start_time
from worldengine_lab.jobs.selftest import expected_loss
from worldengine_lab.store import Workspace
from worldengine_lab.store.schema import split_statements

T0 = "2025-01-31T12:00:00.000+00:00"


def test_spec_round_trips_and_derives_a_stable_id(tmp_path) -> None:
    spec = JobSpec("mine", params={"planner": "expert", "split": "mine"}, workspace=str(tmp_path), seed=3,
                   resources={"num_cpus": 2}, created_at=T0)
    assert re.fullmatch(r"job-20250131T120000-[0-9a-f]{8}", spec.job_id)
    again = JobSpec.from_json(spec.to_json())
    assert again == spec and again.job_id == spec.job_id
    assert spec.resources == {"num_cpus": 2.0} and spec.name == "mine"
    assert dataclasses.replace(spec, seed=4).job_id != spec.job_id  # content is part of the id
    assert dataclasses.replace(spec, created_at="").job_id != spec.job_id  # so is the creation time


def test_spec_copies_params_and_resolves_the_workspace(tmp_path, monkeypatch) -> None:
    params = {"config": {"epochs": 1}}
    spec = JobSpec("pretrain", params=params)
    params["config"]["epochs"] = 99
    assert spec.params == {"config": {"epochs": 1}}
    monkeypatch.setenv("WORLDENGINE_LAB_WORKSPACE", str(tmp_path / "w"))
    assert JobSpec("selftest").workspace == str(tmp_path / "w")


@pytest.mark.parametrize("kwargs,field", [
    ({"kind": "Bad Kind"}, "kind"),
    ({"kind": "mine", "backend": "slurm"}, "backend"),
    ({"kind": "mine", "params": {"x": object()}}, "params"),
    ({"kind": "mine", "params": {"x": float("nan")}}, "params"),
    ({"kind": "mine", "resources": {"num_cpus": 0}}, "num_cpus"),
    ({"kind": "mine", "resources": {"gpus": 1, "num_cpus": 1}}, "resources"),
    ({"kind": "mine", "seed": 1.5}, "seed"),
    ({"kind": "mine", "ray_address": ""}, "ray_address"),
])
def test_spec_rejects_bad_fields_with_the_field_named(kwargs, field, tmp_path) -> None:
    with pytest.raises(ScenarioValidationError, match=field):
        JobSpec(workspace=str(tmp_path), **kwargs)


def test_ddl_is_idempotent_and_splits_into_statements(ws: Workspace) -> None:
    ensure_job_tables(ws)
    ensure_job_tables(ws)
    with ws.transaction() as conn:  # what the migration will do on a workspace where the tables exist already
        for stmt in split_statements(JOBS_DDL):
            conn.execute(stmt)
    tables = set(ws.query("SELECT name FROM sqlite_master WHERE type = 'table'")["name"])
    assert {"jobs", "job_metrics", "job_events"} <= tables
    assert ws.schema_version == Workspace.open(ws.root).schema_version  # the schema version is not touched


def test_status_changes_are_compare_and_set(ws: Workspace) -> None:
    spec = JobSpec("selftest", workspace=str(ws.root))
    jstore.insert_job(ws, spec, str(ws.root / "runs" / spec.job_id))
    with pytest.raises(WorldEngineLabError, match="already exists"):
        jstore.insert_job(ws, spec, "x")
    assert jstore.set_status(ws, spec.job_id, "running", only_from=("queued",))
    assert jstore.set_status(ws, spec.job_id, "succeeded")
    assert not jstore.set_status(ws, spec.job_id, "failed")  # a finished job is never overwritten
    row = jstore.require_job(ws, spec.job_id)
    assert row["status"] == "succeeded" and row["finished_at"]
    with pytest.raises(sqlite3.IntegrityError):  # the CHECK constraint guards the column itself
        with ws.transaction() as conn:
            conn.execute("UPDATE jobs SET status = 'exploded' WHERE job_id = ?", (spec.job_id,))
    assert jstore.read_events(ws, spec.job_id)["event"].tolist() == ["launched", "running", "succeeded"]


def test_metrics_replace_a_replayed_step(ws: Workspace) -> None:
    spec = JobSpec("selftest", workspace=str(ws.root))
    jstore.insert_job(ws, spec, "r")
    jstore.log_metrics(ws, spec.job_id, 1, {"a": 1.0, "b": float("inf")})
    jstore.log_metrics(ws, spec.job_id, 1, {"a": 2.0})
    m = jstore.read_metrics(ws, spec.job_id)
    assert m[["step", "key"]].values.tolist() == [[1, "a"], [1, "b"]]
    assert m["value"].iloc[0] == 2.0 and m["value"].isna().iloc[1]  # non-finite values are stored as NULL


def test_orphans_are_found_by_pid_and_start_time(ws: Workspace) -> None:
    """A live pid with the wrong start time is a reused pid: the job is lost. The same pid with its real start
    time is alive. A job on another host is lost only once its heartbeat is stale."""
    me = os.getpid()
    specs = [JobSpec("selftest", name=f"j{i}", workspace=str(ws.root)) for i in range(4)]
    for s in specs:
        jstore.insert_job(ws, s, str(ws.root / "runs" / s.job_id))
        jstore.set_status(ws, s.job_id, "running", only_from=("queued",), host=jstore.this_host(), pid=me)
    jstore.update_job(ws, specs[0].job_id, pid_started_at=process_start_time(me) - 1000.0)
    jstore.update_job(ws, specs[1].job_id, pid_started_at=process_start_time(me))
    jstore.update_job(ws, specs[2].job_id, host="elsewhere", heartbeat_at="2000-01-01T00:00:00.000+00:00")
    jstore.update_job(ws, specs[3].job_id, host="elsewhere", heartbeat_at=utc_now_iso())
    never = JobSpec("selftest", name="never", workspace=str(ws.root), created_at="2000-01-01T00:00:00.000+00:00")
    jstore.insert_job(ws, never, "r")  # queued long ago, no process ever recorded
    lost = detect_orphans(ws)
    assert sorted(lost) == sorted([specs[0].job_id, specs[2].job_id, never.job_id])
    assert "no process was started" in jstore.require_job(ws, never.job_id)["error"]
    row = jstore.require_job(ws, specs[0].job_id)
    assert row["status"] == "failed" and row["error"].startswith(f"process {me} exited without reporting (killed?)")
    assert "no heartbeat from host elsewhere" in jstore.require_job(ws, specs[2].job_id)["error"]
    assert Job.attach(ws, specs[1].job_id).status() == "running"
    assert Job.attach(ws, specs[3].job_id).status() == "running"


def test_pending_kinds_fail_clearly_and_write_nothing(ws: Workspace, monkeypatch) -> None:
    from worldengine_lab.jobs import registry

    assert {"pretrain", "mine", "evaluate", "posttrain", "generate_variants", "selftest"} <= set(available_kinds())
    monkeypatch.setitem(registry.PENDING_KINDS, "render_scenes", "scene rendering registers it")
    with pytest.raises(WorldEngineLabError, match="kind 'render_scenes' is not available yet"):
        launch(JobSpec("render_scenes", workspace=str(ws.root)))
    with pytest.raises(WorldEngineLabError, match="Unknown job kind 'nonesuch'"):
        launch(JobSpec("nonesuch", workspace=str(ws.root)))
    assert len(jstore.list_job_rows(ws)) == 0


def test_lambda_kinds_run_in_process_but_cannot_launch(ws: Workspace) -> None:
    register_kind("adhoc_test", lambda ctx: {"twice": 2 * ctx.params["x"]})
    try:
        with pytest.raises(WorldEngineLabError, match="another process cannot import"):
            launch(JobSpec("adhoc_test", params={"x": 1}, workspace=str(ws.root)))
        row = run_job(JobSpec("adhoc_test", params={"x": 21}, workspace=str(ws.root)))
        assert row["status"] == "succeeded" and row["result_json"] == '{"twice": 42}'
    finally:
        unregister_kind("adhoc_test")


def test_selftest_in_process_succeeds_then_fails_with_the_error(ws: Workspace) -> None:
    ok = run_job(JobSpec("selftest", params={"steps": 6, "step_s": 0.0}, workspace=str(ws.root)))
    assert ok["status"] == "succeeded" and ok["step"] == 6 and ok["total"] == 6
    curve = jstore.read_metrics(ws, ok["job_id"], keys=["selftest/loss"])
    assert curve["step"].tolist() == list(range(1, 7))
    assert curve["value"].tolist() == pytest.approx([expected_loss(k) for k in range(1, 7)])
    bad = run_job(JobSpec("selftest", params={"steps": 6, "step_s": 0.0, "fail_at": 4}, workspace=str(ws.root)))
    assert bad["status"] == "failed" and "RuntimeError: selftest: failing at step 4" in bad["error"]
    assert bad["step"] == 3  # progress stopped at the last finished step


def test_shards_are_contiguous_and_cover_everything() -> None:
    items = list(range(10))
    for n in (1, 3, 4, 10, 20):
        shards = split_shards(items, n)
        assert sum(shards, []) == items and all(shards) and len(shards) == min(n, 10)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert split_shards(items, shard_size=4) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    seen = []
    assert map_local(sum, [[1], [2, 3]], on_result=lambda i, r: seen.append((i, r))) == [1, 5]
    assert seen == [(0, 1), (1, 5)]
