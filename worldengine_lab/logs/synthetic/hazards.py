"""Registry of the rare-event triggers (``hazards_lane``, ``hazards_crossing``) by tag."""
from __future__ import annotations

from .hazards_crossing import forced_junction_route, try_oncoming_drift, try_red_light_runner, try_unprotected_left
from .hazards_lane import try_cut_in, try_dart_out, try_hard_brake, try_stalled

__all__ = ["TRIGGERS", "forced_junction_route"]

TRIGGERS = {
    "rare_cut_in": try_cut_in,
    "rare_hard_brake": try_hard_brake,
    "rare_pedestrian_dart_out": try_dart_out,
    "rare_red_light_runner": try_red_light_runner,
    "rare_stalled_vehicle": try_stalled,
    "rare_oncoming_drift": try_oncoming_drift,
    "rare_unprotected_left_fast_oncoming": try_unprotected_left,
}

