"""JobLauncher: pick a post-training recipe, its data, a base checkpoint and hyperparameters, and launch the job.

The form is an anywidget (``job_launcher.js``). Launching is one library call,
``worldengine_lab.jobs.launch(launcher.spec())``: a ``posttrain`` :class:`~worldengine_lab.jobs.JobSpec` run as a
detached process (backend ``local``) or as a Ray driver (backend ``ray``) that outlives the kernel. Watch it with
:class:`~worldengine_lab.widgets.job_monitor.JobMonitor` (pass one as ``monitor`` and it selects every job
launched here).

Choices come from the workspace: recipes from :data:`~worldengine_lab.training.rl.RECIPES`; data = the latest
mining, an evaluation run with failure cases, or a saved view (:func:`~worldengine_lab.store.curation.views`);
base checkpoints = the ``*.pt`` files under ``<workspace>/runs`` (training state files ``last.pt`` and
``samples.pt`` left out), newest first; any other path can be typed.

Synced traits are small: names, paths, three hyperparameters, the backend, the last job id and messages. Commands
from the front end go through the ``request`` trait (``{"action": "launch" | "refresh", "seq": n}``); handlers
run inside an ``ipywidgets.Output`` and errors show in the widget's error area (``error``).

Examples:
    >>> from worldengine_lab.store import Workspace                          # doctest: +SKIP
    >>> launcher = JobLauncher(Workspace.open("workspace"))                  # doctest: +SKIP
    >>> launcher.set_state({"recipe": "rl_rare_rollouts_bwm", "iterations": 2})  # as the front end  # doctest: +SKIP
    >>> job = launcher.launch(); launcher.selection is not None              # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import anywidget
import ipywidgets
import traitlets

from worldengine_lab.errors import WorldEngineLabError
from worldengine_lab.jobs import Job, JobSpec, launch
from worldengine_lab.store import curation
from worldengine_lab.store.workspace import Workspace

from ._assets import esm
from ._guard import GuardedView, guarded

__all__ = ["JobLauncher", "list_checkpoints", "data_choices"]

logger = logging.getLogger(__name__)

_NOT_CHECKPOINTS = ("last.pt", "samples.pt")
_BACKENDS = ("local", "ray")


def list_checkpoints(ws: Workspace) -> list[str]:
    """Checkpoint files (``*.pt``) under ``<workspace>/runs``, newest first, without training state files
    (``last.pt``, ``samples.pt``)."""
    runs = Path(ws.root) / "runs"
    if not runs.is_dir():
        return []
    found = [p for p in runs.rglob("*.pt") if p.is_file() and p.name not in _NOT_CHECKPOINTS]
    found.sort(key=lambda p: (-p.stat().st_mtime, str(p)))
    return [str(p) for p in found]


def data_choices(ws: Workspace) -> list[dict[str, str]]:
    """What a post-training run can learn from: ``{"value", "label"}`` for the latest mining, each evaluation run
    with failure cases (newest first) and each saved view (``value`` is the ``failures`` selector of
    :func:`~worldengine_lab.training.posttrain_data.posttrain_data`)."""
    out = [{"value": "latest", "label": "latest mined failures"}]
    runs = ws.query("SELECT r.run_id, r.mode, r.planner_id, COUNT(f.case_id) AS n FROM eval_runs AS r JOIN "
                    "failure_cases AS f ON f.run_id = r.run_id GROUP BY r.run_id "
                    "ORDER BY r.created_at DESC, r.rowid DESC")
    out += [{"value": str(r.run_id), "label": f"run {r.run_id} ({r.mode}, {r.planner_id}, {int(r.n)} cases)"}
            for r in runs.itertuples(index=False)]
    views = curation.views(ws)
    out += [{"value": str(r.name), "label": f"view {r.name!r} ({r.kind})"} for r in views.itertuples(index=False)]
    return out


def _recipe_rows() -> list[dict[str, Any]]:
    from worldengine_lab.training.rl import RECIPES

    return [{"name": name, "objective": r.objective, "states": r.states, "data": r.data,
             "variants": bool(r.variants), "replay": bool(r.replay)} for name, r in RECIPES.items()]


class JobLauncher(GuardedView, anywidget.AnyWidget):
    """A form that launches one ``posttrain`` job per click.

    Args:
        workspace: the :class:`~worldengine_lab.store.Workspace` (or its folder) with mined failures.
        recipe: the initial recipe (default ``"rl_rare_rollouts"``).
        base: the initial base checkpoint (default: the newest ``*.pt`` under ``runs``).
        monitor: a :class:`~worldengine_lab.widgets.job_monitor.JobMonitor` to select each launched job in.
        num_cpus: CPU cores the job may use (``JobSpec.resources``).
        config: further :class:`~worldengine_lab.training.rl.PostTrainConfig` fields for every job (JSON values;
            ``sim`` as a dict); the form's iterations, finetune and lr override them.
        common_limit: at most this many common scenarios per job (default: the job kind's).
    """

    _esm = esm("job_launcher.js")
    _css = Path(__file__).parent / "job_launcher.css"

    recipes = traitlets.List(traitlets.Dict()).tag(sync=True)
    """Every recipe: ``{"name", "objective", "states", "data", "variants", "replay"}``."""
    recipe = traitlets.Unicode("rl_rare_rollouts").tag(sync=True)
    data_options = traitlets.List(traitlets.Dict()).tag(sync=True)
    """``{"value", "label"}`` per data choice (:func:`data_choices`)."""
    failures = traitlets.Unicode("latest").tag(sync=True)
    """The data: ``"latest"``, an evaluation run id or a saved view name."""
    checkpoints = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Checkpoint paths offered (:func:`list_checkpoints`)."""
    base = traitlets.Unicode("").tag(sync=True)
    """The base checkpoint path (any path may be typed)."""
    iterations = traitlets.Int(4).tag(sync=True)
    finetune = traitlets.Unicode("lora").tag(sync=True)
    """``"lora"`` or ``"full"``."""
    lr = traitlets.Float(2e-4).tag(sync=True)
    backend = traitlets.Unicode("local").tag(sync=True)
    """``"local"`` (detached process) or ``"ray"``."""
    job_id = traitlets.Unicode("").tag(sync=True)
    """The job launched last (``""`` before the first launch)."""
    request = traitlets.Dict().tag(sync=True)
    """A command from the front end: ``{"action": "launch" | "refresh", "seq": n}``."""
    status = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, workspace: Workspace | str | os.PathLike[str], recipe: str = "rl_rare_rollouts",
                 base: str | os.PathLike[str] | None = None, monitor: Any = None, num_cpus: float = 1.0,
                 config: Mapping[str, Any] | None = None, common_limit: int | None = None) -> None:
        self._depth = 0
        self._in_message = False
        self.output = ipywidgets.Output()
        if isinstance(workspace, (str, os.PathLike)):
            workspace = Workspace.open(workspace, create=False)
        if not isinstance(workspace, Workspace):
            raise WorldEngineLabError(f"JobLauncher(workspace): expected a Workspace or its folder, received "
                                      f"{type(workspace).__name__}")
        self.workspace = workspace
        self.monitor = monitor
        self.num_cpus = float(num_cpus)
        self.config = dict(config or {})
        self.common_limit = common_limit
        self._job: Job | None = None
        rows = _recipe_rows()
        if recipe not in {r["name"] for r in rows}:
            raise WorldEngineLabError(f"JobLauncher(recipe): expected one of {[r['name'] for r in rows]}, received "
                                      f"{recipe!r}")
        checkpoints = list_checkpoints(workspace)
        super().__init__(recipes=rows, recipe=recipe, data_options=data_choices(workspace), checkpoints=checkpoints,
                         base=str(base) if base is not None else (checkpoints[0] if checkpoints else ""))
        self.view = ipywidgets.VBox([self, self.output])
        self.observe(self._on_choice, names=["recipe", "finetune", "backend", "iterations", "lr"])
        self.observe(self._on_request, names=["request"])

    # -- library calls behind the buttons ---------------------------------------------------------------------
    def spec(self) -> JobSpec:
        """The :class:`~worldengine_lab.jobs.JobSpec` the form describes (checked: recipe, base file,
        hyperparameters)."""
        from worldengine_lab.jobs.kinds import posttrain_config

        base = Path(self.base).expanduser() if self.base else None
        if base is None or not base.is_file():
            raise WorldEngineLabError(f"JobLauncher.base: expected a checkpoint file (model.pt of a pretrain run), "
                                      f"received {self.base!r}; pick one of the listed checkpoints or train one "
                                      f"with `worldengine-lab train pretrain`")
        if self.backend not in _BACKENDS:
            raise WorldEngineLabError(f"JobLauncher.backend: expected one of {list(_BACKENDS)}, received "
                                      f"{self.backend!r}")
        config = {**self.config, "iterations": int(self.iterations), "finetune": self.finetune,
                  "lr": float(self.lr)}
        posttrain_config(config, self.recipe, 0)  # fail here, not in the job
        params: dict[str, Any] = {"base": str(base.resolve()), "recipe": self.recipe, "failures": self.failures,
                                  "config": config}
        if self.common_limit is not None:
            params["common_limit"] = int(self.common_limit)
        return JobSpec("posttrain", name=f"posttrain-{self.recipe}"[:128], workspace=str(self.workspace.root),
                       backend=self.backend, resources={"num_cpus": self.num_cpus}, params=params)

    def launch(self) -> Job:
        """Launch the job the form describes: ``jobs.launch(self.spec())``; return its handle."""
        from worldengine_lab.jobs.kinds import register_loop_kinds

        register_loop_kinds()
        job = launch(self.spec())
        self._job = job
        self.job_id = job.job_id
        self.status = f"launched {job.job_id} ({self.recipe} on {self.failures!r})"
        logger.info("JobLauncher: launched %s", job.job_id)
        if self.monitor is not None:
            self.monitor.refresh()
            self.monitor.select(job.job_id)
        return job

    def refresh(self) -> None:
        """Re-read the data choices and checkpoints from the workspace."""
        self.data_options = data_choices(self.workspace)
        self.checkpoints = list_checkpoints(self.workspace)
        if not self.base and self.checkpoints:
            self.base = self.checkpoints[0]
        self.status = f"{len(self.checkpoints)} checkpoint(s), {len(self.data_options)} data choice(s)"

    @property
    def selection(self) -> Job | None:
        """The job launched last (None before the first launch)."""
        if self._job is None and self.job_id:
            self._job = Job.attach(self.workspace, self.job_id)
        return self._job

    # -- handlers -------------------------------------------------------------------------------------------
    @guarded
    def _on_choice(self, change: Mapping[str, Any]) -> None:
        name, new = change["name"], change["new"]
        allowed = {"recipe": [r["name"] for r in self.recipes], "finetune": ["lora", "full"],
                   "backend": list(_BACKENDS)}.get(name)
        bad = (allowed is not None and new not in allowed) or (name == "iterations" and new < 1) or \
            (name == "lr" and not new > 0)
        if bad:
            self.set_trait(name, change["old"])
            expected = allowed if allowed is not None else ("an int >= 1" if name == "iterations" else "a number > 0")
            raise WorldEngineLabError(f"JobLauncher.{name}: expected {expected}, received {new!r}")

    @guarded
    def _on_request(self, change: Mapping[str, Any]) -> None:
        req = dict(change["new"] or {})
        if not req:
            return
        action = req.get("action")
        if action == "launch":
            self.launch()
        elif action == "refresh":
            self.refresh()
        else:
            raise WorldEngineLabError(f"JobLauncher.request: action: expected 'launch' or 'refresh', received "
                                      f"{action!r}")
