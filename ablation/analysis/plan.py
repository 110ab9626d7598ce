"""Plan a study from a pilot: which training budget decides the most per CPU-hour, and what a
space will cost before it starts.

A *pilot* is a small sweep (its run directory, or a report folder: ``results.csv`` and
``epochs.csv``) that trains a baseline (``attention: none``) and some variants for a few seeds at
a few *budgets*: the config keys that differ between its trials other than the attention
module's and the seed (``subset``, ``epochs``, ``dataset`` ...). Per budget:

- **Cost.** A trial's time is its training plus compilation (``train_time_s + compile_time_s``:
  every epoch's training and validation pass; not the process start, data loading, test pass or
  latency measurement, which the pilot's sweep wall time shows apart where it finished).
- **Convergence.** The baseline's validation top-1 gain over its last three epochs, per seed
  (:mod:`ablation.analysis.convergence`); the budget is *flat* when every seed gained less than
  ``flat`` points.
- **Spread.** Each variant's test top-1 (validation top-1 where no test split was held out) is
  paired by seed with the baseline's; the sd of the paired differences is pooled over the
  budget's variants (variance weighted by degrees of freedom: sum (n_v - 1) s_v^2 / sum (n_v - 1)).
  With 2 seeds each pair gives 1 degree of freedom: the chi-square interval of the sd spans a
  factor of ~70, so every seed count below is stated with the range that interval allows.
- **Criterion.** The seeds per variant a two-sided paired t-test at ``level`` (the study's alpha
  over its comparisons) needs to detect ``effect`` points with 80% power, exactly from the
  noncentral t (:func:`ablation.analysis.detectable.power`), taking the pooled sd as the truth; times the
  trial time of a variant and its baseline (CPU-hours per decision, ``cpu`` CPUs a trial). The
  budget recommended is the one with the most decisions per CPU-hour among the flat ones.

A space's cost (:func:`space_cost`): its trials (with a seed budget: ``min`` and ``max`` seeds
of every variant, and the seeds the criterion asks for clamped to that range as the expected
count), each costed at the pilot's budget with the same values (else the nearest in training
images x epochs, scaled by images x epochs; compilation is not scaled), for the same backbone and
attention module (else the baseline's time times a relative cost, given or assumed and said),
summed and divided by the trials that run at once (``cores`` / the space's ``resources.cpu``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd
from scipy import stats

from ..design.columns import cell_text, config_columns, is_attention_factor
from .convergence import FLAT, LAST, is_flat, last_gains
from .detectable import POWER, power
from ..run.epochs import EPOCHS_FILE, read_epochs
from ..errors import ConfigError
from ..run.results import RESULTS_FILE, SWEEP_FILE, read_results

EFFECT = 1.0  # points of test top-1
ALPHA = 0.05
MAX_SEEDS = 1000  # beyond this a seed count is shown as "> MAX_SEEDS"
SD_CONFIDENCE = 0.95
CRITERION = (
    "seeds per variant for a two-sided paired t-test at the study's level to detect the target effect with "
    "80% power (noncentral t, the pooled paired sd taken as the truth), times the trial time of a variant "
    "and its baseline: CPU-hours per decision; the budget recommended decides the most per CPU-hour among "
    "those whose baseline curves are flat"
)


@dataclass
class Pilot:
    """A pilot's trials: ``results`` (every row, with ``budget``, ``variant_label`` and
    ``trial_time_s`` added), its per-epoch ``epochs``, the budget ``keys``, the ``baseline``
    attention, CPUs a trial reserved and ``sweep.json``."""

    path: Path
    results: pd.DataFrame
    epochs: pd.DataFrame
    keys: list[str]
    baseline: str
    cpu: float
    info: dict[str, Any]
    has_curves: bool


def load_pilot(path: str | Path, baseline: str = "none") -> Pilot:
    """Read a pilot's run directory or report folder; bad input raises ``ConfigError`` naming it."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(
            f"--pilot {path}: no such directory (give a sweep's run directory or a report folder "
            f"holding {RESULTS_FILE} and {EPOCHS_FILE})"
        )
    if not (path / RESULTS_FILE).is_file():
        raise ConfigError(
            f"--pilot {path}: no {RESULTS_FILE} in it (give a sweep's run directory or a report folder "
            f"holding {RESULTS_FILE} and {EPOCHS_FILE})"
        )
    try:
        results = read_results(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"--pilot {path / RESULTS_FILE}: not a results table ({' '.join(str(exc).split())})"
        ) from None
    missing = [c for c in ("trial_id", "status", "attention", "seed", "train_time_s") if c not in results]
    if missing:
        raise ConfigError(
            f"--pilot {path / RESULTS_FILE}: no column(s) {', '.join(missing)} (not a sweep's {RESULTS_FILE})"
        )
    attentions = sorted(results["attention"].dropna().astype(str).unique())
    if not attentions:
        raise ConfigError(f"--pilot {path / RESULTS_FILE}: no trials in it")
    if baseline not in attentions:
        raise ConfigError(
            f"--baseline {baseline!r}: no trial of the pilot has that attention; allowed: {', '.join(attentions)}"
        )
    info = _read_info(path)
    keys = budget_keys(results)
    results = results.assign(
        budget=[budget_label(r, keys) for _, r in results.iterrows()],
        variant_label=[variant_label(r, results) for _, r in results.iterrows()],
        trial_time_s=results["train_time_s"].astype(float) + _column(results, "compile_time_s").fillna(0.0),
    )
    cpu = float(((info.get("resources") or (info.get("space") or {}).get("resources") or {}).get("cpu")) or 1.0)
    return Pilot(path, results, read_epochs(path), keys, baseline, cpu, info, (path / EPOCHS_FILE).is_file())


