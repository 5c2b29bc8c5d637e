"""Interactive editing of one scenario: what each op's parameters are, and one edit evaluated in closed loop.

* :func:`op_specs` describes the parameters of the ten parametric ops (:data:`EDITABLE_OPS`) for a form: names,
  defaults and docs come from the op dataclasses (the attribute docstring under each field), ranges from
  :data:`PARAM_RANGES` (the documented ranges and the feasibility limits); agent pickers list the scenario's
  agents. :func:`build_op` turns a form's JSON values back into an op.
* :class:`EditSession` evaluates edits of one parent for one planner: :func:`~worldengine_lab.variants.make_variant`,
  the planner in World Engine's closed loop (one rollout), PDMS* / success / failure type and minimum TTC
  (:func:`~worldengine_lab.variants.realism.closed_loop_rows`) and realism against the parent
  (:func:`~worldengine_lab.variants.realism.realism_report`), as one :class:`EditOutcome`. An edit that does not
  fit the scene is an outcome with ``feasible=False`` and the library's reason, not an exception. The parent's
  scoring map (map, route and ego at t0, which no edit changes) is built once and shared by every edit.
* :func:`sample_alternatives`: the behaviour world model's sampled variants of the parent (adversarially guided
  when the parent has an attacker near the ego).

Frames and units: scenario local frame, metres, seconds, m/s, m/s^2; times ``*_s`` are seconds after "now" (t0).

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> specs = op_specs(make_scenario(num_agents=2))
    >>> [p.name for p in specs["hard_brake"].params], specs["hard_brake"].defaults()["decel_mps2"]
    (['lead', 'decel_mps2', 'onset_s'], 6.0)
    >>> build_op("hard_brake", {"lead": "veh1", "decel_mps2": 4, "onset_s": 1}).to_dict()["decel_mps2"]
    4.0
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import inspect
import logging
import math
import textwrap
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping, Sequence

import numpy as np

from ..datatypes import EGO_INDEX, AgentType, Rollout, Scenario, Variant
from ..errors import InfeasibleEditError, ShapeError
from .limits import FeasibilityConfig
from .lineage import make_variant
from .ops import AUTO, OPS, Op, _ensure_registered
from .ops_agents import AGENT_TYPE_NAMES

if TYPE_CHECKING:
    from ..metrics.scoring_map import ScoringMap
    from ..mining.evaluate import EvalConfig
    from ..planners.base import Planner
    from .bwm_model import BehaviourWorldModel

__all__ = ["EDITABLE_OPS", "OP_LABELS", "PARAM_RANGES", "ParamSpec", "OpSpec", "op_specs", "build_op",
           "EditOutcome", "EditSession", "sample_alternatives"]

logger = logging.getLogger(__name__)

EDITABLE_OPS: tuple[str, ...] = ("cut_in", "hard_brake", "pedestrian_dart_out", "red_light_run", "stall",
                                 "time_shift", "speed_scale", "lateral_offset", "insert_agent", "remove_agent")
"""The parametric ops an editor offers, in menu order."""

OP_LABELS: dict[str, str] = {
    "cut_in": "cut-in", "hard_brake": "hard brake", "pedestrian_dart_out": "pedestrian dart-out",
    "red_light_run": "red-light run", "stall": "stall", "time_shift": "time shift", "speed_scale": "speed scale",
    "lateral_offset": "lateral offset", "insert_agent": "insert agent", "remove_agent": "remove agent"}
"""Menu label of each op."""

Range = tuple[float, float, float]
PARAM_RANGES: dict[str, dict[str, Range | tuple[Range, ...]]] = {
    "cut_in": {"gap_m": (0.0, 30.0, 0.5), "duration_s": (0.5, 5.0, 0.1), "onset_s": (0.0, 4.0, 0.1)},
    "hard_brake": {"decel_mps2": (0.5, 9.0, 0.25), "onset_s": (0.0, 6.0, 0.1)},
    "pedestrian_dart_out": {"spawn": ((2.0, 80.0, 0.5), (-8.0, 8.0, 0.25)), "speed_mps": (0.2, 4.0, 0.1),
                            "onset_s": (0.0, 6.0, 0.1), "walk_m": (0.5, 16.0, 0.5)},
    "red_light_run": {"onset_s": (0.1, 8.0, 0.1), "speed_mps": (2.0, 25.0, 0.5)},
    "stall": {"at_s": (0.0, 6.0, 0.1), "decel_mps2": (0.5, 9.0, 0.25)},
    "time_shift": {"shift_s": (-4.0, 4.0, 0.1)},
    "speed_scale": {"factor": (0.0, 2.0, 0.05), "onset_s": (0.0, 6.0, 0.1)},
    "lateral_offset": {"offset_m": (-4.0, 4.0, 0.1), "onset_s": (0.0, 6.0, 0.1), "ramp_s": (0.5, 6.0, 0.1)},
    "insert_agent": {"pose": ((-30.0, 80.0, 0.5), (-15.0, 15.0, 0.25), (-3.14, 3.14, 0.05)),
                     "speed_mps": (0.0, 25.0, 0.5)},
}
"""Slider ranges ``(min, max, step)`` per op and number parameter (one per component of a vector parameter):
the documented ranges of the op fields, capped by the vehicle / pedestrian limits of
:class:`~worldengine_lab.variants.FeasibilityConfig` (9 m/s^2 braking, 4 m/s walking); values outside them can
still be passed to :func:`build_op`."""

_COMPONENTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("pedestrian_dart_out", "spawn"): ("s_m", "d_m"), ("insert_agent", "pose"): ("x_m", "y_m", "yaw_rad")}
_HIDDEN: dict[str, tuple[str, ...]] = {"insert_agent": ("path", "size_lwh", "track_id"),
                                       "pedestrian_dart_out": ("track_id",)}
"""Fields a form leaves at their dataclass default (a polyline, an explicit size or track id)."""
_FORM_DEFAULTS: dict[str, dict[str, Any]] = {
    "time_shift": {"shift_s": 1.0}, "speed_scale": {"factor": 0.5}, "lateral_offset": {"offset_m": 1.0},
    "insert_agent": {"pose": (15.0, 0.0, 0.0), "frame": "ego"}, "red_light_run": {"onset_s": None}}
"""Form defaults of fields without a dataclass default (or whose default does not make a usable form)."""
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("insert_agent", "agent_type"): tuple(sorted(set(AGENT_TYPE_NAMES) - {"cyclist"})),
    ("insert_agent", "frame"): ("ego", "local")}
_REQUIRED: tuple[tuple[str, str], ...] = (("insert_agent", "pose"),)
"""Optional fields a form always sets (the insert's ``path`` alternative is hidden)."""
_AGENT_FIELDS = ("agent", "lead")
_MAX_AGENT_CHOICES = 40


@dataclass(frozen=True)
class ParamSpec:
    """One op parameter as a form control.

    ``kind``: ``"number"`` (a slider over ``[min, max]`` in steps of ``step``), ``"vector"`` (one slider per
    component; ``min`` / ``max`` / ``step`` per component), ``"choice"`` (one of ``choices``) or ``"agent"``
    (a track id of the scenario, ``choices`` nearest to the ego first). ``optional``: None is allowed (the op's
    own default, e.g. "when the logged ego passes"); ``auto``: ``"auto"`` is allowed (the op picks itself).
    """

    name: str
    kind: Literal["number", "vector", "choice", "agent"]
    default: Any
    doc: str = ""
    unit: str = ""
    min: tuple[float, ...] = ()
    max: tuple[float, ...] = ()
    step: tuple[float, ...] = ()
    components: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    optional: bool = False
    auto: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form description (tuples as lists)."""
        out = dataclasses.asdict(self)
        out["default"] = _jsonable(self.default)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclass(frozen=True)
class OpSpec:
    """One op as a form: ``name`` (registry key), menu ``label``, ``doc`` (first paragraph of its docstring) and
    its editable ``params``."""

    name: str
    label: str
    doc: str
    params: tuple[ParamSpec, ...]

    def defaults(self) -> dict[str, Any]:
        """``{param: default}`` (JSON-able values)."""
        return {p.name: _jsonable(p.default) for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form description."""
        return {"name": self.name, "label": self.label, "doc": self.doc,
                "params": [p.to_dict() for p in self.params]}


def _jsonable(v: Any) -> Any:
    return [_jsonable(x) for x in v] if isinstance(v, (tuple, list)) else v


@functools.lru_cache(maxsize=None)
def _field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal under each field), by field name."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):  # no source (frozen app): forms go without docs
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr) \
                and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str):
            docs[a.target.id] = " ".join(b.value.value.split()).replace("``", "")
    return docs


