"""Bootstrap confidence intervals for the results table (vectorised; seeded).

World Engine's table reports point values only; every figure in our reports carries a 95 % percentile-bootstrap
interval over scenarios, and base-vs-post-trained differences use the *paired* bootstrap (the same resampled
scenarios for both planners), which is what "the gain excludes 0" needs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError

__all__ = ["Estimate", "bootstrap_mean", "paired_difference"]


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap interval (same unit as the data).

    Attributes:
        value: the sample mean; low / high: the interval bounds; n: sample size; level: e.g. 0.95.
    """

    value: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def excludes_zero(self) -> bool:
        """True when the whole interval is above or below 0."""
        return self.low > 0 or self.high < 0

    def format(self, scale: float = 1.0, digits: int = 2) -> str:
        """``"value [low, high]"`` with every number multiplied by ``scale`` (100 for percentages)."""
        return f"{self.value * scale:.{digits}f} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]"


def _check(values: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ShapeError(f"{name}: expected a non-empty 1-D array of per-scenario values, received shape "
                         f"{list(v.shape)}")
    if not np.isfinite(v).all():
        raise ShapeError(f"{name}: expected finite values, received {int((~np.isfinite(v)).sum())} NaN/inf")
    return v


def _interval(v: np.ndarray, resamples: int, level: float, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(resamples, v.size))  # [R, n] resampled scenario indices
    means = v[idx].mean(axis=1)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [a, 1.0 - a])
    return float(lo), float(hi)


def bootstrap_mean(values: np.ndarray, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> Estimate:
    """Mean of ``values [n]`` with a percentile-bootstrap interval.

    >>> e = bootstrap_mean(np.array([1.0, 1.0, 0.0, 1.0]))
    >>> e.value, 0.0 <= e.low <= e.value <= e.high <= 1.0
    (0.75, True)
    """
    v = _check(values, "bootstrap_mean(values)")
    lo, hi = _interval(v, resamples, level, seed)
    return Estimate(float(v.mean()), lo, hi, int(v.size), level)


def paired_difference(after: np.ndarray, before: np.ndarray, resamples: int = 2000, level: float = 0.95,
                      seed: int = 0) -> Estimate:
    """Mean of ``after - before`` over the same scenarios ``[n]`` with a paired bootstrap interval."""
    a = _check(after, "paired_difference(after)")
    b = _check(before, "paired_difference(before)")
    if a.shape != b.shape:
        raise ShapeError(f"paired_difference: expected the same scenarios in both, received {a.size} and {b.size} "
                         "values; align the two result tables on scenario_id first")
    return bootstrap_mean(a - b, resamples, level, seed)
