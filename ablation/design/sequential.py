"""Seeds until decided: sequential comparison of a variant with its baseline over paired seeds.

After every new seed of both (looks at n = ``min_seeds`` ... ``max_seeds`` paired seeds), the
mean paired difference gets a Student-t *repeated confidence interval* (Jennison & Turnbull 2000,
ch. 9) at the nominal level of a group-sequential boundary:

- **Spending.** The comparison's share of alpha is spent over the looks by the Lan-DeMets
  O'Brien-Fleming-type function ``a(t) = 2 - 2 Phi(z_{1-a/2} / sqrt(t))``, information
  ``t = n / max_seeds``: almost nothing at the first looks (where 2-3 seeds could only decide a
  huge difference anyway), most of it at the last, so a comparison run to ``max_seeds`` loses
  little power against a fixed test there. (The boundary it replaces spent alpha in proportion
  to n with a union bound: with no difference it erred in 2.8% of simulated runs for a 5% alpha,
  and it found a true 1-SD difference in 57% against 75% here; sd 1.5, 2-10 seeds.)
- **Boundary.** The z-boundary ``c_n`` is solved look by look so that the chance of first
  crossing at look n under no difference is ``a(t_n) - a(t_{n-1})``, by numerical integration of
  the standardised sum's density over the continuation region (Armitage-McPherson-Rowe
  recursion, exact for a normal mean with known spread). With the spread estimated, the interval
  uses the t quantile of ``n - 1`` degrees of freedom at the same nominal two-sided level
  ``2 (1 - Phi(c_n))`` (J&T section 3.8); simulation (``tests/test_sequential.py``,
  ``bench/adaptive_seeds.py``) shows the error rate stays at or below alpha under normal, t(3)
  and collapse-contaminated differences.
- **Family.** A study runs many comparisons. ``alpha`` is the study's familywise rate: each of its
  ``comparisons`` spends ``alpha / comparisons`` (Bonferroni split; ``family="comparison"``
  gives every comparison the whole alpha). Each comparison's intervals cover its true difference
  at all looks with probability ``>= 1 - alpha / m`` (the RCI property holds for any true
  difference, and stopping early only drops looks), so by the union bound *all* intervals of
  the study cover at once with probability ``>= 1 - alpha``, whatever the correlation between
  comparisons (they share baselines) and however the adaptive sampling depends on the data; and
  every better/worse/equivalent decision below is read off those intervals, so the chance of
  any wrong decision in the study is at most alpha. Why not Holm's step-down (sequential Holm, as
  in Maurer & Bretz 2013's graphical group-sequential tests, which passes a rejected comparison's
  alpha on to the rest, retesting their past looks at the larger level)? It is valid for the
  null hypotheses "no difference", but its guarantee does not extend to the equivalence
  decisions (an interval at the passed-on level no longer belongs to a set that covers jointly),
  so the study would lose the single statement above; it gains only once something is already
  rejected; and it makes every comparison's state depend on all others, which the seed
  searcher and ``--resume`` would have to replay. The fixed-seed Δ table, with one look, uses
  Holm (``ablation.analysis.familywise``).

A comparison is *better*/*worse* when its interval excludes 0, *equivalent* when the interval
lies inside ``±equivalence``, *open* otherwise; open at ``max_seeds`` it is *undecided*. With
``futility`` > 0 an open comparison stops early as *futile* (undecided, without spending the
remaining seeds) once, from ``futility_from`` seeds on (default: half of ``max_seeds``, at least
3), its conditional power is below ``futility``: the chance that the look at ``max_seeds``
decides anything if the mean and spread seen so far are the truth (stochastic curtailment).
Judged from 3 seeds, that chance is itself too noisy: a threshold of 0.3 from 3 seeds stopped
45% of true 1-SD differences and cost 19 points of power; ``bench/adaptive_seeds.py`` measures
the rules and picks the default (``SeedBudget.futility``). Stopping for futility never adds a better
or worse decision, so the error bound above still holds (non-binding). Assumptions: the paired
differences of a comparison are independent draws of one distribution, seeds paired (the same
seed for variant and baseline); the t interval is exact for normal differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
from scipy import optimize, signal, stats

METHOD = (
    "group-sequential Student-t repeated confidence intervals: alpha spent over the looks by the Lan-DeMets "
    "O'Brien-Fleming-type function (information = seeds / max seeds), z-boundary by numerical integration, "
    "t quantile at the same nominal level; assumes i.i.d. paired differences"
)
DECISIONS = ("better", "worse", "equivalent", "open", "undecided", "futile")
FAMILIES = ("study", "comparison")
FUTILITY = (
    "non-binding futility stop: an open comparison ends as futile when its conditional power (the chance "
    "that the look at max seeds decides it, if the mean and spread seen so far are the truth) is below "
    "the futility threshold"
)


@dataclass(frozen=True)
class Plan:
    """How a comparison is run: error rate, equivalence margin (points of top-1), seed range, and
    the family: with ``family="study"`` alpha is split over the study's ``comparisons``."""

    alpha: float = 0.05
    equivalence: float = 0.5
    min_seeds: int = 2
    max_seeds: int = 10
    futility: float = 0.0
    futility_from: Optional[int] = None  # None: half of max_seeds, at least 3
    family: str = "study"
    comparisons: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.futility < 1:
            raise ValueError(f"futility must be in [0, 1), got {self.futility}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.equivalence < 0:
            raise ValueError(f"equivalence must be >= 0, got {self.equivalence}")
        if not 2 <= self.min_seeds <= self.max_seeds:
            raise ValueError(f"need 2 <= min_seeds <= max_seeds, got {self.min_seeds}, {self.max_seeds}")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if self.comparisons < 1:
            raise ValueError(f"comparisons must be >= 1, got {self.comparisons}")

    @property
    def futility_start(self) -> int:
        """The first look at which a comparison may stop as futile."""
        return self.futility_from if self.futility_from is not None else max(3, math.ceil(self.max_seeds / 2))

    @property
    def share(self) -> float:
        """The alpha one comparison spends over its looks."""
        return self.alpha / self.comparisons if self.family == "study" else self.alpha

    def alpha_at(self, n: int) -> float:
        """The nominal two-sided level of the interval at the look with ``n`` paired seeds."""
        levels = t_levels(self.share, self.min_seeds, self.max_seeds)
        return levels[min(max(n, self.min_seeds), self.max_seeds) - self.min_seeds]


def spent(alpha: float, t: float) -> float:
    """Lan-DeMets O'Brien-Fleming-type spending: the alpha spent by information fraction ``t``."""
    return float(2 * stats.norm.sf(stats.norm.isf(alpha / 2) / math.sqrt(t))) if t > 0 else 0.0


@lru_cache(maxsize=512)
def nominal_levels(alpha: float, min_seeds: int, max_seeds: int, step: float = 0.01) -> tuple[float, ...]:
    """Nominal two-sided levels ``2 (1 - Phi(c_n))`` of the z-boundary at looks n = min..max that
    spends ``alpha`` by :func:`spent`: the density of the standardised sum ``S_n`` (variance n
    under no difference) is carried from look to look over the continuation region
    ``|S_n| < c_n sqrt(n)`` by convolution on a grid of ``step``, and each ``c_n`` solved for
    its increment of the spending function."""
    looks = list(range(min_seeds, max_seeds + 1))
    width = (stats.norm.isf(alpha * 1e-4) + 8) * math.sqrt(max_seeds)
    x = np.arange(-width, width + step / 2, step)
    density = stats.norm.pdf(x, scale=math.sqrt(looks[0]))
    levels, before, previous = [], 0.0, None
    for n in looks:
        if previous is not None:
            spread = math.sqrt(n - previous)
            k = np.arange(-8 * spread, 8 * spread + step / 2, step)
            density = signal.fftconvolve(density, stats.norm.pdf(k, scale=spread) * step, mode="same")
        increment = spent(alpha, n / max_seeds) - before
        before += increment
        mass = np.cumsum(density) * step

        # beyond and the lambda below are called in this iteration only: binding late is intended.
        def beyond(c: float) -> float:  # chance of |S_n| >= c sqrt(n), still in the continuation region
            b = c * math.sqrt(n)  # noqa: B023
            return float(np.interp(-b, x + step / 2, mass) + mass[-1] - np.interp(b, x - step / 2, mass))  # noqa: B023

        if increment <= 0 or beyond(40.0) >= increment:
            c = math.inf
        else:
            c = optimize.brentq(lambda c: beyond(c) - increment, 1e-6, 40.0, xtol=1e-10)  # noqa: B023
        levels.append(float(2 * stats.norm.sf(c)))
        density = np.where(np.abs(x) < c * math.sqrt(n), density, 0.0)
        previous = n
    return tuple(levels)


#: Paths of the seeded simulation that calibrates the t boundary (Monte Carlo standard error of
#: its error rate: sqrt(a (1 - a) / CALIBRATION_PATHS), 0.0005 at a = 5%).
CALIBRATION_PATHS = 200_000


@lru_cache(maxsize=512)
def t_levels(alpha: float, min_seeds: int, max_seeds: int) -> tuple[float, ...]:
    """Nominal levels of the t intervals at looks n = min..max: those of :func:`nominal_levels`
    for a spent ``alpha' <= alpha`` chosen (by bisection) so that the chance that any look's t
    interval excludes 0 under no difference is ``alpha``, for normal differences, in a seeded
    simulation of :data:`CALIBRATION_PATHS` paths. The z-boundary matched by nominal level alone
    errs more (5.7% for 5%, 2-10 seeds: t statistics of 1-9 degrees of freedom are less
    correlated across looks than z statistics); the t statistic does not depend on the spread, so
    one calibration holds for every spread."""
    rng = np.random.default_rng(20261201)
    x = rng.standard_normal((CALIBRATION_PATHS, max_seeds))
    n = np.arange(1, max_seeds + 1)
    total, squares = np.cumsum(x, axis=1), np.cumsum(x * x, axis=1)
    sd = np.sqrt(np.maximum(squares - total**2 / n, 0) / np.maximum(n - 1, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (np.abs(total / n) / (sd / np.sqrt(n)))[:, min_seeds - 1 :]
    df = n[min_seeds - 1 :] - 1

    def error(scale: float) -> float:
        levels = np.array(nominal_levels(alpha * scale, min_seeds, max_seeds))
        return float(np.mean(np.any(t > stats.t.isf(levels / 2, df), axis=1)))

    scale = 1.0 if error(1.0) <= alpha else optimize.brentq(lambda s: error(s) - alpha, 1e-3, 1.0, xtol=1e-4)
    while error(scale) > alpha:  # the error is a step function of scale: land on the safe side
        scale *= 0.999
    return nominal_levels(alpha * scale, min_seeds, max_seeds)


@dataclass(frozen=True)
class Decision:
    """A comparison's state after ``n`` paired seeds."""

    decision: str
    n: int
    mean: float
    low: float
    high: float
    sd: float = math.nan  # of the paired differences


def look(differences: Sequence[float], plan: Plan) -> Decision:
    """The decision after the paired differences seen so far (variant minus baseline)."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n < plan.min_seeds:
        return Decision("open", n, float(d.mean()) if n else math.nan, -math.inf, math.inf)
    decision, low, high = decide(d[None, :], plan)
    return Decision(str(decision[0]), n, float(d.mean()), float(low[0]), float(high[0]), float(d.std(ddof=1)))


def decide(differences: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decisions, interval lows and highs of many comparisons at one look: row i holds the ``n``
    paired differences of comparison i (``n >= min_seeds``)."""
    n = differences.shape[1]
    mean, sd = differences.mean(axis=1), differences.std(axis=1, ddof=1)
    level = plan.alpha_at(n)
    quantile = float(stats.t.isf(level / 2, n - 1)) if level > 0 else math.inf
    half = np.where(sd > 0, quantile * sd / math.sqrt(n), 0.0)
    low, high = mean - half, mean + half
    decision = np.full(len(mean), "open", dtype=object)
    if n >= plan.max_seeds:
        decision[:] = "undecided"
    elif plan.futility > 0 and n >= plan.futility_start:
        decision[conditional_power(mean, sd, n, plan) < plan.futility] = "futile"
    decision[(-plan.equivalence < low) & (high < plan.equivalence)] = "equivalent"
    decision[high < 0] = "worse"
    decision[low > 0] = "better"
    return decision, low, high


def conditional_power(mean, sd, n: int, plan: Plan):
    """The chance that the look at ``max_seeds`` decides the comparison (better, worse or
    equivalent) if the ``max_seeds - n`` seeds to come are drawn with the mean and spread seen so
    far; the spread is taken as known. Takes and returns arrays or floats."""
    big = plan.max_seeds
    mean, sd = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
    if n >= big:
        return np.zeros_like(mean) if mean.ndim else 0.0
    half = float(stats.t.isf(plan.alpha_at(big) / 2, big - 1)) * sd / math.sqrt(big)
    spread = sd * math.sqrt(big - n) / big  # of the mean at max_seeds, given the n seen
    with np.errstate(divide="ignore", invalid="ignore"):
        power = stats.norm.sf((half - mean) / spread) + stats.norm.cdf((-half - mean) / spread)
        inner = plan.equivalence - half
        power = power + np.where(
            inner > 0, stats.norm.cdf((inner - mean) / spread) - stats.norm.cdf((-inner - mean) / spread), 0.0
        )
    power = np.where(spread == 0, 1.0, np.minimum(power, 1.0))
    return power if power.ndim else float(power)


def paths(differences: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Where many comparisons end: row i holds comparison i's paired differences in seed order
    (``max_seeds`` columns); returns each row's decision and the seeds it took, as :func:`run`
    would with those draws (for simulations: every look of every row at once)."""
    decision = np.full(len(differences), "open", dtype=object)
    seeds = np.full(len(differences), plan.max_seeds)
    for n in range(plan.min_seeds, plan.max_seeds + 1):
        now, _, _ = decide(differences[:, :n], plan)
        new = (decision == "open") & (now != "open")
        decision[new], seeds[new] = now[new], n
    return decision, seeds


def run(draw, plan: Plan) -> Decision:
    """Add paired seeds from ``draw()`` (one difference each) until decided or at ``max_seeds``."""
    differences = [draw() for _ in range(plan.min_seeds)]
    while True:
        state = look(differences, plan)
        if state.decision != "open":
            return state
        differences.append(draw())