def _read_info(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / SWEEP_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name].astype(float) if name in frame else pd.Series(np.nan, index=frame.index)


def budget_keys(results: pd.DataFrame) -> list[str]:
    """Config columns whose value differs between trials, other than the attention module's
    options and the seed: what makes one budget differ from another."""
    return [
        c
        for c in config_columns(results)
        if c != "seed" and not is_attention_factor(c) and results[c].map(cell_text).nunique() > 1
    ]


def budget_label(row: Mapping[str, Any], keys: list[str]) -> str:
    """``subset=10000 epochs=15`` (``all`` where the pilot has one budget)."""
    return " ".join(f"{k}={cell_text(row.get(k))}" for k in keys) or "all"


def variant_label(row: Mapping[str, Any], results: pd.DataFrame) -> str:
    """The attention module, and its options that differ between the pilot's trials of it."""
    same = results[results["attention"] == row["attention"]]
    options = [
        c
        for c in config_columns(results)
        if is_attention_factor(c) and c != "attention" and same[c].map(cell_text).nunique() > 1
    ]
    return " ".join([str(row["attention"])] + [f"{c}={cell_text(row.get(c))}" for c in options])


def metric_column(results: pd.DataFrame) -> str:
    """What is compared: test top-1, or validation top-1 where no trial recorded a test split."""
    return "test_top1" if "test_top1" in results and results["test_top1"].notna().any() else "top1"


# --- the criterion ----------------------------------------------------------------------------


def seeds_needed(effect: float, sd: float, level: float, power_wanted: float = POWER, cap: int = MAX_SEEDS) -> float:
    """The fewest paired seeds n >= 2 at which a two-sided paired t-test at ``level`` (se = sd /
    sqrt(n), n - 1 degrees of freedom) detects ``effect`` with ``power_wanted`` (exact, noncentral
    t); ``inf`` beyond ``cap``, NaN where the sd is unknown."""
    if not (sd >= 0 and effect > 0) or math.isnan(sd):
        return math.nan
    if sd == 0:
        return 2.0

    def enough(n: int) -> bool:
        return power(effect, sd / math.sqrt(n), n - 1, level) >= power_wanted

    if not enough(cap):
        return math.inf
    low, high = 1, 2
    while not enough(high):  # power rises with n: double, then bisect
        low, high = high, min(high * 2, cap)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return float(max(high, 2))


def sd_interval(sd: float, df: int, confidence: float = SD_CONFIDENCE) -> tuple[float, float]:
    """The chi-square confidence interval of a normal sd estimated with ``df`` degrees of freedom."""
    if not (df >= 1 and sd >= 0):
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    return (float(sd * math.sqrt(df / stats.chi2.isf(tail, df))), float(sd * math.sqrt(df / stats.chi2.ppf(tail, df))))


def pooled_sd(sds: list[float], dfs: list[int]) -> tuple[float, int]:
    """Variances pooled by their degrees of freedom; returns the sd and its degrees of freedom."""
    pairs = [(s, d) for s, d in zip(sds, dfs) if d >= 1 and not math.isnan(s)]
    df = sum(d for _, d in pairs)
    if not df:
        return math.nan, 0
    return float(math.sqrt(sum(d * s * s for s, d in pairs) / df)), df


# --- per budget -------------------------------------------------------------------------------


def curve_gains(pilot: Pilot, budget: str, attention: Optional[str] = None, last: int = LAST) -> dict[int, float]:
    """Validation top-1 gain over the last ``last`` epochs of each completed trial of ``attention``
    (default: the baseline) in ``budget``, by seed (NaN where a trial has fewer epochs)."""
    attention = attention or pilot.baseline
    rows = pilot.results[
        (pilot.results["budget"] == budget)
        & (pilot.results["attention"] == attention)
        & (pilot.results["status"] == "completed")
    ]
    rows = rows.sort_values("seed")
    gains = last_gains(pilot.epochs, rows["trial_id"], last)
    return {int(seed): gains[t] for seed, t in zip(rows["seed"], rows["trial_id"])}


