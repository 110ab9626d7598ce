"""What changing a setting did: a run against an earlier run of the same variants and seeds.

A follow-up often repeats some variants and seeds of a finished study with one setting changed
(more epochs, more images) to ask whether its figures, and its order, would hold. ``ablate report
RUN --against EARLIER`` keeps the earlier run's data in ``RUN/against/`` (so the report
regenerates from disk) and this module compares the two.

A *changed setting* is one that each run kept at a single value and the two runs set differently
(a config column of ``results.csv``, the recorded ``train_images`` and ``train_setup``, or a key of
the space's ``base``). A *pair* is a variant (the config without its seed and the changed settings)
and seed completed in both runs: the same initial weights and training images where the data
settings did not change. Two kinds of comparison, each a paired t-test over the seeds:

- *change*: the variant's accuracy here minus there, per variant and pooled over all variants;
- *order*: the variant's difference to no attention here minus there on the same seeds (did the
  change of setting move it against the baseline?), per variant that has a baseline pair.

All of them form one family: Holm at the study's ``statistics`` (familywise ``alpha``), each
interval at the level it was tested at, and the smallest difference each would most likely have
detected (:mod:`ablation.analysis.detectable`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from ..design.columns import cell_text, config_columns, is_attention_factor
from ..run.epochs import EPOCHS_FILE, read_epochs
from ..run.results import RESULTS_FILE, SWEEP_FILE, read_results
from .aggregate import collapsed_mask, factors, label, label_factors, reported_metric
from .convergence import last_gains, is_flat
from .familywise import paired_tests

AGAINST_DIR = "against"
#: The earlier run's data, kept inside the run directory (and copied into the report folder).
AGAINST_FILES = tuple(f"{AGAINST_DIR}/{f}" for f in (RESULTS_FILE, EPOCHS_FILE, SWEEP_FILE))
CHANGE_FILE = "setting_change.csv"
#: Recorded facts that are settings too: how many images a trial trained on, and on what setup.
RECORDED = ("train_images", "train_setup")
POOLED = "all variants (pooled)"


@dataclass(frozen=True)
class SettingChange:
    """The comparison of a run with an earlier one: ``changed`` (setting -> (earlier, now)),
    ``pairs`` (one row per variant and seed in both), ``tests`` (one row per comparison)."""

    earlier: str
    metric: str
    alpha: float
    family: str
    changed: dict[str, tuple[str, str]]
    pairs: pd.DataFrame
    tests: pd.DataFrame

    @property
    def accuracy(self) -> str:
        return "test top-1" if self.metric == "test_top1" else "val top-1"

    def changed_text(self) -> str:
        """The changed settings in words, e.g. ``epochs 20 → 30``."""
        if not self.changed:
            return "no setting changed (a replication)"
        return ", ".join(f"{k} {a} → {b}" for k, (a, b) in self.changed.items())

    def sentence(self) -> str:
        """What the comparison decided, and what it could not have seen."""
        parts = []
        for _, r in self.tests.iterrows():
            what = "changed" if r["kind"] == "change" else "moved against no attention"
            verdict = what if r["decided"] else f"not decided, MDE {_num(r['mde'])}"
            parts.append(f"{r['cell']} {r['kind']} {r['mean']:+.2f} ({verdict})")
        control = f"Holm, familywise alpha {self.alpha:g}" if self.family == "study" else f"each at {self.alpha:g}"
        return f"Over {len(self.tests)} comparisons ({control}): " + "; ".join(parts) + "."


def keep_against(run_dir: str | Path, earlier: str | Path) -> Path:
    """Copy the earlier run's data files (a run directory or a report folder) into
    ``run_dir/against/``, so that the run's report regenerates from disk; returns that folder."""
    from ..errors import DataError
    from ..run.results import atomic_write_bytes

    earlier = Path(earlier)
    if not (earlier / RESULTS_FILE).is_file():
        raise DataError(f"{earlier / RESULTS_FILE}: not found; --against takes a run directory or a report folder")
    target = Path(run_dir) / AGAINST_DIR
    if earlier.resolve() == target.resolve():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for file in (RESULTS_FILE, EPOCHS_FILE, SWEEP_FILE):
        if (earlier / file).is_file():
            atomic_write_bytes(target / file, (earlier / file).read_bytes())
    return target


