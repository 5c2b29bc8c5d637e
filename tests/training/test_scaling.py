"""The data-scaling study: the equivalent-multiple estimate, and the whole study on a tiny embedded world."""
from __future__ import annotations

import numpy as np
import pytest

from worldengine_lab.errors import DataFormatError
from worldengine_lab.training.scaling import ScalingConfig, equivalent_multiple


def _outcomes(rates: list[float], n: int = 400) -> np.ndarray:
    """Per-scenario 0/1 success ``[n, len(rates)]`` with exactly these rates, nested (a scenario a weaker model
    solves, stronger ones solve too)."""
    k = np.arange(n)[:, None]
    return (k < np.round(np.asarray(rates) * n)[None]).astype(float)


def test_equivalent_multiple_inverts_the_log_linear_fit():
    f = np.array([0.125, 0.25, 0.5, 1.0])
    base = _outcomes([0.5, 0.6, 0.7, 0.8])  # +10 points per doubling of the data
    post = _outcomes([0.7])[:, 0]  # post-trained from 1/8 reaches what 1/2 reaches: 4x the data
    eq = equivalent_multiple(f, base, post, 0.125, resamples=500)
    assert eq["multiple"] == pytest.approx(4.0) and eq["equivalent_fraction"] == pytest.approx(0.5)
    assert eq["slope_per_doubling"] == pytest.approx(0.1) and not eq["extrapolated"]
    assert eq["ci95"][0] < 4.0 < eq["ci95"][1]
    beyond = equivalent_multiple(f, base, _outcomes([0.9])[:, 0], 0.125, resamples=200)
    assert beyond["multiple"] == pytest.approx(16.0) and beyond["extrapolated"] and "extrapolated" in beyond["note"]


def test_equivalent_multiple_is_undefined_when_more_data_does_not_help():
    f = np.array([0.25, 0.5, 1.0])
    flat = equivalent_multiple(f, _outcomes([0.7, 0.6, 0.5]), _outcomes([0.8])[:, 0], 0.25, resamples=200)
    assert np.isnan(flat["multiple"]) and "did not raise" in flat["note"]
    with pytest.raises(DataFormatError, match="same scenarios"):
        equivalent_multiple(f, _outcomes([0.7, 0.6, 0.5]), np.ones(3), 0.25)


def test_scaling_config_rejects_bad_fractions_and_recipes():
    with pytest.raises(DataFormatError, match="fractions"):
        ScalingConfig(fractions=(0.5,)).validate()
    with pytest.raises(DataFormatError, match="fractions"):
        ScalingConfig(fractions=(0.0, 1.0)).validate()
    with pytest.raises(DataFormatError, match="recipe"):
        ScalingConfig(recipe="magic").validate()