@dataclass
class BudgetPlan:
    """One budget's figures: ``budget`` (one row) and ``variants`` (one row per variant)."""

    budget: dict[str, Any]
    variants: list[dict[str, Any]] = field(default_factory=list)


def plan_budget(
    pilot: Pilot, budget: str, effect: float = EFFECT, level: float = ALPHA, flat: float = FLAT
) -> BudgetPlan:
    """Trials, time, convergence, spread and the criterion of one budget of the pilot."""
    rows = pilot.results[pilot.results["budget"] == budget]
    done = rows[rows["status"] == "completed"]
    metric = metric_column(pilot.results)
    base_label = _baseline_label(pilot, done, budget)
    values = {
        label: dict(zip(g["seed"].astype(int), g[metric].astype(float))) for label, g in done.groupby("variant_label")
    }
    base = values.get(base_label, {}) if base_label else {}
    times = done.groupby("variant_label")["trial_time_s"].median()
    variants, sds, dfs = [], [], []
    for label in sorted(values, key=lambda v: (v != base_label, v)):
        seeds = values[label]
        x = np.array(list(seeds.values()))
        row = {
            "variant": label,
            "kind": "baseline" if label == base_label else "variant",
            "seeds": len(x),
            "top1_mean": float(x.mean()) if len(x) else math.nan,
            "top1_sd": float(x.std(ddof=1)) if len(x) > 1 else math.nan,
            "trial_time_s": float(times.get(label, math.nan)),
        }
        if label != base_label:
            paired = sorted(set(seeds) & set(base))
            d = np.array([seeds[s] - base[s] for s in paired])
            row |= {
                "paired_seeds": len(d),
                "diff_mean": float(d.mean()) if len(d) else math.nan,
                "diff_sd": float(d.std(ddof=1)) if len(d) > 1 else math.nan,
            }
            sds.append(row["diff_sd"])
            dfs.append(len(d) - 1)
        variants.append(row)
    sd, df = pooled_sd(sds, dfs)
    low, high = sd_interval(sd, df)
    gains = curve_gains(pilot, budget) if pilot.has_curves else {}
    waiting = rows[(rows["attention"] == pilot.baseline) & rows["status"].isin(["running", "pending"])]
    judged = [is_flat(g, flat) for g in gains.values()]
    every_flat = all(judged) if judged and waiting.empty and None not in judged else None
    t_base = float(times.get(base_label, math.nan)) if base_label else math.nan
    others = [v["trial_time_s"] for v in variants if v["kind"] == "variant"]
    t_pair = t_base + (float(np.mean(others)) if others else math.nan)
    n = seeds_needed(effect, sd, level)
    cpu_hours = n * t_pair * pilot.cpu / 3600
    first = rows.iloc[0]
    summary = {
        "budget": budget,
        **{k: first.get(k) for k in pilot.keys},
        "trials": len(rows),
        "completed": len(done),
        "unfinished": int((~rows["status"].isin(["completed", "failed", "stopped"])).sum()),
        "train_images": _median(done, "train_images"),
        "epochs": _median(rows, "epochs"),
        "trial_time_s": _median(done, "trial_time_s"),
        "compile_time_s": _median(done, "compile_time_s"),
        "images_per_s": _median(done, "images_per_s"),
        "baseline_gains": gains,
        "flat": every_flat,
        "sd": sd,
        "df": df,
        "sd_low": low,
        "sd_high": high,
        "variants_pooled": sum(1 for d in dfs if d >= 1),
        "seeds_needed": n,
        "seeds_low": seeds_needed(effect, low, level),
        "seeds_high": seeds_needed(effect, high, level),
        "cpu_hours_per_decision": cpu_hours,
        "decisions_per_cpu_hour": 1 / cpu_hours if cpu_hours > 0 and math.isfinite(cpu_hours) else math.nan,
    }
    return BudgetPlan(summary, variants)


def _baseline_label(pilot: Pilot, done: pd.DataFrame, budget: str) -> Optional[str]:
    labels = sorted(done.loc[done["attention"] == pilot.baseline, "variant_label"].unique())
    if len(labels) > 1:
        raise ConfigError(
            f"--baseline {pilot.baseline!r}: {len(labels)} variants of it in budget {budget} "
            f"({'; '.join(labels)}); the baseline must be one variant per budget"
        )
    return labels[0] if labels else None


def _median(frame: pd.DataFrame, column: str) -> float:
    values = _column(frame, column).dropna()
    return float(values.median()) if len(values) else math.nan


