"""Robust summaries beside the mean, as the ML-benchmark statistics literature recommends
(Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice", the ``rliable``
library): the interquartile mean (IQM) of each variant over its seeds, and the probability that a
variant beats its baseline on a paired seed, each with a bootstrap interval, so that one
collapsed seed neither hides nor dominates a variant.

Computed with ``scipy.stats.trim_mean`` (25% cut from each end, as rliable's IQM) and
``scipy.stats.bootstrap`` (percentile intervals, resampling seeds; paired seeds resampled
together). Not rliable itself: rliable 1.2.0 needs ``arch``, whose current release (7.2.0) fails
to import with pandas 3.1 (``deprecate_kwarg`` changed), and a one-task study has a single
stratum, so its stratified bootstrap is this plain one. With fewer than 4 seeds the IQM trims
nothing and equals the mean; with 2-3 seeds a bootstrap interval is coarse (it can only take the
values the seeds allow), so read it as a description of the seeds, not as a test.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .aggregate import reported_metric

CONFIDENCE = 0.95
RESAMPLES = 2000
METHOD = (
    f"IQM: mean of the middle 50% of seeds (scipy trim_mean 0.25, as rliable); P(beats baseline): share "
    f"of paired seeds on which the variant's top-1 is higher (ties count half); intervals: {CONFIDENCE:.0%} "
    f"percentile bootstrap over seeds ({RESAMPLES} resamples, seeded; one task, so the stratified bootstrap "
    f"has one stratum)"
)


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean after cutting 25% from each end."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25)) if len(values) else math.nan


def improvement(variant: Sequence[float], baseline: Sequence[float]) -> float:
    """Share of paired seeds on which ``variant`` beats ``baseline`` (ties count half)."""
    a, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    return float(np.mean((a > b) + 0.5 * (a == b))) if len(a) else math.nan


def interval(statistic, *samples: np.ndarray, paired: bool = False) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over the samples (NaN for fewer than 2)."""
    if len(samples[0]) < 2:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples (all seeds equal) warn; the interval is then a point
        found = stats.bootstrap(
            samples,
            statistic,
            paired=paired,
            vectorized=False,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            random_state=0,
        )
    return float(found.confidence_interval.low), float(found.confidence_interval.high)


def robust_table(variants: pd.DataFrame, deltas: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Per variant: seeds, mean, IQM with its interval, and (against its baseline, on paired
    seeds) the probability of improvement with its interval."""
    done = results[results["status"] == "completed"]
    metric = reported_metric(results)
    baseline_of = dict(zip(deltas["variant"], deltas["baseline"])) if not deltas.empty else {}
    by_label = dict(zip(variants["label"], variants["variant"]))
    rows = []
    for _, v in variants.iterrows():
        seeds = done[done["variant"] == v["variant"]].set_index("seed")[metric].astype(float).dropna()
        low, high = interval(iqm, seeds.to_numpy())
        row = {
            "variant": v["label"],
            "seeds": len(seeds),
            "mean": float(seeds.mean()) if len(seeds) else math.nan,
            "iqm": iqm(seeds.to_numpy()),
            "iqm_low": low,
            "iqm_high": high,
            "baseline": baseline_of.get(v["variant"], ""),
            "p_improve": math.nan,
            "p_improve_low": math.nan,
            "p_improve_high": math.nan,
            "paired": 0,
        }
        if row["baseline"]:
            base = done[done["variant"] == by_label[row["baseline"]]].set_index("seed")[metric].astype(float).dropna()
            shared = seeds.index.intersection(base.index)
            a, b = seeds[shared].to_numpy(), base[shared].to_numpy()
            row["paired"] = len(shared)
            row["p_improve"] = improvement(a, b)
            row["p_improve_low"], row["p_improve_high"] = interval(improvement, a, b, paired=True)
        rows.append(row)
    return pd.DataFrame(rows)


def robust_frame(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`robust_table` as display strings."""

    def span(lo: float, hi: float, fmt: str) -> str:
        return "-" if math.isnan(lo) else f"[{lo:{fmt}}, {hi:{fmt}}]"

    return pd.DataFrame(
        {
            "variant": table["variant"],
            "seeds": table["seeds"],
            "mean": table["mean"].map("{:.2f}".format),
            "IQM": table["iqm"].map("{:.2f}".format),
            "IQM 95% bootstrap": [span(lo, hi, ".2f") for lo, hi in zip(table["iqm_low"], table["iqm_high"])],
            "baseline": table["baseline"].replace("", "-"),
            "P(beats baseline)": [
                ("-" if math.isnan(p) else f"{p:.2f} ({n} paired)") for p, n in zip(table["p_improve"], table["paired"])
            ],
            "P 95% bootstrap": [span(lo, hi, ".2f") for lo, hi in zip(table["p_improve_low"], table["p_improve_high"])],
        }
    )
