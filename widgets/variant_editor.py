"""VariantEditor: hand-edit a scenario with a parametric op and watch the base planner re-driven in closed loop.

Pick one of the ten ops (:data:`~worldengine_lab.variants.editing.EDITABLE_OPS`); every parameter gets a slider or
a picker (:func:`~worldengine_lab.variants.editing.op_specs`). Each change is one library call,
``EditSession.evaluate([build_op(op, params)])`` (:mod:`worldengine_lab.variants.editing`): the variant is made
and projected to feasibility, the base planner drives it in World Engine's closed loop, and the readouts show
pass / fail (failure type), PDMS*, minimum TTC and realism against the parent. An edit that does not fit the scene
shows the library's reason. The bird's-eye preview (canvas, drawn in the browser) shows the map, every agent at
the scrubbed step with its future path, the logged ego (dashed) and the ego's closed-loop path.

With a behaviour world model (``bwm``: a checkpoint path or a model) a gallery shows its sampled alternatives
(:func:`~worldengine_lab.variants.editing.sample_alternatives`), each evaluated the same way; clicking one
selects it. Accept / Reject record a curation decision (``store.curation.record_decision(ws, variant_id,
decision, kind="variant", note=...)``); Accept also stores the variant with its lineage
(:func:`~worldengine_lab.variants.store.save_variant`). A rejected variant is not stored, so post-training, which
reads the stored variants, never sees it.

Synced state is small: the op specs (sent once), the op name, its parameter values (JSON), the outcome readouts,
the note and a command trait (``request``: ``{"action": "accept" | "reject", "seq": n}``). Arrays travel as
one binary buffer per kind (map once, preview per change, gallery once) with a JSON layout, as in
:class:`~worldengine_lab.widgets.scenario_viewer.ScenarioViewer`. Handlers run inside an ``ipywidgets.Output``;
errors show in the widget's error area (``error``). The front end sends a change only when the previous one has
been answered (the latest values win), and debounces slider moves.

``latency_ms`` is the Python side of the last change (evaluate + packing the preview), ms; the front end writes
its slider-to-redraw time into ``data-roundtrip-ms`` of its root element.

Examples:
    >>> from worldengine_lab.store import Workspace                                   # doctest: +SKIP
    >>> editor = VariantEditor(Workspace.open("workspace"), failure_id, "constant_velocity")  # doctest: +SKIP
    >>> editor.set_state({"params": {**editor.params, "decel_mps2": 8.0}})  # as the front end  # doctest: +SKIP
    >>> editor.outcome["failure_type"], editor.accept(note="hard but fair")             # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
import pathlib
import time
from typing import Any, Mapping, Sequence

import anywidget
import ipywidgets
import numpy as np
import traitlets

from worldengine_lab.datatypes import EGO_INDEX, AgentType, Scenario, Variant
from worldengine_lab.errors import InfeasibleEditError, WorldEngineLabError
from worldengine_lab.plots.bev import MAP_KINDS, TYPE_COLORS, bev_frames
from worldengine_lab.store.workspace import Workspace
from worldengine_lab.variants.editing import EDITABLE_OPS, EditOutcome, EditSession, build_op, sample_alternatives

from ._arrays import to_bytes, wire_dtype
from ._assets import esm
from ._guard import GuardedView, guarded

__all__ = ["VariantEditor", "pack_arrays"]

logger = logging.getLogger(__name__)

_HERE = pathlib.Path(__file__).parent


def pack_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[bytes, dict[str, dict[str, Any]]]:
    """One binary buffer of ``arrays`` (each encoded with :func:`~worldengine_lab.widgets._arrays.to_bytes`, every
    array starting at a multiple of 4 bytes) and its layout ``{name: {"dtype", "offset", "shape"}}``."""
    parts, layout, offset = [], {}, 0
    for name, a in arrays.items():
        raw = to_bytes(a)
        layout[name] = {"dtype": wire_dtype(a), "offset": offset, "shape": [int(n) for n in np.shape(a)]}
        parts.append(raw)
        offset += len(raw)
    return b"".join(parts), layout


def _boxes(xy: np.ndarray, yaw: np.ndarray, size_lwh: np.ndarray) -> np.ndarray:
    """``[T, N, 5]`` float32 boxes (x, y, yaw, length, width)."""
    t = xy.shape[0]
    lw = np.broadcast_to(size_lwh[None, :, :2], (t,) + size_lwh[:, :2].shape)
    return np.concatenate([xy, yaw[..., None], lw], -1).astype(np.float32)


def _preview_arrays(parent: Scenario, outcome: EditOutcome | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays of the preview: the rollout's agents (ego simulated) or, without one, the parent's log.

    ``boxes [T, N, 5]``, ``valid [T, N]``, ``agent_type [N]``, ``edited [N]`` (1: changed or added by the edit),
    ``events [T, 3]`` (simulated, collision, off-road), ``logged_ego [T, 2]`` (NaN where not logged).
    """
    ro = outcome.rollout if outcome is not None else None
    scenario = outcome.variant.scenario if outcome is not None and outcome.variant is not None else parent
    a = ro.agents if ro is not None else scenario.agents
    t = a.num_steps
    events = np.zeros((t, 3), np.int32)
    if ro is not None:
        events[ro.t0:ro.t0 + ro.num_sim_steps + 1, 0] = 1
        for j, key in ((1, "sim/collision"), (2, "sim/offroad")):
            if key in ro.info:
                events[:, j] = np.asarray(ro.info[key], bool)[:t]
    edited = np.zeros(a.num_agents, np.int32)
    if outcome is not None and outcome.variant is not None:
        from worldengine_lab.variants import changed_agents

        edited[changed_agents(parent, scenario)] = 1
    logged = np.where(parent.agents.valid[:, EGO_INDEX, None], parent.agents.xy[:, EGO_INDEX], np.nan)
    hit = np.flatnonzero(events[:, 1])
    focus = int(hit[0]) if len(hit) else (int(ro.t0 + ro.num_sim_steps) if ro is not None else parent.t0)
    arrays = {"boxes": _boxes(a.xy, a.yaw, a.size_lwh), "valid": a.valid, "agent_type": a.agent_type.astype(np.int32),
              "edited": edited, "events": events, "logged_ego": logged.astype(np.float32)}
    meta = {"num_steps": int(t), "num_agents": int(a.num_agents), "t0": int(scenario.t0), "dt": float(scenario.dt),
            "focus_t": focus, "track_ids": [str(x) for x in a.track_ids]}
    return arrays, meta


