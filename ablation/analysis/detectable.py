"""What a comparison could not see: its minimum detectable effect (MDE).

A difference "within seed noise" says nothing by itself: 3 seeds with a 2-point spread miss a
2-point effect most of the time. The MDE is the |Δ| a two-sided t-test with the comparison's
standard error ``se`` (observed paired spread / sqrt(n), or Welch's), ``df`` degrees of freedom
and level would detect with ``power`` (80%): solved exactly from the noncentral t distribution
(``scipy.stats.nct``: power = P(|T'| > t_{1-a/2, df}), noncentrality Δ / se). The textbook closed
form ``(t_{1-a/2, df} + t_{power, df}) * se`` (:func:`approximate`) ignores the far tail and the
noncentral shape; it is kept to check the exact one.
"""

from __future__ import annotations

import math

from scipy import optimize, stats

POWER = 0.8
METHOD = (
    "minimum detectable effect: the |Δ| a two-sided t-test at the comparison's level, standard error and "
    "degrees of freedom detects with 80% power (noncentral t, exact), taking the observed spread as the truth"
)


def power(effect: float, se: float, df: float, level: float) -> float:
    """Chance that the two-sided t-test at ``level`` rejects when the true difference is ``effect``."""
    critical = stats.t.isf(level / 2, df)
    nc = effect / se
    lower = stats.nct.sf(critical, df, -nc)  # P(T' < -critical), by symmetry (its cdf can be NaN far out)
    return float(stats.nct.sf(critical, df, nc) + (0.0 if math.isnan(lower) else lower))


def mde(se: float, df: float, level: float, power_wanted: float = POWER) -> float:
    """The smallest |Δ| detected with ``power_wanted`` (NaN where there is no test)."""
    if not (se > 0 and df > 0 and 0 < level < 1) or any(map(math.isnan, (se, df, level))):
        return math.nan
    high = approximate(se, df, level, power_wanted) * 2 + se
    while power(high, se, df, level) < power_wanted:
        high *= 2
    return float(optimize.brentq(lambda e: power(e, se, df, level) - power_wanted, 0.0, high, xtol=1e-9 * high))


def approximate(se: float, df: float, level: float, power_wanted: float = POWER) -> float:
    """The closed form ``(t_{1-level/2, df} + t_{power, df}) * se``."""
    return float((stats.t.isf(level / 2, df) + stats.t.ppf(power_wanted, df)) * se)