def _unit(name: str) -> str:
    for suffix, unit in (("_mps2", "m/s²"), ("_mps", "m/s"), ("_m", "m"), ("_s", "s"), ("_rad", "rad")):
        if name.endswith(suffix):
            return unit
    return ""


def _agent_choices(scenario: Scenario | None, observed: bool) -> tuple[str, ...]:
    """Track ids of non-ego agents (observed at t0 unless ``observed`` is False), nearest to the ego first."""
    if scenario is None:
        return ()
    a = scenario.agents
    ok = a.valid[scenario.t0] if observed else a.valid[scenario.t0:].any(0) | a.valid[scenario.t0]
    ok = ok & ~np.isin(a.agent_type, [int(t) for t in AgentType if t.is_static])
    ok[EGO_INDEX] = False
    t = np.where(a.valid[:, :].any(0), np.argmax(a.valid, axis=0), 0)
    t = np.where(a.valid[scenario.t0], scenario.t0, t)
    d = np.linalg.norm(a.xy[t, np.arange(a.num_agents)] - a.xy[scenario.t0, EGO_INDEX], axis=-1)
    order = np.argsort(np.where(ok, d, np.inf), kind="stable")[: int(ok.sum())][:_MAX_AGENT_CHOICES]
    return tuple(str(x) for x in a.track_ids[order])


