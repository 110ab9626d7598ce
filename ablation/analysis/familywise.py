"""Familywise error over a study's fixed-seed comparisons: Holm's step-down.

A study compares many variants with their baselines; read one by one at 5% each, some "beyond
seed noise" differences are expected by chance alone (11 independent null comparisons: at least
one in 1 - 0.95^11 = 43% of studies). With ``family="study"`` (the default) ``alpha`` is the
study's familywise error rate: Holm's step-down (``statsmodels.stats.multitest.multipletests``, method ``holm``) decides
which comparisons differ, controlling the chance of any wrong one at ``alpha`` whatever their
dependence (they share baselines). Each comparison's interval is drawn at the level it was tested
at, so that it excludes 0 exactly where Holm decides: the i-th smallest p-value is tested at
``alpha / (m - i + 1)`` while Holm still rejects; every comparison left undecided after ``r``
rejections at ``alpha / (m - r)``. (Those intervals are not simultaneous: a joint 1 - alpha
coverage would need Bonferroni's ``alpha / m`` for all.) ``family="comparison"``: every
comparison at ``alpha`` on its own, as a single pre-planned comparison would be.

:func:`paired_tests` runs one such family of paired t-tests (training paths, an earlier run),
with each interval at its Holm level and its detectable effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from .detectable import mde

FAMILIES = ("study", "comparison")
METHOD = "Holm's step-down (statsmodels multipletests, method holm)"


@dataclass(frozen=True)
class Family:
    """Decisions over one family: ``decided`` (H0 rejected), Holm-adjusted p-values and the level
    each comparison's interval is drawn at; NaN p-values (no test) are left out of the family."""

    decided: np.ndarray
    adjusted: np.ndarray
    levels: np.ndarray
    size: int
    alpha: float
    family: str

    @property
    def detection_level(self) -> float:
        """The level a comparison is sure to be tested at (Holm's first step, ``alpha / m``); the
        detectable effects use it, so they hold whatever the other comparisons show."""
        return self.alpha / max(self.size, 1) if self.family == "study" else self.alpha

    def describe(self) -> str:
        """One sentence naming the family and the method, for a report."""
        if self.family == "comparison":
            return (
                f"Error control per comparison: each of the {self.size} comparisons at alpha = {self.alpha:g} on "
                f"its own (no familywise control; family: comparison)."
            )
        return (
            f"Familywise error over the study's {self.size} comparisons at alpha = {self.alpha:g} by {METHOD}: "
            f"the chance of any wrong 'beyond seed noise' is at most {self.alpha:g}; each interval is drawn at "
            f"the level its comparison was tested at (alpha / {self.size} for the smallest p, up to alpha / "
            f"(m - r) after r decisions), so it excludes 0 exactly where Holm decides."
        )


def holm(p_values: Sequence[float], alpha: float = 0.05, family: str = "study") -> Family:
    """Holm's step-down over ``p_values`` at familywise ``alpha`` (``family="study"``), or each
    at ``alpha`` (``family="comparison"``)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    p = np.asarray(p_values, dtype=float)
    tested = ~np.isnan(p)
    m = int(tested.sum())
    decided, adjusted = np.zeros(len(p), dtype=bool), np.full(len(p), np.nan)
    levels = np.full(len(p), np.nan)
    if m == 0:
        return Family(decided, adjusted, levels, 0, alpha, family)
    if family == "comparison":
        decided[tested], adjusted[tested], levels[tested] = p[tested] < alpha, p[tested], alpha
        return Family(decided, adjusted, levels, m, alpha, family)
    reject, adj, _, _ = multipletests(p[tested], alpha=alpha, method="holm")
    decided[tested], adjusted[tested] = reject, adj
    order = np.argsort(p[tested], kind="stable")
    step = np.empty(m, dtype=int)
    step[order] = np.arange(m)  # 0 for the smallest p
    r = int(reject.sum())
    levels[tested] = np.where(reject, alpha / (m - step), alpha / max(m - r, 1))  # all rejected: unused
    return Family(decided, adjusted, levels, m, alpha, family)


def paired_tests(
    samples: Sequence[tuple[dict[str, Any], Sequence[float]]], alpha: float = 0.05, family: str = "study"
) -> pd.DataFrame:
    """One family of paired t-tests: per ``(keys, differences)`` in ``samples`` a row of the keys
    with ``pairs``, ``mean``, ``sd``, ``se``, ``p`` (none with fewer than 2 pairs or no spread),
    Holm's ``decided``, ``holm_p`` and ``level`` (:func:`holm`), the t interval ``low``-``high``
    at that level and the detectable effect ``mde`` (80%, at :attr:`Family.detection_level`)."""
    rows = []
    for keys, differences in samples:
        d = np.asarray(differences, dtype=float)
        n = len(d)
        sd = float(d.std(ddof=1)) if n > 1 else math.nan
        se = sd / math.sqrt(n) if n > 1 else math.nan
        p = float(stats.ttest_1samp(d, 0.0).pvalue) if n > 1 and sd > 0 else math.nan
        rows.append({**keys, "pairs": n, "mean": float(d.mean()), "sd": sd, "se": se, "p": p})
    table = pd.DataFrame(rows)
    tested = holm(table["p"].to_numpy(), alpha, family)
    table["decided"], table["holm_p"], table["level"] = tested.decided, tested.adjusted, tested.levels
    half = np.array(
        [
            stats.t.isf(level / 2, n - 1) * se if n > 1 and not math.isnan(level) else math.nan
            for level, n, se in zip(table["level"], table["pairs"], table["se"])
        ]
    )
    table["low"], table["high"] = table["mean"] - half, table["mean"] + half
    table["mde"] = [mde(se, n - 1, tested.detection_level) for se, n in zip(table["se"], table["pairs"])]
    return table