def setting_change(
    run_dir: str | Path, results: pd.DataFrame, alpha: float = 0.05, family: str = "study"
) -> Optional[SettingChange]:
    """The comparison of ``results`` (the run in ``run_dir``) with the earlier run kept in
    ``run_dir/against/``; None where there is none or no variant and seed completed in both."""
    folder = Path(run_dir) / AGAINST_DIR
    if not (folder / RESULTS_FILE).is_file():
        return None
    before, info_before = read_results(folder), _space(folder)
    info_now = _space(Path(run_dir))
    metric = reported_metric(results)
    changed = changed_settings(before, results, info_before, info_now)
    pairs = paired_trials(before, results, changed, metric, read_epochs(folder), read_epochs(run_dir))
    if pairs.empty:
        return None
    tests = _tests(pairs, alpha, family)
    name = str(json.loads((folder / SWEEP_FILE).read_text()).get("name", "")) if (folder / SWEEP_FILE).is_file() else ""
    return SettingChange(name or "the earlier run", metric, alpha, family, changed, pairs, tests)


def changed_settings(
    before: pd.DataFrame, now: pd.DataFrame, space_before: dict, space_now: dict
) -> dict[str, tuple[str, str]]:
    """Settings each run kept at one value and the two set differently, in column order."""
    changed: dict[str, tuple[str, str]] = {}
    done_before, done_now = _done(before), _done(now)
    columns = [c for c in config_columns(now) if c != "seed" and c in before] + [
        c for c in RECORDED if c in before and c in now
    ]
    for column in columns:
        values = _values(done_before, column), _values(done_now, column)
        if len(values[0]) == 1 and len(values[1]) == 1 and values[0] != values[1]:
            changed[column] = (values[0].pop(), values[1].pop())
    base_before, base_now = space_before.get("base", {}), space_now.get("base", {})
    for key in sorted(set(base_before) | set(base_now)):
        if key in changed or key in columns:
            continue
        a, b = cell_text(base_before.get(key)), cell_text(base_now.get(key))
        if a != b:
            changed[key] = (a, b)
    return changed


def paired_trials(
    before: pd.DataFrame,
    now: pd.DataFrame,
    changed: dict[str, tuple[str, str]],
    metric: str,
    epochs_before: pd.DataFrame,
    epochs_now: pd.DataFrame,
) -> pd.DataFrame:
    """One row per variant and seed completed in both runs: ``cell``, ``seed``, ``earlier``,
    ``now``, ``change``, ``baseline`` (whether it is a no-attention cell), ``setting`` (the config
    without the attention variant: a variant's baseline is the no-attention cell of its setting),
    ``collapsed`` and whether
    each run's curve was flat at the end (``flat_earlier``, ``flat_now``; None where not judged)."""
    done_before, done_now = _done(before), _done(now)
    keys = [c for c in config_columns(now) if c != "seed" and c in before and c not in changed]
    shown = [c for c in label_factors([c for c in factors(now) if c in keys])]
    earlier = {(_cell(r, keys), int(r["seed"])): r for _, r in done_before.iterrows()}
    gains_before = last_gains(epochs_before, done_before["trial_id"])
    gains_now = last_gains(epochs_now, done_now["trial_id"])
    collapsed_before = dict(zip(done_before["trial_id"], collapsed_mask(done_before)))
    collapsed_now = dict(zip(done_now["trial_id"], collapsed_mask(done_now)))
    rows = []
    for _, row in done_now.iterrows():
        base = earlier.get((_cell(row, keys), int(row["seed"])))
        if base is None:
            continue
        rows.append(
            {
                "cell": label(row, shown),
                "baseline": cell_text(row.get("attention")) in ("none", "-"),
                "setting": " ".join(cell_text(row.get(k)) for k in keys if not is_attention_factor(k)),
                "seed": int(row["seed"]),
                "earlier": float(base[metric]),
                "now": float(row[metric]),
                "change": float(row[metric]) - float(base[metric]),
                "collapsed": bool(collapsed_before[base["trial_id"]] or collapsed_now[row["trial_id"]]),
                "flat_earlier": is_flat(gains_before.get(base["trial_id"], math.nan)),
                "flat_now": is_flat(gains_now.get(row["trial_id"], math.nan)),
            }
        )
    return pd.DataFrame(rows)


