"""Build a planner from a short spec string (the command line's ``--planner``).

Specs:

* ``"expert"`` / ``"pdm_closed"``: the PDM-Closed expert. Its proposals are rolled out for scoring with the
  same ``tracking`` the simulator executes plans with (``"perfect"`` in World Engine's closed loop, ``"lqr"``
  when the simulator drives through the tracker), so the expert picks what will actually be driven;
* ``"constant_velocity"``: straight ahead at the current speed;
* ``"log_replay"``: the logged ego trajectory;
* a path to a checkpoint file (``*.pt``, written by :func:`~worldengine_lab.planners.save_checkpoint`): the
  learned vocabulary-scoring planner.

Examples:
    >>> load_planner("constant_velocity").planner_id
    'constant_velocity'
    >>> load_planner("expert", tracking="perfect").config.tracking
    'perfect'
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ..errors import MissingFileError, WorldEngineLabError
from .base import Planner

__all__ = ["PLANNER_SPECS", "load_planner"]

PLANNER_SPECS: tuple[str, ...] = ("expert", "pdm_closed", "constant_velocity", "log_replay")
"""The named planner specs (a ``*.pt`` checkpoint path is accepted too)."""

_TRACKINGS = ("lqr", "perfect")


def load_planner(spec: str | os.PathLike[str], tracking: Literal["lqr", "perfect"] = "perfect") -> Planner:
    """The planner named by ``spec``.

    Args:
        spec: one of :data:`PLANNER_SPECS`, or the path of a learned-planner checkpoint (``*.pt``).
        tracking: how the simulator executes plans (``SimConfig.tracking``): ``"perfect"`` or ``"lqr"``. Only
            the expert uses it, to score its proposals the way they will be executed.
    Returns:
        A ready :class:`~worldengine_lab.planners.Planner`.
    Raises:
        WorldEngineLabError: unknown spec or tracking (the message lists the choices).
        MissingFileError: ``spec`` looks like a checkpoint path and the file does not exist.
    """
    if tracking not in _TRACKINGS:
        raise WorldEngineLabError(f"load_planner(tracking): expected one of {list(_TRACKINGS)}, received "
                                  f"{tracking!r}; pass the simulator's SimConfig.tracking")
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise WorldEngineLabError(f"load_planner(spec): expected a non-empty str (one of {list(PLANNER_SPECS)} or "
                                  f"a *.pt checkpoint path), received {spec!r}")
    name = str(spec).strip()
    if name in ("expert", "pdm_closed"):
        from .pdm_closed import PDMClosedConfig, PDMClosedPlanner

        return PDMClosedPlanner(PDMClosedConfig(tracking=tracking))
    if name == "constant_velocity":
        from .baselines import ConstantVelocityPlanner

        return ConstantVelocityPlanner()
    if name == "log_replay":
        from .baselines import LogReplayPlanner

        return LogReplayPlanner()
    path = Path(name).expanduser()
    if path.suffix == ".pt" or path.is_file():
        if not path.is_file():
            raise MissingFileError(f"load_planner(spec): expected a checkpoint file at {str(path)!r}, found none; "
                                   f"check the path (checkpoints are written by planners.save_checkpoint)")
        from .learned import LearnedPlanner

        return LearnedPlanner.from_checkpoint(path)
    raise WorldEngineLabError(f"load_planner(spec): unknown planner {name!r}; expected one of "
                              f"{list(PLANNER_SPECS)} or the path of a learned-planner checkpoint (*.pt)")
