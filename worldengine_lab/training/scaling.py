"""The data-scaling study: closed-loop success on test-rare against the share of pre-training data, and what
post-training is worth in pre-training data.

World Engine's claim: post-training from a base pre-trained on 50k scenes matches a base pre-trained on ≈ 14× more
data. The study here measures the same thing on one workspace:

1. pre-train one base per data fraction (default 1/8, 1/4, 1/2, 1 of the ``pretrain`` split; seeded subsets,
   :attr:`~worldengine_lab.training.imitation.ImitationConfig.data_fraction`);
2. evaluate each in closed loop (World Engine's 4-s episodes) on ``test_rare``;
3. post-train the *smallest* base on its own failures on the ``mine`` split (collision, off-road, low progress —
   the rare-case rules), plus common replay, and evaluate it the same way;
4. fit success = a + b · log2(fraction) over the pre-trained points and invert it at the post-trained success:
   the equivalent fraction f_eq, and the **equivalent multiple** f_eq / f_smallest (how much more pre-training
   data the post-training was worth). Its 95 % interval is a paired bootstrap over test scenarios (the same
   resampled scenarios for every planner, fit and inversion repeated per resample).

The multiple is an extrapolation when f_eq lies beyond the largest fraction (flagged), and undefined when the fit
has no positive slope (more data did not help; reported as NaN with the reason).

Everything is resumable: training runs live under ``<workspace>/runs/scaling/<key>/`` (``key`` hashes the
settings) and finished evaluations are reused from the workspace's stored runs (planner ids
``scaling-<key>:...``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataFormatError, WorkspaceError
from ..store.workspace import Workspace

__all__ = ["ScalingConfig", "ScalingResult", "run_data_scaling", "equivalent_multiple"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScalingConfig:
    """Settings of the study.

    Attributes:
        fractions: shares of the ``pretrain`` split, each in (0, 1]; the smallest is post-trained.
        epochs: imitation epochs of every base (the same for all fractions).
        recipe: post-training recipe (:data:`~worldengine_lab.training.rl.RECIPES`) of the smallest base.
        iterations: post-training iterations.
        common_replay: common (non-failing) ``mine`` scenarios offered for replay.
        seed: training and subset seed.
        max_scenarios: use at most this many scenarios of each split (seeded; None: all) — for quick runs.
        resamples: bootstrap resamples of the intervals.
    """

    fractions: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)
    epochs: int = 14
    recipe: str = "rl_rare_rollouts"
    iterations: int = 3
    common_replay: int = 120
    seed: int = 0
    max_scenarios: int | None = None
    resamples: int = 2000

    def validate(self) -> None:
        """Raise DataFormatError on settings the study cannot run with."""
        f = np.asarray(self.fractions, np.float64)
        if f.ndim != 1 or f.size < 2 or not ((f > 0) & (f <= 1)).all() or len(set(f.tolist())) != f.size:
            raise DataFormatError(f"ScalingConfig.fractions: expected at least two distinct shares in (0, 1], "
                                  f"received {self.fractions!r}")
        from .rl import RECIPES

        if self.recipe not in RECIPES:
            raise DataFormatError(f"ScalingConfig.recipe: expected one of {sorted(RECIPES)}, received {self.recipe!r}")
        if self.epochs < 1 or self.iterations < 1:
            raise DataFormatError(f"ScalingConfig: epochs and iterations must be >= 1, received {self.epochs}, "
                                  f"{self.iterations}")


@dataclass
class ScalingResult:
    """The study's outcome.

    Attributes:
        points: one row per planner — ``fraction``, ``kind`` (``pretrained`` | ``post-trained``), ``planner_id``,
            ``success`` / ``low`` / ``high`` (share of test_rare episodes, 95 % bootstrap), ``n``, ``checkpoint``.
        success: per-scenario closed-loop success ``[scenarios, planners]`` (columns = ``points.planner_id``).
        equivalent: :func:`equivalent_multiple`'s result.
        run_root: the study's training folder.
    """

    points: pd.DataFrame
    success: pd.DataFrame
    equivalent: dict[str, Any]
    run_root: Path
    config: dict[str, Any] = field(default_factory=dict)


def _fit(logf: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line per row: ``y [R, F]`` over ``logf [F]`` → intercepts, slopes ``[R]``."""
    x = logf - logf.mean()
    slope = (y - y.mean(axis=1, keepdims=True)) @ x / (x @ x)
    intercept = y.mean(axis=1) - slope * logf.mean()
    return intercept, slope


