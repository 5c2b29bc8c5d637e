"""Kinematic limits per agent class and the settings of the feasibility projection.

Agent classes (from :class:`~worldengine_lab.datatypes.AgentType`): ``vehicle`` (vehicles and, for lack of
anything better, static objects that an edit moves), ``cyclist`` (bicycles) and ``pedestrian``. The ego is
never edited.

Curvature follows the kinematic bicycle: ``|kappa| <= tan(max_steer_rad) / wheelbase_m`` (1/m); pedestrians
get a loose value (they can turn almost on the spot).

Examples:
    >>> lim = FeasibilityConfig().limits_for(0)   # AgentType.VEHICLE
    >>> round(lim.max_curvature_1pm, 3)
    0.226
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..datatypes import AgentType
from ..errors import InfeasibleEditError
from ..sim.dynamics import BicycleParams

__all__ = ["KinematicLimits", "FeasibilityConfig", "VEHICLE_LIMITS", "CYCLIST_LIMITS", "PEDESTRIAN_LIMITS",
           "agent_class", "agent_classes", "active_config", "using_config"]


@dataclass(frozen=True)
class KinematicLimits:
    """Limits one agent class must respect on its edited future (SI units)."""

    max_speed_mps: float
    """Largest speed, m/s (an agent already faster at t0 may keep its speed)."""
    max_accel_mps2: float
    """Largest speeding-up longitudinal acceleration, m/s^2."""
    max_decel_mps2: float
    """Largest braking deceleration (a positive number), m/s^2."""
    max_jerk_mps3: float
    """Largest |rate of change of the longitudinal acceleration|, m/s^3."""
    wheelbase_m: float
    """Bicycle wheelbase, m (curvature limit = tan(max_steer_rad) / wheelbase_m)."""
    max_steer_rad: float
    """Largest steering angle, rad."""
    max_lat_accel_mps2: float
    """Largest lateral (centripetal) acceleration speed^2 * |curvature|, m/s^2."""
    path_tolerance_m: float
    """How far the projection may move a path (to respect the curvature limit) before the edit is refused, m."""
    path_smoothing_m: float
    """Length of the moving average that removes tracking noise from a path before its headings are taken, m."""

    @property
    def max_curvature_1pm(self) -> float:
        """``tan(max_steer_rad) / wheelbase_m``, 1/m."""
        return math.tan(self.max_steer_rad) / self.wheelbase_m


VEHICLE_LIMITS = KinematicLimits(
    max_speed_mps=40.0, max_accel_mps2=4.0, max_decel_mps2=9.0, max_jerk_mps3=15.0,
    wheelbase_m=BicycleParams().wheel_base_m, max_steer_rad=0.61, max_lat_accel_mps2=7.0, path_tolerance_m=0.5,
    path_smoothing_m=2.0)
"""Cars, vans, trucks: emergency braking ~0.9 g, 35 deg steering on the ego's 3.089 m wheelbase."""

CYCLIST_LIMITS = KinematicLimits(
    max_speed_mps=15.0, max_accel_mps2=2.5, max_decel_mps2=6.0, max_jerk_mps3=15.0,
    wheelbase_m=1.1, max_steer_rad=0.7, max_lat_accel_mps2=4.0, path_tolerance_m=0.4,
    path_smoothing_m=1.0)
"""Bicycles and their riders."""

PEDESTRIAN_LIMITS = KinematicLimits(
    max_speed_mps=4.0, max_accel_mps2=3.0, max_decel_mps2=4.0, max_jerk_mps3=20.0,
    wheelbase_m=0.2, max_steer_rad=1.1, max_lat_accel_mps2=5.0, path_tolerance_m=0.4,
    path_smoothing_m=0.5)
"""Walkers and runners (curvature limit ~9.8 1/m: almost turning on the spot)."""


_CLASSES = ("vehicle", "cyclist", "pedestrian")


def _class_index(agent_types: np.ndarray) -> np.ndarray:
    types = np.asarray(agent_types).reshape(-1).astype(np.int64)
    return np.where(types == int(AgentType.PEDESTRIAN), 2, np.where(types == int(AgentType.BICYCLE), 1, 0))


def agent_class(agent_type: int) -> str:
    """``"vehicle"``, ``"cyclist"`` or ``"pedestrian"`` for an :class:`AgentType` code."""
    return _CLASSES[int(_class_index(np.array([agent_type]))[0])]


