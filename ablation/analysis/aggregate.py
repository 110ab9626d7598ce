"""Seeds -> variants: mean, standard deviation, 95% confidence interval and n of each metric.

Only completed trials count; a variant is every config key but the seed (``variant`` column of
``results.csv``). Costs do not depend on the seed, so they are taken once per variant.

Two accuracies per variant: ``top1_*`` is the *reported* one (the test split, see
:func:`reported_metric`) and ``val_top1_*`` the *selection* one (the validation split, on which
ranks and "best" are decided). Collapsed trials (``ablation.run.collapse``) stay in every mean; each
variant carries ``n_collapsed``, the median and the per-seed values so a reader sees them.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..design.columns import ATTENTION_FACTORS, cell_text, config_columns, is_attention_factor


#: Metrics aggregated over seeds (mean, std, CI, n), by their name in the variants table.
SEED_METRICS: tuple[str, ...] = ("top1", "top5", "loss", "val_top1", "val_top5", "val_loss")
#: Per-variant cost figures (the median over seeds: latency is measured per trial).
COST_METRICS: tuple[str, ...] = ("params", "flops", "flops_convfc", "attention_params", "attention_flops", "latency_ms")


#: Short names used in variant labels.
SHORT = {
    "kernel_size": "k",
    "branches": "b",
    "position": "pos",
    "stages": "stages",
    "pool": "pool",
    "fuse": "fuse",
    "norm": "norm",
    "gate": "gate",
    "reduction": "r",
    "width_mult": "w",
    "backbone": "",
    "attention": "",
}
CONFIDENCE = 0.95


def ci95(values: Sequence[float]) -> tuple[float, float]:
    """Half-open interval of the mean by Student's t (NaN for fewer than two values)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    half = stats.t.ppf((1 + CONFIDENCE) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def reported_metric(results: pd.DataFrame) -> str:
    """The results column a report's accuracy shows: ``test_top1`` (the test split, evaluated when
    a trial ends), or ``top1`` for runs made before the test split was recorded apart."""
    return "test_top1" if "test_top1" in results and results["test_top1"].notna().any() else "top1"


def sources(results: pd.DataFrame) -> dict[str, str]:
    """Results column of each of :data:`SEED_METRICS` for this table."""
    test = reported_metric(results) == "test_top1"
    reported = (
        {"top1": "test_top1", "top5": "test_top5", "loss": "test_loss"}
        if test
        else {"top1": "top1", "top5": "top5", "loss": "val_loss"}
    )
    return {**reported, "val_top1": "top1", "val_top5": "top5", "val_loss": "val_loss"}


def collapsed_mask(results: pd.DataFrame) -> pd.Series:
    """Boolean ``collapsed`` column (False where absent or not recorded)."""
    if "collapsed" not in results:
        return pd.Series(False, index=results.index)
    return results["collapsed"].astype(str).str.lower().isin(("true", "1", "1.0"))


def factors(results: pd.DataFrame) -> list[str]:
    """Config columns (seed excluded) that take more than one value among completed trials. An
    attention option varies only where one module ran with two values of it: SCA's options do not
    vary just because ``none`` has none, and SCA's kernel 3 beside CBAM's 7 is each module's own
    setting, not a factor of the study (it would only repeat ``attention``)."""
    done = results[results["status"] == "completed"]
    return [c for c in config_columns(results) if c != "seed" and _varies(done, c)]


def _varies(done: pd.DataFrame, column: str) -> bool:
    if not _is_option(column):
        return bool(done[column].nunique(dropna=False) > 1)
    if "attention" not in done:
        return bool(done[column].nunique() > 1)
    return bool((done.groupby("attention", dropna=False)[column].nunique() > 1).any())


def _is_option(column: str) -> bool:
    return is_attention_factor(column) and column not in ("attention", "position", "stages")


def label_factors(varying: Sequence[str]) -> list[str]:
    """The factors a variant's label shows, in order: backbone and attention always, then width
    and the attention options where they vary, then every other varying factor."""
    shown = [
        c for c in ("backbone", "width_mult", *ATTENTION_FACTORS) if c in varying or c in ("backbone", "attention")
    ]
    return shown + [c for c in varying if c not in shown]


def label(row: pd.Series, shown: Sequence[str]) -> str:
    """A short human name for a variant from the factors in ``shown``, e.g. ``resnet20 sca k=5``."""
    parts = []
    for key in shown:
        value = cell_text(row.get(key))
        if key == "width_mult" and not str(row.get("backbone", "")).startswith("mobilenet"):
            continue  # ResNets have no width multiplier
        if value != "-":
            prefix = SHORT.get(key, key)
            parts.append(f"{prefix}={value}" if prefix else value)
    return " ".join(parts) or "baseline"


def aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """One row per variant with completed trials: factor values, ``n``, ``<metric>_mean/_std/
    _ci_low/_ci_high`` for :data:`SEED_METRICS`, the cost figures, ``seeds`` and a ``label``."""
    done = results[results["status"] == "completed"].assign(collapsed=collapsed_mask(results))
    varying = factors(results)
    config_cols = [c for c in config_columns(results) if c != "seed"]
    columns = sources(results)
    rows = []
    for variant, group in done.groupby("variant", sort=False):
        first = group.iloc[0]
        group = group.sort_values("seed")
        reported = group[columns["top1"]].astype(float)
        row = {
            "variant": variant,
            **{c: first[c] for c in config_cols},
            "n": len(group),
            "seeds": ",".join(str(s) for s in group["seed"].tolist()),
            "n_collapsed": int(group["collapsed"].sum()),
            "top1_median": float(reported.median()) if reported.notna().any() else math.nan,
            "top1_per_seed": " / ".join(
                "-" if pd.isna(v) else f"{v:.2f}" + ("†" if c else "") for v, c in zip(reported, group["collapsed"])
            ),
        }
        for metric in SEED_METRICS:
            values = (
                group[columns[metric]].astype(float).dropna() if columns[metric] in group else pd.Series(dtype=float)
            )
            row[f"{metric}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = ci95(values)
        for metric in COST_METRICS:
            values = group[metric].astype(float).dropna() if metric in group else pd.Series(dtype=float)
            row[metric] = float(values.median()) if len(values) else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    shown = label_factors(varying)
    table["label"] = [label(r, shown) for _, r in table.iterrows()]
    return table.sort_values(["backbone", "label"], kind="stable").reset_index(drop=True)