def equivalent_multiple(fractions: np.ndarray, base_success: np.ndarray, post_success: np.ndarray,
                        post_fraction: float, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """How much pre-training data the post-trained model is worth.

    Args:
        fractions: pre-training shares ``[F]`` of the bases.
        base_success: per-scenario success ``[n, F]`` of the bases on the same ``n`` test scenarios (0/1).
        post_success: per-scenario success ``[n]`` of the post-trained model.
        post_fraction: the share its base was pre-trained on.
        resamples / seed: paired bootstrap over scenarios.
    Returns:
        ``{"multiple", "ci95": [lo, hi], "equivalent_fraction", "slope_per_doubling", "intercept",
        "extrapolated", "note"}``; ``multiple`` is NaN when the fit's slope is not positive.
    """
    f = np.asarray(fractions, np.float64)
    y = np.asarray(base_success, np.float64)
    p = np.asarray(post_success, np.float64)
    if y.ndim != 2 or y.shape[1] != f.size or p.shape != (y.shape[0],) or y.shape[0] == 0:
        raise DataFormatError(f"equivalent_multiple: expected base_success [n, {f.size}] and post_success [n] on "
                              f"the same scenarios, received {list(y.shape)} and {list(p.shape)}")
    logf = np.log2(f)

    def invert(yb: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b = _fit(logf, yb)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_eq = np.where(b > 0, (pb - a) / b, np.nan)
        return log_eq, a, b

    log_eq, a, b = invert(y.mean(axis=0)[None], np.array([p.mean()]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, y.shape[0], size=(resamples, y.shape[0]))  # [R, n] paired scenario resamples
    log_eq_r, _, _ = invert(y[idx].mean(axis=1), p[idx].mean(axis=1))
    ok = np.isfinite(log_eq_r)
    multiple = float(2.0 ** (log_eq[0] - np.log2(post_fraction))) if np.isfinite(log_eq[0]) else float("nan")
    if ok.mean() >= 0.975:
        lo, hi = np.quantile(2.0 ** (log_eq_r[ok] - np.log2(post_fraction)), [0.025, 0.975])
        ci = [float(lo), float(hi)]
    else:  # in more than 2.5 % of resamples more data did not help: no finite upper bound
        ci = [float(np.quantile(2.0 ** (log_eq_r[ok] - np.log2(post_fraction)), 0.025)) if ok.any() else float("nan"),
              float("inf")]
    eq = float(2.0 ** log_eq[0]) if np.isfinite(log_eq[0]) else float("nan")
    if b[0] <= 0:
        note = "more pre-training data did not raise closed-loop success here: no equivalent multiple"
    elif eq > f.max():
        note = f"extrapolated beyond the largest fraction ({f.max():g})"
    else:
        note = "interpolated within the measured fractions"
    return {"multiple": multiple, "ci95": ci, "equivalent_fraction": eq, "slope_per_doubling": float(b[0]),
            "intercept": float(a[0]), "extrapolated": bool(np.isfinite(eq) and eq > f.max()), "note": note}


def _key(cfg: ScalingConfig) -> str:
    blob = json.dumps({k: v for k, v in asdict(cfg).items() if k != "resamples"}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _label(f: float) -> str:
    from fractions import Fraction

    return str(Fraction(f).limit_denominator(64))


def run_data_scaling(ws: Workspace, config: ScalingConfig = ScalingConfig(), progress: bool = False
                     ) -> ScalingResult:
    """Run (or resume) the study on ``ws`` (needs the ``pretrain``, ``mine`` and ``test_rare`` splits, e.g. from
    ``worldengine-lab demo --until world``). See the module docstring.

    Raises:
        DataFormatError: bad settings. WorkspaceError: a needed split is empty.
    """
    from ..mining import EvalConfig, WE_CLOSED_LOOP, evaluate_closed_loop, save_eval_run
    from ..mining.rules import mine_rare_cases
    from ..planners.learned import LearnedPlanner
    from ..reports.stats import bootstrap_mean
    from ..reports.tables import latest_results
    from .imitation import ImitationConfig, pretrain
    from .rl import PostTrainConfig, PostTrainData, posttrain

    cfg = config
    cfg.validate()
    key = _key(cfg)
    root = ws.root / "runs" / "scaling" / key
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))

    def ids(split: str) -> list[str]:
        out = ws.scenario_ids(split=split)
        if cfg.max_scenarios is not None and len(out) > cfg.max_scenarios:
            out = sorted(random.Random(cfg.seed).sample(out, cfg.max_scenarios))
        if not out:
            raise WorkspaceError(f"run_data_scaling: split {split!r} is empty in {ws.root}; import the embedded "
                                 "world first (worldengine-lab demo --until world)")
        return out

    test_ids = ids("test_rare")
    test = list(ws.scenarios(ids=test_ids))
    eval_cfg = EvalConfig(sim=WE_CLOSED_LOOP)

    def closed_loop(pid: str, ckpt: Path) -> pd.DataFrame:
        frame = latest_results(ws, pid, "closed_loop", "test_rare")
        if frame is not None and set(frame["scenario_id"]) == set(test_ids):
            return frame
        table = evaluate_closed_loop(test, LearnedPlanner.from_checkpoint(ckpt, planner_id=pid), eval_cfg)
        save_eval_run(ws, table, pid, "closed_loop", description=f"split=test_rare, {len(test)} scenarios",
                      seed=cfg.seed)
        return table

    fractions = sorted(float(f) for f in cfg.fractions)
    pretrain_scen = list(ws.scenarios(ids=ids("pretrain")))
    rows: list[dict[str, Any]] = []
    cols: dict[str, pd.Series] = {}
    ckpts: dict[float, Path] = {}
    for f in fractions:  # a handful of training runs
        run = root / f"pretrain-{_label(f).replace('/', 'of')}"
        ckpts[f] = pretrain(pretrain_scen, run, ImitationConfig(epochs=cfg.epochs, seed=cfg.seed, data_fraction=f),
                            progress=progress)
        pid = f"scaling-{key}:pretrain@{_label(f)}"
        cols[pid] = closed_loop(pid, ckpts[f]).set_index("scenario_id")["success"].astype(float)
        rows.append({"fraction": f, "kind": "pretrained", "planner_id": pid, "checkpoint": str(ckpts[f])})

    # post-train the smallest base on its own failures on the mine split
    f0 = fractions[0]
    mine_ids = ids("mine")
    mine_scen = list(ws.scenarios(ids=mine_ids))
    base0 = LearnedPlanner.from_checkpoint(ckpts[f0], planner_id=f"scaling-{key}:pretrain@{_label(f0)}")
    mined = root / "mined.json"
    if mined.exists():
        failed = json.loads(mined.read_text())["failed_ids"]
    else:
        table = evaluate_closed_loop(mine_scen, base0, eval_cfg)
        cases = mine_rare_cases(table, "mine", token_column="scenario_id")
        failed = sorted({t for v in cases.values() for t in v})
        mined.write_text(json.dumps({"failed_ids": failed, "counts": {k: len(v) for k, v in cases.items()}}))
    fail = set(failed)
    pool = [i for i in mine_ids if i not in fail]
    common_ids = sorted(random.Random(cfg.seed).sample(pool, min(cfg.common_replay, len(pool))))
    data = PostTrainData(rare=list(ws.scenarios(ids=failed)) if failed else [],
                         common=list(ws.scenarios(ids=common_ids)) if common_ids else [])
    post_ckpt = posttrain(data, ckpts[f0], root / "posttrain", PostTrainConfig(recipe=cfg.recipe,
                                                                             iterations=cfg.iterations, seed=cfg.seed),
                          progress=progress)
    pid = f"scaling-{key}:{cfg.recipe}@{_label(f0)}"
    cols[pid] = closed_loop(pid, post_ckpt).set_index("scenario_id")["success"].astype(float)
    rows.append({"fraction": f0, "kind": "post-trained", "planner_id": pid, "checkpoint": str(post_ckpt)})

    success = pd.DataFrame(cols).loc[test_ids]
    points = pd.DataFrame(rows)
    est = [bootstrap_mean(success[p].to_numpy(), cfg.resamples, seed=cfg.seed) for p in points["planner_id"]]
    points.insert(3, "success", [e.value for e in est])
    points.insert(4, "low", [e.low for e in est])
    points.insert(5, "high", [e.high for e in est])
    points.insert(6, "n", [e.n for e in est])
    base_cols = points.loc[points["kind"] == "pretrained", "planner_id"].tolist()
    equivalent = equivalent_multiple(np.asarray(fractions), success[base_cols].to_numpy(), success[pid].to_numpy(),
                                     f0, cfg.resamples, cfg.seed)
    equivalent["num_post_failures"] = len(failed)
    logger.info("data scaling: %s", equivalent)
    return ScalingResult(points=points, success=success, equivalent=equivalent, run_root=root, config=asdict(cfg))
