"""Planners: the batched :class:`Planner` protocol, its :class:`Observation`, baseline planners, the PDM-Closed
expert and the learned vocabulary-scoring planner."""
import importlib

from .base import PLAN_DT_S, PLAN_NUM_POSES, Observation, Planner, ResettablePlanner
from .baselines import ConstantVelocityPlanner, LogReplayPlanner

__all__ = [
    "Observation",
    "Planner",
    "ResettablePlanner",
    "PLAN_NUM_POSES",
    "PLAN_DT_S",
    "ConstantVelocityPlanner",
    "LogReplayPlanner",
    "PDMClosedConfig",
    "PDMClosedPlanner",
    "TrajectoryVocabulary",
    "FeatureConfig",
    "SceneFeatures",
    "extract_features",
    "ModelConfig",
    "SelectionWeights",
    "ScorerOutput",
    "VocabularyScorer",
    "LearnedPlanner",
    "select",
    "selection_scores",
    "save_checkpoint",
    "load_checkpoint",
    "PLANNER_SPECS",
    "load_planner",
]

# Names loaded on first use, by module. ``pdm_closed`` needs ``metrics``, which imports ``sim``; ``features``
# (and ``learned`` through it) imports ``sim.state``; and ``sim`` imports this package's protocol
# (``planners.base``), so eager imports here would be circular.
_LAZY = {
    "pdm_closed": ("PDMClosedConfig", "PDMClosedPlanner"),
    "vocabulary": ("TrajectoryVocabulary",),
    "features": ("FeatureConfig", "SceneFeatures", "extract_features"),
    "learned": ("ModelConfig", "SelectionWeights", "ScorerOutput", "VocabularyScorer", "LearnedPlanner", "select",
                "selection_scores", "save_checkpoint", "load_checkpoint"),
    "registry": ("PLANNER_SPECS", "load_planner"),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> object:
    """Load the lazily exported names (see ``_LAZY``) on first use."""
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
