"""Entry of the detached job process: ``python -m worldengine_lab.jobs run --workspace W --job-id J``.

The process reads the job from the workspace store, runs it (:func:`worldengine_lab.jobs.runner.run_from_store`)
and exits with 0 (succeeded), 1 (failed), 3 (cancelled) or 4 (not started: the job was not queued). Its stdout
and stderr are the job's ``job.log``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, configure logging to stderr and run the job."""
    parser = argparse.ArgumentParser(prog="python -m worldengine_lab.jobs",
                                     description="Run one job recorded in a workspace (started by jobs.launch).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the job J of workspace W in this process",
                         description="Claim the queued job, run its kind and record the outcome in the store.")
    run.add_argument("--workspace", required=True, help="workspace folder")
    run.add_argument("--job-id", required=True, help="id of a queued job in that workspace")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..errors import WorldEngineLabError
    from .runner import EXIT_CODES, run_from_store

    try:
        return run_from_store(args.workspace, args.job_id)
    except WorldEngineLabError as exc:
        logging.getLogger("worldengine_lab.jobs").error("job %s could not run: %s", args.job_id, exc)
        return EXIT_CODES["failed"]


if __name__ == "__main__":
    sys.exit(main())