@dataclass
class PilotPlan:
    """Every budget's plan, and the one recommended (None where no budget is flat)."""

    budgets: list[BudgetPlan]
    recommended: Optional[str]
    cheapest: Optional[str]  # the most decisions per CPU-hour, flat or not
    effect: float
    level: float
    flat: float
    metric: str
    cpu: float
    baseline: str
    keys: list[str]
    overhead: float = math.nan  # sweep wall time / (summed trial time / trials at once), finished pilots


def plan_pilot(
    pilot: Pilot, effect: float = EFFECT, level: float = ALPHA, flat: float = FLAT, cores: Optional[int] = None
) -> PilotPlan:
    """Every budget of the pilot, and the one that decides the most per CPU-hour among the flat."""
    budgets = [plan_budget(pilot, b, effect, level, flat) for b in _budget_order(pilot)]

    def best(candidates: list[BudgetPlan]) -> Optional[str]:
        rated = [b for b in candidates if math.isfinite(b.budget["decisions_per_cpu_hour"])]
        return max(rated, key=lambda b: b.budget["decisions_per_cpu_hour"]).budget["budget"] if rated else None

    return PilotPlan(
        budgets,
        best([b for b in budgets if b.budget["flat"]]),
        best(budgets),
        effect,
        level,
        flat,
        metric_column(pilot.results),
        pilot.cpu,
        pilot.baseline,
        pilot.keys,
        pilot_overhead(pilot, cores),
    )


def _budget_order(pilot: Pilot) -> list[str]:
    order = pilot.results.sort_values([*pilot.keys, "trial_id"], kind="stable") if pilot.keys else pilot.results
    return list(dict.fromkeys(order["budget"]))


def concurrent(cores: float, cpu: float, max_concurrent: Optional[int] = None) -> int:
    """Trials that run at once: whole trials of ``cpu`` CPUs on ``cores`` (at least one)."""
    n = max(1, int(math.floor(cores / cpu + 1e-9)))
    return min(n, max_concurrent) if max_concurrent else n


def pilot_overhead(pilot: Pilot, cores: Optional[int]) -> float:
    """The pilot's sweep wall time over its summed trial time divided by the trials that ran at
    once: what the trial times leave out (start-up, data, test pass, latency, idle slots). NaN
    unless the sweep finished with every trial completed."""
    wall = pilot.info.get("wall_time_s")
    results = pilot.results
    if (
        not pilot.info.get("finished")
        or not isinstance(wall, (int, float))
        or cores is None
        or not (results["status"] == "completed").all()
        or not len(results)
    ):
        return math.nan
    return float(wall / (results["trial_time_s"].sum() / concurrent(cores, pilot.cpu)))


# --- a space's cost ---------------------------------------------------------------------------


@dataclass
class SpaceCost:
    """What a space will cost on this machine: trials and wall-clock hours at min / expected /
    max seeds, the trials that run at once, and every assumption made, in words."""

    name: str
    cells: int
    trials: dict[str, int]
    cpu_seconds: dict[str, float]
    hours: dict[str, float]
    concurrent: int
    cores: float
    cpu: float
    level: float
    comparisons: int
    notes: list[str]
    rows: list[dict[str, Any]]


