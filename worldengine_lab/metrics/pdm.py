"""Batched PDM scoring of already simulated ego trajectories (spec/metrics.md §2.6–§2.13, §3.3, §5.1).

:func:`score_proposals` scores P proposals (``[P, S, D]`` ego states, e.g. S = 41 at 0.1 s) of one scene
against its :class:`~worldengine_lab.metrics.observations.ObjectTracks` and
:class:`~worldengine_lab.metrics.scoring_map.ScoringMap`:

    PDMS = NC × DAC × (5·EP + 5·TTC + 2·C + 0·DDC) / 12

:class:`ScorerConfig` selects the variant; :data:`NAVSIM_V11`, :data:`CLOSED_LOOP` and :data:`DENSE_REWARD`
are the three presets of the spec. EP normalisation couples proposals only through the reference: with
``reference="first"`` proposal 0 is the reference (NAVSIM: the PDM-Closed trajectory) and every proposal is
normalised against it alone, so a proposal's scores do not depend on which other proposals share the batch;
``reference="batch"`` normalises by the max over the batch (PDM-Closed's own proposal selection);
an explicit ``reference_progress`` (and ``reference_multiplier``) makes every proposal pairwise with an
external reference.

Example:
    >>> from worldengine_lab.metrics import ScoringMap, ObjectTracks, score_proposals
    >>> # scores = score_proposals(states, ObjectTracks.from_scenario(s), ScoringMap.from_scenario(s))
    >>> # scores.to_frame()   # one row per proposal, §2.13 column names
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import pandas as pd
import torch

from ..errors import ScenarioValidationError, ShapeError
from ..sim.geometry import ego_footprint
from ..sim.state import EGO_STATE_DIM, X, Y, YAW
from .areas import EgoAreas, MultipleLanesOver, ego_areas
from .collisions import collision_metrics
from .comfort import comfort
from .compliance import driving_direction_compliance, lane_keeping
from .observations import ObjectTracks
from .progress import NAVSIM_EP_THRESHOLD_M, RAW_EP_THRESHOLD_M, ep_navsim, ep_raw_max, raw_progress
from .scoring_map import ScoringMap

__all__ = [
    "ScorerConfig", "PDMScores", "score_proposals", "pdm_score", "aggregate_scene_table", "validate_states",
    "NAVSIM_V11", "CLOSED_LOOP", "DENSE_REWARD", "PDMS_COLUMNS",
]

PDMS_COLUMNS = (
    "no_at_fault_collisions", "drivable_area_compliance", "ego_progress", "time_to_collision_within_bound",
    "comfort", "driving_direction_compliance", "score",
)


@dataclass(frozen=True)
class ScorerConfig:
    """Variant of the PDM scorer.

    Attributes:
        dt: seconds between scored states (and object frames).
        num_states: expected S (None = any S >= 4).
        ttc_lookahead_steps: TTC look-aheads in steps of dt (§2.9: 0, 3, 6, 9 → 0..0.9 s).
        ttc_max_state: last state index checked by TTC (None = all).
        multiple_lanes_over: ``"lanes"`` (NAVSIM) or ``"drivable"`` (closed loop, dense reward).
        ep_rule: ``"navsim"`` (weighted max, threshold 5 m) or ``"raw_max"`` (raw max, threshold 0.1 m).
        ep_threshold_m: the rule's threshold.
        progress_point: point projected on the centreline for raw progress: ``"center"`` (§2.10) or
            ``"rear_axle"``. On the closed-loop expert path (a polyline through the expert's *rear-axle*
            positions) centre projections are clamped at the path's end, so the expert's own progress comes
            out 1.461 m short on a straight path; ``"rear_axle"`` avoids that (not the reference's choice).
        reference: ``"first"`` (proposal 0 is the reference) or ``"batch"`` (max over the batch); ignored when
            an explicit reference progress is passed to :func:`score_proposals`.
        ddc_mode: ``"window"`` (1 s window, NAVSIM) or ``"segments"`` (contiguous oncoming runs, closed loop).
        stopped_per_frame: per-frame object speed for the *stopped* test (default: first appearance, §1.2).
        lane_keeping: compute the weight-0 lane-keeping column (§3.3; it projects every state onto the
            centreline, the most expensive weight-0 item, so the NAVSIM preset leaves it off).
        exact: exact polygon tests for the area flags instead of the raster.
    """

    dt: float = 0.1
    num_states: int | None = 41
    ttc_lookahead_steps: tuple[int, ...] = (0, 3, 6, 9)
    ttc_max_state: int | None = None
    multiple_lanes_over: MultipleLanesOver = "lanes"
    ep_rule: Literal["navsim", "raw_max"] = "navsim"
    ep_threshold_m: float = NAVSIM_EP_THRESHOLD_M
    progress_point: Literal["center", "rear_axle"] = "center"
    reference: Literal["first", "batch"] = "first"
    ddc_mode: Literal["window", "segments"] = "window"
    stopped_per_frame: bool = False
    lane_keeping: bool = False
    exact: bool = False


NAVSIM_V11 = ScorerConfig()
CLOSED_LOOP = ScorerConfig(dt=0.5, num_states=9, ttc_lookahead_steps=(0, 1, 2), ttc_max_state=6,
                           multiple_lanes_over="drivable", ep_rule="raw_max", ep_threshold_m=RAW_EP_THRESHOLD_M,
                           ddc_mode="segments", lane_keeping=True)
DENSE_REWARD = ScorerConfig(ttc_lookahead_steps=tuple(range(11)), ttc_max_state=30, multiple_lanes_over="drivable",
                            ep_rule="raw_max", ep_threshold_m=RAW_EP_THRESHOLD_M, lane_keeping=True)


@dataclass(frozen=True)
class PDMScores:
    """Per-proposal scores, every field a ``[P]`` tensor (float64 unless noted).

    ``nc, dac, ep, ttc, comfort, ddc, score`` are the §2.13 columns (EP already includes NC·DAC);
    ``raw_progress`` (m) and ``lane_keeping`` (weight 0; None unless ``ScorerConfig.lane_keeping``) are extra; ``first_*_idx`` are state indices
    (int64, -1 = no event); ``any_contact`` (bool) flags any box contact regardless of fault;
    ``comfort_checks`` is ``[P, 6]`` bool (order of ``COMFORT_CHECKS``). ``areas`` holds the per-state flags
    ``[P, S]``. ``dt`` converts indices to times.
    """

    nc: torch.Tensor
    dac: torch.Tensor
    ep: torch.Tensor
    ttc: torch.Tensor
    comfort: torch.Tensor
    ddc: torch.Tensor
    score: torch.Tensor
    raw_progress: torch.Tensor
    lane_keeping: torch.Tensor | None
    first_collision_idx: torch.Tensor
    first_agent_collision_idx: torch.Tensor
    first_offroad_idx: torch.Tensor
    first_ttc_idx: torch.Tensor
    any_contact: torch.Tensor
    comfort_checks: torch.Tensor
    areas: EgoAreas
    dt: float = 0.1

    def __len__(self) -> int:
        return int(self.nc.shape[0])

    def select(self, index: torch.Tensor | slice | int) -> "PDMScores":
        """Rows ``index`` (e.g. the candidates without the reference)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        kw = {f.name: getattr(self, f.name)[index] for f in fields(self)
              if f.name not in ("areas", "dt") and getattr(self, f.name) is not None}
        kw.setdefault("lane_keeping", None)
        a = self.areas
        return PDMScores(**kw, areas=EgoAreas(a.multiple_lanes[index], a.non_drivable[index], a.oncoming[index],
                                              a.in_intersection[index]), dt=self.dt)

    def to_frame(self) -> pd.DataFrame:
        """One row per proposal: the §2.13 columns, ``raw_progress_m``, ``any_contact``, ``first_*_time_s``
        (NaN = no such event) and ``lane_keeping`` when computed."""
        def t(idx: torch.Tensor) -> list[float]:
            return [i * self.dt if i >= 0 else math.nan for i in idx.tolist()]

        cols = {
            "no_at_fault_collisions": self.nc.tolist(),
            "drivable_area_compliance": self.dac.tolist(),
            "ego_progress": self.ep.tolist(),
            "time_to_collision_within_bound": self.ttc.tolist(),
            "comfort": self.comfort.tolist(),
            "driving_direction_compliance": self.ddc.tolist(),
            "score": self.score.tolist(),
            "raw_progress_m": self.raw_progress.tolist(),
            "any_contact": self.any_contact.tolist(),
            "first_collision_time_s": t(self.first_collision_idx),
            "first_offroad_time_s": t(self.first_offroad_idx),
            "first_ttc_time_s": t(self.first_ttc_idx),
        }
        if self.lane_keeping is not None:
            cols["lane_keeping"] = self.lane_keeping.tolist()
        return pd.DataFrame(cols)


def validate_states(states: object, name: str = "states", num_states: int | None = None) -> torch.Tensor:
    """Check a ``[P, S, EGO_STATE_DIM]`` floating-point, finite ego-state tensor; raise naming ``name``."""
    if not isinstance(states, torch.Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor [P, S, {EGO_STATE_DIM}], received {type(states).__name__}")
    if states.ndim != 3 or states.shape[-1] != EGO_STATE_DIM:
        raise ShapeError(f"{name}: expected shape [P, S, {EGO_STATE_DIM}] (sim/state.py layout), received "
                         f"{list(states.shape)}")
    if not states.is_floating_point():
        raise ShapeError(f"{name}: expected a floating-point tensor, received {states.dtype}")
    if num_states is not None and states.shape[1] != num_states:
        raise ShapeError(f"{name}: expected {num_states} states per proposal (time steps), received "
                         f"{states.shape[1]}; resample or pick the matching ScorerConfig")
    if states.shape[1] < 4:
        raise ShapeError(f"{name}: expected at least 4 states per proposal, received {states.shape[1]}")
    if not bool(torch.isfinite((states - states).sum())):  # x - x is 0 unless x is NaN/inf (one fused pass)
        bad = torch.nonzero(~torch.isfinite(states))[0].tolist()
        raise ScenarioValidationError(f"{name}: expected finite values, received NaN/inf (first at proposal "
                                      f"{bad[0]}, state {bad[1]}, field {bad[2]}); fix the planner or simulator")
    return states


def _first_true(mask: torch.Tensor) -> torch.Tensor:
    """``[P, S]`` bool → ``[P]`` first True index, -1 if none."""
    idx = torch.argmax(mask.to(torch.int8), dim=1)
    return torch.where(mask.any(1), idx, torch.full_like(idx, -1))


def score_proposals(states: torch.Tensor, objects: ObjectTracks, scoring_map: ScoringMap,
                    config: ScorerConfig = NAVSIM_V11, *, reference_progress: torch.Tensor | float | None = None,
                    reference_multiplier: torch.Tensor | float = 1.0,
                    centerline: torch.Tensor | None = None) -> PDMScores:
    """Score P simulated proposals of one scene.

    Args:
        states: ``[P, S, D]`` ego states (rear axle, sim/state.py layout), state i at time i·dt, in the
            scoring map's frame. float64 for exact parity; float32 is fine for the fast path.
        objects: object boxes with at least S frames at ``config.dt`` (frame i ↔ state i).
        scoring_map: map inputs (raster used unless ``config.exact``).
        config: the scorer variant.
        reference_progress: raw progress (m) of an external reference (scalar or ``[P]``); makes EP pairwise.
        reference_multiplier: the external reference's NC·DAC (NAVSIM rule only).
        centerline: ``[C, 2]`` overrides the map's centreline for EP and lane keeping.
    Returns:
        :class:`PDMScores`.
    Raises:
        ShapeError / ScenarioValidationError on malformed inputs.
    """
    validate_states(states, "score_proposals.states", config.num_states)
    if not isinstance(objects, ObjectTracks):
        raise ShapeError(f"score_proposals.objects: expected ObjectTracks, received {type(objects).__name__}")
    if objects.num_frames < states.shape[1]:
        raise ShapeError(f"score_proposals.objects: expected at least {states.shape[1]} frames (one per state), "
                         f"received {objects.num_frames}")
    if abs(objects.dt - config.dt) > 1e-9:
        raise ScenarioValidationError(f"score_proposals.objects.dt: expected {config.dt} s (ScorerConfig.dt), "
                                      f"received {objects.dt}")
    p_num = states.shape[0]
    dt = config.dt
    yaw = states[..., YAW]
    cos_sin = (torch.cos(yaw), torch.sin(yaw))
    footprint = ego_footprint(states, cos_sin)  # [P, S, 5, 2]
    areas = ego_areas(scoring_map, footprint, states[..., X:Y + 1], config.multiple_lanes_over, config.exact)
    fault_area = areas.multiple_lanes | areas.non_drivable
    col = collision_metrics(states, objects, fault_area, fault_area | areas.in_intersection, dt=dt,
                            ttc_lookahead_steps=config.ttc_lookahead_steps, ttc_max_state=config.ttc_max_state,
                            stopped_per_frame=config.stopped_per_frame, center=footprint[..., 4, :],
                            cos_sin=cos_sin)
    f64 = torch.float64
    nc = col.nc.to(f64)
    dac = torch.where(areas.non_drivable.any(1), 0.0, 1.0).to(f64)
    cl = scoring_map.centerline if centerline is None else torch.as_tensor(centerline, dtype=f64)
    prog = raw_progress(states, cl, config.progress_point).to(f64)
    mult = nc * dac
    if reference_progress is not None:
        ref_p = torch.as_tensor(reference_progress, dtype=f64)
        ref_m = torch.as_tensor(reference_multiplier, dtype=f64)
    elif config.reference == "first" and p_num:
        ref_p, ref_m = prog[0], mult[0]
    elif config.reference == "batch" and p_num:
        k = torch.argmax(prog * mult) if config.ep_rule == "navsim" else torch.argmax(prog)
        ref_p, ref_m = prog[k], mult[k]
    else:
        ref_p, ref_m = torch.zeros((), dtype=f64), torch.zeros((), dtype=f64)
    if config.ep_rule == "navsim":
        ep = ep_navsim(prog, mult, ref_p, ref_m, config.ep_threshold_m)
    elif config.ep_rule == "raw_max":
        ep = ep_raw_max(prog, mult, ref_p, config.ep_threshold_m)
    else:
        raise ScenarioValidationError(f"ScorerConfig.ep_rule: expected 'navsim' or 'raw_max', received {config.ep_rule!r}")
    c, checks = comfort(states, dt)
    ttc = col.ttc.to(f64)
    score = pdm_score(nc, dac, ep, ttc, c)
    centers = footprint[..., 4, :]
    ddc = driving_direction_compliance(centers, areas.oncoming, dt, config.ddc_mode).to(f64)
    lk = lane_keeping(states, cl, dt).to(f64) if config.lane_keeping else None
    return PDMScores(nc=nc, dac=dac, ep=ep, ttc=ttc, comfort=c, ddc=ddc, score=score, raw_progress=prog,
                     lane_keeping=lk, first_collision_idx=col.first_collision_idx,
                     first_agent_collision_idx=col.first_agent_collision_idx,
                     first_offroad_idx=_first_true(areas.non_drivable), first_ttc_idx=col.first_ttc_idx,
                     any_contact=col.any_contact, comfort_checks=checks, areas=areas, dt=dt)


def pdm_score(nc: torch.Tensor, dac: torch.Tensor, ep: torch.Tensor, ttc: torch.Tensor,
              c: torch.Tensor) -> torch.Tensor:
    """§2.13: NC·DAC·(5·EP + 5·TTC + 2·C)/12 (EP already multiplied by NC·DAC); broadcasts."""
    return nc * dac * (5.0 * ep + 5.0 * ttc + 2.0 * c) / 12.0


def aggregate_scene_table(table: pd.DataFrame, valid_column: str = "valid") -> pd.Series:
    """Dataset summary (§2.13): mean of each §2.13 column over scenes, rows with ``valid == False`` (scenes
    whose evaluation raised) excluded; ``num_scenes`` / ``num_valid`` added. Multiply by 100 to report."""
    missing = [c for c in PDMS_COLUMNS if c not in table.columns]
    if missing:
        raise ShapeError(f"aggregate_scene_table: expected columns {list(PDMS_COLUMNS)}, missing {missing}")
    ok = table[valid_column].astype(bool) if valid_column in table.columns else pd.Series(True, index=table.index)
    summary = table.loc[ok, list(PDMS_COLUMNS)].astype(float).mean()
    summary["num_scenes"] = float(len(table))
    summary["num_valid"] = float(ok.sum())
    return summary

