"""Variants: parametric adversarial edits of logged scenarios, projected to kinematic feasibility, with lineage.

* ops (registered by name in :data:`OPS`): :class:`CutIn`, :class:`HardBrake`, :class:`PedestrianDartOut`,
  :class:`RedLightRun`, :class:`Stall`, :class:`TimeShift`, :class:`SpeedScale`, :class:`LateralOffset`,
  :class:`InsertAgent`, :class:`RemoveAgent`; :func:`op_from_dict` rebuilds one from its record;
* :func:`make_variant` applies ops in order, projecting after each (:func:`project_edit`), and returns a
  :class:`~worldengine_lab.datatypes.variant.Variant` whose id is ``f"{parent_id}~{hash8(ops, seed)}"``;
* :mod:`.feasibility`: :func:`project`, :func:`check_kinematics`, :func:`check_on_road`;
* :mod:`.store`: :func:`save_variant` / :func:`load_variant` / :func:`list_variants` in a workspace;
* the behaviour world model (trajectory diffusion of non-ego agents with per-agent noise levels):
  :mod:`.bwm_features`, :mod:`.bwm_model` (:class:`BehaviourWorldModel`, :func:`save_bwm`, :func:`load_bwm`),
  :mod:`.bwm_train` (:func:`train_bwm`), :mod:`.bwm` (:func:`sample_bwm`, :func:`sample_variants`; lineage record
  :class:`BWMSample`);
* :mod:`.adversarial`: optimisation-guided adversarial sampling (:func:`adversarial_variants`,
  :class:`GuidanceConfig`);
* :mod:`.realism`: validity, realism and criticality (:func:`realism_report`, :func:`motion_stats`,
  :func:`distribution_distances`, :func:`min_ttc`, :func:`closed_loop_check`);
* :mod:`.generate`: variants of mined failures, checked and stored (:func:`generate_variants`).

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> v = make_variant(make_scenario(num_agents=2), [HardBrake(lead="auto", decel_mps2=4.0, onset_s=1.0)])
    >>> v.variant_id.startswith("test-0~"), sorted(OPS)[:3]
    (True, ['bwm_sample', 'cut_in', 'hard_brake'])
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
from .ops_sampled import BWMSample
from .bwm_features import BWMBatch, BWMFeatureConfig, pack_scenes
from .bwm_model import BehaviourWorldModel, BWMConfig, load_bwm, model_hash, save_bwm
from .bwm_train import BWMTrainConfig, BWMTrainResult, train_bwm
from .bwm import default_agents, sample_variants
from .bwm import sample as sample_bwm
from .adversarial import GuidanceConfig, adversarial_variants, choose_attacker
from .realism import closed_loop_check, distribution_distances, min_ttc, motion_stats, realism_report
from .generate import GenerateConfig, GenerateResult, generate_variants, parametric_variants

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
    # behaviour world model, guided sampling, realism, generation
    "BWMSample", "BWMFeatureConfig", "BWMBatch", "pack_scenes", "BWMConfig", "BehaviourWorldModel", "save_bwm",
    "load_bwm", "model_hash", "BWMTrainConfig", "BWMTrainResult", "train_bwm", "sample_bwm", "sample_variants",
    "default_agents", "GuidanceConfig", "adversarial_variants", "choose_attacker", "realism_report", "motion_stats",
    "distribution_distances", "min_ttc", "closed_loop_check", "GenerateConfig", "GenerateResult",
    "generate_variants", "parametric_variants",
]
