"""Planning samples for training: what the planner sees at a logged state, what the expert did, and how the
rule-based scorer rates every vocabulary candidate there.

A *sample* is a scenario window seen at "now" + ``offset`` (the window is re-anchored by moving ``t0``), so one
10-s window yields several states. For each sample:

* ``features``: :func:`~worldengine_lab.planners.features.extract_features` of the simulator's observation
  (ego body frame), batched over scenarios;
* ``expert``: ``[40, 3]`` the logged ego's next 4 s as rear-axle poses in the body frame at the state;
* ``subscores`` (optional, the "PDM teacher" of Hydra-MDP): ``[K, 5]`` NC, DAC, TTC, C, EP of every vocabulary
  candidate, each rolled out from the logged ego state (LQR tracker + kinematic bicycle, or perfect tracking)
  and PDM-scored against the logged agents; EP is normalised over the candidates (the best candidate's
  progress is the reference). ``scores`` ``[K]`` is the aggregated PDM score (the RL reward of the spec).

Rollouts of the candidates are batched over all ``K × batch`` candidates at once; scoring visits scenes one by
one because every scene has its own map.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Sequence

import torch
from tqdm.auto import tqdm

from ..datatypes import Scenario
from ..errors import ShapeError
from ..metrics.observations import ObjectTracks
from ..metrics.pdm import NAVSIM_V11, ScorerConfig, score_proposals
from ..metrics.scoring_map import ScoringMap, ScoringMapConfig
from ..planners.base import PLAN_NUM_POSES
from ..planners.features import FeatureConfig, SceneFeatures, extract_features
from ..sim.config import SimConfig
from ..sim.env import ClosedLoopEnv
from ..sim.poses import body_to_global, global_to_body, states_from_poses
from ..sim.scene_batch import ego_states_from_log
from ..sim.state import X, Y, YAW
from ..sim.tracker import simulate

__all__ = ["PlanningSamples", "shifted_scenarios", "build_samples", "score_candidates", "SUBSCORE_COLUMNS"]

logger = logging.getLogger(__name__)

SUBSCORE_COLUMNS = ("nc", "dac", "ttc", "c", "ep")
"""Order of the teacher sub-scores (the learned planner's sub-score heads use the same order)."""
TEACHER_SCORER = dataclasses.replace(NAVSIM_V11, reference="batch")
"""NAVSIM v1.1 scorer with EP normalised over the candidates of a state."""
_NO_RASTER = ScoringMapConfig(raster=False)
RASTER_MARGIN_M = 20.0
"""Extra half-width of a teacher raster, m, so that the next states of the same scenario (a few metres on) reuse
it instead of building their own."""


@dataclass(frozen=True, eq=False)
class PlanningSamples:
    """N training states (tensors on the CPU).

    Attributes:
        scenario_ids: N source scenario ids; offsets_s: ``[N]`` seconds after the window's "now".
        features: the planner's input at each state.
        expert: ``[N, 40, 3]`` float32 logged future (x m, y m, yaw rad), body frame at the state.
        subscores: ``[N, K, 5]`` float32 teacher sub-scores (NC, DAC, TTC, C, EP) or None.
        scores: ``[N, K]`` float32 teacher PDM scores or None.
    """

    scenario_ids: tuple[str, ...]
    offsets_s: torch.Tensor
    features: SceneFeatures
    expert: torch.Tensor
    subscores: torch.Tensor | None = None
    scores: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.scenario_ids)

    def to_dict(self) -> dict[str, object]:
        """Plain tensors and lists (``torch.save`` → ``torch.load(weights_only=True)``)."""
        f = self.features
        return {"scenario_ids": list(self.scenario_ids), "offsets_s": self.offsets_s, "expert": self.expert,
                "subscores": self.subscores, "scores": self.scores,
                "features": {k.name: getattr(f, k.name) for k in dataclasses.fields(f)}}

    @staticmethod
    def from_dict(data: dict) -> "PlanningSamples":
        """Inverse of :meth:`to_dict`."""
        try:
            return PlanningSamples(tuple(data["scenario_ids"]), data["offsets_s"], SceneFeatures(**data["features"]),
                                   data["expert"], data.get("subscores"), data.get("scores"))
        except (KeyError, TypeError) as exc:
            raise ShapeError(f"PlanningSamples.from_dict: not a samples dict ({exc}); rebuild the samples") from exc


