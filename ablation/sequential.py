"""Seeds until decided: sequential comparison of a variant with its baseline over paired seeds.

After every new seed of both (looks at n = ``min_seeds`` ... ``max_seeds`` paired seeds), the
mean paired difference gets a Student-t interval at level ``1 - alpha_n``, where the ``alpha_n``
spend ``alpha`` over the looks (``alpha_n`` proportional to ``n``: little where few seeds could
decide anything anyway). By the union bound the chance that any look's interval misses the true
difference is at most ``alpha``, however the looks depend on each other, so a decision taken at
any look keeps its error rate: a Bonferroni group-sequential boundary. Assumptions: the paired
differences of a comparison are independent draws of one normal distribution (seeds paired:
the same seed for variant and baseline).

A comparison is *better*/*worse* when its interval excludes 0, *equivalent* when the interval
lies inside ``±equivalence``, *open* otherwise; open at ``max_seeds`` it is *undecided*. With
``futility`` > 0 an open comparison stops early as *futile* (undecided, without spending the
remaining seeds) once, from ``futility_from`` seeds on, its conditional power is below
``futility``: the chance that the look at ``max_seeds`` decides anything if the mean and spread
seen so far are the truth (stochastic curtailment). Stopping for futility never adds a better
or worse decision, so the error bound above still holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

METHOD = ("Bonferroni group-sequential t boundary: at n paired seeds, a Student-t interval of the mean paired "
          "difference at level 1 - alpha_n, alpha spent over the looks in proportion to n; assumes i.i.d. normal "
          "paired differences")
DECISIONS = ("better", "worse", "equivalent", "open", "undecided", "futile")
FUTILITY = ("non-binding futility stop: an open comparison ends as futile when its conditional power (the chance "
            "that the look at max seeds decides it, if the mean and spread seen so far are the truth) is below "
            "the futility threshold")


@dataclass(frozen=True)
class Plan:
    """How a comparison is run: error rate, equivalence margin (points of top-1), seed range."""

    alpha: float = 0.05
    equivalence: float = 0.5
    min_seeds: int = 2
    max_seeds: int = 10
    futility: float = 0.0
    futility_from: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.futility < 1:
            raise ValueError(f"futility must be in [0, 1), got {self.futility}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.equivalence < 0:
            raise ValueError(f"equivalence must be >= 0, got {self.equivalence}")
        if not 2 <= self.min_seeds <= self.max_seeds:
            raise ValueError(f"need 2 <= min_seeds <= max_seeds, got {self.min_seeds}, {self.max_seeds}")

    def alpha_at(self, n: int) -> float:
        """The share of alpha spent at the look with ``n`` paired seeds."""
        looks = range(self.min_seeds, self.max_seeds + 1)
        return self.alpha * n / sum(looks)


@dataclass(frozen=True)
class Decision:
    """A comparison's state after ``n`` paired seeds."""

    decision: str
    n: int
    mean: float
    low: float
    high: float


def look(differences: Sequence[float], plan: Plan) -> Decision:
    """The decision after the paired differences seen so far (variant minus baseline)."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n < plan.min_seeds:
        return Decision("open", n, float(d.mean()) if n else math.nan, -math.inf, math.inf)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(1 - plan.alpha_at(min(n, plan.max_seeds)) / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if low > 0:
        decision = "better"
    elif high < 0:
        decision = "worse"
    elif -plan.equivalence < low and high < plan.equivalence:
        decision = "equivalent"
    elif n >= plan.max_seeds:
        decision = "undecided"
    elif plan.futility > 0 and n >= plan.futility_from and conditional_power(mean, sd, n, plan) < plan.futility:
        decision = "futile"
    else:
        decision = "open"
    return Decision(decision, n, mean, low, high)


def conditional_power(mean: float, sd: float, n: int, plan: Plan) -> float:
    """The chance that the look at ``max_seeds`` decides the comparison (better, worse or
    equivalent) if the ``max_seeds - n`` seeds to come are drawn with the mean and spread seen so
    far; the spread is taken as known."""
    big = plan.max_seeds
    if n >= big:
        return 0.0
    half = float(stats.t.ppf(1 - plan.alpha_at(big) / 2, big - 1)) * sd / math.sqrt(big)
    spread = sd * math.sqrt(big - n) / big  # of the mean at max_seeds, given the n seen
    if spread == 0:
        return 1.0
    power = stats.norm.sf((half - mean) / spread) + stats.norm.cdf((-half - mean) / spread)
    inner = plan.equivalence - half
    if inner > 0:
        power += stats.norm.cdf((inner - mean) / spread) - stats.norm.cdf((-inner - mean) / spread)
    return float(min(power, 1.0))


def run(draw, plan: Plan) -> Decision:
    """Add paired seeds from ``draw()`` (one difference each) until decided or at ``max_seeds``."""
    differences = [draw() for _ in range(plan.min_seeds)]
    while True:
        state = look(differences, plan)
        if state.decision != "open":
            return state
        differences.append(draw())
