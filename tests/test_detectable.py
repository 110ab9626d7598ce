"""Minimum detectable effects: exact (noncentral t) against the closed form and a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ablation.analysis.detectable import approximate, mde, power


def test_the_exact_mde_has_80_percent_power_and_meets_the_closed_form_for_many_seeds():
    for se, df, level in ((0.5, 2, 0.05), (1.2, 9, 0.05 / 11), (0.3, 4, 0.01)):
        assert power(mde(se, df, level), se, df, level) == pytest.approx(0.8, abs=1e-6)
        assert mde(se, df, level) > approximate(se, df, level)  # the closed form flatters few seeds
    assert mde(1.0, 200, 0.05) == pytest.approx(approximate(1.0, 200, 0.05), rel=2e-3)
    assert mde(1.0, 200, 0.05) == pytest.approx((stats.norm.isf(0.025) + stats.norm.ppf(0.8)) * 1.0, rel=1e-2)
    assert math.isnan(mde(math.nan, 2, 0.05)) and math.isnan(mde(0.0, 2, 0.05))


def test_a_true_difference_of_the_mde_is_found_four_times_in_five():
    """Normal paired differences, 5 seeds, sd 1.5, the 11-comparison first-step level: a t-test
    detects a true difference of the MDE in 80% of simulated studies."""
    n, sd, level, sims = 5, 1.5, 0.05 / 11, 20000
    effect = mde(sd / math.sqrt(n), n - 1, level)
    d = np.random.default_rng(0).normal(effect, sd, (sims, n))
    found = np.mean(stats.ttest_1samp(d, 0.0, axis=1).pvalue < level)
    assert abs(found - 0.8) < 3 * math.sqrt(0.8 * 0.2 / sims)
