"""`worldengine-lab demo`: the World Engine loop on a small embedded world, stage by stage and resumable."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from worldengine_lab.cli import main
from worldengine_lab.reports.summary import check_summary


def test_demo_world_stage_is_reused(tmp_path: Path, capsys) -> None:
    ws = tmp_path / "ws"
    assert main(["demo", "--workspace", str(ws), "--logs", "2", "--seed", "1", "--until", "world"]) == 0
    out = capsys.readouterr().out
    assert "[world    ] done" in out and "scenario windows from 2 logs through the nuPlan reader" in out
    # a second run reuses the finished stage (its key = its settings)
    assert main(["demo", "--workspace", str(ws), "--logs", "2", "--seed", "1", "--until", "world"]) == 0
    assert "[world    ] reused" in capsys.readouterr().out
    assert main(["data", "stats", "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "scenarios:" in out and "per map" in out


@pytest.mark.slow
def test_demo_runs_the_whole_loop_on_a_tiny_world(tmp_path: Path, capsys) -> None:
    ws = tmp_path / "ws"
    report = tmp_path / "evaluation.html"
    args = ["demo", "--workspace", str(ws), "--logs", "4", "--seed", "1", "--epochs", "1", "--iterations", "1",
            "--max-scenarios", "8", "--report", str(report)]
    assert main(args) == 0
    out = capsys.readouterr().out
    names = ["world", "pretrain", "mine", "scenes", "variants", "posttrain", "evaluate:base",
             "evaluate:worldengine", "report"]
    for stage in names:
        assert f"[{stage:9s}] done" in out
    assert "World Engine results table" in out and "CL success rare" in out
    assert report.exists() and "Report provenance" in report.read_text()
    stages = json.loads((ws / "loop" / "stages.json").read_text())
    assert list(stages) == names
    summary_path = Path(stages["report"]["result"]["summary"])
    assert f"summary: {summary_path}" in out  # the path is printed at the end
    summary = json.loads(summary_path.read_text())
    check_summary(summary)  # base and worldengine, both test splits, ol_pdms / cl_success / cl_pdms with CIs
    n_rare = summary["recipes"]["base"]["test_rare"]["cl_success"]["n"]
    assert 0 < n_rare <= 8 and summary["config"]["max_scenarios"] == 8
    assert "worldengine_vs_base" in summary["deltas"] and summary["provenance"]["run_ids"]
    assert main(args) == 0  # everything is reused
    assert capsys.readouterr().out.count("reused") == len(names)