def _param(op: str, cls: type[Op], f: dataclasses.Field, scenario: Scenario | None) -> ParamSpec:
    ann = str(f.type)
    doc = _field_docs(cls).get(f.name, "")
    has_default = f.default is not dataclasses.MISSING
    default = _FORM_DEFAULTS.get(op, {}).get(f.name, f.default if has_default else None)
    optional = ("Optional" in ann or "None" in ann) and (op, f.name) not in _REQUIRED
    rng = PARAM_RANGES.get(op, {}).get(f.name)
    if f.name in _AGENT_FIELDS:
        auto = bool(getattr(cls, "supports_auto", False))
        choices = _agent_choices(scenario, observed=op != "remove_agent")
        if not auto and default in (None, AUTO):
            default = choices[0] if choices else ""
        return ParamSpec(f.name, "agent", default, doc, choices=((AUTO,) if auto else ()) + choices, auto=auto)
    if (op, f.name) in _CHOICES:
        return ParamSpec(f.name, "choice", default, doc, choices=_CHOICES[(op, f.name)])
    if (op, f.name) in _COMPONENTS:
        comps = _COMPONENTS[(op, f.name)]
        ranges = rng if rng is not None else tuple((-50.0, 50.0, 0.5) for _ in comps)
        auto = "str" in ann
        if default in (None, AUTO) and not (auto or optional):
            default = tuple(0.5 * (lo + hi) for lo, hi, _ in ranges)
        return ParamSpec(f.name, "vector", default, doc, "", tuple(r[0] for r in ranges), tuple(r[1] for r in ranges),
                         tuple(r[2] for r in ranges), comps, optional=optional and not auto, auto=auto)
    if "float" in ann or "int" in ann:
        lo, hi, step = rng if rng is not None else (0.0, 10.0, 0.1)  # type: ignore[misc]
        if default is None and not optional:
            default = lo
        return ParamSpec(f.name, "number", default, doc, _unit(f.name), (lo,), (hi,), (step,), optional=optional)
    raise InfeasibleEditError(f"op_specs({op!r}): field {f.name!r} has type {ann!r}, which no form control shows; "
                              f"add it to the hidden fields of worldengine_lab.variants.editing")


def op_specs(scenario: Scenario | None = None, ops: Sequence[str] = EDITABLE_OPS) -> dict[str, OpSpec]:
    """Form descriptions of ``ops`` (default: :data:`EDITABLE_OPS`), agent pickers filled from ``scenario``.

    Raises:
        InfeasibleEditError: an unknown op name.
    """
    _ensure_registered()
    out: dict[str, OpSpec] = {}
    for name in ops:  # ten small dataclasses
        cls = OPS.get(name)
        if cls is None:
            raise InfeasibleEditError(f"op_specs: unknown op {name!r}; expected some of {list(EDITABLE_OPS)}")
        hidden = _HIDDEN.get(name, ())
        params = tuple(_param(name, cls, f, scenario) for f in dataclasses.fields(cls) if f.name not in hidden)
        doc = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ").replace("``", "")
        out[name] = OpSpec(name, OP_LABELS.get(name, name.replace("_", " ")), doc, params)
    return out


