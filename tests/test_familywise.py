"""Holm's step-down over a study's fixed-seed comparisons: decisions, the levels of the intervals,
and the familywise error of an 11-comparison study under three kinds of seed noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ablation.analysis.familywise import holm
from ablation.design.seed_noise import NOISES, draw


def test_holm_decides_steps_down_and_draws_each_interval_at_its_tested_level():
    found = holm([0.01, 0.04, 0.03, math.nan], alpha=0.05)
    assert found.size == 3 and list(found.decided) == [True, False, False, False]
    assert found.levels[0] == pytest.approx(0.05 / 3) and found.levels[1] == found.levels[2] == pytest.approx(0.025)
    assert math.isnan(found.levels[3]) and math.isnan(found.adjusted[3])
    assert "3 comparisons" in found.describe() and "Holm" in found.describe()
    loose = holm([0.01, 0.04, 0.03], alpha=0.05, family="comparison")
    assert list(loose.decided) == [True, True, True] and set(loose.levels) == {0.05}
    with pytest.raises(ValueError, match="family must be one of"):
        holm([0.1], family="experiment")


@pytest.mark.slow
def test_an_interval_excludes_zero_exactly_where_holm_decides():
    rng = np.random.default_rng(0)
    for _ in range(40):  # (multipletests runs a full garbage collection per call: slow in bulk)
        p = rng.uniform(0, 0.05, rng.integers(1, 15)) ** rng.uniform(0.5, 2)
        found = holm(p, alpha=0.05)
        assert list(found.decided) == list(multipletests(p, 0.05, "holm")[0])
        assert list(found.decided) == list(p < found.levels)  # a t interval at level L excludes 0 iff p < L


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.slow
def test_familywise_error_of_an_11_comparison_fixed_seed_study_stays_under_alpha(noise):
    """11 variants against one shared baseline, 3 paired seeds, no true difference: the chance
    that Holm declares any difference is at most alpha (plus Monte Carlo error); read one by one
    at 5% it is far above."""
    rng = np.random.default_rng(1)
    studies, seeds, alpha = 3000, 3, 0.05
    base = draw(noise, rng, (studies, 1, seeds), 1.0)
    variants = draw(noise, rng, (studies, 11, seeds), 1.0)
    p = stats.ttest_1samp(variants - base, 0.0, axis=2).pvalue
    for row in p[:20]:  # Holm decides anything iff the smallest p is below alpha / m: vectorised below
        assert holm(row, alpha).decided.any() == (row.min() < alpha / 11)
    any_holm = np.mean(p.min(axis=1) < alpha / 11)
    assert any_holm <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / studies)
    assert np.mean(np.any(p < alpha, axis=1)) > 2 * alpha
