"""Frozen, numpy-only types that cross package boundaries. Each validates itself at construction."""
from .agents import EGO_INDEX, AgentTracks, AgentType
from .map import MapData, Polylines, StopLineType
from .scenario import Provenance, Route, Scenario, TrafficLights, TrafficLightStatus

__all__ = [
    "EGO_INDEX",
    "AgentTracks",
    "AgentType",
    "MapData",
    "Polylines",
    "StopLineType",
    "Provenance",
    "Route",
    "Scenario",
    "TrafficLights",
    "TrafficLightStatus",
]
