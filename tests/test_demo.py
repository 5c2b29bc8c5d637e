"""`worldengine-lab demo` on a small embedded world: generate, import through the nuPlan reader, summarise."""
from __future__ import annotations

from pathlib import Path

from worldengine_lab.cli import main


def test_demo_small(tmp_path: Path, capsys) -> None:
    ws = tmp_path / "ws"
    assert main(["demo", "--workspace", str(ws), "--logs", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "scenario windows from 2 logs through the nuPlan reader" in out
    # second run reuses the generated world and the import is idempotent
    assert main(["demo", "--workspace", str(ws), "--logs", "2", "--seed", "1"]) == 0
    assert main(["data", "stats", "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "scenarios:" in out and "per map" in out
