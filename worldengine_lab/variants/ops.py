"""Parametric scenario edits ("ops"): the registry, the common base, and op <-> record conversion.

Every op is a small frozen dataclass registered by name in :data:`OPS`. ``op.apply(scenario, rng)`` returns
the edited scenario: it changes only the future (steps after ``Scenario.t0``; the history stays as logged, except
that an inserted agent gets a consistent made-up history) and is vectorised over time with numpy. ``apply``
writes the *requested* motion; :func:`~worldengine_lab.variants.make_variant` then projects it to kinematic
feasibility (:mod:`.feasibility`). ``op.to_dict()`` gives the JSON-able lineage record
``{"op": name, <parameter>: <value>, ...}`` and :func:`op_from_dict` rebuilds the op.

The ops here are deterministic functions of their parameters and the scenario ("auto" picks by a fixed rule);
the ``rng`` argument (seeded from the variant's seed) is for ops that sample.

Conventions of all parameters: times ``*_s`` are seconds after "now" (``t0``) unless stated; distances ``*_m``
metres; speeds m/s; accelerations m/s^2; positions in the scenario's local frame; lateral offsets positive to the
left. Agents are named by their track id (``AgentTracks.track_ids``); some ops accept ``"auto"`` and pick one.

The ops themselves live in :mod:`.ops_agents` (time shift, speed scale, lateral offset, insert, remove),
:mod:`.ops_events` (cut-in, hard brake, stall, pedestrian dart-out) and :mod:`.ops_crossing` (red-light run);
each registers its ops on import.

Examples:
    >>> from worldengine_lab.variants import op_from_dict, HardBrake
    >>> op = HardBrake(lead="veh1", decel_mps2=4, onset_s=1.0)
    >>> op.to_dict()
    {'op': 'hard_brake', 'lead': 'veh1', 'decel_mps2': 4.0, 'onset_s': 1.0}
    >>> op_from_dict(op.to_dict()) == op
    True
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, TypeVar

import numpy as np

from ..datatypes import Scenario
from ..errors import InfeasibleEditError

__all__ = ["Op", "OPS", "register_op", "op_from_dict", "op_to_dict", "AUTO"]

AUTO = "auto"
"""Agent parameter value that lets an op pick the agent itself."""

OPS: dict[str, type["Op"]] = {}
"""Registered ops by name (``"cut_in"``, ``"hard_brake"``, ...)."""

O = TypeVar("O", bound=type)


def register_op(cls: O) -> O:
    """Class decorator: register an :class:`Op` subclass under its ``name``."""
    name = getattr(cls, "name", "")
    if not name or not isinstance(name, str):
        raise InfeasibleEditError(f"register_op({cls.__name__}): expected a class with a non-empty 'name'")
    if name in OPS and OPS[name] is not cls:
        raise InfeasibleEditError(f"register_op({cls.__name__}): the name {name!r} is taken by "
                                  f"{OPS[name].__name__}; choose another name")
    OPS[name] = cls  # type: ignore[assignment]
    return cls


def _coerce(value: Any, annotation: str) -> Any:
    """Normalise a parameter so equal requests have equal records: lists -> tuples, numbers in float fields ->
    floats (-0.0 -> 0.0), numbers in int fields -> ints."""
    if isinstance(value, (list, tuple)):
        return tuple(_coerce(v, "float" if "float" in annotation else "") for v in value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        if "float" in annotation or "int" not in annotation:
            return float(value) + 0.0
        return int(value)
    if isinstance(value, np.str_):
        return str(value)
    return value


def _check_finite(op: "Op", name: str, value: Any) -> None:
    vals = value if isinstance(value, tuple) else (value,)
    for v in vals:
        if isinstance(v, tuple):
            _check_finite(op, name, v)
        elif isinstance(v, float) and not math.isfinite(v):
            raise InfeasibleEditError(f"{op.describe()}: parameter {name!r}: expected a finite number, received "
                                      f"{v!r}; pass a finite value")


@dataclass(frozen=True)
class Op:
    """Base of the registered ops: record conversion, parameter normalisation and the common checks.

    Subclasses set ``name`` (the registry key), document every field with its unit and frame, implement
    :meth:`apply`, and may set ``blame`` (which parameter to name when the projection refuses the edit, per
    violated constraint), ``supports_auto`` and ``checks_on_road`` (vehicles it moves sideways must stay on the
    drivable area).
    """

    name: ClassVar[str] = ""
    blame: ClassVar[Mapping[str, tuple[str, str]]] = {}
    """constraint -> (parameter, what to change) for projection errors; constraints: ``curvature``,
    ``lateral_acceleration``, ``deceleration``, ``off_road``, ``kinematics``."""
    supports_auto: ClassVar[bool] = False
    checks_on_road: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _coerce(getattr(self, f.name), str(f.type))
            _check_finite(self, f.name, value)
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Validate the parameters on their own (ranges, types); raise :class:`InfeasibleEditError`."""

    def require(self, ok: bool, param: str, reason: str, fix: str) -> None:
        """Raise ``InfeasibleEditError`` naming this op and ``param`` unless ``ok``."""
        if not ok:
            raise InfeasibleEditError(f"{self.describe()}: parameter {param!r}: {reason}; {fix}")

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        """Return the edited scenario (requested motion, before the feasibility projection)."""
        raise NotImplementedError(f"{type(self).__name__}.apply")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able record ``{"op": name, <field>: <value>, ...}`` (tuples as lists)."""
        out: dict[str, Any] = {"op": self.name}
        for f in dataclasses.fields(self):
            out[f.name] = _as_json(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "Op":
        """Rebuild the op from :meth:`to_dict`'s record (``"op"`` may be omitted)."""
        data = dict(record)
        name = data.pop("op", cls.name)
        if name != cls.name:
            raise InfeasibleEditError(f"{cls.__name__}.from_dict: expected op {cls.name!r}, received {name!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InfeasibleEditError(f"{cls.__name__}.from_dict: unknown parameters {unknown}; expected some of "
                                      f"{sorted(names)}")
        return cls(**data)

    def hash8(self) -> str:
        """First 8 hex digits of the sha256 of this op's canonical record (ids of the agents it inserts)."""
        rec = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(rec.encode("utf-8")).hexdigest()[:8]

    def describe(self) -> str:
        """``ClassName(param=value, ...)``, for messages."""
        args = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return f"{type(self).__name__}({args})"


def _as_json(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_as_json(x) for x in v]
    return v


def op_to_dict(op: Op) -> dict[str, Any]:
    """``op.to_dict()``."""
    return op.to_dict()


def op_from_dict(record: Mapping[str, Any]) -> Op:
    """Rebuild a registered op from its record ``{"op": name, ...}``.

    Raises:
        InfeasibleEditError: missing or unknown op name, or unknown parameters (the message lists the choices).
    """
    if not isinstance(record, Mapping) or "op" not in record:
        raise InfeasibleEditError(f"op_from_dict: expected a record with an 'op' name, received {record!r}")
    _ensure_registered()
    cls = OPS.get(str(record["op"]))
    if cls is None:
        raise InfeasibleEditError(f"op_from_dict: unknown op {record['op']!r}; registered ops: {sorted(OPS)}")
    return cls.from_dict(record)


def _ensure_registered() -> None:
    from . import ops_agents, ops_crossing, ops_events  # noqa: F401  (registration side effect)
