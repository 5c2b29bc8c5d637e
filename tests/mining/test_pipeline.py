"""The mining job end to end: a known collision is mined as exactly that failure; planner specs; the CLI; bench."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Any, Mapping

import pytest

from worldengine_lab.cli import main
from worldengine_lab.datatypes import Scenario
from worldengine_lab.errors import MissingFileError, ShapeError, WorkspaceError, WorldEngineLabError
from worldengine_lab.mining import (
    EvalConfig, MiningResult, load_eval_results, load_failure_cases, mine,
)
from worldengine_lab.planners import ConstantVelocityPlanner, load_planner
from worldengine_lab.scenarios import register_loader, unregister_loader
from worldengine_lab.store import Workspace
from worldengine_lab.testing import make_scenario

SOURCE = "mining-test"


def stopped_vehicle_ahead(scenario_id: str = "blocked", gap_m: float = 25.0) -> Scenario:
    """Ego at 10 m/s in lane 1 with a vehicle stopped ``gap_m`` ahead of the ego's "now" position, in its lane;
    a constant-velocity ego rear-ends it about 2 s after "now"."""
    s = make_scenario(num_agents=2, seed=0)
    xy, vel = s.agents.xy.copy(), s.agents.vel_xy.copy()
    xy[:, 1, 0] = xy[s.t0, 0, 0] + gap_m
    vel[:, 1] = 0.0
    return dataclasses.replace(s, scenario_id=scenario_id, agents=dataclasses.replace(s.agents, xy=xy, vel_xy=vel))


def clean(scenario_id: str = "clean") -> Scenario:
    """Ego following a lead vehicle at the same speed 20 m ahead: nothing to hit."""
    return dataclasses.replace(make_scenario(num_agents=2, seed=1), scenario_id=scenario_id)


BUILDERS = {"blocked": stopped_vehicle_ahead, "clean": clean}


def _load(row: Mapping[str, Any]) -> Scenario:
    return BUILDERS[row["locator"]](row["scenario_id"])


@pytest.fixture
def handmade(tmp_path):
    """A workspace whose split 'mine' holds the blocked (tagged rare_stalled_vehicle) and the clean scenario."""
    register_loader(SOURCE, _load)
    ws = Workspace.open(tmp_path / "ws")
    ws.add_scenarios(
        [{"scenario_id": sid, "source": SOURCE, "path": "/handmade", "locator": sid, "log_id": f"log-{sid}",
          "map_name": "test-straight", "start_time_s": 0.0, "duration_s": 10.0, "num_steps": 101, "t0": 20,
          "num_agents": 2, "window": {"history_s": 2.0, "future_s": 8.0, "dt": 0.1}} for sid in BUILDERS],
        tags={"blocked": ["rare_stalled_vehicle"], "clean": ["following_lane_with_lead"]},
        import_meta={"source": SOURCE, "path": "/handmade"})
    ws.set_split(list(BUILDERS), "mine")
    yield ws
    ws.close()
    unregister_loader(SOURCE)


# -- (a) the pipeline -------------------------------------------------------------------------------------------
def test_known_collision_is_mined_as_exactly_that_failure(handmade: Workspace) -> None:
    res = mine(handmade, ConstantVelocityPlanner(), split="mine", config=EvalConfig(batch_size=2))
    assert isinstance(res, MiningResult) and res.modes == ("open_loop", "closed_loop")
    closed = res.results["closed_loop"].set_index("scenario_id")
    assert closed.loc["blocked", "failure_type"] == "collision"
    assert closed.loc["blocked", "collided_with"] == "vehicle"
    assert closed.loc["clean", "failure_type"] == "none" and bool(closed.loc["clean", "success"])
    f = res.failures[res.failures["mode"] == "closed_loop"]
    assert f["scenario_id"].tolist() == ["blocked"] and f["rule"].tolist() == ["collision"]
    assert "with a vehicle" in f["reason"].iloc[0]
    assert not ((res.failures["scenario_id"] == "clean") & res.failures["rule"].isin(["collision", "off_road"])).any()
    cases = res.cases[res.cases["mode"] == "closed_loop"]
    assert len(cases) == 1 and cases["case_id"].iloc[0] == "collision-blocked" and cases["rank"].iloc[0] == 1
    # summaries, counts and rare tags
    assert res.summaries["closed_loop"]["success_rate_pct"] == 50.0
    assert res.summaries["closed_loop"]["num_scenarios"] == 2.0
    assert res.counts["count"].sum() == len(res.failures)
    rare = res.rare_tags[res.rare_tags["mode"] == "closed_loop"].set_index("tag")
    assert rare.loc["rare_stalled_vehicle"].tolist() == ["closed_loop", 1, 1]
    # what was stored
    stored = load_failure_cases(handmade, res.run_ids["closed_loop"])
    assert stored["case_id"].tolist() == ["collision-blocked"] and stored["tag"].tolist() == ["rare_stalled_vehicle"]
    back = load_eval_results(handmade, res.run_ids["closed_loop"])
    assert sorted(back["scenario_id"]) == ["blocked", "clean"] and back.attrs["run"]["description"] == \
        "split=mine, 2 scenarios"
    # the report and its JSON form
    text = res.report()
    for part in ("closed_loop", "open_loop", "collision-blocked", "rare_stalled_vehicle", "1/1", "success %"):
        assert part in text, part
    json.dumps(res.to_dict())


def test_scenarios_outside_the_catalog_are_mined_with_unknown_context(tmp_path) -> None:
    with Workspace.open(tmp_path / "ws") as ws:
        res = mine(ws, ConstantVelocityPlanner(), scenarios=[stopped_vehicle_ahead(), clean()],
                   modes=["closed_loop"])
    assert res.modes == ("closed_loop",)
    assert res.failures["scenario_id"].tolist() == ["blocked"]
    assert res.failures["map_context"].tolist() == ["unknown"] and res.failures["tag"].tolist() == ["untagged"]
    assert res.cases["case_id"].tolist() == ["collision-blocked"] and len(res.rare_tags) == 0
    assert "(no rare event tags in this set)" in res.report()


def test_clean_scenario_has_no_failures(tmp_path) -> None:
    with Workspace.open(tmp_path / "ws") as ws:
        res = mine(ws, ConstantVelocityPlanner(), scenarios=[clean()], modes=("closed_loop",))
    assert len(res.failures) == 0 and len(res.cases) == 0 and len(res.counts) == 0
    assert res.summaries["closed_loop"]["success_rate_pct"] == 100.0
    assert "(none)" in res.report()


def test_empty_split_and_bad_arguments(handmade: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="worldengine-lab demo") as exc:
        mine(handmade, ConstantVelocityPlanner(), split="test_common")
    assert "mine 2" in str(exc.value)  # lists the splits that exist
    with pytest.raises(ShapeError, match="modes"):
        mine(handmade, ConstantVelocityPlanner(), split="mine", modes=("sideways",))
    with pytest.raises(ShapeError, match="more than once"):
        mine(handmade, ConstantVelocityPlanner(), scenarios=[clean(), clean()])


# -- (b) planner specs ------------------------------------------------------------------------------------------
def test_load_planner_specs(tmp_path) -> None:
    from worldengine_lab.planners import LogReplayPlanner, PDMClosedPlanner

    for spec in ("expert", "pdm_closed"):
        for tracking in ("perfect", "lqr"):
            p = load_planner(spec, tracking=tracking)
            assert isinstance(p, PDMClosedPlanner) and p.config.tracking == tracking
    assert load_planner("expert").config.tracking == "perfect"
    assert isinstance(load_planner("constant_velocity"), ConstantVelocityPlanner)
    assert isinstance(load_planner("log_replay"), LogReplayPlanner)
    with pytest.raises(WorldEngineLabError, match="unknown planner 'nope'.*constant_velocity.*log_replay.*pt"):
        load_planner("nope")
    with pytest.raises(MissingFileError, match="missing.pt"):
        load_planner(str(tmp_path / "missing.pt"))
    with pytest.raises(WorldEngineLabError, match="tracking"):
        load_planner("expert", tracking="teleport")  # type: ignore[arg-type]


def test_load_planner_checkpoint(tmp_path) -> None:
    import torch

    from worldengine_lab.planners import (FeatureConfig, LearnedPlanner, ModelConfig, TrajectoryVocabulary,
                                          VocabularyScorer, save_checkpoint)

    t = torch.arange(1, 41, dtype=torch.float64) * 0.1
    v = torch.tensor([0.0, 5.0, 10.0, 15.0], dtype=torch.float64)[:, None]
    vocab = TrajectoryVocabulary(torch.stack([v * t, torch.zeros_like(v * t), torch.zeros_like(v * t)], -1))
    features = FeatureConfig(max_agents=4, history_steps=2, max_lanes=4, lane_points=8)
    torch.manual_seed(0)
    model = VocabularyScorer(ModelConfig.for_features(features, len(vocab), d_model=16, heads=2, layers=1),
                             vocab.trajectories)
    path = save_checkpoint(tmp_path / "tiny.pt", model, vocab, features)
    p = load_planner(str(path))
    assert isinstance(p, LearnedPlanner) and p.planner_id == "learned:tiny"


def test_lazy_exports_keep_mining_import_light() -> None:
    code = ("import sys, worldengine_lab.mining as m; "
            "assert 'torch' not in sys.modules; "
            "import worldengine_lab.planners as p; "
            "assert {'mine', 'MiningResult', 'evaluate_closed_loop', 'evaluate_open_loop', 'summarize', 'EvalConfig', "
            "'WE_CLOSED_LOOP', 'score_rollout'} <= set(m.__all__); "
            "assert 'load_planner' in p.__all__ and callable(m.mine) and callable(p.load_planner)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


# -- (c) the command line and the benchmark ---------------------------------------------------------------------
def test_mine_help(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["mine", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--planner", "--split", "--modes", "--agents", "--tracking", "--batch-size", "--percentile",
                 "--limit", "--seed", "--json", "--workspace"):
        assert flag in out, flag


def test_cli_mine_on_a_handmade_workspace(handmade: Workspace, capsys) -> None:
    root = str(handmade.root)
    assert main(["mine", "--planner", "constant_velocity", "--split", "mine", "--workspace", root]) == 0
    out = capsys.readouterr().out
    assert "mining constant_velocity on split=mine, 2 scenarios" in out and "collision-blocked" in out
    assert main(["mine", "--planner", "constant_velocity", "--split", "mine", "--modes", "closed_loop",
                 "--agents", "reactive", "--tracking", "lqr", "--json", "--workspace", root]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["summaries"]) == ["closed_loop"] and data["summaries"]["closed_loop"]["num_scenarios"] == 2
    assert set(data) >= {"run_ids", "summaries", "counts", "rare_tags", "top_cases"}
    assert [c["case_id"] for c in data["top_cases"]] == ["collision-blocked"]
    assert main(["mine", "--planner", "log_replay", "--split", "mine", "--modes", "open_loop", "--limit", "1",
                 "--json", "--workspace", root]) == 0
    assert json.loads(capsys.readouterr().out)["summaries"]["open_loop"]["num_scenarios"] == 1
    assert main(["mine", "--planner", "constant_velocity", "--split", "test_common", "--workspace", root]) == 2
    assert "worldengine-lab demo" in capsys.readouterr().err
    assert main(["mine", "--planner", "nope", "--split", "mine", "--workspace", root]) == 2
    assert "unknown planner 'nope'" in capsys.readouterr().err


def test_cli_mine_expert_on_the_embedded_world(tmp_path, capsys) -> None:
    ws = str(tmp_path / "ws")
    assert main(["demo", "--workspace", ws, "--logs", "1", "--seed", "1", "--until", "world"]) == 0
    split = next(iter(Workspace.open(ws).stats()["by_split"]))
    capsys.readouterr()
    assert main(["mine", "--planner", "expert", "--split", split, "--modes", "closed_loop", "--limit", "1",
                 "--json", "--workspace", ws]) == 0
    s = json.loads(capsys.readouterr().out)["summaries"]["closed_loop"]
    assert s["num_scenarios"] == 1 and 0.0 <= s["pdms"] <= 100.0 and 0.0 <= s["success_rate_pct"] <= 100.0


def test_bench_mine_quick_json() -> None:
    out = subprocess.run([sys.executable, "-m", "worldengine_lab.cli", "bench", "mine", "--quick", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    for key in ("scenarios_per_s_open_loop", "scenarios_per_s_closed_loop", "num_scenarios", "batch_size",
                "peak_rss_mb", "setup_s", "cpu_count"):
        assert isinstance(r[key], (int, float)) and r[key] > 0, key
