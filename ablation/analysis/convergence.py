"""Convergence: whether each trial's validation curve had flattened when its training ended.

A trial's *gain* is its validation top-1 at its last epoch minus its top-1 ``LAST`` epochs
before (from ``epochs.csv``); it is *flat* when the gain is below ``FLAT`` points. A trial with
too few epochs to look that far back has no gain (NaN) and is not judged. Reports state it for
every seed (``convergence.csv``) and ``ablate plan`` requires it of a pilot's baseline.

A per-seed rule at ``FLAT`` points sits at the size of the epoch-to-epoch noise once the learning
rate has decayed (0.2 points is 12 of 6,000 validation images), so it fails some seeds of a
converged variant by chance. A variant is therefore also judged on its mean gain over seeds: flat
when the one-sided ``1 - ALPHA`` Student t upper bound of that mean is below ``FLAT``. The claim
that every variant is flat is an intersection-union test, so it errs with probability at most
``ALPHA`` with no correction for the number of variants.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import pandas as pd
from scipy import stats

FLAT = 0.2  # points of validation top-1 over the last LAST epochs
LAST = 3
ALPHA = 0.05  # one-sided, for a variant's mean gain
CONVERGENCE_FILE = "convergence.csv"


def last_gains(epochs: pd.DataFrame, trial_ids: Iterable[str], last: int = LAST) -> dict[str, float]:
    """Validation top-1 gain over the last ``last`` epochs of each trial in ``trial_ids`` (top-1 at
    its last epoch minus top-1 at the epoch ``last`` before it), NaN where that epoch is missing."""
    gains = {}
    for trial_id in trial_ids:
        curve = epochs[epochs["trial_id"] == trial_id]
        top1 = dict(zip(curve["epoch"].astype(int), curve["top1"].astype(float)))
        end = max(top1) if top1 else 0
        gains[trial_id] = top1[end] - top1[end - last] if end - last in top1 else math.nan
    return gains


def is_flat(gain: float, flat: float = FLAT) -> Optional[bool]:
    """Whether a gain is below ``flat`` points; None where it is unknown (NaN)."""
    return None if math.isnan(gain) else bool(gain < flat)


def trial_convergence(
    results: pd.DataFrame, epochs: pd.DataFrame, last: int = LAST, flat: float = FLAT
) -> pd.DataFrame:
    """One row per completed trial of ``results``: ``trial_id``, ``backbone``, ``variant``,
    ``seed``, ``epochs`` (its last recorded epoch), ``gain`` and ``flat`` (None where not judged)."""
    done = results[results["status"] == "completed"]
    gains = last_gains(epochs, done["trial_id"], last)
    last_epoch = epochs.groupby("trial_id")["epoch"].max() if len(epochs) else pd.Series(dtype=int)
    return pd.DataFrame(
        {
            "trial_id": done["trial_id"].to_numpy(),
            "backbone": done["backbone"].to_numpy(),
            "variant": done["variant"].to_numpy(),
            "seed": done["seed"].to_numpy(),
            "epochs": [int(last_epoch[t]) if t in last_epoch else 0 for t in done["trial_id"]],
            "gain": [gains[t] for t in done["trial_id"]],
            "flat": [is_flat(gains[t], flat) for t in done["trial_id"]],
        }
    )


def mean_gain_bound(gains: Iterable[float], alpha: float = ALPHA) -> tuple[int, float, float]:
    """Judged seeds, mean gain and the one-sided ``1 - alpha`` Student t upper bound of the mean
    (NaN with fewer than 2 judged seeds); NaN gains are left out."""
    judged = [g for g in gains if not math.isnan(g)]
    n = len(judged)
    if n == 0:
        return 0, math.nan, math.nan
    mean = sum(judged) / n
    if n < 2:
        return n, mean, math.nan
    return n, mean, mean + float(stats.t.ppf(1 - alpha, n - 1) * stats.sem(judged))


def variant_flatness(trials: pd.DataFrame, flat: float = FLAT, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per backbone and variant of :func:`trial_convergence`'s frame: ``judged`` seeds,
    ``mean_gain``, ``upper`` (its one-sided ``1 - alpha`` t bound) and ``flat`` (``upper`` below
    ``flat``; None with fewer than 2 judged seeds)."""
    rows = []
    for (backbone, variant), g in trials.groupby(["backbone", "variant"], sort=False):
        n, mean, upper = mean_gain_bound(g["gain"].astype(float), alpha)
        rows.append(
            {
                "backbone": backbone,
                "variant": variant,
                "judged": n,
                "mean_gain": mean,
                "upper": upper,
                "flat": is_flat(upper, flat),
            }
        )
    return pd.DataFrame(rows, columns=["backbone", "variant", "judged", "mean_gain", "upper", "flat"])