def shifted_scenarios(scenarios: Iterable[Scenario], offsets_s: Sequence[float] = (0.0,),
                      horizon_s: float = 4.0) -> list[tuple[Scenario, float]]:
    """Each scenario re-anchored at "now" + every offset whose 4-s future is inside the log (others are skipped).

    Returns:
        ``(scenario with t0 moved, offset s)`` pairs, scenario-major.
    """
    out: list[tuple[Scenario, float]] = []
    for s in scenarios:
        for off in offsets_s:
            k = int(round(off / s.dt))
            t0 = s.t0 + k
            if t0 < 0 or t0 + int(round(horizon_s / s.dt)) >= s.num_steps or not s.agents.valid[t0, 0]:
                continue
            out.append((s if k == 0 else dataclasses.replace(s, t0=t0), float(off)))
    return out


def build_samples(items: Sequence[tuple[Scenario, float]], feature_config: FeatureConfig = FeatureConfig(),
                  batch_size: int = 64, progress: bool = False) -> PlanningSamples:
    """Features and expert futures of the ``(scenario, offset)`` states (see :func:`shifted_scenarios`)."""
    if not items:
        raise ShapeError("build_samples: expected at least one (scenario, offset) state, received none")
    cfg = SimConfig(num_steps=1)
    feats: list[SceneFeatures] = []
    experts: list[torch.Tensor] = []
    bar = _bar(len(items), "features", progress)
    for i in range(0, len(items), batch_size):
        chunk = [s for s, _ in items[i : i + batch_size]]
        env = ClosedLoopEnv(chunk, cfg)
        state = env.reset()
        feats.append(extract_features(env.observe(state), feature_config))
        future = torch.stack([torch.as_tensor(ego_states_from_log(s)[s.t0 + 1 : s.t0 + 1 + PLAN_NUM_POSES, :3])
                              for s in chunk])  # [b, 40, 3] local frame
        experts.append(global_to_body(future, state.ego[:, [X, Y, YAW]].to(torch.float64)).float())
        bar.update(len(chunk))
    bar.close()
    return PlanningSamples(tuple(s.scenario_id for s, _ in items),
                           torch.tensor([o for _, o in items], dtype=torch.float32),
                           SceneFeatures.cat(feats), torch.cat(experts))


