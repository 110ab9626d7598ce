"""Parity of training paths: where a study trains the same variants on several paths
(``train.path`` a list, e.g. ``[eager, fast]``), how much each path's accuracy differs from the
reference path's on the same variant and seed.

A *cell* is a config without its path and seed (``resnet20 sca``); a *pair* is one seed of a cell
completed on the reference path and on another. Per cell and path: the mean paired difference
(path minus reference), a paired t-test, and its interval at the level Holm's step-down tested it
at over all cells (familywise ``alpha``), with the smallest difference it would most likely have
detected (80% power, :mod:`ablation.analysis.detectable`) and the reference path's seed sd for
scale. Pooled per backbone over its cells (assuming that a path's effect does not depend on the
module): one mean, test and interval per backbone, Holm over the backbones. The reference is
``eager`` where the study ran it (the fp32 reference), else the first path by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import pandas as pd

from ..design.columns import cell_text, config_columns
from .aggregate import collapsed_mask, factors, label, label_factors, reported_metric
from .familywise import paired_tests

PARITY_FILE = "path_parity.csv"
REFERENCE = "eager"


@dataclass(frozen=True)
class PathParity:
    """The paired differences of a parity study: ``pairs`` (one row per cell, path and seed),
    ``cells`` (one row per cell and path) and ``pooled`` (one row per backbone and path)."""

    reference: str
    metric: str
    alpha: float
    family: str
    pairs: pd.DataFrame
    cells: pd.DataFrame
    pooled: pd.DataFrame

    @property
    def accuracy(self) -> str:
        """The compared accuracy in words: test top-1, or val top-1 for runs without a test split."""
        return "test top-1" if self.metric == "test_top1" else "val top-1"

    def sentence(self) -> str:
        """What the study decided about the paths, and what it could not have seen."""
        parts = []
        for _, row in self.pooled.iterrows():
            verdict = (
                f"{row['path']} differs"
                if row["decided"]
                else f"not decided: no difference of {row['mde']:.2f} points or more detected"
            )
            parts.append(
                f"on {row['backbone']}, {row['path']} minus {self.reference} is {row['mean']:+.2f} "
                f"[{row['low']:+.2f}, {row['high']:+.2f}] points of {self.accuracy} over {int(row['pairs'])} pairs "
                f"({verdict})"
            )
        decided = self.cells[self.cells["decided"]]
        cells = (
            "no single cell differs"
            if decided.empty
            else "cells that differ: "
            + ", ".join(f"{r['cell']} {r['path']} {r['mean']:+.2f}" for _, r in decided.iterrows())
        )
        control = (
            f"Holm, familywise alpha {self.alpha:g}" if self.family == "study" else f"each at alpha {self.alpha:g}"
        )
        text = "; ".join(parts)
        return text[:1].upper() + text[1:] + f". Per cell ({len(self.cells)} comparisons, {control}): {cells}."


def path_parity(results: pd.DataFrame, alpha: float = 0.05, family: str = "study") -> Optional[PathParity]:
    """The parity of the training paths in ``results`` at the study's error control (``alpha``,
    ``family`` as in :func:`ablation.analysis.familywise.holm`); None where no cell completed one
    seed on the reference path and on another (no pair to compare)."""
    done = results[results["status"] == "completed"]
    if "train_path" not in done or done["train_path"].nunique() < 2:
        return None
    paths = sorted(done["train_path"].astype(str).unique())
    reference = REFERENCE if REFERENCE in paths else paths[0]
    metric = reported_metric(results)
    pairs = _pairs(results, done, reference, metric)
    if pairs.empty:
        return None
    cells = _tests(pairs, ["backbone", "cell", "path"], alpha, family)
    cells = cells.merge(_reference_sd(reference, pairs), on=["backbone", "cell"], how="left")
    pooled = _tests(pairs, ["backbone", "path"], alpha, family)
    return PathParity(reference, metric, alpha, family, pairs, cells, pooled)


def _pairs(results: pd.DataFrame, done: pd.DataFrame, reference: str, metric: str) -> pd.DataFrame:
    keys = [c for c in config_columns(results) if c not in ("seed", "train_path")]
    varying = [c for c in factors(results) if c != "train_path"]
    shown = [c for c in label_factors(varying) if c != "backbone"]  # the backbone has its own column
    frame = done.assign(
        _cell=[tuple(cell_text(v) for v in row) for row in done[keys].itertuples(index=False)],
        _collapsed=collapsed_mask(done).to_numpy(),
    )
    on_reference = frame["train_path"].astype(str) == reference
    ref = {(row["_cell"], row["seed"]): row for _, row in frame[on_reference].iterrows()}
    rows = []
    for _, row in frame[~on_reference].iterrows():
        base = ref.get((row["_cell"], row["seed"]))
        if base is None:
            continue
        rows.append(
            {
                "backbone": row["backbone"],
                "cell": label(row, shown),
                "path": str(row["train_path"]),
                "seed": int(row["seed"]),
                reference: float(base[metric]),
                "value": float(row[metric]),
                "difference": float(row[metric]) - float(base[metric]),
                "collapsed": bool(row["_collapsed"] or base["_collapsed"]),
            }
        )
    return pd.DataFrame(rows)


def _tests(pairs: pd.DataFrame, by: list[str], alpha: float, family: str) -> pd.DataFrame:
    """Paired t-test of the differences per group of ``by``, with Holm over the groups (``family``
    ``study``) or each at ``alpha``."""
    samples = [(dict(zip(by, key)), group["difference"]) for key, group in pairs.groupby(by, sort=True)]
    return paired_tests(samples, alpha, family)


def _reference_sd(reference: str, pairs: pd.DataFrame) -> pd.DataFrame:
    """The reference path's seed sd per cell, over the seeds that were paired."""
    ref_values = pairs.drop_duplicates(["backbone", "cell", "seed"])
    return (
        ref_values.groupby(["backbone", "cell"])[reference]
        .agg(lambda v: float(v.std(ddof=1)) if len(v) > 1 else math.nan)
        .rename("reference_sd")
        .reset_index()
    )


