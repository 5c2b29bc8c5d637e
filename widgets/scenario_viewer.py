"""ScenarioViewer: an animated bird's-eye view of a scenario and its rollouts, drawn on a canvas in the browser.

The static data (map, every frame of every agent, trajectories, top-k candidates) is packed once by
:func:`worldengine_lab.plots.bev.bev_frames` and sent as one binary buffer (``_payload``: float32 / int32
arrays, little-endian) with a small JSON layout (``_meta``). Scrubbing changes only the ``t`` trait; the
browser redraws from the arrays it already holds. Two or more rollouts are shown side by side on one ``t``.

Library equivalents: ``bev_frames(scenario, rollouts)``, ``bev_figure(scenario, rollouts, t=viewer.t)`` and
``top_k_candidates(scenario, rollouts, planner, k)`` in :mod:`worldengine_lab.plots.bev`.

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> viewer = ScenarioViewer(make_scenario(num_agents=3, num_steps=21, t0=5))
    >>> viewer.t, viewer.num_steps
    (5, 21)
"""
from __future__ import annotations

import logging
import pathlib
import traceback
from typing import Any, Callable, Sequence

import anywidget
import numpy as np
import traitlets

from worldengine_lab.datatypes import AgentType, Rollout, Scenario
from worldengine_lab.errors import ScenarioValidationError, ShapeError
from worldengine_lab.plots.bev import (LIGHT_COLORS, MAP_KINDS, PANEL_COLORS, SUBSCORE_LABELS, TYPE_COLORS,
                                       BEVFrames, bev_figure, bev_frames, top_k_candidates)

from ._assets import esm

from ._arrays import to_bytes, wire_dtype

__all__ = ["ScenarioViewer", "pack_frames"]

log = logging.getLogger(__name__)

_HERE = pathlib.Path(__file__).parent


def pack_frames(frames: BEVFrames) -> tuple[bytes, dict[str, dict[str, Any]]]:
    """One binary buffer with every array the front end draws, and its layout.

    The arrays of a scenario (their number depends on the panels) travel together in one ``Bytes`` trait: each
    is encoded with :func:`~worldengine_lab.widgets._arrays.to_bytes` and the layout (a small dict in the
    ``_meta`` trait) replaces the per-array ``<name>_shape`` traits.

    Returns:
        ``(payload, layout)``: ``layout[name] = {"dtype": "float32" | "int32", "offset": byte offset,
        "shape": [...]}``; every array starts at a multiple of 4 bytes. Names: ``map_xy [Q, 2]``,
        ``map_offsets [M + 1]``, ``map_kind [M]``, ``light_status [T, L]``, ``light_polyline [J]``,
        ``light_column [J]``, ``agent_type [N]``, ``logged_ego [T, 5]`` (the logged ego box, NaN where not logged),
        and per panel
        ``i``: ``p{i}/boxes [T, N, 5]``, ``p{i}/valid [T, N]``, ``p{i}/events [T, 4]`` (simulated, collision,
        off-road, first agent in contact or -1), ``p{i}/plans [P, 41, 2]``, ``p{i}/plan_steps [P]`` and, with
        candidates, ``p{i}/cand_xy [C, k, 41, 2]``, ``p{i}/cand_steps [C]``, ``p{i}/cand_index [C, k]``,
        ``p{i}/cand_values [C, k, 7]`` (selection score, policy, then the 5 sub-scores).
    """
    arrays: dict[str, np.ndarray] = {
        "map_xy": frames.map_xy, "map_offsets": frames.map_offsets, "map_kind": frames.map_kind,
        "light_status": frames.light_status, "light_polyline": frames.light_polyline,
        "light_column": frames.light_column, "agent_type": frames.agent_type,
        "logged_ego": np.where(frames.log.valid[:, :1], frames.log.boxes[:, 0], np.nan),
    }
    for i, p in enumerate(frames.panels):  # a few panels
        arrays[f"p{i}/boxes"] = p.boxes
        arrays[f"p{i}/valid"] = p.valid
        arrays[f"p{i}/events"] = np.stack([p.simulated, p.collision, p.offroad, p.collision_agent], -1)
        arrays[f"p{i}/plans"] = p.plans_xy
        arrays[f"p{i}/plan_steps"] = p.plan_steps
        c = p.candidates
        if c is not None:
            arrays[f"p{i}/cand_xy"] = c.xy
            arrays[f"p{i}/cand_steps"] = c.steps
            arrays[f"p{i}/cand_index"] = c.indices
            arrays[f"p{i}/cand_values"] = np.concatenate([c.scores[..., None], c.policy[..., None], c.subscores], -1)
    parts, layout, offset = [], {}, 0
    for name, a in arrays.items():
        raw = to_bytes(a)
        layout[name] = {"dtype": wire_dtype(a), "offset": offset, "shape": [int(n) for n in a.shape]}
        parts.append(raw)
        offset += len(raw)
    return b"".join(parts), layout


def _meta(frames: BEVFrames, layout: dict[str, Any], height: int) -> dict[str, Any]:
    """Small JSON metadata: sizes, labels, colours, track ids and the payload layout."""
    return {
        "scenario_id": frames.scenario_id, "dt": frames.dt, "t0": frames.t0, "num_steps": frames.num_steps,
        "num_agents": frames.num_agents, "height": int(height),
        "panels": [{"label": p.label, "color": PANEL_COLORS[i % len(PANEL_COLORS)] if frames.rollouts else "#7048e8",
                    "num_plans": int(len(p.plan_steps)), "k": p.candidates.k if p.candidates is not None else 0,
                    "is_log": p is frames.log} for i, p in enumerate(frames.panels)],
        "map_kinds": list(MAP_KINDS), "lane_polyline0": frames.lane_polyline0,
        "type_names": [t.name.lower() for t in AgentType], "type_colors": [TYPE_COLORS[t] for t in AgentType],
        "light_colors": list(LIGHT_COLORS), "subscore_names": list(SUBSCORE_LABELS),
        "track_ids": frames.track_ids.astype(str).tolist(), "bounds": frames.bounds.astype(float).tolist(),
        "arrays": layout,
    }


