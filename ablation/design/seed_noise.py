"""Simulated seed noise and studies, for checking the seed-budget procedure (``tests``,
``bench/adaptive_seeds.py``): how real runs scatter, and a study's error and power under it.

Three noise models of one variant's top-1 over seeds, each with standard deviation ``sd`` in its
bulk: ``normal``; ``t3`` (Student t with 3 degrees of freedom, scaled to ``sd``: heavy tails);
``contaminated`` (normal, and with chance ``COLLAPSE_RATE`` a seed collapses, ``COLLAPSE_DROP``
points below: what the shipped MobileNetV2 runs show). A study is ``baselines`` comparisons of a
variant with one shared baseline, and optionally of the same variants with a shared reference
(as ``fashion_peers_adaptive``: 6 variants against none, 5 against ECA: 11 comparisons); seeds
are paired, so comparisons sharing a side are correlated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .sequential import Plan, paths

NOISES = ("normal", "t3", "contaminated")
COLLAPSE_RATE = 0.05
COLLAPSE_DROP = 40.0


def draw(noise: str, rng: np.random.Generator, shape: tuple[int, ...], sd: float) -> np.ndarray:
    """Seed noise of one variant's top-1 (zero-centred in its bulk), ``shape`` draws."""
    if noise == "normal":
        return rng.normal(0.0, sd, shape)
    if noise == "t3":
        return rng.standard_t(3, shape) * sd / np.sqrt(3.0)
    if noise == "contaminated":
        return rng.normal(0.0, sd, shape) - COLLAPSE_DROP * (rng.random(shape) < COLLAPSE_RATE)
    raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")


@dataclass(frozen=True)
class Outcome:
    """Simulated studies: ``decisions`` and ``seeds`` are (studies, comparisons) arrays; ``trials``
    the seeds trained per study (a shared side trains as many as its most demanding comparison);
    ``grid`` the trials of every variant at ``max_seeds``."""

    decisions: np.ndarray
    seeds: np.ndarray
    trials: np.ndarray
    grid: int


def study(
    plan: Plan,
    differences: list[float],
    noise: str,
    sd: float,
    studies: int,
    seed: int = 0,
    with_reference: bool = False,
) -> Outcome:
    """Simulate ``studies`` studies of ``len(differences)`` variants, variant i's true difference
    to the baseline being ``differences[i]`` (points); with ``with_reference`` the last variant
    is also the reference every other variant is compared with. Per-variant seed noise of spread
    ``sd / sqrt(2)``, so that a paired difference has spread ``sd`` (normal noise)."""
    rng = np.random.default_rng(seed)
    k, size = len(differences), (studies, plan.max_seeds)
    cell = sd / np.sqrt(2.0)
    base = draw(noise, rng, size, cell)
    values = [np.asarray(d) + draw(noise, rng, size, cell) for d in differences]
    pairs = [(i, None) for i in range(k)] + ([(i, k - 1) for i in range(k - 1)] if with_reference else [])
    plan = replace(plan, comparisons=len(pairs))
    columns: list[tuple[np.ndarray, np.ndarray]] = [
        paths(values[i] - (base if j is None else values[j]), plan) for i, j in pairs
    ]
    decisions = np.stack([d for d, _ in columns], axis=1)
    seeds = np.stack([n for _, n in columns], axis=1)
    per_cell = np.zeros((studies, k + 1), dtype=int)
    for c, (i, j) in enumerate(pairs):
        for side in (i, k if j is None else j):
            per_cell[:, side] = np.maximum(per_cell[:, side], seeds[:, c])
    return Outcome(decisions, seeds, per_cell.sum(axis=1), (k + 1) * plan.max_seeds)


def truths(differences: list[float], with_reference: bool = False) -> np.ndarray:
    """The true difference of every comparison of :func:`study`, in its order."""
    k = len(differences)
    pairs = [differences[i] for i in range(k)]
    if with_reference:
        pairs += [differences[i] - differences[k - 1] for i in range(k - 1)]
    return np.asarray(pairs, dtype=float)


def wrong(decisions: np.ndarray, truth: np.ndarray, equivalence: float) -> np.ndarray:
    """Wrong decisions: better or worse against the sign of the truth (or with none), equivalent
    with the truth at or beyond the margin."""
    return (
        ((decisions == "better") & (truth <= 0))
        | ((decisions == "worse") & (truth >= 0))
        | ((decisions == "equivalent") & (np.abs(truth) >= equivalence))
    )