def parity_table(parity: PathParity) -> pd.DataFrame:
    """Cells, then each backbone pooled: the mean difference, its interval at its Holm level, the
    detectable effect, and for a cell every seed's pair (``†``: either trial collapsed)."""
    ref, pairs = parity.reference, parity.pairs
    rows = []
    for pooled, table in ((False, parity.cells), (True, parity.pooled)):
        for _, r in table.iterrows():
            mine = pairs[(pairs["backbone"] == r["backbone"]) & (pairs["path"] == r["path"])]
            if not pooled:
                mine = mine[mine["cell"] == r["cell"]]
            rows.append(
                {
                    "backbone": r["backbone"],
                    "cell": "all cells (pooled)" if pooled else r["cell"],
                    "path": r["path"],
                    "pairs": int(r["pairs"]),
                    f"Δ vs {ref}": f"{r['mean']:+.2f}",
                    "interval": "-" if math.isnan(r["low"]) else f"[{r['low']:+.2f}, {r['high']:+.2f}]",
                    "level": "-" if math.isnan(r["level"]) else f"{100 * (1 - r['level']):.2f}%",
                    "p": _num(r["p"], ".3f"),
                    "differs": "yes" if r["decided"] else "no",
                    "MDE (80%)": _num(r["mde"]),
                    f"{ref} seed sd": "" if pooled else _num(r["reference_sd"]),
                    f"per seed ({ref} → {r['path']})": ""
                    if pooled
                    else ", ".join(
                        f"s{s['seed']} {s[ref]:.2f} → {s['value']:.2f}" + ("†" if s["collapsed"] else "")
                        for _, s in mine.sort_values("seed").iterrows()
                    ),
                }
            )
    return pd.DataFrame(rows)


def _num(value: float, fmt: str = ".2f") -> str:
    return "-" if value is None or math.isnan(value) else format(value, fmt)
