"""Seed aggregation against figures computed by hand from the raw numbers."""

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablation.analysis.aggregate import aggregate, factors
from report_fixtures import trial_row

SCA = dict(attention="sca", kernel_size=5, branches="hwc")


def table() -> pd.DataFrame:
    rows = [
        trial_row(i, seed=i, top1=t, top5=99.0, val_loss=0.3, params=100, flops=1000, latency_ms=1.0 + i)
        for i, t in enumerate([90.0, 91.5, 89.0])
    ]
    rows += [
        trial_row(10 + i, seed=i, top1=t, top5=98.0, val_loss=0.4, params=121, flops=1100, latency_ms=2.0, **SCA)
        for i, t in enumerate([92.0, 93.0])
    ]
    rows.append(trial_row(20, status="failed", seed=2, error="boom", **SCA))
    rows.append(trial_row(21, status="running", seed=3, top1=10.0, **SCA))
    return pd.DataFrame(rows)


def test_mean_std_ci_and_n_match_hand_computation():
    agg = aggregate(table()).set_index("attention")
    for attention, values in (("none", [90.0, 91.5, 89.0]), ("sca", [92.0, 93.0])):
        row = agg.loc[attention]
        n, mean, sd = len(values), statistics.mean(values), statistics.stdev(values)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        assert row["n"] == n  # failed and running trials do not count
        assert row["top1_mean"] == pytest.approx(mean)
        assert row["top1_std"] == pytest.approx(sd)
        assert (row["top1_ci_low"], row["top1_ci_high"]) == pytest.approx((mean - half, mean + half))
    assert agg.loc["none", "latency_ms"] == pytest.approx(statistics.median([1.0, 2.0, 3.0]))
    assert agg.loc["sca", "params"] == 121


def test_single_seed_has_no_spread():
    agg = aggregate(pd.DataFrame([trial_row(0, top1=80.0, params=1, flops=1)]))
    assert agg.loc[0, "n"] == 1 and agg.loc[0, "top1_mean"] == 80.0
    assert math.isnan(agg.loc[0, "top1_std"]) and math.isnan(agg.loc[0, "top1_ci_low"])


def test_factors_are_the_config_columns_that_vary():
    """An attention option varies only with two values among the modules that take it: SCA's
    options, recorded on every SCA row, do not vary because ``none`` has none."""
    assert set(factors(table())) == {"attention"}
    more = pd.concat(
        [table(), pd.DataFrame([trial_row(30, seed=0, top1=90.0, params=1, flops=1, **{**SCA, "branches": "hws"})])],
        ignore_index=True,
    )
    assert set(factors(more)) == {"attention", "branches"}


def test_an_option_that_only_follows_the_module_is_no_factor():
    """SCA at kernel 5 beside CBAM at kernel 7: kernel_size is each module's own setting, so it
    neither labels the variants nor counts as a factor; once SCA runs at two kernels it does."""
    cbam = [trial_row(40 + i, seed=i, top1=90.0, params=1, flops=1, attention="cbam", kernel_size=7) for i in (0, 1)]
    peers = pd.concat([table(), pd.DataFrame(cbam)], ignore_index=True)
    assert set(factors(peers)) == {"attention"}
    assert set(aggregate(peers)["label"]) == {"resnet20 none", "resnet20 sca", "resnet20 cbam"}
    k3 = pd.DataFrame([trial_row(30, seed=0, top1=90.0, params=1, flops=1, **{**SCA, "kernel_size": 3})])
    assert set(factors(pd.concat([peers, k3], ignore_index=True))) == {"attention", "kernel_size"}


def test_labels_name_what_varies():
    assert set(aggregate(table())["label"]) == {"resnet20 none", "resnet20 sca"}
    more = pd.concat(
        [table(), pd.DataFrame([trial_row(30, seed=0, top1=90.0, params=1, flops=1, **{**SCA, "kernel_size": 3})])],
        ignore_index=True,
    )
    assert set(aggregate(more)["label"]) == {"resnet20 none", "resnet20 sca k=5", "resnet20 sca k=3"}


def test_robust_summaries_keep_one_collapsed_seed_from_dominating():
    """IQM cuts a collapsed seed that drags the mean; the probability of improvement counts paired
    seeds won (ties half); bootstrap intervals hold the statistic and are seeded."""
    from scipy import stats as st

    from ablation.analysis.robust import improvement, interval, iqm

    seeds = np.array([82.0, 81.5, 10.0, 82.5, 81.0])
    assert iqm(seeds) == pytest.approx(st.trim_mean(seeds, 0.25)) == pytest.approx(np.mean([81.5, 82.0, 81.0]))
    assert seeds.mean() < 70 < iqm(seeds)
    assert iqm([1.0, 2.0, 9.0]) == pytest.approx(4.0)  # fewer than 4 seeds: nothing trimmed
    base = np.array([81.0, 81.5, 80.0, 83.0, 80.5])
    assert improvement(seeds, base) == pytest.approx((1 + 0.5 + 0 + 0 + 1) / 5)
    low, high = interval(iqm, seeds)
    assert low <= iqm(seeds) <= high and (low, high) == interval(iqm, seeds)
    low, high = interval(improvement, seeds, base, paired=True)
    assert 0 <= low <= improvement(seeds, base) <= high <= 1
