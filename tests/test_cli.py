"""The command line: --help on every subcommand, errors as one clear line, bench prints one JSON object."""
from __future__ import annotations

import subprocess
import sys

import pytest

from worldengine_lab.cli import build_parser, main

SUBCOMMANDS = [
    [],
    ["data"],
    ["data", "synth"],
    ["data", "import"],
    ["data", "import", "nuplan"],
    ["data", "import", "av2"],
    ["data", "stats"],
    ["demo"],
    ["train"],
    ["train", "pretrain"],
    ["mine"],
    ["bench"],
]


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=lambda a: " ".join(a) or "root")
def test_help_on_every_subcommand(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: worldengine-lab" in out


def test_parser_lists_the_contract_commands() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"data", "demo", "bench"} <= set(sub.choices)


def test_library_error_is_one_line_with_exit_code_2(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["data", "import", "nuplan", str(tmp_path / "nowhere"), "--workspace", str(tmp_path / "ws")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "worldengine_lab.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "worldengine_lab" in out.stdout


@pytest.mark.parametrize("name,keys", [
    ("score", {"candidates_per_s", "tracker_candidates_per_s", "scoring_candidates_per_s"}),
    ("sim", {"agent_steps_per_s", "episodes_per_s", "batch", "agents_per_scenario"}),
    ("render", {"cpu_fps_320x180_100k", "cpu_fps_960x540_100k"}),
])
def test_bench_prints_exactly_one_json_object(name: str, keys: set[str]) -> None:
    """Each benchmark runs in a fresh interpreter (this also guards against import cycles between packages)."""
    import json

    out = subprocess.run([sys.executable, "-m", "worldengine_lab.cli", "bench", name, "--quick", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert keys | {"peak_rss_mb", "cpu_count", "torch_num_threads"} <= set(result)


def test_train_pretrain_on_an_empty_split_is_one_clear_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "pretrain", "--split", "nothing", "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nothing" in err and "worldengine-lab demo" in err
