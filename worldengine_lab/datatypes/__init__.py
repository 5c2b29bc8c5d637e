"""Frozen, numpy-only types that cross package boundaries. Each validates itself at construction."""
from .agents import EGO_INDEX, AgentTracks, AgentType
from .camera import CameraRig, cam_from_world
from .gaussians import BACKGROUND_ID, GaussianScene
from .job import DIAGNOSTIC_KIND, JOB_BACKENDS, JOB_KINDS, JobSpec
from .map import MapData, Polylines, StopLineType
from .rollout import EGO_STATE_FIELDS, Rollout
from .variant import Perturbation, Variant, canonical_ops_json, op_record, variant_hash8, variant_id
from .scenario import Provenance, Route, Scenario, TrafficLights, TrafficLightStatus

__all__ = [
    "EGO_INDEX",
    "AgentTracks",
    "AgentType",
    "BACKGROUND_ID",
    "CameraRig",
    "cam_from_world",
    "GaussianScene",
    "DIAGNOSTIC_KIND",
    "JOB_BACKENDS",
    "JOB_KINDS",
    "JobSpec",
    "MapData",
    "Polylines",
    "StopLineType",
    "Provenance",
    "Rollout",
    "EGO_STATE_FIELDS",
    "Route",
    "Scenario",
    "TrafficLights",
    "TrafficLightStatus",
    "Perturbation",
    "Variant",
    "canonical_ops_json",
    "op_record",
    "variant_hash8",
    "variant_id",
]
