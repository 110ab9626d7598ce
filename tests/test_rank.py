"""Ranking: Pareto front, non-dominated ranks, hypervolume, importance and deltas on hand-made tables."""

import math
import statistics

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats

from ablation.analysis.aggregate import aggregate, factors
from ablation.analysis.rank import hypervolume, non_dominated_ranks, rank
from report_fixtures import trial_row

# (kernel_size, top1, flops, params): A and B trade accuracy for FLOPs (the front); C is
# dominated by A only; D is dominated by C (so by A too).
KNOWN = {"A": (3, 90.0, 10, 1), "B": (5, 80.0, 5, 1), "C": (7, 85.0, 12, 2), "D": (9, 70.0, 20, 3)}


def known_table() -> pd.DataFrame:
    return pd.DataFrame(
        [
            trial_row(i, attention="sca", kernel_size=k, top1=t, flops=f, params=p)
            for i, (k, t, f, p) in enumerate(KNOWN.values())
        ]
    )


def ranked(results: pd.DataFrame, **kwargs):
    return rank(aggregate(results), results, factors(results), **kwargs)


def test_known_front_and_ranks(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = ranked(known_table(), storage=storage, study_name="known")
    by_kernel = result.variants.set_index("kernel_size")
    names = {k: name for name, (k, *_rest) in KNOWN.items()}
    front = {names[int(k)] for k in by_kernel.index[by_kernel["pareto"]]}
    assert front == {"A", "B"}
    assert {names[int(k)]: r for k, r in by_kernel["nd_rank"].items()} == {"A": 0, "B": 0, "C": 1, "D": 2}
    assert result.objectives == ["val top-1 %", "FLOPs", "params"]  # no latency measured
    study = optuna.load_study(study_name="known", storage=storage)  # what optuna-dashboard opens
    assert len(study.trials) == 4
    assert {t.user_attrs["label"] for t in study.best_trials} == set(by_kernel.loc[[3, 5], "label"])


def test_regenerating_replaces_the_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    ranked(known_table(), storage=storage, study_name="again")
    ranked(known_table(), storage=storage, study_name="again")
    assert len(optuna.load_study(study_name="again", storage=storage).trials) == 4


def test_non_dominated_ranks_of_a_chain():
    losses = np.array([[0, 0], [1, 1], [2, 2], [0, 3]], dtype=float)
    assert non_dominated_ranks(losses).tolist() == [0, 1, 2, 1]


def test_hypervolume_by_hand():
    # two rectangles of area 2 overlapping in a unit square: 2 + 2 - 1
    assert hypervolume(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([2.0, 2.0])) == pytest.approx(3.0)
    # one point in 3-D: a box
    assert hypervolume(np.array([[0.5, 0.5, 0.5]]), np.ones(3)) == pytest.approx(0.125)
    # a dominated point adds nothing
    assert hypervolume(np.array([[0.0, 0.0], [0.5, 0.5]]), np.ones(2)) == pytest.approx(1.0)


def test_factor_that_alone_drives_accuracy_ranks_first():
    rng = np.random.default_rng(0)
    rows, i = [], 0
    for k in (3, 5, 7):
        for branches in ("h", "hw", "hwc"):
            for pool in ("avg", "max"):
                rows.append(
                    trial_row(
                        i,
                        attention="sca",
                        kernel_size=k,
                        branches=branches,
                        pool=pool,
                        top1=60 + 10 * k + rng.normal(0, 0.1),
                        flops=1000 + rng.integers(0, 50),
                        params=100 + rng.integers(0, 5),
                    )
                )
                i += 1
    result = ranked(pd.DataFrame(rows))
    accuracy = result.importance["accuracy (val top-1)"]
    assert max(accuracy, key=accuracy.get) == "kernel_size"
    assert result.evaluator


def test_a_target_without_variance_gets_no_importance_and_the_others_still_do():
    """All variants with one FLOP count (fakes, or a cost the profiler cannot see): fANOVA has
    no variance to decompose for cost, and must not fail the report."""
    rows = [
        trial_row(i, attention="sca", kernel_size=k, branches=b, top1=60 + 10 * k + i / 10, flops=1, params=1)
        for i, (k, b) in enumerate((k, b) for k in (3, 5, 7) for b in ("h", "hw"))
    ]
    result = ranked(pd.DataFrame(rows))
    assert set(result.importance) == {"accuracy (val top-1)"}
    assert (
        max(result.importance["accuracy (val top-1)"], key=result.importance["accuracy (val top-1)"].get)
        == "kernel_size"
    )


def test_delta_to_baseline_is_paired_over_seeds():
    base, sca = [90.0, 91.0, 89.5], [91.0, 91.5, 91.0]
    rows = [trial_row(i, seed=i, top1=t, flops=1, params=1) for i, t in enumerate(base)]
    rows += [
        trial_row(10 + i, seed=i, top1=t, flops=2, params=2, attention="sca", kernel_size=3) for i, t in enumerate(sca)
    ]
    d = ranked(pd.DataFrame(rows)).deltas.iloc[0]
    diffs = [a - b for a, b in zip(sca, base)]
    mean, se = statistics.mean(diffs), statistics.stdev(diffs) / math.sqrt(3)
    half = stats.t.ppf(0.975, 2) * se
    assert d["test"] == "paired t"
    assert d["delta_top1"] == pytest.approx(mean)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((mean - half, mean + half))
    assert d["p_value"] == pytest.approx(stats.ttest_rel(sca, base).pvalue)
    assert d["significant"] == (mean - half > 0)


def test_unpaired_seeds_use_welch_and_one_seed_has_no_test():
    rows = [trial_row(i, seed=i, top1=t, flops=1, params=1) for i, t in enumerate([90.0, 91.0])]
    rows += [
        trial_row(10 + i, seed=5 + i, top1=t, flops=2, params=2, attention="se") for i, t in enumerate([92.0, 94.0])
    ]
    rows += [trial_row(20, seed=0, top1=95.0, flops=2, params=2, attention="eca")]
    deltas = ranked(pd.DataFrame(rows)).deltas.set_index("label")
    welch = deltas.loc["resnet20 se"]
    assert welch["test"] == "Welch t"
    assert welch["p_value"] == pytest.approx(stats.ttest_ind([92.0, 94.0], [90.0, 91.0], equal_var=False).pvalue)
    assert deltas.loc["resnet20 eca", "delta_top1"] == pytest.approx(95.0 - 90.5)
    assert math.isnan(deltas.loc["resnet20 eca", "ci_low"])