def space_cost(
    space: Any, pilot: Pilot, plan: PilotPlan, cores: float, relative_cost: Optional[Mapping[str, float]] = None
) -> SpaceCost:
    """The cost of ``space`` (a grid :class:`ablation.design.space.SearchSpace`) from ``pilot``."""
    from ..design.seed_budget import cell_key, cells

    if space.sampled:
        raise ConfigError(
            f"{space.source or space.name}: a sampled space (sample:) has no fixed trials; plan costs grid spaces"
        )
    relative_cost = dict(relative_cost or {})
    points = space.points()
    by_cell = cells(points)
    seeds = space.seed_budget
    notes: list[str] = []
    level, m = plan.level, space_family(space)[1]
    count = {key: sum(1 for p in points if cell_key(p) == key) for key in by_cell}
    budgets = {b.budget["budget"]: b for b in plan.budgets}
    rows = []
    for key, cell in by_cell.items():
        match, images, how = _match_budget(cell, pilot, budgets)
        seconds, cost_note = _trial_seconds(cell, pilot, match, images, relative_cost)
        b = budgets[match].budget
        if seeds is not None:
            n_min, n_max = seeds.min_, seeds.max_
            need = seeds_needed(plan.effect, b["sd"], level)
            n_exp = n_max if math.isnan(need) else int(min(max(need, n_min), n_max))
            if math.isnan(need) and f"no paired spread at {match}" not in " ".join(notes):
                notes.append(
                    f"no paired spread at {match} (no variant and baseline completed on 2 common seeds): "
                    f"expected seeds taken as max"
                )
        else:
            n_min = n_exp = n_max = count[key]
        rows.append(
            {
                "backbone": cell.get("backbone"),
                "attention": cell.get("attention"),
                "budget": match,
                "matched": how,
                "train_images": images,
                "epochs": cell.get("epochs"),
                "trial_time_s": seconds,
                "cost": cost_note,
                "seeds_min": n_min,
                "seeds_expected": n_exp,
                "seeds_max": n_max,
            }
        )
    paths = {str(c.get("train_path")) for c in by_cell.values()}
    pilot_paths = set(pilot.results["train_path"].map(cell_text)) if "train_path" in pilot.results else set()
    if pilot_paths and paths != pilot_paths:
        notes.append(
            f"the space trains on path(s) {', '.join(sorted(paths))} and the pilot on "
            f"{', '.join(sorted(pilot_paths))}: the times are the pilot's, not rescaled (on this CPU the fast "
            f"path trained about twice as fast as eager, reports/benchmarks/train_throughput.md)"
        )
    cpu = float(space.spec.resources.cpu)
    at_once = concurrent(cores, cpu, space.spec.budget.max_concurrent)
    trials = {k: int(sum(r[f"seeds_{k}"] for r in rows)) for k in ("min", "expected", "max")}
    cpu_seconds = {k: float(sum(r[f"seeds_{k}"] * r["trial_time_s"] for r in rows)) for k in trials}
    hours = {k: v / at_once / 3600 for k, v in cpu_seconds.items()}
    return SpaceCost(space.name, len(by_cell), trials, cpu_seconds, hours, at_once, cores, cpu, level, m, notes, rows)


def space_family(space: Any) -> tuple[float, int]:
    """The study's alpha and the comparisons it is split over (1 with ``family: comparison``): a
    seed budget's comparisons (baseline and reference), or a fixed grid's attention variants (the
    report's Δ table, Holm; its first step tests at alpha / m)."""
    from ..design.seed_budget import cells, comparisons

    seeds = space.seed_budget
    if seeds is not None:
        m = len(comparisons(space.points(), seeds.reference)) if seeds.family == "study" else 1
        return seeds.alpha, max(m, 1)
    attended = sum(1 for c in cells(space.points()).values() if c.get("attention") != "none")
    statistics = space.spec.statistics
    return statistics.alpha, max(attended, 1) if statistics.family == "study" else 1


def _cell_images(cell: Mapping[str, Any]) -> int:
    """Training images of a config: ``subset`` when a count, else the data set's training split
    after the validation split (read from its files), times ``subset`` when a fraction."""
    from ..data import carve_val, check_subset

    subset = check_subset(cell.get("subset"))
    if isinstance(subset, int):
        return subset
    pool = _training_split(str(cell.get("dataset", "digits")), cell.get("data_dir"))
    train, _ = carve_val(pool, float(cell.get("val_split", 0.1)))
    n = len(train)
    return max(1, round(subset * n)) if isinstance(subset, float) else n


def _training_split(dataset: str, data_dir: Optional[str]) -> int:
    """Images in a data set's training split, read from its files (synthetic: from its name)."""
    from ..data import sources

    base = dataset.split(":", 1)[0]
    if base == "synthetic":
        return int(sources.parse_synthetic(dataset)["train"])
    if base == "digits":
        return len(sources.load_digits_arrays().train_y)
    if base == "fashion-mnist":
        return len(sources.load_fashion_arrays(data_dir).train_y)
    if base in ("cifar10", "cifar100"):
        return len(sources.load_cifar_arrays(base, data_dir, False).train_y)
    raise ConfigError(
        f"dataset {dataset!r}: plan cannot count its training images; give subset as a count of images "
        f"or pilot the same budget"
    )


def _match_budget(cell: Mapping[str, Any], pilot: Pilot, budgets: Mapping[str, BudgetPlan]) -> tuple[str, float, str]:
    """The pilot budget a space's config is costed at: the one with the same values of the budget
    keys, else the nearest in training images x epochs (log scale); with the config's images."""
    for name, b in budgets.items():
        if (
            pilot.keys
            and all(_same(cell.get(k), b.budget.get(k)) for k in pilot.keys)
            and math.isfinite(b.budget["trial_time_s"])
        ):
            return name, b.budget["train_images"], "same budget"
    images = float(_cell_images(cell))
    work = images * float(cell.get("epochs", 1))
    rated = [b for b in budgets.values() if math.isfinite(b.budget["trial_time_s"]) and b.budget["train_images"] > 0]
    if not rated:
        raise ConfigError(f"--pilot {pilot.path}: no completed trial to take a trial time from")
    nearest = min(rated, key=lambda b: abs(math.log(work / (b.budget["train_images"] * b.budget["epochs"]))))
    same = math.isclose(work, nearest.budget["train_images"] * nearest.budget["epochs"])
    return nearest.budget["budget"], images, "same images x epochs" if same else "scaled by images x epochs"