def build_op(name: str, params: Mapping[str, Any]) -> Op:
    """The op ``name`` with form values ``params`` (JSON: lists for tuples, None for "default", ``"auto"``).

    Raises:
        InfeasibleEditError: unknown op or parameter, or values the op refuses (the message says which and why).
    """
    _ensure_registered()
    cls = OPS.get(name)
    if cls is None or name not in EDITABLE_OPS:
        raise InfeasibleEditError(f"build_op: unknown op {name!r}; expected one of {list(EDITABLE_OPS)}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise InfeasibleEditError(f"build_op({name!r}): unknown parameters {unknown}; expected some of {sorted(names)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    try:
        return cls(**values)
    except TypeError as exc:  # a missing required field
        raise InfeasibleEditError(f"build_op({name!r}): {exc}; pass every parameter of the form") from exc


# --------------------------------------------------------------------------------------------------- outcome
@dataclass
class EditOutcome:
    """One edit evaluated: feasibility, the planner's closed loop on the variant, and the variant's realism.

    Closed-loop fields (``success`` ... ``critical``) are those of
    :func:`~worldengine_lab.variants.realism.closed_loop_check` (``score`` = PDMS*, ``min_ttc_s`` over the
    simulated 4 s, s, ``inf`` when nothing comes within 5 s); realism fields (``valid`` ... ``min_ttc_log_s``)
    those of :func:`~worldengine_lab.variants.realism.realism_report` against the parent. Timings in ms.
    With ``feasible`` False only ``error`` (the library's reason) and ``ops`` are set.
    """

    ops: list[dict[str, Any]]
    feasible: bool
    error: str = ""
    variant: Variant | None = None
    rollout: Rollout | None = None
    success: bool | None = None
    failure_type: str = ""
    collided_with: str = ""
    score: float | None = None
    min_ttc_s: float | None = None
    critical: bool | None = None
    valid: bool | None = None
    kinematics_ok: bool | None = None
    offroad_rate: float | None = None
    num_collisions: int | None = None
    min_ttc_log_s: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def variant_id(self) -> str:
        """The variant's id (``""`` when the edit is infeasible or the parent itself is evaluated)."""
        return self.variant.variant_id if self.variant is not None else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able readouts (infinite TTC as None), without the variant and rollout objects."""
        def num(x: Any) -> Any:
            return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x

        return {"ops": self.ops, "feasible": self.feasible, "error": self.error, "variant_id": self.variant_id,
                "success": self.success, "failure_type": self.failure_type, "collided_with": self.collided_with,
                "score": num(self.score), "min_ttc_s": num(self.min_ttc_s), "critical": self.critical,
                "valid": self.valid, "kinematics_ok": self.kinematics_ok, "offroad_rate": num(self.offroad_rate),
                "num_collisions": self.num_collisions, "min_ttc_log_s": num(self.min_ttc_log_s),
                "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()}}


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n is not None and n != before:
            torch.set_num_threads(before)


class EditSession:
    """Edits of one parent scenario evaluated for one planner (the parent's scoring map is built once).

    Args:
        parent: the scenario edited (e.g. a mined failure window, >= 4 s of log after now).
        planner: the base planner driven in closed loop (any :class:`~worldengine_lab.planners.Planner`).
        config: the closed loop (default World Engine's, :data:`~worldengine_lab.mining.evaluate.WE_CLOSED_LOOP`).
        feasibility: limits of the projection (:class:`~worldengine_lab.variants.FeasibilityConfig`).
        ttc_threshold_s: an outcome is ``critical`` when the planner fails or its min TTC is below this, s.
        num_threads: torch threads while evaluating (1: one scene gains nothing from more; None: leave as is).
        seed: the variants' seed (part of their ids).
    """

    def __init__(self, parent: Scenario, planner: "Planner", config: "EvalConfig | None" = None,
                 feasibility: FeasibilityConfig = FeasibilityConfig(), ttc_threshold_s: float = 3.0,
                 num_threads: int | None = 1, seed: int = 0) -> None:
        from .realism import _eval_config

        if not isinstance(parent, Scenario):
            raise ShapeError(f"EditSession(parent): expected a Scenario, received {type(parent).__name__}")
        self.parent = parent
        self.planner = planner
        self.config = _eval_config(config)
        self.feasibility = feasibility
        self.ttc_threshold_s = float(ttc_threshold_s)
        self.num_threads = num_threads
        self.seed = int(seed)
        self._scoring_map: "ScoringMap | None" = None

    @property
    def scoring_map(self) -> "ScoringMap":
        """The parent's ``ScoringMap.from_scenario`` (built on first use, shared by every edit)."""
        if self._scoring_map is None:
            from ..metrics.scoring_map import ScoringMap
            from ..mining.evaluate import EPISODE_MAP

            self._scoring_map = ScoringMap.from_scenario(self.parent, EPISODE_MAP)
        return self._scoring_map

    def specs(self) -> dict[str, OpSpec]:
        """:func:`op_specs` with the parent's agents."""
        return op_specs(self.parent)

    def evaluate(self, ops: Sequence[Op | Mapping[str, Any]] = (), objective: str = "hand edit") -> EditOutcome:
        """Make the variant of ``ops`` (none: the parent itself) and evaluate it; an edit that does not fit is an
        outcome with ``feasible=False`` and the reason."""
        t0 = time.perf_counter()
        records = [o.to_dict() if isinstance(o, Op) else dict(o) for o in ops]
        variant = None
        if ops:
            try:
                variant = make_variant(self.parent, ops, seed=self.seed, objective=objective, config=self.feasibility)
            except InfeasibleEditError as exc:
                ms = 1e3 * (time.perf_counter() - t0)
                return EditOutcome(records, False, str(exc), timings_ms={"make": ms, "total": ms})
        made = time.perf_counter()
        out = self.evaluate_variants([variant] if variant is not None else [None])[0]
        out.ops = records
        out.timings_ms = {"make": 1e3 * (made - t0), **out.timings_ms, "total": 1e3 * (time.perf_counter() - t0)}
        return out

    def evaluate_variants(self, variants: Sequence[Variant | None]) -> list[EditOutcome]:
        """Evaluate made variants of the parent (None: the parent) in one batched closed loop."""
        from ..sim.rollout import rollout
        from .realism import closed_loop_rows, realism_report

        if not variants:
            return []
        scenarios = [v.scenario if v is not None else self.parent for v in variants]
        t0 = time.perf_counter()
        with _torch_threads(self.num_threads):
            outs = rollout(scenarios, self.planner, self.config.sim, seed=self.config.seed)
            t1 = time.perf_counter()
            table = closed_loop_rows(scenarios, outs, self.config, self.ttc_threshold_s,
                                     [self.scoring_map] * len(scenarios))
            t2 = time.perf_counter()
            real = realism_report(scenarios, [self.parent] * len(scenarios), config=self.feasibility)
        t3 = time.perf_counter()
        n = len(scenarios)
        timings = {"sim": 1e3 * (t1 - t0) / n, "score": 1e3 * (t2 - t1) / n, "realism": 1e3 * (t3 - t2) / n}
        results = []
        for v, r, row, rr in zip(variants, outs, table.to_dict("records"), real.to_dict("records")):
            results.append(EditOutcome(
                ops=v.op_records() if v is not None else [], feasible=True, variant=v, rollout=r,
                success=bool(row["success"]), failure_type=str(row["failure_type"]),
                collided_with=str(row.get("collided_with", "")), score=float(row["score"]),
                min_ttc_s=float(row["min_ttc_s"]), critical=bool(row["critical"]), valid=bool(rr["valid"]),
                kinematics_ok=bool(rr["kinematics_ok"]), offroad_rate=float(rr["offroad_rate"]),
                num_collisions=int(rr["num_collisions"]), min_ttc_log_s=float(rr["min_ttc_log_s"]),
                timings_ms=dict(timings)))
        return results


def sample_alternatives(model: "BehaviourWorldModel", parent: Scenario, num_samples: int = 6, seed: int = 0,
                        adversarial: bool | None = None) -> list[Variant]:
    """``num_samples`` variants of ``parent`` sampled by the behaviour world model.

    ``adversarial`` (default: when the parent has an attacker near the ego,
    :func:`~worldengine_lab.variants.adversarial.choose_attacker`): guided towards the ego
    (:func:`~worldengine_lab.variants.adversarial.adversarial_variants`); otherwise plain samples of every moving
    agent (:func:`~worldengine_lab.variants.bwm.sample_variants`, one noise seed per index).
    """
    from .adversarial import adversarial_variants, choose_attacker
    from .bwm import default_agents, sample_variants

    if num_samples < 1:
        raise ShapeError(f"sample_alternatives(num_samples): expected >= 1, received {num_samples}")
    if adversarial is None:
        adversarial = choose_attacker(parent) >= 0
    if adversarial:
        out = adversarial_variants(model, [parent], per_scenario=num_samples, seed=seed)
        if out:
            return out
    agents = default_agents(parent, model.config.features.max_agents)
    if not len(agents):
        return []
    return sample_variants(model, [parent] * num_samples, [agents] * num_samples, seed=seed,
                           index=list(range(num_samples)), objective="behaviour world model sample")