def agent_classes(agent_types: np.ndarray) -> np.ndarray:
    """``[K]`` str class names of ``[K]`` agent type codes (vectorised :func:`agent_class`)."""
    return np.array(_CLASSES)[_class_index(agent_types)]


@dataclass(frozen=True)
class FeasibilityConfig:
    """How edited trajectories are projected to kinematic feasibility (see :mod:`.feasibility`)."""

    vehicle: KinematicLimits = VEHICLE_LIMITS
    """Limits of vehicles (and of static objects an edit moves)."""
    cyclist: KinematicLimits = CYCLIST_LIMITS
    """Limits of bicycles."""
    pedestrian: KinematicLimits = PEDESTRIAN_LIMITS
    """Limits of pedestrians."""
    margin: float = 0.95
    """The projection aims at ``margin`` x each acceleration, jerk, curvature and lateral-acceleration limit, so
    that the small correction that re-joins the logged speed at t0 stays inside the full limit. Ops accept
    requests up to ``margin`` x the limit."""
    path_resolution_m: float = 0.25
    """Arc-length step of the path projection, m."""
    lat_window_m: float = 6.0
    """The curvature speed bound at a point is the smallest within this distance either side, m (absorbs the
    difference between the target and the projected position at a given time)."""
    speed_passes: int = 4
    """Passes of the speed projection; each re-reads the curvature speed bound where the previous pass put the
    agent (a slower agent reaches a bend later than the requested timing)."""
    max_speed_gap_mps: float = 0.5
    """:func:`~worldengine_lab.variants.check_kinematics` flags steps whose length / dt differs from ``|vel_xy|``
    by more than this, m/s (positions and velocities that disagree, e.g. an unprojected jump)."""
    path_extension_m: float = 60.0
    """Straight extension of every path beyond its last point, m (room for the projection to overshoot)."""
    min_moving_step_m: float = 0.05
    """Curvature and lateral acceleration are checked only on steps longer than this, m (headings of a
    standing agent are undefined)."""
    check_tolerance: float = 1e-3
    """Relative tolerance of :func:`~worldengine_lab.variants.check_kinematics` (discretisation round-off)."""
    on_road_margin_m: float = 0.3
    """A vehicle is off-road when a corner of its box, shrunk by this margin, leaves the drivable area, m."""

    def __post_init__(self) -> None:
        if not 0.0 < self.margin <= 1.0:
            raise InfeasibleEditError(f"FeasibilityConfig.margin: expected a fraction in (0, 1], received "
                                      f"{self.margin!r}; pass e.g. 0.95")
        if self.path_resolution_m <= 0:
            raise InfeasibleEditError(f"FeasibilityConfig.path_resolution_m: expected > 0 m, received "
                                      f"{self.path_resolution_m!r}")

    def limits_for(self, agent_type: int) -> KinematicLimits:
        """The limits of one :class:`AgentType` code."""
        return getattr(self, agent_class(agent_type))

    def limit_arrays(self, agent_types: np.ndarray) -> dict[str, np.ndarray]:
        """Per-agent limit arrays ``[K]`` float64 keyed by :class:`KinematicLimits` field (plus
        ``max_curvature_1pm``) for agent type codes ``[K]``."""
        cls = _class_index(agent_types)
        table = (self.vehicle, self.cyclist, self.pedestrian)
        names = list(KinematicLimits.__dataclass_fields__) + ["max_curvature_1pm"]
        return {n: np.array([getattr(r, n) for r in table], np.float64)[cls] for n in names}


_ACTIVE: contextvars.ContextVar[FeasibilityConfig] = contextvars.ContextVar("feasibility_config",
                                                                           default=FeasibilityConfig())


def active_config() -> FeasibilityConfig:
    """The limits ops check their parameters against: those :func:`~worldengine_lab.variants.make_variant` was
    given, else the defaults."""
    return _ACTIVE.get()


@contextlib.contextmanager
def using_config(config: FeasibilityConfig) -> Iterator[FeasibilityConfig]:
    """Make ``config`` the :func:`active_config` inside the block (thread- and task-local)."""
    token = _ACTIVE.set(config)
    try:
        yield config
    finally:
        _ACTIVE.reset(token)