def _same(a: Any, b: Any) -> bool:
    return cell_text(a) == cell_text(b)


def _trial_seconds(
    cell: Mapping[str, Any], pilot: Pilot, budget: str, images: float, relative_cost: Mapping[str, float]
) -> tuple[float, str]:
    """A trial's time for ``cell`` from the pilot's ``budget``: the same backbone and attention's
    median time there, else the baseline's times a relative cost; training scaled by images x
    epochs, compilation not. Returns the seconds and how they were found."""
    done = pilot.results[(pilot.results["budget"] == budget) & (pilot.results["status"] == "completed")]
    backbone, attention = str(cell.get("backbone")), str(cell.get("attention"))
    on_backbone = done[done["backbone"].astype(str) == backbone]
    base = on_backbone[on_backbone["attention"] == pilot.baseline]
    given = relative_cost.get(f"{backbone}:{attention}")
    if base.empty:
        if given is None:
            backbones = ", ".join(sorted(done["backbone"].astype(str).unique()))
            raise ConfigError(
                f"--pilot {pilot.path}: no completed {pilot.baseline} trial of backbone {backbone!r} in "
                f"budget {budget} (the pilot's: {backbones}); give its cost relative to the pilot's "
                f"baseline as --relative-cost {backbone}:{attention}=RATIO"
            )
        base = done[done["attention"] == pilot.baseline]
    same = on_backbone[on_backbone["attention"] == attention]
    if given is not None:
        source, ratio, rows = f"given ratio {given:g} x {pilot.baseline}", given, base
    elif not same.empty:
        source, ratio, rows = "pilot", 1.0, same
    elif attention in relative_cost:
        source, ratio, rows = (
            f"given ratio {relative_cost[attention]:g} x {pilot.baseline}",
            relative_cost[attention],
            base,
        )
    elif (measured := _ratio_elsewhere(pilot, backbone, attention)) is not None:
        ratio, where = measured
        source, rows = f"{ratio:.2f} x {pilot.baseline}, the ratio measured at {where}", base
    else:
        ratios = [
            g["trial_time_s"].median() / base["trial_time_s"].median()
            for a, g in on_backbone.groupby("attention")
            if a != pilot.baseline
        ]
        ratio = max([1.0, *ratios])
        source, rows = (
            (
                f"not in the pilot: assumed {ratio:.2f} x {pilot.baseline} (the pilot's dearest module on "
                f"{backbone}; give --relative-cost {attention}=RATIO)"
            ),
            base,
        )
    train = float(rows["train_time_s"].median())
    compile_s = float(_column(rows, "compile_time_s").fillna(0.0).median())
    scale = (images * float(cell.get("epochs", 1))) / (
        float(rows["train_images"].median()) * float(rows["epochs"].median())
    )
    return ratio * (train * scale + compile_s), source


def _ratio_elsewhere(pilot: Pilot, backbone: str, attention: str) -> Optional[tuple[float, str]]:
    """The median trial time of ``attention`` over the baseline's on ``backbone``, at the budgets
    where both completed (their mean), and those budgets; None where there is none."""
    done = pilot.results[(pilot.results["status"] == "completed") & (pilot.results["backbone"].astype(str) == backbone)]
    ratios, where = [], []
    for budget, g in done.groupby("budget", sort=False):
        mine, base = g[g["attention"] == attention], g[g["attention"] == pilot.baseline]
        if len(mine) and len(base):
            ratios.append(mine["trial_time_s"].median() / base["trial_time_s"].median())
            where.append(str(budget))
    return (float(np.mean(ratios)), ", ".join(where)) if ratios else None


# --- text -------------------------------------------------------------------------------------


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return f"> {MAX_SEEDS}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _seeds(value: float) -> str:
    return "-" if math.isnan(value) else (f"> {MAX_SEEDS}" if math.isinf(value) else str(int(value)))


def _seed_range(x: Mapping[str, Any]) -> str:
    if math.isnan(x["seeds_needed"]):
        return "-"
    return f"{_seeds(x['seeds_needed'])} ({_seeds(x['seeds_low'])} to {_seeds(x['seeds_high'])})"


def plan_frame(plan: PilotPlan) -> pd.DataFrame:
    """``plan.csv``: one row per (budget, variant), the budget's figures repeated on each."""
    rows = []
    for b in plan.budgets:
        head = {k: v for k, v in b.budget.items() if k != "baseline_gains"}
        gains = b.budget["baseline_gains"]
        head["baseline_gains"] = " / ".join(f"seed {s}: {g:+.2f}" for s, g in gains.items())
        head["recommended"] = b.budget["budget"] == plan.recommended
        for v in b.variants or [{}]:
            rows.append({**head, **{f"variant_{k}" if k in ("seeds", "trial_time_s") else k: x for k, x in v.items()}})
    frame = pd.DataFrame(rows)
    frame.insert(0, "effect", plan.effect)
    frame.insert(1, "level", plan.level)
    return frame


