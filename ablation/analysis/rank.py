"""Accuracy against cost: a multi-objective Optuna study of the aggregated variants.

Each variant becomes one finished Optuna trial (``create_trial`` + ``add_trials``) whose params
are the factors and whose values are the objectives: maximise validation top-1 (mean over
seeds; ranks are decided on the selection split, not on the test split a report shows), minimise
FLOPs, params and, when every variant has it, latency. The study is stored (SQLite by default)
so that ``optuna-dashboard`` opens it as is. On top of the study: the Pareto front, a
non-dominated rank per variant, the front's hypervolume, factor importance, and every variant's
difference to the same setting without attention, decided against seed noise with familywise error
control (Holm) and its minimum detectable effect.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional

import numpy as np
import optuna
import pandas as pd
from scipy import stats

from .aggregate import cell_text, config_columns, is_attention_factor, reported_metric
from .detectable import mde
from .familywise import Family, holm

#: An objective: its column, Optuna's direction, its name.
Objective = tuple[str, Literal["minimize", "maximize"], str]

#: (column, direction, name) of every objective; latency only when measured for all variants.
OBJECTIVES: tuple[Objective, ...] = (
    ("val_top1_mean", "maximize", "val top-1 %"),
    ("flops", "minimize", "FLOPs"),
    ("params", "minimize", "params"),
    ("latency_ms", "minimize", "latency ms"),
)
#: Reference point of the hypervolume, in objectives min-max normalised to [0, 1] and all minimised.
HV_REFERENCE = 1.1


@dataclass
class Ranking:
    """Everything :func:`rank` finds; ``variants`` is the aggregated table with ``pareto`` and
    ``nd_rank`` columns added."""

    variants: pd.DataFrame
    objectives: list[str]
    hypervolume: float
    importance: dict[str, dict[str, float]] = field(default_factory=dict)
    evaluator: str = ""
    deltas: pd.DataFrame = field(default_factory=pd.DataFrame)
    storage: str = ""
    study_name: str = ""
    family: Optional[Family] = None


def _objective(index: int) -> Callable[[optuna.trial.FrozenTrial], float]:
    """A trial's ``index``-th objective value (Optuna's importance ``target``)."""
    return lambda t: t.values[index]


def objectives_of(variants: pd.DataFrame) -> list[Objective]:
    """The objectives this table supports (latency dropped where any variant lacks it)."""
    return [o for o in OBJECTIVES if o[0] in variants and variants[o[0]].notna().all()]


def _loss_matrix(variants: pd.DataFrame, objectives: list[Objective]) -> np.ndarray:
    """Objective values as an (n, m) array, every column to be minimised."""
    cols = [variants[c].to_numpy(float) * (-1 if d == "maximize" else 1) for c, d, _ in objectives]
    return np.stack(cols, axis=1)


def non_dominated_ranks(losses: np.ndarray) -> np.ndarray:
    """Rank 0 for the Pareto front, 1 for the front of the rest, and so on (all minimised)."""
    ranks = np.full(len(losses), -1)
    remaining = np.arange(len(losses))
    level = 0
    while len(remaining):
        sub = losses[remaining]
        dominated = np.array([np.any(np.all(sub <= p, axis=1) & np.any(sub < p, axis=1)) for p in sub])
        ranks[remaining[~dominated]] = level
        remaining = remaining[dominated]
        level += 1
    return ranks


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume dominated by ``points`` (minimised) up to ``reference``, by slicing
    along the first objective; fine for the tens of variants an ablation has."""
    points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(reference[0] - points[:, 0].min())
    order = np.argsort(points[:, 0])
    points = points[order]
    volume = 0.0
    for i, p in enumerate(points):
        upper = points[i + 1, 0] if i + 1 < len(points) else reference[0]
        if upper > p[0]:
            volume += (upper - p[0]) * hypervolume(points[: i + 1, 1:], reference[1:])
    return volume


def normalised_hypervolume(losses: np.ndarray, front: np.ndarray) -> float:
    """Hypervolume of the front with objectives min-max normalised over all variants."""
    low, high = losses.min(axis=0), losses.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (losses[front] - low) / span
    return hypervolume(scaled, np.full(losses.shape[1], HV_REFERENCE))


def _factors(variants: pd.DataFrame, factors: list[str]) -> list[str]:
    return [f for f in factors if f in variants and variants[f].astype(str).nunique() > 1]