class VariantEditor(GuardedView, anywidget.AnyWidget):
    """Edit ``parent`` with one parametric op and see ``planner`` re-driven in closed loop on every change.

    Args:
        workspace: the :class:`~worldengine_lab.store.Workspace` (or its folder) decisions and variants go to.
        parent: the scenario to edit, or its id in the workspace catalog (e.g. a mined failure window).
        planner: the base planner: a :class:`~worldengine_lab.planners.Planner` (e.g. a ``LearnedPlanner``) or a
            ``load_planner`` spec (``"constant_velocity"``, ``"expert"``, a checkpoint path).
        bwm: a behaviour world model checkpoint path or model: show a gallery of its sampled alternatives.
        num_samples: gallery size; seed: variant seed (part of the ids) and sampling seed.
        op / params: the initial op and parameter values (default: the first op of the menu that fits the scene,
            with its form defaults).
        height: preview canvas height, px.

    Traits:
        op, params: the edit (synced; setting them re-evaluates). outcome: readouts of the current edit
        (:meth:`EditOutcome.to_dict`, plus ``seq``); parent_outcome: the same for the unedited parent.
        selected: -1 for the hand edit, k for gallery sample k. note: the text stored with a decision.
        latency_ms: Python time of the last change (evaluate + packing), ms. status, error: messages.
    """

    _esm = esm("variant_editor.js")
    _css = _HERE / "variant_editor.css"

    ops = traitlets.List(traitlets.Dict()).tag(sync=True)
    """Form description of every op (:meth:`OpSpec.to_dict`), sent once."""
    op = traitlets.Unicode("").tag(sync=True)
    params = traitlets.Dict().tag(sync=True)
    """Parameter values of ``op`` (JSON: lists for vectors, None for "default", ``"auto"``)."""
    seq = traitlets.Int(0).tag(sync=True)
    """Change counter of the front end; echoed in ``outcome["seq"]`` when the change is evaluated."""
    outcome = traitlets.Dict().tag(sync=True)
    parent_outcome = traitlets.Dict().tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    gallery = traitlets.List(traitlets.Dict()).tag(sync=True)
    """Per sampled alternative: ``{"index", "variant_id", "success", "failure_type", "min_ttc_s", "valid", ...}``."""
    note = traitlets.Unicode("").tag(sync=True)
    request = traitlets.Dict().tag(sync=True)
    """A command from the front end: ``{"action": "accept" | "reject", "seq": n}``."""
    latency_ms = traitlets.Float(0.0).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    _map_meta = traitlets.Dict().tag(sync=True)
    _map_payload = traitlets.Bytes(b"").tag(sync=True)
    _meta = traitlets.Dict().tag(sync=True)
    _payload = traitlets.Bytes(b"").tag(sync=True)
    _gallery_meta = traitlets.Dict().tag(sync=True)
    _gallery_payload = traitlets.Bytes(b"").tag(sync=True)

    def __init__(self, workspace: Workspace | str | os.PathLike[str], parent: Scenario | str, planner: Any,
                 bwm: Any = None, num_samples: int = 6, op: str | None = None,
                 params: Mapping[str, Any] | None = None, seed: int = 0, height: int = 380, **kwargs: Any) -> None:
        self._depth = 0
        self._in_message = False
        self._quiet = False
        self.output = ipywidgets.Output()
        if isinstance(workspace, (str, os.PathLike)):
            workspace = Workspace.open(workspace, create=False)
        if not isinstance(workspace, Workspace):
            raise WorldEngineLabError(f"VariantEditor(workspace): expected a Workspace or its folder, received "
                                      f"{type(workspace).__name__}")
        self.workspace = workspace
        if isinstance(parent, str):
            found = list(workspace.scenarios(ids=(parent,)))
            if not found:
                raise WorldEngineLabError(f"VariantEditor(parent): no scenario {parent!r} in {workspace.root}; pass a "
                                          f"Scenario or an id of ws.scenario_ids()")
            parent = found[0]
        if not isinstance(parent, Scenario):
            raise WorldEngineLabError(f"VariantEditor(parent): expected a Scenario or its id, received "
                                      f"{type(parent).__name__}")
        if isinstance(planner, (str, os.PathLike)):
            from worldengine_lab.planners import load_planner

            planner = load_planner(planner)
        self.session = EditSession(parent, planner, seed=seed)
        self.latencies_ms: list[float] = []
        self.accepted: list[Variant] = []
        self._current: EditOutcome | None = None
        self._samples: list[EditOutcome] = []
        specs = self.session.specs()
        if op is None:
            op = self._first_fitting(specs) if params is None else EDITABLE_OPS[0]
        if op not in specs:
            raise WorldEngineLabError(f"VariantEditor(op): expected one of {list(specs)}, received {op!r}")
        frames = bev_frames(parent)
        map_payload, map_layout = pack_arrays({"map_xy": frames.map_xy, "map_offsets": frames.map_offsets,
                                               "map_kind": frames.map_kind})
        map_meta = {"arrays": map_layout, "map_kinds": list(MAP_KINDS), "bounds": frames.bounds.astype(float).tolist(),
                    "type_colors": [TYPE_COLORS[t] for t in AgentType], "height": int(height),
                    "scenario_id": parent.scenario_id}
        base = self.session.evaluate()
        super().__init__(ops=[s.to_dict() for s in specs.values()], op=op,
                         params=dict(params) if params is not None else specs[op].defaults(),
                         parent_outcome=base.to_dict(), _map_meta=map_meta, _map_payload=map_payload, **kwargs)
        self.view = ipywidgets.VBox([self, self.output])
        self.observe(self._on_op, names=["op"])
        self.observe(self._on_params, names=["params"])
        self.observe(self._on_selected, names=["selected"])
        self.observe(self._on_request, names=["request"])
        self._evaluate()
        if bwm is not None:
            self.sample(bwm, num_samples, seed)

    def _first_fitting(self, specs: Mapping[str, Any]) -> str:
        """The first op of the menu whose form defaults fit the parent (make only, no closed loop)."""
        from worldengine_lab.variants import make_variant

        for name in EDITABLE_OPS:  # ten cheap edits at most
            try:
                make_variant(self.session.parent, [build_op(name, specs[name].defaults())])
                return name
            except InfeasibleEditError:
                continue
        return "insert_agent"

    # -- library calls behind the controls ------------------------------------------------------------------
    def evaluate(self) -> EditOutcome:
        """Evaluate the current ``op`` and ``params`` (``EditSession.evaluate([build_op(op, params)])``), update
        the readouts and the preview, and return the outcome (``feasible`` False with the reason when the edit
        does not fit)."""
        return self._evaluate()

    def _evaluate(self) -> EditOutcome:
        t0 = time.perf_counter()
        try:
            ops = [build_op(self.op, self.params)]
        except InfeasibleEditError as exc:
            outcome = EditOutcome([{"op": self.op, **self.params}], False, str(exc))
        else:
            outcome = self.session.evaluate(ops)
        self._current = outcome
        self._show(outcome, t0)
        return outcome

    def _show(self, outcome: EditOutcome, t0: float) -> None:
        with self.hold_sync():
            if outcome.feasible:
                arrays, meta = _preview_arrays(self.session.parent, outcome)
                payload, layout = pack_arrays(arrays)
                self._meta = {**meta, "arrays": layout}
                self._payload = payload
            self.latency_ms = round(1e3 * (time.perf_counter() - t0), 1)
            self.latencies_ms.append(self.latency_ms)
            self.outcome = {**outcome.to_dict(), "seq": int(self.seq), "latency_ms": self.latency_ms,
                            "selected": int(self.selected)}
            self.status = (f"{outcome.variant_id}: evaluated in {self.latency_ms:.0f} ms" if outcome.feasible
                           else "infeasible edit")

    def sample(self, bwm: Any, num_samples: int = 6, seed: int = 0) -> list[EditOutcome]:
        """Fill the gallery with ``num_samples`` alternatives sampled by the behaviour world model ``bwm`` (a
        checkpoint path or a model), each evaluated in closed loop; return their outcomes."""
        from worldengine_lab.variants.bwm_model import BehaviourWorldModel, load_bwm

        model = bwm if isinstance(bwm, BehaviourWorldModel) else load_bwm(bwm)[0]
        variants = sample_alternatives(model, self.session.parent, num_samples, seed)
        self._samples = self.session.evaluate_variants(variants) if variants else []
        parts: dict[str, np.ndarray] = {}
        rows = []
        for k, o in enumerate(self._samples):  # a handful of thumbnails
            ro = o.rollout
            assert ro is not None
            a = ro.agents
            xy = np.where(a.valid[..., None], a.xy, np.nan).astype(np.float32)
            sim = np.full((a.num_steps, 2), np.nan, np.float32)
            sim[ro.t0:ro.t0 + ro.num_sim_steps + 1] = a.xy[ro.t0:ro.t0 + ro.num_sim_steps + 1, EGO_INDEX]
            parts[f"s{k}/paths"] = xy
            parts[f"s{k}/ego"] = sim
            rows.append({"index": k, **o.to_dict(), "t0": int(ro.t0)})
        payload, layout = pack_arrays(parts)
        with self.hold_sync():
            self._gallery_meta = {"arrays": layout}
            self._gallery_payload = payload
            self.gallery = rows
        self.status = f"{len(rows)} behaviour-model alternatives"
        return self._samples

    def select(self, index: int) -> None:
        """Show gallery sample ``index`` (-1: back to the hand edit)."""
        self.selected = int(index)

    def decide(self, decision: str, note: str | None = None) -> int:
        """Record ``decision`` (``"accept"`` or ``"reject"``) on the shown variant with ``note`` (default: the
        ``note`` trait): ``store.curation.record_decision(ws, variant_id, decision, kind="variant", note=...)``;
        an accepted variant is stored first (``variants.store.save_variant``). Returns the decision id."""
        from worldengine_lab.store.curation import record_decision
        from worldengine_lab.variants import save_variant

        if decision not in ("accept", "reject"):
            raise WorldEngineLabError(f"VariantEditor.decide: expected 'accept' or 'reject', received {decision!r}")
        shown = self._shown()
        if shown is None or shown.variant is None:
            why = shown.error if shown is not None and shown.error else "no edit is shown"
            raise WorldEngineLabError(f"VariantEditor.{decision}: there is no feasible variant to {decision} ({why}); "
                                      "change the parameters until the edit fits")
        v = shown.variant
        if decision == "accept":
            save_variant(self.workspace, v)
            if all(a.variant_id != v.variant_id for a in self.accepted):
                self.accepted.append(v)
        did = record_decision(self.workspace, v.variant_id, decision, kind="variant",
                              note=self.note if note is None else note)
        self.status = f"{decision}ed {v.variant_id} (decision {did})"
        logger.info("VariantEditor: %s %s", decision, v.variant_id)
        return did

    def accept(self, note: str | None = None) -> int:
        """Store the shown variant and record an ``accept`` decision (:meth:`decide`)."""
        return self.decide("accept", note)

    def reject(self, note: str | None = None) -> int:
        """Record a ``reject`` decision on the shown variant (:meth:`decide`; the variant is not stored)."""
        return self.decide("reject", note)

    def _shown(self) -> EditOutcome | None:
        if 0 <= self.selected < len(self._samples):
            return self._samples[self.selected]
        return self._current

    @property
    def selection(self) -> list[Variant]:
        """The variant shown (hand edit or selected sample) as a one-element list; empty when infeasible."""
        shown = self._shown()
        return [shown.variant] if shown is not None and shown.variant is not None else []

    @property
    def samples(self) -> list[EditOutcome]:
        """The gallery's evaluated alternatives."""
        return list(self._samples)

    @property
    def current(self) -> EditOutcome | None:
        """The outcome of the hand edit."""
        return self._current

    # -- handlers -------------------------------------------------------------------------------------------
    @guarded
    def _on_op(self, change: Mapping[str, Any]) -> None:
        specs = {s["name"]: s for s in self.ops}
        if change["new"] not in specs:
            self.set_trait("op", change["old"])
            raise WorldEngineLabError(f"VariantEditor.op: expected one of {list(specs)}, received {change['new']!r}")
        defaults = {p["name"]: p["default"] for p in specs[change["new"]]["params"]}
        self._back_to_edit()
        if set(self.params) == set(defaults):
            self._evaluate()
        else:
            self.params = defaults  # re-evaluates through _on_params

    @guarded
    def _on_params(self, change: Mapping[str, Any]) -> None:
        self._back_to_edit()
        self._evaluate()

    def _back_to_edit(self) -> None:
        """Show the hand edit again (without redrawing: the caller evaluates next)."""
        if self.selected != -1:
            self._quiet = True
            try:
                self.selected = -1
            finally:
                self._quiet = False

    @guarded
    def _on_selected(self, change: Mapping[str, Any]) -> None:
        if self._quiet:
            return
        k = int(change["new"])
        if k != -1 and not 0 <= k < len(self._samples):
            self.set_trait("selected", -1)
            raise WorldEngineLabError(f"VariantEditor.selected: expected -1 or a sample index < {len(self._samples)}, "
                                      f"received {k}")
        t0 = time.perf_counter()
        self._show(self._samples[k] if k >= 0 else self._current or self._evaluate(), t0)

    @guarded
    def _on_request(self, change: Mapping[str, Any]) -> None:
        req = dict(change["new"] or {})
        if not req:
            return
        action = req.get("action")
        if action not in ("accept", "reject"):
            raise WorldEngineLabError(f"VariantEditor.request: action: expected 'accept' or 'reject', received "
                                      f"{action!r}")
        self.decide(action)


def latency_summary(values_ms: Sequence[float]) -> dict[str, float]:
    """Median, 90th percentile and max of per-change latencies, ms."""
    v = np.asarray(values_ms, np.float64)
    if not len(v):
        return {"median_ms": float("nan"), "p90_ms": float("nan"), "max_ms": float("nan")}
    return {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90)), "max_ms": float(v.max())}
