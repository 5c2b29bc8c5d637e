"""Ray round trip on one local cluster (127.0.0.1, 2 CPUs, started once per session): map_shards, and a
``backend="ray"`` job whose detached driver attaches to that cluster. Skipped when ray is not installed."""
from __future__ import annotations

import importlib.util
import time

import pytest

from worldengine_lab.jobs import JobSpec, launch, map_shards, split_shards
from worldengine_lab.jobs.selftest import sum_of_squares
from worldengine_lab.store import Workspace

# ray is not imported here: the library sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before it imports ray
pytestmark = [pytest.mark.ray,
              pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")]


def test_map_shards_on_a_loopback_cluster(ray_cluster: dict) -> None:
    import ray

    assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
    assert ray_cluster["nodes"] == ["127.0.0.1"] and ray_cluster["address"].startswith("127.0.0.1:")
    assert ray.cluster_resources()["CPU"] == 2.0
    shards = split_shards(list(range(100)), 4)
    finished = []
    out = map_shards(sum_of_squares, shards, on_result=lambda i, r: finished.append(i))
    assert out == [sum_of_squares(s) for s in shards]
    assert sorted(finished) == [0, 1, 2, 3]
    with pytest.raises(Exception, match="shard 0 of 1 failed on a Ray worker"):
        map_shards(sum_of_squares, [["not a number"]])


def test_ray_backend_jobs_succeed_and_cancel(ray_cluster: dict, ws: Workspace, record_property) -> None:
    """Two ``backend="ray"`` drivers attach to the session cluster: one finishes, one is cancelled while blocked
    (ray.init replaces the SIGTERM handler; the job's own must be back in place)."""
    def spec(**params) -> JobSpec:
        return JobSpec("selftest", params={"num_shards": 1, **params}, workspace=str(ws.root), backend="ray",
                       ray_address=ray_cluster["address"], resources={"num_cpus": 1})

    done, blocked = launch(spec(steps=4, step_s=0.0)), launch(spec(steps=2, step_s=60.0))
    assert done.wait(timeout=120) == "succeeded", done.logs(tail=80)
    assert done.result()["backend"] == "ray"
    wide = done.metrics(wide=True)
    assert wide["selftest/sum_sq"].tolist() == [float(sum(i * i for i in range(k))) for k in range(1, 5)]
    assert f"ray: attached to {ray_cluster['address']} (nodes ['127.0.0.1'])" in done.logs(tail=200)

    deadline = time.monotonic() + 120
    while "running kind" not in blocked.logs(tail=50):
        assert blocked.status() in ("queued", "running") and time.monotonic() < deadline, blocked.logs(tail=80)
        time.sleep(0.2)
    assert blocked.cancel() == "cancelled"
    record_property("cancel_ray_driver_s", round(blocked.last_cancel_s, 2))
    assert blocked.last_cancel_s < 10.0
    assert "received SIGTERM" in blocked.info()["error"]  # recorded by the job itself, not after a kill
