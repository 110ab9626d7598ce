"""Sequential seed decisions: error control under repeated looks, by simulation, and power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ablation.design.seed_noise import NOISES, study
from ablation.design.sequential import Plan, conditional_power, look, nominal_levels, paths, run, spent

N_SIM = 4000


def _simulate(true_diff: float, sd: float, plan: Plan, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [run(lambda: rng.normal(true_diff, sd), plan) for _ in range(N_SIM)]


@pytest.mark.slow
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
        naive += any(
            abs(d[:n].mean()) > stats.t.ppf(0.975, n - 1) * d[:n].std(ddof=1) / np.sqrt(n) for n in range(2, 11)
        )
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


def test_futility_stops_hopeless_comparisons_early_and_keeps_the_error_bound():
    """No true difference and a spread no 10 seeds can resolve: with a futility threshold most
    comparisons end as futile well before max seeds; wrong better/worse decisions stay under
    alpha; a large true difference is still found."""
    rng = np.random.default_rng(3)
    plan = Plan(alpha=0.05, equivalence=0.5, min_seeds=2, max_seeds=10, futility=0.2)
    states = [run(lambda: rng.normal(0.0, 3.0), plan) for _ in range(2000)]
    futile = [s for s in states if s.decision == "futile"]
    assert len(futile) > 0.5 * len(states) and np.mean([s.n for s in futile]) < 6
    wrong = np.mean([s.decision in ("better", "worse") for s in states])
    assert wrong <= plan.alpha + 3 * math.sqrt(plan.alpha * (1 - plan.alpha) / len(states))
    strong = [run(lambda: rng.normal(-2.0, 0.5), plan) for _ in range(500)]
    assert np.mean([s.decision == "worse" for s in strong]) > 0.95


def test_conditional_power_grows_with_the_effect_and_shrinks_with_the_spread():
    plan = Plan(futility=0.2)
    assert conditional_power(2.0, 0.5, 3, plan) > 0.9
    assert conditional_power(0.0, 3.0, 3, plan) < 0.1
    assert conditional_power(0.5, 1.0, 3, plan) < conditional_power(1.5, 1.0, 3, plan)
    assert conditional_power(1.0, 2.0, 3, plan) < conditional_power(1.0, 1.0, 3, plan)
    with pytest.raises(ValueError, match="futility must be in"):
        Plan(futility=1.0)


def test_paths_decide_as_run_does_on_the_same_draws():
    rng = np.random.default_rng(5)
    plan = Plan(alpha=0.05, equivalence=0.5, min_seeds=2, max_seeds=8, futility=0.3)
    draws = rng.normal(0.8, 1.0, (300, plan.max_seeds))
    decisions, seeds = paths(draws, plan)
    for row, decision, n in zip(draws, decisions, seeds):
        it = iter(row)
        state = run(lambda: next(it), plan)  # noqa: B023 (called in this iteration only)
        assert (state.decision, state.n) == (decision, n)


def test_the_boundary_spends_alpha_by_obrien_fleming_and_its_z_version_is_exact():
    """Nominal levels grow look by look (little early, most late); with a known spread (z
    statistics) the boundary's chance of any crossing under no difference is alpha."""
    levels = nominal_levels(0.05, 2, 10)
    assert all(a < b for a, b in zip(levels, levels[1:])) and levels[0] < 1e-4
    assert spent(0.05, 1.0) == pytest.approx(0.05)
    rng = np.random.default_rng(6)
    z = np.abs(np.cumsum(rng.standard_normal((100_000, 10)), axis=1) / np.sqrt(np.arange(1, 11)))[:, 1:]
    error = np.mean(np.any(z >= stats.norm.isf(np.array(levels) / 2), axis=1))
    assert abs(error - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 100_000)


@pytest.mark.parametrize("noise", NOISES)
def test_familywise_error_of_an_11_comparison_study_stays_under_alpha(noise):
    """A study shaped like fashion_peers_adaptive (6 variants against none, 5 against a
    reference: 11 comparisons sharing sides) with no true difference anywhere: the chance of any
    better/worse decision is at most alpha (plus Monte Carlo error); with the per-comparison
    family it is far above."""
    studies = 4000
    margin = 3 * math.sqrt(0.05 * 0.95 / studies)
    outcome = study(Plan(alpha=0.05), [0.0] * 6, noise, 1.5, studies, seed=7, with_reference=True)
    assert outcome.decisions.shape[1] == 11
    assert np.mean(np.any(np.isin(outcome.decisions, ["better", "worse"]), axis=1)) <= 0.05 + margin
    loose = study(Plan(alpha=0.05, family="comparison"), [0.0] * 6, noise, 1.5, studies, seed=7, with_reference=True)
    wrong = np.isin(loose.decisions, ["better", "worse"])
    assert wrong.mean() <= 0.05 + margin and np.mean(np.any(wrong, axis=1)) > 0.05 + margin


def test_power_at_the_target_one_sd_difference():
    """sd 1.5 points, true difference 1.5, 2-10 seeds, alpha 0.05, one comparison: power at least
    0.70 at no more mean seeds than the old boundary's 8.65."""
    outcome = study(Plan(alpha=0.05), [1.5], "normal", 1.5, 4000, seed=8)
    assert np.mean(outcome.decisions == "better") >= 0.70
    assert outcome.seeds.mean() <= 8.65
