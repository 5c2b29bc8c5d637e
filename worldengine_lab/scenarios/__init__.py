"""Scenario sets over the workspace catalog: filters as data, lazy loading through a loader registry, splits.

Examples:
    >>> from worldengine_lab.scenarios import ScenarioFilter
    >>> ScenarioFilter(tags=["near_miss"], split="test_rare").to_json()
    '{"split": ["test_rare"], "tags": ["near_miss"], "version": 1}'
"""
from .filters import FILTER_FIELDS, ScenarioFilter
from .loaders import (
    DEFAULT_LOADERS,
    Loader,
    get_loader,
    load_scenario,
    register_loader,
    registered_sources,
    unregister_loader,
)
from .scenario_set import ScenarioSet
from .splits import log_unit_interval, split_by_log, split_logs

__all__ = [
    "ScenarioSet",
    "ScenarioFilter",
    "FILTER_FIELDS",
    "DEFAULT_LOADERS",
    "Loader",
    "register_loader",
    "unregister_loader",
    "registered_sources",
    "get_loader",
    "load_scenario",
    "split_by_log",
    "split_logs",
    "log_unit_interval",
]