def _tests(pairs: pd.DataFrame, alpha: float, family: str) -> pd.DataFrame:
    """Change per cell and pooled, order per non-baseline cell: paired t-tests, Holm over all.
    ``earlier`` and ``now`` are the means compared: accuracy, or for an order test the variant's
    difference to no attention."""
    groups: list[tuple[str, str, pd.DataFrame]] = []  # kind, cell, per seed: earlier, now
    for cell, group in pairs.groupby("cell", sort=False):
        groups.append(("change", str(cell), group[["earlier", "now"]]))
    if pairs["cell"].nunique() > 1:
        groups.append(("change", POOLED, pairs[["earlier", "now"]]))
    for _, of_setting in pairs.groupby("setting", sort=False):  # the baseline of the same setting
        base = of_setting[of_setting["baseline"]].set_index("seed")[["earlier", "now"]]
        for cell, group in of_setting[~of_setting["baseline"]].groupby("cell", sort=False):
            seeds = group.set_index("seed")[["earlier", "now"]]
            common = seeds.index.intersection(base.index)
            if len(common):  # the variant's difference to no attention, in each run
                groups.append(("order", str(cell), seeds.loc[common] - base.loc[common]))
    samples = [
        (
            {"kind": kind, "cell": cell, "earlier": values["earlier"].mean(), "now": values["now"].mean()},
            values["now"] - values["earlier"],
        )
        for kind, cell, values in groups
    ]
    return paired_tests(samples, alpha, family)


def change_table(change: SettingChange) -> pd.DataFrame:
    """One row per comparison: the means compared (accuracy, or Δ vs none), the mean paired
    difference with its interval at its Holm level, p, decision and detectable effect; for a
    change also the flat seeds in each run and, per variant, every seed's pair."""
    pairs, rows = change.pairs, []
    for _, r in change.tests.iterrows():
        mine = pairs if r["cell"] == POOLED else pairs[pairs["cell"] == r["cell"]]
        per_seed = ""
        if r["kind"] == "change" and r["cell"] != POOLED:
            per_seed = ", ".join(
                f"s{s['seed']} {s['earlier']:.2f} → {s['now']:.2f}" + ("†" if s["collapsed"] else "")
                for _, s in mine.sort_values("seed").iterrows()
            )
        rows.append(
            {
                "comparison": "change" if r["kind"] == "change" else "Δ vs none, change",
                "variant": r["cell"],
                "pairs": int(r["pairs"]),
                "earlier": f"{r['earlier']:.2f}" if r["kind"] == "change" else f"{r['earlier']:+.2f}",
                "now": f"{r['now']:.2f}" if r["kind"] == "change" else f"{r['now']:+.2f}",
                "Δ": f"{r['mean']:+.2f}",
                "interval": "-" if math.isnan(r["low"]) else f"[{r['low']:+.2f}, {r['high']:+.2f}]",
                "level": "-" if math.isnan(r["level"]) else f"{100 * (1 - r['level']):.2f}%",
                "p": _num(r["p"], ".3f"),
                "decided": "yes" if r["decided"] else "no",
                "MDE (80%)": _num(r["mde"]),
                "flat earlier": _flat_count(mine["flat_earlier"]) if r["kind"] == "change" else "",
                "flat now": _flat_count(mine["flat_now"]) if r["kind"] == "change" else "",
                "per seed (earlier → now)": per_seed,
            }
        )
    return pd.DataFrame(rows)


def _flat_count(flags: pd.Series) -> str:
    judged = [f for f in flags if f is not None]
    return f"{sum(judged)}/{len(judged)}" if judged else "-"


def _done(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["status"] == "completed"]


def _values(done: pd.DataFrame, column: str) -> set[str]:
    return {cell_text(v) for v in done[column]} if column in done else set()


def _cell(row: pd.Series, keys: list[str]) -> tuple[str, ...]:
    return tuple(cell_text(row.get(k)) for k in keys)


def _space(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SWEEP_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("space") or {})
    except json.JSONDecodeError:
        return {}


def _num(value: float, fmt: str = ".2f") -> str:
    return "-" if value is None or math.isnan(value) else format(value, fmt)