def budget_table(plan: PilotPlan) -> pd.DataFrame:
    """The printed table: one row per budget."""
    rows = []
    for b in plan.budgets:
        x = b.budget
        gains = ", ".join(f"{g:+.2f}" for g in x["baseline_gains"].values()) or "-"
        rows.append(
            {
                "budget": x["budget"],
                "trials (done)": f"{x['trials']} ({x['completed']})",
                "trial time (min)": _f(x["trial_time_s"] / 60, 1),
                "images/s": _f(x["images_per_s"], 0),
                f"{plan.baseline} val gain, last {LAST} ep.": gains,
                "flat": {True: "yes", False: "no", None: "-"}[x["flat"]],
                "paired sd (df)": f"{_f(x['sd'])} ({x['df']})",
                f"sd {SD_CONFIDENCE:.0%} interval": "-"
                if math.isnan(x["sd_low"])
                else f"[{_f(x['sd_low'])}, {_f(x['sd_high'])}]",
                "seeds/variant": _seed_range(x),
                "CPU-h/decision": _f(x["cpu_hours_per_decision"]),
                "decisions/CPU-h": _f(x["decisions_per_cpu_hour"]),
            }
        )
    return pd.DataFrame(rows)


def variant_table(plan: PilotPlan) -> pd.DataFrame:
    rows = []
    for b in plan.budgets:
        for v in b.variants:
            rows.append(
                {
                    "budget": b.budget["budget"],
                    "variant": v["variant"],
                    "seeds": v["seeds"],
                    f"{_metric_name(plan.metric)} mean": _f(v["top1_mean"]),
                    "seed sd": _f(v["top1_sd"]),
                    "Δ to baseline (paired)": "-" if v["kind"] == "baseline" else _f(v["diff_mean"], 2),
                    "sd of Δ": "-" if v["kind"] == "baseline" else _f(v["diff_sd"]),
                    "trial time (min)": _f(v["trial_time_s"] / 60, 1),
                }
            )
    return pd.DataFrame(rows)


def _metric_name(metric: str) -> str:
    return "test top-1" if metric == "test_top1" else "val top-1"


def summary_lines(plan: PilotPlan) -> list[str]:
    """What the plan says, in words: the recommendation (or why there is none) and its uncertainty."""
    by_name = {b.budget["budget"]: b.budget for b in plan.budgets}
    lines = []
    if plan.recommended:
        x = by_name[plan.recommended]
        lines.append(
            f"Recommended budget: {plan.recommended}: {_seeds(x['seeds_needed'])} seeds per variant to detect "
            f"{plan.effect:g} points with 80% power at level {plan.level:.3g}, "
            f"{x['cpu_hours_per_decision']:.2f} CPU-hours per decision "
            f"({x['decisions_per_cpu_hour']:.2f} decisions per CPU-hour), the most among the flat budgets."
        )
    else:
        rising = [b.budget["budget"] for b in plan.budgets if b.budget["flat"] is False]
        unknown = [b.budget["budget"] for b in plan.budgets if b.budget["flat"] is None]
        later = (
            f"; not yet judged: {', '.join(unknown)} (no completed {plan.baseline} curve of more than {LAST} epochs)"
            if unknown
            else ""
        )
        if not rising:
            lines.append(
                f"No budget can be recommended yet: no budget has a completed {plan.baseline} curve of "
                f"more than {LAST} epochs to judge convergence by."
            )
        else:
            lines.append(
                f"No budget is flat{' so far' if unknown else ''}: at {', '.join(rising)} some seed of "
                f"{plan.baseline} still gained {plan.flat:g} points or more of validation top-1 over its last "
                f"{LAST} epochs{later}. None is recommended"
                + (" (train longer, or more images per epoch, and pilot again)." if not unknown else ".")
            )
        if plan.cheapest:
            lines.append(
                f"Were flatness not required, {plan.cheapest} would decide the most per CPU-hour "
                f"({by_name[plan.cheapest]['decisions_per_cpu_hour']:.2f})."
            )
    pooled = [b.budget for b in plan.budgets if b.budget["df"]]
    if pooled:
        dfs = sorted({x["df"] for x in pooled})
        most = max(x["variants_pooled"] for x in pooled)
        lines.append(
            f"Spread: the sd of the paired differences (variant minus {plan.baseline}, same seed) is pooled over the "
            f"variants of each budget ({'one variant, nothing to pool' if most == 1 else f'up to {most} variants'}; "
            f"{', '.join(map(str, dfs))} degree(s) of freedom)."
            + (" With 2 seeds each pair gives 1 degree of freedom." if dfs[0] <= 2 else "")
            + f" The sd's {SD_CONFIDENCE:.0%} interval (chi-square) runs from {_ratio_low(dfs[0]):.2f} to "
            f"{_ratio_high(dfs[0]):.1f} times the estimate at {dfs[0]} df, and the seeds needed scale with its square: "
            f"the range in brackets is what that interval allows. The ranking of budgets is as uncertain as their "
            f"spreads; trial times are firmer."
        )
    if math.isfinite(plan.overhead):
        lines.append(
            f"The pilot's sweep took {plan.overhead:.2f} times its summed trial time divided by the trials "
            f"run at once: start-up, data loading, test pass and latency measurement are not in the trial "
            f"times."
        )
    return lines


