"""``bench variants``: how fast variants are made and how many are valid, critical and solvable, for the guided
behaviour world model and side by side for a plain (unguided) behaviour-model sample and the parametric ops.

Setup (not in the throughput figures): an embedded world of ``num_logs`` logs (seed 0, cached under the system
temp folder) imported with its splits into a temporary workspace; a behaviour world model from ``checkpoint``
(or ``$WORLDENGINE_LAB_BWM_CHECKPOINT``), else trained on the world's ``pretrain`` split for ``train_minutes``
and cached next to the world for later runs. Parents: windows of the ``mine`` split that have an attacker
(:func:`~worldengine_lab.variants.adversarial.choose_attacker`) and that are *not critical yet*: the expert
solves them in closed loop without coming within 3 s time to collision, so every critical variant is one the
generator made critical; ``num_parents`` drawn with seed 0; ``per_parent`` variants each.

Figures, for ``M`` in ``bwm_guided`` (adversarial guidance), ``bwm_plain`` (the same attacker sampled without
guidance) and ``parametric`` (seeded hard brake / cut-in / stall / dart-out):

* ``M_variants_per_s``: variants made per second (sampling or ops, spline and feasibility projection; checks
  excluded); ``M_check_s``: the validity and closed-loop checks of all of them, s;
* ``M_valid_rate``: share of the variants made that are valid (plausible kinematics, edited vehicles on the
  drivable area, no new collisions among non-ego agents, first 4 s); ``M_offroad_share``,
  ``M_collision_share``, ``M_implausible_share``: shares of the variants made that fail each check;
* ``M_critical_rate``: share of the valid ones on which the base planner (the expert) fails or comes within
  3 s time to collision of an agent in closed loop;
* ``M_expert_solvable_rate``: share of the valid ones the expert solves in closed loop (World Engine's 4-s
  episode, log-replay agents);
* ``M_critical_solvable_rate``: share of the valid ones that are both (hard but teachable).

Also ``num_parents``, ``per_parent``,
``bwm_train_s`` (0 when reused), ``bwm_model_hash``, ``setup_s`` and the goals of the guided model
(``goal_valid_rate`` 0.9, ``goal_critical_rate`` 0.5, ``goal_expert_solvable_rate`` 0.9, ``bwm_guided_meets_goals``).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["bench_variants", "CHECKPOINT_ENV"]

CHECKPOINT_ENV = "WORLDENGINE_LAB_BWM_CHECKPOINT"
"""Environment variable naming a behaviour world model checkpoint for the benchmark."""

_SEED = 0


def _say(msg: str) -> None:
    print(f"bench variants: {msg}", file=sys.stderr, flush=True)


def _world(num_logs: int) -> tuple[Any, Path]:
    """The cached embedded world of ``num_logs`` logs and its cache folder."""
    from ..logs.synthetic import GENERATOR_VERSION, load_result, synthesize

    name = f"variants-seed{_SEED}-{num_logs}logs-v{GENERATOR_VERSION}"
    out = Path(tempfile.gettempdir()) / "worldengine-lab-bench" / name
    manifest = out / "manifest.json"
    if manifest.is_file():
        meta = json.loads(manifest.read_text())
        if str(meta.get("generator_version")) == str(GENERATOR_VERSION) and meta.get("seed") == _SEED:
            return load_result(out), out
    return synthesize(out, seed=_SEED, num_logs=num_logs, overwrite=True), out


def _rates(prefix: str, table: Any, made: int, gen_s: float, check_s: float) -> dict[str, Any]:
    import numpy as np

    v = table[table["valid"]]

    def rate(x: Any) -> float:
        return round(float(np.mean(np.asarray(x, float))), 3) if len(x) else float("nan")

    return {f"{prefix}_num_variants": int(made), f"{prefix}_variants_per_s": round(made / max(gen_s, 1e-9), 3),
            f"{prefix}_check_s": round(check_s, 2), f"{prefix}_valid_rate": rate(table["valid"]),
            f"{prefix}_offroad_share": rate(table["offroad_rate"] > 0),
            f"{prefix}_collision_share": rate(table["num_collisions"] > 0),
            f"{prefix}_implausible_share": rate(~table["kinematics_ok"]),
            f"{prefix}_critical_rate": rate(v["critical"]), f"{prefix}_expert_solvable_rate": rate(v["expert_success"]),
            f"{prefix}_critical_solvable_rate": rate(v["critical"] & v["expert_success"])}


def bench_variants(quick: bool = False, checkpoint: str | None = None, num_parents: int | None = None,
                   per_parent: int | None = None, train_minutes: float | None = None,
                   num_logs: int | None = None) -> dict[str, Any]:
    """Run the benchmark; see the module docstring for the figures.

    Args:
        quick: 3 parents x 1 variant and a 0.2-minute model instead of 24 x 2 and 4 minutes.
        checkpoint: a behaviour world model checkpoint (default ``$WORLDENGINE_LAB_BWM_CHECKPOINT``, else a cached
            or freshly trained one).
        num_parents / per_parent / train_minutes / num_logs: override the sizes.
    """
    import torch

    from ..demo import import_embedded_world
    from ..planners.registry import load_planner
    from ..store import Workspace
    from ..variants.adversarial import GuidanceConfig, adversarial_variants, choose_attacker
    from ..variants.bwm_model import load_bwm, model_hash
    from ..variants.bwm_train import BWMTrainConfig, train_bwm
    from ..variants.generate import GenerateConfig, evaluate_candidates, parametric_variants
    from ..variants.realism import closed_loop_check

    n_logs = num_logs or 12
    n_par = num_parents or (3 if quick else 24)
    k = per_parent or (1 if quick else 2)
    minutes = train_minutes if train_minutes is not None else (0.2 if quick else 4.0)
    out: dict[str, Any] = {}
    t = time.perf_counter()
    world, cache = _world(n_logs)
    with tempfile.TemporaryDirectory(prefix="wel-bench-variants-") as tmp:
        ws = Workspace.open(Path(tmp) / "ws")
        try:
            import_embedded_world(ws, world)
            ckpt = checkpoint or os.environ.get(CHECKPOINT_ENV)
            cached = cache / f"bwm-{minutes:g}min.pt"
            out["bwm_train_s"] = 0.0
            if ckpt is None and cached.is_file():
                ckpt = str(cached)
            if ckpt is None:
                pre = list(ws.scenarios(split="pretrain"))
                _say(f"training a behaviour world model on {len(pre)} windows for {minutes} min")
                res = train_bwm(pre, BWMTrainConfig(epochs=1000, max_minutes=minutes, seed=_SEED), out=cached)
                out["bwm_train_s"] = round(res.seconds, 1)
                ckpt = str(cached)
            model, _ = load_bwm(ckpt)
            out["bwm_model_hash"] = model_hash(model)
            expert = load_planner("expert")
            pool = [s for s in ws.scenarios(split="mine").sample(max(8 * n_par, 64), seed=_SEED)
                    if choose_attacker(s) >= 0]
            checked = closed_loop_check(pool, expert) if pool else None
            calm = (checked["success"] & ~checked["critical"]).to_numpy(bool) if pool else []
            parents = [s for s, good in zip(pool, calm) if good][:n_par]
            out["setup_s"] = round(time.perf_counter() - t, 1)
            _say(f"{len(parents)} parents ready in {out['setup_s']} s")
            by_id = {s.scenario_id: s for s in parents}
            cfg = GenerateConfig(per_failure=k, seed=_SEED)
            runs = {"bwm_guided": GuidanceConfig(), "bwm_plain": None}
            for name, guidance in runs.items():
                t = time.perf_counter()
                if guidance is None:  # the same attackers, sampled without any guidance
                    from ..variants.bwm import sample_variants

                    reqs = [(s, choose_attacker(s, rank=1 if (i % 2 and choose_attacker(s, rank=1) >= 0) else 0), i)
                            for s in parents for i in range(k)]
                    made = sample_variants(model, [r[0] for r in reqs], [[r[1]] for r in reqs], seed=_SEED,
                                           attackers=[r[1] for r in reqs], index=[r[2] for r in reqs])
                else:
                    made = adversarial_variants(model, parents, k, _SEED, guidance)
                gen_s = time.perf_counter() - t
                t = time.perf_counter()
                table = evaluate_candidates([by_id[v.parent_id] for v in made], made, expert, config=cfg)
                out.update(_rates(name, table, len(made), gen_s, time.perf_counter() - t))
                _say(f"{name}: {out[f'{name}_num_variants']} variants, valid {out[f'{name}_valid_rate']}")
            t = time.perf_counter()
            made_p = [v for _, v, _ in parametric_variants(parents, k, _SEED) if v is not None]
            gen_s = time.perf_counter() - t
            t = time.perf_counter()
            table = evaluate_candidates([by_id[v.parent_id] for v in made_p], made_p, expert, config=cfg)
            out.update(_rates("parametric", table, len(made_p), gen_s, time.perf_counter() - t))
        finally:
            ws.close()
    out.update({"num_parents": len(parents), "per_parent": k, "num_logs": n_logs,
                "goal_valid_rate": 0.9, "goal_critical_rate": 0.5, "goal_expert_solvable_rate": 0.9})
    out["bwm_guided_meets_goals"] = bool(out.get("bwm_guided_valid_rate", 0) >= 0.9
                                         and out.get("bwm_guided_critical_rate", 0) >= 0.5
                                         and out.get("bwm_guided_expert_solvable_rate", 0) >= 0.9)
    out["torch_threads_used"] = torch.get_num_threads()
    return out
