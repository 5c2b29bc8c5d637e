"""Which scenarios a post-training run learns from, chosen from the workspace in one call.

:func:`posttrain_data` returns the :class:`~worldengine_lab.training.rl.PostTrainData` of a run:

* **rare**: the scenarios of mined failure cases (every window of each case: its ``members``), or the scenarios
  a saved view selects;
* **common**: scenarios of ``common_split`` that no failure case of those runs touches, a seeded sample of at
  most ``common_limit`` (replay, and the ``rl_common_logs`` recipe);
* **variants**: the stored variants (:func:`~worldengine_lab.variants.store.list_variants`) whose parent is a
  rare scenario, as their edited scenarios.

``failures`` picks the failure cases:

* ``"latest"``: the latest mining, i.e. the newest evaluation run that has failure cases, together with the
  newest run of every other mode of the same planner and scenario set (``mining.mine`` stores one run per mode);
* an evaluation run id (``mining.eval_runs(ws)``): that run's cases;
* a saved view name (``store.views(ws)``): the scenarios the view selects now (a ``'failures'`` view with every
  window of each case). A run id wins over a view of the same name.

:func:`select_posttrain_data` does the choosing only and returns the ids as a :class:`PostTrainSelection`
(JSON-able, so a job keeps the same data when it resumes, whatever was mined meanwhile);
:meth:`PostTrainSelection.load` reads the scenarios.

Examples:
    >>> from worldengine_lab.store import Workspace            # doctest: +SKIP
    >>> data = posttrain_data(Workspace.open("workspace"), failures="latest", common_limit=64)  # doctest: +SKIP
    >>> len(data.rare), len(data.common), len(data.variants)   # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..datatypes import Scenario
from ..errors import WorkspaceError
from ..store.workspace import Workspace

__all__ = ["PostTrainSelection", "select_posttrain_data", "posttrain_data", "latest_failure_runs", "selection_frame"]

logger = logging.getLogger(__name__)

_MINE_HINT = ("run `worldengine-lab mine --planner CHECKPOINT --split mine` (or mining.mine(ws, planner, "
              "split='mine')) first")


@dataclass(frozen=True)
class PostTrainSelection:
    """The scenario ids of a post-training run and where they came from.

    Attributes:
        rare_ids: failure scenarios (real logs), in case-rank order, each once.
        common_ids: ordinary scenarios of ``common_split`` (no failure case of ``run_ids`` touches them).
        variant_ids: stored variants whose parent is in ``rare_ids``.
        failures: the selector as given (``"latest"``, a run id or a saved view name).
        run_ids: the evaluation runs whose failure cases were read (empty for a ``'scenarios'`` view).
        view: the saved view's name when ``failures`` named one, else ``""``.
        common_split: the split ``common_ids`` were drawn from (``""`` for none).
        seed: seed of the common sample.
    """

    rare_ids: tuple[str, ...]
    common_ids: tuple[str, ...] = ()
    variant_ids: tuple[str, ...] = ()
    failures: str = "latest"
    run_ids: tuple[str, ...] = ()
    view: str = ""
    common_split: str = ""
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON data (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> "PostTrainSelection":
        """The selection of :meth:`to_dict`."""
        d = dict(data)
        for key in ("rare_ids", "common_ids", "variant_ids", "run_ids"):
            d[key] = tuple(str(x) for x in d.get(key, ()))
        return PostTrainSelection(**d)

    def summary(self) -> str:
        """One line: counts and the source of the failures."""
        src = f"view {self.view!r}" if self.view else (f"runs {', '.join(self.run_ids)}" if self.run_ids else
                                                       repr(self.failures))
        return (f"{len(self.rare_ids)} rare (from {src}), {len(self.common_ids)} common"
                f"{f' of {self.common_split!r}' if self.common_split else ''}, {len(self.variant_ids)} variants")

    def load(self, ws: Workspace) -> Any:
        """Read the scenarios: a :class:`~worldengine_lab.training.rl.PostTrainData`.

        Raises:
            WorkspaceError: a rare or common id is no longer in the catalog, or a variant is not stored.
        """
        from ..variants.store import load_variant
        from .rl import PostTrainData

        rare = _load_catalogued(ws, self.rare_ids, "rare")
        common = _load_catalogued(ws, self.common_ids, "common")
        variants = tuple(load_variant(ws, vid).scenario for vid in self.variant_ids)
        return PostTrainData(rare=rare, common=common, variants=variants)


# -- choosing -------------------------------------------------------------------------------------------------
def latest_failure_runs(ws: Workspace) -> list[str]:
    """Run ids of the latest mining: the newest evaluation run with failure cases, plus the newest run of each
    other mode with the same planner and description (the scenario set) that has cases. Empty when nothing
    was mined."""
    runs = ws.query("SELECT r.run_id, r.planner_id, r.mode, r.description FROM eval_runs AS r WHERE EXISTS "
                    "(SELECT 1 FROM failure_cases AS f WHERE f.run_id = r.run_id) "
                    "ORDER BY r.created_at DESC, r.rowid DESC")
    if not len(runs):
        return []
    top = runs.iloc[0]
    same = runs[(runs["planner_id"] == top["planner_id"]) & (runs["description"] == top["description"])]
    return same.drop_duplicates("mode")["run_id"].astype(str).tolist()


def _case_ids(ws: Workspace, run_ids: Sequence[str]) -> list[str]:
    """Scenario ids of every window of every failure case of ``run_ids`` (by run, then rank), each once."""
    from ..mining.store import load_failure_cases

    ids: list[str] = []
    for run in run_ids:
        cases = load_failure_cases(ws, run)
        for rep, members in zip(cases["scenario_id"], cases["members"]):
            ids.append(str(rep))
            ids.extend(str(m) for m in members)
    return list(dict.fromkeys(ids))


def _is_run(ws: Workspace, name: str) -> bool:
    return bool(len(ws.query("SELECT 1 FROM eval_runs WHERE run_id = ?", (name,))))


def _failure_source(ws: Workspace, failures: str) -> tuple[list[str], list[str], str, list[str]]:
    """(rare ids, run ids, view name, ids to keep out of the common sample) of a ``failures`` selector."""
    from ..store import curation

    where = f"posttrain_data(failures={failures!r})"
    if not isinstance(failures, str) or not failures.strip():
        raise WorkspaceError(f"posttrain_data(failures): expected 'latest', an evaluation run id or a saved view "
                             f"name, received {failures!r}")
    if failures == "latest":
        runs = latest_failure_runs(ws)
        if not runs:
            raise WorkspaceError(f"{where}: no mined failure cases in workspace {ws.root} (expected at least one "
                                 f"evaluation run with failure cases, found none); {_MINE_HINT}")
        ids = _case_ids(ws, runs)
        return ids, runs, "", ids
    if _is_run(ws, failures):
        ids = _case_ids(ws, [failures])
        if not ids:
            raise WorkspaceError(f"{where}: evaluation run {failures!r} has no failure cases (its planner passed "
                                 f"every rule); pick another run (mining.eval_runs(ws)) or 'latest'")
        return ids, [failures], "", ids
    names = curation.views(ws)["name"].astype(str).tolist()
    if failures not in names:
        raise WorkspaceError(
            f"{where}: expected 'latest', an evaluation run id (mining.eval_runs(ws)) or a saved view name "
            f"(store.views(ws): {names[:20] if names else 'none saved'}), received {failures!r}; "
            f"if nothing is mined yet, {_MINE_HINT}")
    view = curation.load_view(ws, failures)
    ids = curation.view_scenario_ids(ws, failures, include_members=True)
    if not ids:
        raise WorkspaceError(f"{where}: the saved view selects no scenarios now (expected at least one); widen "
                             f"its filter or mine again ({_MINE_HINT})")
    if view.kind != "failures":
        return ids, [], failures, ids
    runs = list(view.run_ids) or latest_failure_runs(ws)[:1]
    return ids, runs, failures, list(dict.fromkeys(ids + _case_ids(ws, runs)))


def select_posttrain_data(ws: Workspace, *, failures: str = "latest", common_split: str | None = "mine",
                          common_limit: int | None = 256, variants: bool = True, seed: int = 0
                          ) -> PostTrainSelection:
    """Choose the scenario ids of a post-training run (see the module docstring); nothing is loaded.

    Args:
        ws: the workspace with mined failures.
        failures: ``"latest"``, an evaluation run id or a saved view name.
        common_split: catalog split of the common scenarios (None: no common scenarios).
        common_limit: at most this many common scenarios, a seeded sample (None: all of them).
        variants: include the stored variants of the rare scenarios.
        seed: seeds the common sample.
    Raises:
        WorkspaceError: nothing mined yet, an unknown selector, or a selection without rare scenarios in the
            catalog (each message says which command to run).
    """
    if common_limit is not None and (isinstance(common_limit, bool) or not isinstance(common_limit, int)
                                     or common_limit < 0):
        raise WorkspaceError(f"posttrain_data(common_limit): expected None or an int >= 0, received {common_limit!r}")
    ids, runs, view, exclude = _failure_source(ws, failures)
    catalogued = set(ws.scenario_ids(ids=ids))
    rare = [i for i in ids if i in catalogued]
    if len(rare) < len(ids):
        logger.warning("posttrain_data: %d of %d failure scenarios are not in the catalog of %s and are left out "
                       "(e.g. %s)", len(ids) - len(rare), len(ids), ws.root, [i for i in ids if i not in catalogued][:3])
    if not rare:
        raise WorkspaceError(f"posttrain_data(failures={failures!r}): none of the {len(ids)} failure scenarios is in "
                             f"the catalog of {ws.root} (expected catalogued windows); mine scenarios imported into "
                             f"this workspace ({_MINE_HINT})")
    common: list[str] = []
    if common_split is not None and common_limit != 0:
        skip = set(exclude)
        pool = [i for i in ws.scenario_ids(split=common_split) if i not in skip]
        if not pool:
            logger.warning("posttrain_data: split %r of %s holds no scenario outside the failures; no common "
                           "scenarios", common_split, ws.root)
        if common_limit is not None and len(pool) > common_limit:
            keep = np.sort(np.random.default_rng(seed).permutation(len(pool))[:common_limit])
            pool = [pool[i] for i in keep]
        common = pool
    variant_ids: list[str] = []
    if variants:
        from ..variants.store import list_variants

        table = list_variants(ws)
        if len(table):
            order = {sid: k for k, sid in enumerate(rare)}
            own = table[table["parent_id"].isin(order)]
            own = own.assign(_order=own["parent_id"].map(order)).sort_values(["_order", "variant_id"], kind="stable")
            variant_ids = own["variant_id"].astype(str).tolist()
    selection = PostTrainSelection(rare_ids=tuple(rare), common_ids=tuple(common), variant_ids=tuple(variant_ids),
                                   failures=failures, run_ids=tuple(runs), view=view,
                                   common_split=common_split or "", seed=int(seed))
    logger.info("posttrain_data: %s", selection.summary())
    return selection


def posttrain_data(ws: Workspace, *, failures: str = "latest", common_split: str | None = "mine",
                   common_limit: int | None = 256, variants: bool = True, seed: int = 0) -> Any:
    """The :class:`~worldengine_lab.training.rl.PostTrainData` of a run: rare = the mined failures (or a saved
    view's scenarios), common = a seeded sample of ``common_split`` without failures, variants = the stored
    variants of the failures. Arguments and errors as :func:`select_posttrain_data`."""
    return select_posttrain_data(ws, failures=failures, common_split=common_split, common_limit=common_limit,
                                 variants=variants, seed=seed).load(ws)


# -- loading --------------------------------------------------------------------------------------------------
def _load_catalogued(ws: Workspace, ids: Sequence[str], what: str) -> tuple[Scenario, ...]:
    if not ids:
        return ()
    scenarios = tuple(ws.scenarios(ids=list(ids)))
    if len(scenarios) != len(ids):
        have = {s.scenario_id for s in scenarios}
        missing = [i for i in ids if i not in have]
        raise WorkspaceError(f"PostTrainSelection.load: {len(missing)} {what} scenario(s) are no longer in the "
                             f"catalog of {ws.root} (e.g. {missing[:3]}); select the data again with "
                             f"select_posttrain_data(ws, ...)")
    by_id = {s.scenario_id: s for s in scenarios}
    return tuple(by_id[i] for i in ids)


def selection_frame(selection: PostTrainSelection) -> pd.DataFrame:
    """One row per selected id: ``scenario_id`` and ``role`` (``rare`` | ``common`` | ``variant``)."""
    rows = [(i, "rare") for i in selection.rare_ids] + [(i, "common") for i in selection.common_ids] + \
        [(i, "variant") for i in selection.variant_ids]
    return pd.DataFrame(rows, columns=["scenario_id", "role"])
