"""The embedded world: a seeded procedural city and its traffic, written as real nuPlan files.

``synthesize(out_dir, seed, num_logs)`` writes four GeoPackage maps (one layout per nuPlan map name) and
``num_logs`` SQLite logs split into pretrain / mine / test_common / test_rare, which the nuPlan reader
loads exactly like real data. See ``generate.py`` for the folder layout. Rare safety-critical events
(``events.RARE_EVENT_TAGS``) are injected into the traffic at a per-split rate and tagged in ``scenario_tag``.
"""
from .config import GENERATOR_VERSION, SPLITS, SynthConfig
from .events import RARE_EVENT_TAGS, window_rates
from .generate import DEFAULT_NUM_LOGS, SynthResult, load_result, log_specs, synthesize

__all__ = ["synthesize", "load_result", "SynthConfig", "SynthResult", "DEFAULT_NUM_LOGS", "GENERATOR_VERSION",
           "SPLITS", "log_specs", "RARE_EVENT_TAGS", "window_rates"]