class ScenarioViewer(anywidget.AnyWidget):
    """A BEV animation of ``scenario`` and its ``rollouts`` side by side, with a time scrubber and play button.

    Args:
        scenario: the scenario shown.
        *rollouts: rollouts of it (``worldengine_lab.sim.rollout``); each gets a panel on the same ``t``.
        planner: a learned planner (``top_k(obs, k)``): its top-k candidates and sub-scores at every planning
            step are computed in one batched call and drawn as thin lines (hover shows the sub-scores).
        labels: one panel title per rollout (default: planner ids).
        top_k: candidates per planning step.
        t: initial step (default: the scenario's t0); height: canvas height, px.

    Traits:
        t: the time index shown (synced; ``viewer.t = 10`` moves the front end).
        playing: the animation is running; fps: play speed in frames per second (default: real time).
        error: the last error of a Python callback (shown in the widget; set to "" to clear).

    Use :meth:`on_step` to run a callback at every time change; its errors appear in the widget.
    """

    _esm = esm("scenario_viewer.js")
    _css = _HERE / "scenario_viewer.css"

    t = traitlets.Int(0).tag(sync=True)
    playing = traitlets.Bool(False).tag(sync=True)
    fps = traitlets.Float(10.0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    _meta = traitlets.Dict().tag(sync=True)
    _payload = traitlets.Bytes(b"").tag(sync=True)

    def __init__(self, scenario: Scenario, *rollouts: Rollout, planner: Any = None,
                 labels: Sequence[str] | None = None, top_k: int = 5, t: int | None = None, height: int = 420,
                 **kwargs: Any) -> None:
        if not isinstance(scenario, Scenario):
            raise ScenarioValidationError(f"ScenarioViewer(scenario): expected a Scenario, received "
                                          f"{type(scenario).__name__}; load one with ScenarioSet[...] or testing")
        if not (isinstance(top_k, int) and top_k >= 1):
            raise ShapeError(f"ScenarioViewer(top_k): expected an int >= 1, received {top_k!r}")
        candidates = top_k_candidates(scenario, rollouts, planner, top_k) if planner is not None else None
        frames = bev_frames(scenario, rollouts, labels, candidates)
        payload, layout = pack_frames(frames)
        self._scenario = scenario
        self._rollouts = tuple(rollouts)
        self._frames = frames
        self._callbacks: list[Callable[[int], Any]] = []
        kwargs.setdefault("fps", 1.0 / frames.dt)
        # the whole state goes out with the first message: the front end never sees a half-built viewer
        super().__init__(_meta=_meta(frames, layout, height), _payload=payload, t=frames.t0 if t is None else t,
                         **kwargs)
        self.observe(self._on_t, names=["t"])
        log.debug("ScenarioViewer %s: %d panels, payload %d bytes", frames.scenario_id, len(frames.panels),
                  len(payload))

    # -- state ----------------------------------------------------------------------------------------------
    @traitlets.validate("t")
    def _valid_t(self, proposal: dict[str, Any]) -> int:
        """Clamp to ``[0, T - 1]`` (the front end never leaves the range; Python callers may)."""
        return int(min(max(int(proposal["value"]), 0), self._frames.num_steps - 1))

    def _on_t(self, change: dict[str, Any]) -> None:
        for fn in list(self._callbacks):
            try:
                fn(int(change["new"]))
            except Exception as e:  # noqa: BLE001 - every callback error is shown, never dropped
                log.exception("ScenarioViewer callback %r failed at t=%s", fn, change["new"])
                self.error = f"{type(e).__name__} in {getattr(fn, '__name__', fn)!s} at t={change['new']}: {e}\n" \
                             + "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:])

    def on_step(self, callback: Callable[[int], Any], remove: bool = False) -> None:
        """Call ``callback(t)`` whenever ``t`` changes (or stop calling it with ``remove=True``)."""
        if remove:
            self._callbacks = [f for f in self._callbacks if f != callback]
        elif callback not in self._callbacks:
            self._callbacks.append(callback)

    # -- library objects --------------------------------------------------------------------------------------
    @property
    def selection(self) -> Scenario:
        """The scenario shown."""
        return self._scenario

    @property
    def rollouts(self) -> tuple[Rollout, ...]:
        """The rollouts shown, one per panel."""
        return self._rollouts

    @property
    def frames(self) -> BEVFrames:
        """The packed arrays the front end draws (:func:`~worldengine_lab.plots.bev.bev_frames`)."""
        return self._frames

    @property
    def num_steps(self) -> int:
        """T, the length of the timeline."""
        return self._frames.num_steps

    @property
    def payload_nbytes(self) -> int:
        """Size of the binary payload sent once to the front end, bytes."""
        return len(self._payload)

    def figure(self, t: int | None = None, **kwargs: Any) -> Any:
        """The current step (or ``t``) as a static plotly figure (:func:`~worldengine_lab.plots.bev.bev_figure`)."""
        return bev_figure(self._scenario, frames=self._frames, t=self.t if t is None else t, **kwargs)