def build_study(
    variants: pd.DataFrame, factors: list[str], objectives: list[Objective], storage: Optional[str], study_name: str
) -> optuna.Study:
    """A fresh study (an older one of the same name is replaced) holding one trial per variant."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is not None:
        try:
            optuna.delete_study(study_name=study_name, storage=storage)
        except KeyError:
            pass
    study = optuna.create_study(storage=storage, study_name=study_name, directions=[d for _, d, _ in objectives])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([n for _, _, n in objectives])
    choices = {f: sorted({cell_text(v) for v in variants[f]}) for f in factors}
    trials = []
    for _, row in variants.iterrows():
        trials.append(
            optuna.trial.create_trial(
                params={f: cell_text(row[f]) for f in factors},
                distributions={f: optuna.distributions.CategoricalDistribution(choices[f]) for f in factors},
                values=[float(row[c]) for c, _, _ in objectives],
                user_attrs={"variant": row["variant"], "label": row["label"], "n_seeds": int(row["n"])},
            )
        )
    study.add_trials(trials)
    return study


def importance(
    study: optuna.Study, factors: list[str], targets: dict[str, int]
) -> tuple[dict[str, dict[str, float]], str]:
    """Importance of each factor for each target objective, and the evaluator's name.

    fANOVA (a variance decomposition, seeded) rather than Optuna's default PED-ANOVA: an
    ablation grid holds tens of variants, and PED-ANOVA's top-10% region is one or two of them.
    """
    if not factors or len(study.trials) < 3:
        return {}, ""
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    varied = {
        target: index
        for target, index in targets.items()  # a constant target has no variance to split
        if len({t.values[index] for t in study.trials}) > 1
    }
    result = {
        target: {
            k: float(v)
            for k, v in optuna.importance.get_param_importances(
                study, evaluator=evaluator, params=factors, target=_objective(index)
            ).items()
        }
        for target, index in varied.items()
    }
    return (result, "fANOVA (optuna.importance.FanovaImportanceEvaluator, seed 0)") if result else ({}, "")


def setting_columns(results: pd.DataFrame) -> list[str]:
    """Config columns that must match between a variant and its no-attention baseline."""
    return [c for c in config_columns(results) if not is_attention_factor(c) and c != "seed"]


def deltas(
    variants: pd.DataFrame, results: pd.DataFrame, alpha: float = 0.05, family: str = "study"
) -> tuple[pd.DataFrame, Family]:
    """Delta of the reported top-1 (:func:`ablation.analysis.aggregate.reported_metric`) of every attention
    variant to its baseline (``attention == none``, same setting), by a paired t-test over the
    seeds both have where there are at least two, else Welch's t-test: mean, p-value, Holm's
    decision over the study's comparisons (``ablation.analysis.familywise``; ``significant``), Holm-adjusted
    p, the interval at the level each was tested at, and the minimum detectable effect at the
    family's first-step level (``ablation.analysis.detectable``); and the family."""
    done = results[results["status"] == "completed"]
    metric = reported_metric(results)
    key = setting_columns(results)
    baselines = variants[variants["attention"] == "none"]
    rows = []
    for _, row in variants[variants["attention"] != "none"].iterrows():
        match = baselines[(baselines[key].map(cell_text) == row[key].map(cell_text)).all(axis=1)]
        if match.empty:
            continue
        base = match.iloc[0]
        a = done[done["variant"] == row["variant"]].set_index("seed")[metric].astype(float)
        b = done[done["variant"] == base["variant"]].set_index("seed")[metric].astype(float)
        rows.append({"variant": row["variant"], "label": row["label"], "baseline": base["label"], **_difference(a, b)})
    table = pd.DataFrame(rows)
    found = holm(table["p_value"] if rows else [], alpha, family)
    if not rows:
        return table, found
    table["p_holm"], table["level"] = found.adjusted, found.levels
    half = [
        stats.t.isf(level / 2, df) * se if not math.isnan(level) else math.nan
        for level, df, se in zip(found.levels, table["df"], table["se"])
    ]
    table["ci_low"], table["ci_high"] = table["delta_top1"] - half, table["delta_top1"] + half
    table["significant"] = [bool(d) if not math.isnan(p) else None for d, p in zip(found.decided, table["p_value"])]
    table["mde"] = [mde(se, df, found.detection_level) for se, df in zip(table["se"], table["df"])]
    return table, found


def _difference(a: pd.Series, b: pd.Series) -> dict[str, Any]:
    """Mean difference a - b with its standard error, degrees of freedom and two-sided p-value;
    paired over shared seeds when possible."""
    shared = a.index.intersection(b.index)
    if len(shared) >= 2:
        d = (a[shared] - b[shared]).to_numpy()
        mean, se, df = d.mean(), d.std(ddof=1) / math.sqrt(len(d)), len(d) - 1
        test = "paired t"
    elif len(a) >= 2 and len(b) >= 2:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        mean, se = a.mean() - b.mean(), math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if va + vb > 0 else len(a) + len(b) - 2
        test = "Welch t"
    else:
        return {
            "delta_top1": float(a.mean() - b.mean()),
            "se": math.nan,
            "df": math.nan,
            "p_value": math.nan,
            "test": "n/a (one seed)",
        }
    p = (1.0 if mean == 0 else 0.0) if se == 0 else float(2 * stats.t.sf(abs(mean / se), df))
    return {"delta_top1": float(mean), "se": float(se), "df": float(df), "p_value": p, "test": test}


def rank(
    variants: pd.DataFrame,
    results: pd.DataFrame,
    factors: list[str],
    *,
    storage: Optional[str] = None,
    study_name: str = "ablation",
    alpha: float = 0.05,
    family: str = "study",
) -> Ranking:
    """Rank the aggregated ``variants`` (see :func:`ablation.analysis.aggregate.aggregate`); the deltas
    to the baselines at familywise ``alpha`` (``family``: see :mod:`ablation.analysis.familywise`)."""
    variants = variants.copy()
    objectives = objectives_of(variants)
    if variants.empty:
        return Ranking(variants.assign(pareto=[], nd_rank=[]), [n for _, _, n in objectives], math.nan)
    factors = _factors(variants, factors)
    study = build_study(variants, factors, objectives, storage, study_name)
    front = {t.number for t in study.best_trials}
    variants["pareto"] = [i in front for i in range(len(variants))]
    losses = _loss_matrix(variants, objectives)
    variants["nd_rank"] = non_dominated_ranks(losses)
    hv = normalised_hypervolume(losses, variants["pareto"].to_numpy())
    targets = {"accuracy (val top-1)": 0, "cost (FLOPs)": 1}
    imp, evaluator = importance(study, factors, targets)
    table, found = deltas(variants, results, alpha, family)
    return Ranking(variants, [n for _, _, n in objectives], hv, imp, evaluator, table, storage or "", study_name, found)
