"""The lineage record of a sampled variant: which learned sampler, checkpoint, seed and agents made it.

A behaviour-world-model variant is not a parametric edit that can be re-applied to any scenario; its record
``{"op": "bwm_sample", "sampler": "bwm", "checkpoint": <model hash>, "agents": [...], ...}`` (with the variant's
seed) names everything needed to sample it again with :func:`worldengine_lab.variants.bwm.sample_variants`. It is
registered like the parametric ops so that stored variants load back with their lineage.

Examples:
    >>> from worldengine_lab.variants import op_from_dict
    >>> r = BWMSample(checkpoint="0123456789abcdef", agents=("veh1",), guidance="adversarial").to_dict()
    >>> r["op"], r["sampler"], op_from_dict(r).agents
    ('bwm_sample', 'bwm', ('veh1',))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..datatypes import Scenario
from .ops import Op, register_op

__all__ = ["BWMSample"]


@register_op
@dataclass(frozen=True)
class BWMSample(Op):
    """Futures of ``agents`` sampled by the behaviour world model (record only; see the module docstring)."""

    name = "bwm_sample"

    sampler: str = "bwm"
    """The learned sampler (``"bwm"``: :mod:`worldengine_lab.variants.bwm`)."""
    checkpoint: str = ""
    """:func:`~worldengine_lab.variants.bwm_model.model_hash` of the model that sampled."""
    agents: tuple[str, ...] = ()
    """Track ids of the generated agents (the others were held fixed at their logged futures)."""
    guidance: str = ""
    """``""`` (plain sampling), ``"realism"`` (re-anchored by the realism terms only) or ``"adversarial"``
    (:mod:`worldengine_lab.variants.adversarial`)."""
    attacker: str = ""
    """Track id of the attacking agent under adversarial guidance, ``""`` otherwise."""
    index: int = 0
    """Which of the request's variants of the same parent (0 .. K-1)."""

    def check(self) -> None:
        self.require(isinstance(self.sampler, str) and bool(self.sampler), "sampler", "expected a sampler name",
                     "pass sampler='bwm'")
        self.require(all(isinstance(a, str) for a in self.agents), "agents", "expected track ids",
                     "pass a tuple of track id strings")

    def apply(self, scenario: Scenario, rng: np.random.Generator) -> Scenario:
        self.require(False, "checkpoint", "a sampled variant cannot be re-applied as an edit",
                     "sample it again with worldengine_lab.variants.bwm.sample_variants(model, ...) using the "
                     f"checkpoint whose model hash is {self.checkpoint!r} and the variant's seed")
        return scenario
