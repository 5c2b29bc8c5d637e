"""Variants: parametric adversarial edits of logged scenarios, projected to kinematic feasibility, with lineage.

* ops (registered by name in :data:`OPS`): :class:`CutIn`, :class:`HardBrake`, :class:`PedestrianDartOut`,
  :class:`RedLightRun`, :class:`Stall`, :class:`TimeShift`, :class:`SpeedScale`, :class:`LateralOffset`,
  :class:`InsertAgent`, :class:`RemoveAgent`; :func:`op_from_dict` rebuilds one from its record;
* :func:`make_variant` applies ops in order, projecting after each (:func:`project_edit`), and returns a
  :class:`~worldengine_lab.datatypes.variant.Variant` whose id is ``f"{parent_id}~{hash8(ops, seed)}"``;
* :mod:`.feasibility`: :func:`project`, :func:`check_kinematics`, :func:`check_on_road`;
* :mod:`.store`: :func:`save_variant` / :func:`load_variant` / :func:`list_variants` in a workspace.

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> v = make_variant(make_scenario(num_agents=2), [HardBrake(lead="auto", decel_mps2=4.0, onset_s=1.0)])
    >>> v.variant_id.startswith("test-0~"), sorted(OPS)[:3]
    (True, ['cut_in', 'hard_brake', 'insert_agent'])
"""
from ..datatypes.variant import Perturbation, Variant, canonical_ops_json, variant_hash8, variant_id
from .feasibility import (KINEMATIC_COLUMNS, changed_agents, check_kinematics, check_on_road, kinematic_violations,
                          project, project_edit)
from .limits import (CYCLIST_LIMITS, PEDESTRIAN_LIMITS, VEHICLE_LIMITS, FeasibilityConfig, KinematicLimits,
                     active_config, using_config)
from .lineage import VARIANT_TAG, coerce_ops, make_variant
from .ops import AUTO, OPS, Op, op_from_dict, op_to_dict, register_op
from .ops_agents import AGENT_TYPE_NAMES, InsertAgent, LateralOffset, RemoveAgent, SpeedScale, TimeShift
from .ops_crossing import RedLightRun
from .ops_events import CutIn, HardBrake, PedestrianDartOut, Stall
from .scenario_io import load_scenario_file, scenario_from_bytes, scenario_to_bytes
from .store import (VARIANTS_DDL, ensure_variants_table, list_variants, load_variant, save_variant,
                    variants_migration)

__all__ = [
    # seam type and ids
    "Variant", "Perturbation", "variant_id", "variant_hash8", "canonical_ops_json",
    # ops and their registry
    "Op", "OPS", "AUTO", "register_op", "op_from_dict", "op_to_dict", "AGENT_TYPE_NAMES",
    "CutIn", "HardBrake", "PedestrianDartOut", "RedLightRun", "Stall",
    "TimeShift", "SpeedScale", "LateralOffset", "InsertAgent", "RemoveAgent",
    # feasibility
    "FeasibilityConfig", "KinematicLimits", "VEHICLE_LIMITS", "CYCLIST_LIMITS", "PEDESTRIAN_LIMITS",
    "active_config", "using_config", "project", "project_edit", "changed_agents", "check_kinematics",
    "kinematic_violations", "check_on_road", "KINEMATIC_COLUMNS",
    # lineage and storage
    "make_variant", "coerce_ops", "VARIANT_TAG", "scenario_to_bytes", "scenario_from_bytes", "load_scenario_file",
    "VARIANTS_DDL", "variants_migration", "ensure_variants_table", "save_variant", "load_variant", "list_variants",
]
