"""Variant: a parent scenario plus the edits (or sampler seed) that made it, and the edited scenario.

A variant's id is derived from its lineage only: ``f"{parent_id}~{hash8}"`` where ``hash8`` is the first 8 hex
digits of the sha256 of the canonical JSON of ``{"ops": [op records...], "seed": seed}``. The same request
(parent, ops, seed) always gives the same id, whatever machine or process makes it; the ``objective`` (why it
was made) does not enter the id.

Ops are the perturbations of :mod:`worldengine_lab.variants` (anything with ``to_dict()``), or their plain
JSON-able records (dicts with an ``"op"`` name), e.g. as read back from the store. This module imports only numpy.

Examples:
    >>> variant_hash8([{"op": "remove_agent", "agent": "veh1"}], seed=0)
    'd885434f'
    >>> variant_id("test-0", [{"op": "remove_agent", "agent": "veh1"}], seed=0)
    'test-0~d885434f'
"""
from __future__ import annotations

import hashlib
import html
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence, Union, runtime_checkable

import numpy as np

from ..errors import ScenarioValidationError
from .scenario import Scenario

__all__ = ["Perturbation", "OpLike", "Variant", "op_record", "canonical_ops_json", "variant_hash8", "variant_id"]

VARIANT_ID_SEPARATOR = "~"


@runtime_checkable
class Perturbation(Protocol):
    """One parametric scenario edit (see :mod:`worldengine_lab.variants` for the registered ops).

    ``to_dict()`` returns the op's JSON-able record ``{"op": <registered name>, <parameter>: <value>, ...}``;
    ``apply(scenario, rng)`` returns the edited scenario (the future after ``t0`` only; history stays as logged).
    """

    def to_dict(self) -> dict[str, Any]: ...

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario: ...


OpLike = Union[Perturbation, Mapping[str, Any]]
"""An op object, or its plain record."""


def _plain(value: Any, where: str) -> Any:
    """JSON-able copy of a record value: tuples become lists, numpy scalars Python numbers, -0.0 becomes 0.0."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise ScenarioValidationError(f"{where}: expected a finite number, received {f!r}")
        return f + 0.0
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v, where) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    raise ScenarioValidationError(f"{where}: expected JSON-able values (numbers, strings, lists), received "
                                  f"{type(value).__name__}")


def op_record(op: OpLike) -> dict[str, Any]:
    """The plain record of an op (its ``to_dict()``, or a copy of a record), with an ``"op"`` name."""
    raw = op.to_dict() if hasattr(op, "to_dict") else op
    if not isinstance(raw, Mapping) or not isinstance(raw.get("op"), str) or not raw.get("op"):
        raise ScenarioValidationError(
            f"Variant.ops: expected ops with to_dict() or records with an 'op' name, received {raw!r}")
    return _plain(raw, f"op {raw.get('op')!r}")


def canonical_ops_json(ops: Sequence[OpLike], seed: int | None = None) -> str:
    """Canonical JSON of the lineage request: sorted keys, no spaces, shortest float repr, no NaN."""
    payload = {"ops": [op_record(o) for o in ops], "seed": None if seed is None else int(seed)}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def variant_hash8(ops: Sequence[OpLike], seed: int | None = None) -> str:
    """First 8 hex digits of the sha256 of :func:`canonical_ops_json`."""
    return hashlib.sha256(canonical_ops_json(ops, seed).encode("ascii")).hexdigest()[:8]


def variant_id(parent_id: str, ops: Sequence[OpLike], seed: int | None = None) -> str:
    """``f"{parent_id}~{hash8}"``: the id of the variant of ``parent_id`` made by ``ops`` with ``seed``."""
    return f"{parent_id}{VARIANT_ID_SEPARATOR}{variant_hash8(ops, seed)}"


@dataclass(frozen=True, eq=False)
class Variant:
    """An edited scenario with its lineage.

    Attributes:
        parent_id: id of the scenario the ops were applied to (itself possibly a variant).
        ops: the ops in the order they were applied (op objects or their records).
        scenario: the edited :class:`Scenario`; its ``scenario_id`` is :attr:`variant_id`.
        objective: why the variant was made, in words (e.g. ``"harder: lead brakes"``); not part of the id.
        seed: the sampler seed of the request (None when there is none); part of the id.
    """

    parent_id: str
    ops: tuple[OpLike, ...]
    scenario: Scenario
    objective: str = ""
    seed: int | None = 0

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple):
            object.__setattr__(self, "ops", tuple(self.ops))
        self.validate()

    @property
    def variant_id(self) -> str:
        """``f"{parent_id}~{hash8(ops, seed)}"``."""
        return variant_id(self.parent_id, self.ops, self.seed)

    @property
    def hash8(self) -> str:
        return variant_hash8(self.ops, self.seed)

    def op_records(self) -> list[dict[str, Any]]:
        """The ops as plain records (what the store keeps as ``ops_json``)."""
        return [op_record(o) for o in self.ops]

    def ops_json(self) -> str:
        """Canonical JSON of the op records (a list)."""
        return json.dumps(self.op_records(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    def validate(self) -> None:
        """Check the fields and that the scenario carries the variant id."""
        if not isinstance(self.parent_id, str) or not self.parent_id:
            raise ScenarioValidationError(f"Variant.parent_id: expected a non-empty str, received {self.parent_id!r}")
        if self.seed is not None and not isinstance(self.seed, (int, np.integer)):
            raise ScenarioValidationError(f"Variant.seed: expected an int or None, received {self.seed!r}")
        if not isinstance(self.objective, str):
            raise ScenarioValidationError(
                f"Variant.objective: expected a str, received {type(self.objective).__name__}")
        if not isinstance(self.scenario, Scenario):
            raise ScenarioValidationError(
                f"Variant.scenario: expected a Scenario, received {type(self.scenario).__name__}")
        want = self.variant_id
        if self.scenario.scenario_id != want:
            raise ScenarioValidationError(
                f"Variant.scenario.scenario_id: expected the variant id {want!r}, received "
                f"{self.scenario.scenario_id!r}; build variants with worldengine_lab.variants.make_variant")

    def summary(self) -> dict[str, Any]:
        """Plain-data summary (ids, op names, seed, objective)."""
        return {"variant_id": self.variant_id, "parent_id": self.parent_id,
                "ops": [r["op"] for r in self.op_records()], "seed": self.seed, "objective": self.objective}

    def __repr__(self) -> str:
        s = self.summary()
        return f"Variant({s['variant_id']!r}, ops={s['ops']}, seed={s['seed']}, objective={s['objective']!r})"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in self.summary().items())
        return f"<table><caption>Variant</caption>{rows}</table>"
