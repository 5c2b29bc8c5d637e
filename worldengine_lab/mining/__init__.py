"""Mining: rules over metric tables that pick the planner's failures (rare cases) for post-training."""
from .rules import COLUMN_ALIASES, mine_rare_cases, percentile_name, select_rl_frames

__all__ = ["COLUMN_ALIASES", "mine_rare_cases", "percentile_name", "select_rl_frames"]
