"""Sequential seed decisions: error control under repeated looks, by simulation, and power."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ablation.sequential import Plan, look, run

N_SIM = 4000


def _simulate(true_diff: float, sd: float, plan: Plan, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [run(lambda: rng.normal(true_diff, sd), plan) for _ in range(N_SIM)]


def test_wrong_better_or_worse_decisions_stay_under_alpha_with_no_true_difference():
    plan = Plan(alpha=0.05, equivalence=0.5, min_seeds=2, max_seeds=10)
    outcomes = _simulate(0.0, 1.0, plan)
    wrong = sum(o.decision in ("better", "worse") for o in outcomes) / N_SIM
    margin = 3 * np.sqrt(0.05 * 0.95 / N_SIM)  # Monte Carlo margin (3 standard errors)
    assert wrong <= 0.05 + margin
    # the same data judged at every look with an unadjusted 95% t interval errs far more often
    rng = np.random.default_rng(1)
    naive = 0
    for _ in range(N_SIM):
        d = rng.normal(0, 1, 10)
        naive += any(abs(d[:n].mean()) > stats.t.ppf(0.975, n - 1) * d[:n].std(ddof=1) / np.sqrt(n)
                     for n in range(2, 11))
    assert naive / N_SIM > 2 * wrong


@pytest.mark.parametrize("true_diff, power", [(2.0, 0.95), (-2.0, 0.95)])
def test_a_true_difference_is_found_with_its_sign(true_diff, power):
    plan = Plan(alpha=0.05, equivalence=0.5, min_seeds=2, max_seeds=10)
    outcomes = _simulate(true_diff, 1.0, plan, seed=2)
    right = "better" if true_diff > 0 else "worse"
    wrong = "worse" if true_diff > 0 else "better"
    assert sum(o.decision == right for o in outcomes) / N_SIM >= power
    assert not any(o.decision == wrong for o in outcomes)
    assert np.mean([o.n for o in outcomes]) < 0.7 * plan.max_seeds  # fewer seeds than the fixed grid


def test_equivalence_is_declared_for_tiny_differences_with_little_noise():
    plan = Plan(alpha=0.05, equivalence=0.5, min_seeds=2, max_seeds=10)
    outcomes = _simulate(0.0, 0.1, plan, seed=3)
    assert sum(o.decision == "equivalent" for o in outcomes) / N_SIM >= 0.95


def test_look_states_and_bad_plans():
    plan = Plan(min_seeds=3, max_seeds=4)
    assert look([1.0, 2.0], plan).decision == "open"  # fewer than min_seeds
    assert look([0.1, -0.3, 0.4, 5.0], plan).decision == "undecided"  # max reached, still open
    assert look([3.0, 3.1, 2.9], plan).decision == "better"
    with pytest.raises(ValueError, match="min_seeds"):
        Plan(min_seeds=1)
    with pytest.raises(ValueError, match="alpha"):
        Plan(alpha=1.5)
