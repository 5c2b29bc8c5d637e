"""Mining: rules over metric tables that pick the planner's failures (rare cases) for post-training.

``rules`` (spec §4 token sets), ``taxonomy`` (which rule, what failure, where, and why in words), ``clusters``
(overlapping windows of one event → one ranked case) and ``store`` (runs, results and cases in the workspace).
``evaluate`` (open- and closed-loop result tables) and ``pipeline`` (the whole mining job, :func:`mine`) need
torch and the simulator, so their names load on first use (module ``__getattr__``); importing this package
stays pandas-only.
"""
import importlib
from .clusters import CASE_COLUMNS, cluster_failures, rank_cases, window_now_s
from .failure_filter import FailureFilter, FailureFilterError, FailureIndex
from .failure_table import (
    FAILURE_TABLE_COLUMNS, catalog_tags, failure_table, synthetic_failure_table, table_records,
    write_synthetic_failures,
)
from .rules import COLUMN_ALIASES, mine_rare_cases, percentile_name, select_rl_frames
from .store import (
    CASE_FIELDS, RESULT_FIELDS, eval_runs, load_eval_results, load_failure_cases, new_run_id, save_eval_run,
    save_failure_cases,
)
from .taxonomy import (
    FAILURE_COLUMNS, METRIC_COLUMNS, MODES, RULES, classify_failures, scenario_context, taxonomy_counts,
)

# torch-based names, loaded on first use: module -> names
_LAZY = {
    "evaluate": ("EvalConfig", "WE_CLOSED_LOOP", "evaluate_closed_loop", "evaluate_open_loop", "score_rollout",
                 "summarize"),
    "pipeline": ("MiningResult", "mine"),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "EvalConfig",
    "MiningResult",
    "WE_CLOSED_LOOP",
    "evaluate_closed_loop",
    "evaluate_open_loop",
    "mine",
    "score_rollout",
    "summarize",
    "CASE_COLUMNS",
    "FAILURE_TABLE_COLUMNS",
    "FailureFilter",
    "FailureFilterError",
    "FailureIndex",
    "catalog_tags",
    "failure_table",
    "synthetic_failure_table",
    "table_records",
    "write_synthetic_failures",
    "CASE_FIELDS",
    "COLUMN_ALIASES",
    "FAILURE_COLUMNS",
    "METRIC_COLUMNS",
    "MODES",
    "RESULT_FIELDS",
    "RULES",
    "classify_failures",
    "cluster_failures",
    "eval_runs",
    "load_eval_results",
    "load_failure_cases",
    "mine_rare_cases",
    "new_run_id",
    "percentile_name",
    "rank_cases",
    "save_eval_run",
    "save_failure_cases",
    "scenario_context",
    "select_rl_frames",
    "taxonomy_counts",
    "window_now_s",
]


def __getattr__(name: str) -> object:
    """Load the torch-based names of ``evaluate`` and ``pipeline`` (see ``_LAZY``) on first use."""
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
