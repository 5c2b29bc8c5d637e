"""make_variant: apply ops to a parent scenario in order, projecting to feasibility after each, and wrap the
result as a :class:`~worldengine_lab.datatypes.variant.Variant` that keeps its lineage.

The variant id is ``f"{parent_id}~{hash8}"`` (hash of the canonical op records and the seed), so re-making a
variant from the same parent, ops and seed gives the same id (and, ops being deterministic, the same scenario).

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> from worldengine_lab.variants import HardBrake, make_variant
    >>> v = make_variant(make_scenario(num_agents=2), [HardBrake(lead="veh1", decel_mps2=4.0, onset_s=1.0)])
    >>> v.variant_id == v.scenario.scenario_id, v.parent_id, v.scenario.provenance.source
    (True, 'test-0', 'variant')
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Mapping, Sequence, Union

import numpy as np

from ..datatypes import Scenario
from ..datatypes.variant import Variant, variant_hash8, variant_id
from ..errors import InfeasibleEditError
from .feasibility import project_edit
from .limits import FeasibilityConfig, using_config
from .ops import Op, op_from_dict

__all__ = ["make_variant", "coerce_ops", "VARIANT_TAG"]

logger = logging.getLogger(__name__)

VARIANT_TAG = "variant"
"""Tag of every variant scenario (plus ``variant:<op name>`` per op)."""


def coerce_ops(ops: Sequence[Union[Op, Mapping[str, Any]]]) -> tuple[Op, ...]:
    """Ops from op objects or their records (``{"op": name, ...}``)."""
    if isinstance(ops, (Op, Mapping)):
        ops = [ops]  # type: ignore[list-item]
    out = []
    for o in ops:
        if isinstance(o, Op):
            out.append(o)
        elif isinstance(o, Mapping):
            out.append(op_from_dict(o))
        else:
            raise InfeasibleEditError(f"make_variant(ops): expected registered ops or their records, received "
                                      f"{type(o).__name__}; build ops from worldengine_lab.variants")
    return tuple(out)


def make_variant(parent: Scenario, ops: Sequence[Union[Op, Mapping[str, Any]]], seed: int | None = 0,
                 objective: str = "", config: FeasibilityConfig = FeasibilityConfig()) -> Variant:
    """Apply ``ops`` to ``parent`` in order, projecting each edit to kinematic feasibility.

    Args:
        parent: the scenario to edit (a logged scenario or another variant's scenario).
        ops: registered ops (:data:`~worldengine_lab.variants.OPS`) or their records.
        seed: sampler seed; part of the id; seeds the ``rng`` the ops receive (0 when None).
        objective: why the variant is made (kept, not part of the id).
        config: limits and projection settings (ops check their parameters against them too).
    Returns:
        The :class:`Variant`; its scenario has ``scenario_id == variant_id``, provenance source ``"variant"``
        (``extra`` holds ``parent_id``, ``ops_hash``, ``seed``), tags ``variant`` and ``variant:<op>``, and
        ``meta`` with ``parent_id``, ``variant_id`` and ``objective``.
    Raises:
        InfeasibleEditError: an op does not fit the scenario or cannot be made feasible (the message names the
            op, the parameter and what to change).
    """
    if not isinstance(parent, Scenario):
        raise InfeasibleEditError(f"make_variant(parent): expected a Scenario, received {type(parent).__name__}")
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise InfeasibleEditError(f"make_variant(seed): expected an int or None, received {seed!r}")
    op_list = coerce_ops(ops)
    if not op_list:
        raise InfeasibleEditError("make_variant(ops): expected at least one op, received none")
    vid = variant_id(parent.scenario_id, op_list, seed)
    rng = np.random.default_rng(0 if seed is None else int(seed))
    s = parent
    with using_config(config):
        for op in op_list:  # ops apply in order; each is vectorised inside
            edited = op.apply(s, rng)
            s = project_edit(s, edited, op, config)
    prov = parent.provenance
    extra = tuple(prov.extra) + (("parent_id", parent.scenario_id), ("ops_hash", variant_hash8(op_list, seed)),
                                 ("seed", "" if seed is None else str(int(seed))))
    meta = dict(parent.meta)
    meta.update({"parent_id": parent.scenario_id, "variant_id": vid, "objective": objective})
    scenario = replace(s, scenario_id=vid, provenance=replace(prov, source="variant", extra=extra), meta=meta,
                       tags=s.tags | {VARIANT_TAG} | {f"{VARIANT_TAG}:{o.name}" for o in op_list})
    logger.info("made variant %s of %s with %d ops", vid, parent.scenario_id, len(op_list))
    return Variant(parent_id=parent.scenario_id, ops=op_list, scenario=scenario, objective=objective,
                   seed=None if seed is None else int(seed))