def _ratio_low(df: int) -> float:
    return sd_interval(1.0, df)[0]


def _ratio_high(df: int) -> float:
    return sd_interval(1.0, df)[1]


def cost_lines(cost: SpaceCost, overhead: float = math.nan) -> list[str]:
    lines = [
        f"Space {cost.name}: {cost.cells} variants; "
        + (
            f"trials {cost.trials['min']} (min) / {cost.trials['expected']} (expected) / {cost.trials['max']} (max)"
            if cost.trials["min"] != cost.trials["max"]
            else f"{cost.trials['max']} trials"
        ),
        f"Trials at once: {cost.concurrent} ({_f(cost.cores, 0) if float(cost.cores).is_integer() else cost.cores} "
        f"cores / {cost.cpu:g} CPU per trial); wall-clock = summed trial time / {cost.concurrent}.",
        "Wall-clock hours: "
        + " / ".join(f"{cost.hours[k]:.2f} ({k})" for k in ("min", "expected", "max"))
        + f"; CPU-hours {cost.cpu_seconds['expected'] * cost.cpu / 3600:.2f} expected.",
        f"Expected: every variant gets the seeds the criterion asks for at its pilot budget's pooled spread (level "
        f"{cost.level:.3g}; the space has {cost.comparisons} comparisons in its family), clamped to the seed "
        f"budget's range; "
        f"min and max: every variant at min or max seeds."
        if cost.trials["min"] != cost.trials["max"]
        else "No seed budget: every trial of the grid runs.",
    ]
    if math.isfinite(overhead):
        lines.append(
            f"With the pilot's measured overhead (x{overhead:.2f}): "
            + " / ".join(f"{cost.hours[k] * overhead:.2f}" for k in ("min", "expected", "max"))
            + " hours."
        )
    return lines + [f"Note: {n}" for n in cost.notes]


def cost_table(cost: SpaceCost) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "backbone": r["backbone"],
                "attention": r["attention"],
                "pilot budget": r["budget"],
                "matched": r["matched"],
                "train images": int(r["train_images"]),
                "epochs": r["epochs"],
                "trial time (min)": _f(r["trial_time_s"] / 60, 1),
                "trial time from": r["cost"],
                "seeds (min/exp/max)": f"{r['seeds_min']}/{r['seeds_expected']}/{r['seeds_max']}",
            }
            for r in cost.rows
        ]
    )


def to_markdown(plan: PilotPlan, cost: Optional[SpaceCost] = None, source: str = "") -> str:
    parts = [
        f"# Plan from the pilot {source}".rstrip(),
        "",
        f"Budgets: the pilot's trials grouped by {', '.join(plan.keys) or 'nothing (one budget)'}. "
        f"Trial time: training + compilation (median of completed trials; train_time_s + compile_time_s). "
        f"Flat: every seed of {plan.baseline} gained less than {plan.flat:g} points of validation top-1 over its "
        f"last {LAST} epochs. Criterion: {CRITERION} (target {plan.effect:g} points of "
        f"{_metric_name(plan.metric)}, level {plan.level:.3g}, {plan.cpu:g} CPU per trial).",
        "",
        budget_table(plan).to_markdown(index=False, disable_numparse=True),
        "",
        variant_table(plan).to_markdown(index=False, disable_numparse=True),
        "",
        *[f"- {line}" for line in summary_lines(plan)],
    ]
    if cost is not None:
        parts += [
            "",
            f"## Cost of {cost.name}",
            "",
            *[f"- {line}" for line in cost_lines(cost, plan.overhead)],
            "",
            cost_table(cost).to_markdown(index=False, disable_numparse=True),
        ]
    return "\n".join(parts) + "\n"


def cost_frame(cost: SpaceCost) -> pd.DataFrame:
    return pd.DataFrame(cost.rows)
