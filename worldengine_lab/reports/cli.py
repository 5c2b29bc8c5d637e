"""``worldengine-lab report``: run a report notebook and write standalone HTML."""
from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_report_parser", "run_report_command"]


def add_report_parser(sub: Any) -> None:
    """Add the ``report`` subcommand to the top-level subparsers."""
    rep = sub.add_parser(
        "report", help="run a parameterised report notebook (papermill) and export standalone HTML",
        description="Run report NAME with --param key=value (values parsed as YAML scalars: 3, 0.5, true, "
                    "[a, b]) and write --out FILE.html plus the executed notebook beside it. Unknown parameters "
                    "are an error. --list shows the reports; --help-params shows one report's parameters.")
    rep.add_argument("name", nargs="?", help="report name (see --list) or a path to a .ipynb")
    rep.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE", help="a parameter value")
    rep.add_argument("--out", default=None, help="HTML file to write (default: reports/<name>.html)")
    rep.add_argument("--list", action="store_true", help="list the report templates and exit")
    rep.add_argument("--help-params", action="store_true", help="print the report's parameters and exit")
    rep.add_argument("--workspace", default=None, help="workspace folder (default: $WORLDENGINE_LAB_WORKSPACE "
                                                       "or ./workspace)")


def _parse(pairs: list[str]) -> dict[str, Any]:
    import yaml

    from ..errors import DataFormatError

    out: dict[str, Any] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise DataFormatError(f"--param {p!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def run_report_command(args: argparse.Namespace) -> int:
    """Run the parsed ``report`` command; returns the exit code."""
    from ..artifacts import resolve_workspace
    from . import runner as report_run

    if args.list:
        for name in report_run.list_reports():
            print(name)
        return 0
    if not args.name:
        print("worldengine-lab report: give a report NAME (see --list)")
        return 2
    if args.help_params:
        print(json.dumps(report_run.inspect(args.name), indent=2))
        return 0
    out = args.out or f"reports/{args.name}.html"
    result = report_run.run(args.name, _parse(args.param), out, workspace=resolve_workspace(args.workspace))
    print(f"report {args.name}: {result.html} (executed notebook {result.notebook})")
    return 0