def score_candidates(items: Sequence[tuple[Scenario, float]], candidates: torch.Tensor,
                     tracking: Literal["lqr", "perfect"] = "lqr", scorer: ScorerConfig = TEACHER_SCORER,
                     resolution_m: float = 0.5, batch_size: int = 16, progress: bool = False,
                     ego_states: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher sub-scores ``[N, K, 5]`` and PDM scores ``[N, K]`` of the K body-frame ``candidates [K, 40, 3]``
    from the ego state of every ``(scenario, offset)`` state: the logged one, or ``ego_states [N, D]`` (float64,
    local frame, the simulator's rear-axle state layout) for states the simulator visited (closed-loop
    rollouts), scored against the scenario's logged agents from its ``t0``.

    The map raster of a state covers the square around the candidates' extent (+ 10 m) at ``resolution_m`` (area
    flags are exact farther than resolution/√2 from a boundary; 0.5 m keeps the raster build cheap for training
    targets). States on the same map object (a scenario's shifted copies, a rollout's visited states) share its
    polygons and one raster built :data:`RASTER_MARGIN_M` wider, as long as it covers them.
    """
    k = candidates.shape[0]
    if ego_states is not None and (ego_states.ndim != 2 or ego_states.shape[0] != len(items)):
        raise ShapeError(f"score_candidates.ego_states: expected [N={len(items)}, D], received "
                         f"{list(ego_states.shape)}")
    if candidates.ndim != 3 or tuple(candidates.shape[1:]) != (PLAN_NUM_POSES, 3):
        raise ShapeError(f"score_candidates.candidates: expected [K, {PLAN_NUM_POSES}, 3], received "
                         f"{list(candidates.shape)}")
    cand = candidates.to(torch.float64)
    # the raster covers the candidates' extent in the body frame (+ 10 m), wherever that lies around the ego
    lo, hi = cand[..., :2].amin((0, 1)), cand[..., :2].amax((0, 1))
    mid_body = (lo + hi) / 2
    map_config = ScoringMapConfig(resolution_m=resolution_m, radius_m=float((hi - lo).max()) / 2 + 10.0)
    subs, scores = [], []
    polygons: dict[int, tuple[Any, Any]] = {}
    rasters: dict[int, tuple[ScoringMap, list[float]]] = {}  # per map: a raster and its centre
    bar = _bar(len(items), "teacher scores", progress)
    for i in range(0, len(items), batch_size):
        chunk = [s for s, _ in items[i : i + batch_size]]
        if ego_states is None:
            ego0 = torch.stack([torch.as_tensor(ego_states_from_log(s)[s.t0]) for s in chunk])  # [b, D] float64
        else:
            ego0 = ego_states[i : i + batch_size].to(torch.float64)
        local = body_to_global(cand[None].expand(len(chunk), -1, -1, -1), ego0[:, None, [X, Y, YAW]])  # [b,K,40,3]
        init = ego0[:, None].expand(-1, k, -1).reshape(-1, ego0.shape[-1])
        flat = local.reshape(-1, PLAN_NUM_POSES, 3)
        if tracking == "perfect":
            states = torch.cat([init[:, None], states_from_poses(flat, init)], 1)
        else:
            states = simulate(init, torch.cat([init[:, None, [X, Y, YAW]], flat], 1))
        states = states.view(len(chunk), k, PLAN_NUM_POSES + 1, -1)
        mids = body_to_global(torch.cat([mid_body, mid_body.new_zeros(1)])[None].expand(len(chunk), 1, 3),
                              ego0[:, [X, Y, YAW]])[:, 0, :2]  # [b, 2] raster centres, local frame
        for b, s in enumerate(chunk):  # one scene at a time: each has its own map
            key = id(s.map)  # states of one scenario (shifted, or visited by a rollout) share its map
            if key not in polygons:
                polygons[key] = (s.map, ScoringMap.map_polygons(s.map))  # the map is kept alive with its id
            smap = ScoringMap.from_scenario(s, _NO_RASTER, polygons=polygons[key][1])
            mid = mids[b].tolist()
            cached = rasters.get(key)
            if cached is None or max(abs(mid[0] - cached[1][0]), abs(mid[1] - cached[1][1])) + map_config.radius_m > \
                    cached[0].config.radius_m:  # not covered: one raster with room for the next states
                wide = ScoringMapConfig(resolution_m=resolution_m, radius_m=map_config.radius_m + RASTER_MARGIN_M)
                cached = rasters[key] = (smap.recentered(mid, wide), mid)
            smap = smap.sharing_raster(cached[0])
            sc = score_proposals(states[b], ObjectTracks.from_scenario(s), smap, scorer)
            subs.append(torch.stack([sc.nc, sc.dac, sc.ttc, sc.comfort, sc.ep], -1).float())
            scores.append(sc.score.float())
        bar.update(len(chunk))
    bar.close()
    return torch.stack(subs), torch.stack(scores)


def _bar(total: int, desc: str, enabled: bool) -> tqdm:  # on stderr, disabled unless asked
    return tqdm(total=total, desc=desc, unit="state", disable=not enabled, leave=False)
