"""Seeds until decided: which comparisons a seed budget runs, and where each stands.

A space with ``budget.seeds`` compares every attention variant with its baseline (``attention:
none`` with the same settings, as the report's Δ column does) and, if the budget names a
``reference`` variant, with that reference in the same settings. Values are paired by seed. A
comparison's state is the first look, over its paired seeds in order, at which
:func:`ablation.design.sequential.look` decides it; the sweep (``ablation.run.seed_search``) and the report
both read it from here, so they cannot disagree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

from .columns import is_attention_factor
from .sequential import Decision, Plan, look

if TYPE_CHECKING:
    import pandas as pd

#: What a comparison compares: the reported test top-1, or validation top-1 where no test split
#: was held out (``val_split: 0``).
METRICS: tuple[str, ...] = ("test_top1", "top1")

Cell = dict[str, Any]


class MissingBaseline(ValueError):
    """A variant whose baseline (or a reference that no variant matches) is not in the grid."""


@dataclass(frozen=True)
class Comparison:
    """``variant`` against ``other`` (cell keys); ``kind`` is ``baseline`` or ``reference``."""

    variant: str
    other: str
    kind: str


@dataclass(frozen=True)
class State:
    """Where a comparison stands: its decision, and why it will get no more seeds if it stopped
    early (a trial of either side failed, or a scheduler such as ASHA stopped it)."""

    comparison: Comparison
    decision: Decision
    stopped: str = ""

    @property
    def open(self) -> bool:
        return self.decision.decision == "open" and not self.stopped


def cell_key(point: Mapping[str, Any]) -> str:
    """A variant's identity: its config without the seed."""
    return json.dumps({k: v for k, v in point.items() if k != "seed"}, sort_keys=True, default=str)


def setting(point: Mapping[str, Any]) -> dict[str, Any]:
    """What a variant shares with its baseline: every config key but the attention's and the seed."""
    return {k: v for k, v in point.items() if k != "seed" and not is_attention_factor(k)}


def cells(points: Iterable[Mapping[str, Any]]) -> dict[str, Cell]:
    """The distinct variants of ``points``, in order, by key."""
    found: dict[str, Cell] = {}
    for point in points:
        found.setdefault(cell_key(point), {k: v for k, v in point.items() if k != "seed"})
    return found


def comparisons(points: Iterable[Mapping[str, Any]], reference: Optional[Mapping[str, Any]] = None) -> list[Comparison]:
    """Every attention variant against its baseline, and against ``reference`` where one matches
    in the same setting; raises :class:`MissingBaseline` naming what is missing."""
    by_key = cells(points)
    plain = {
        json.dumps(setting(c), sort_keys=True, default=str): k
        for k, c in by_key.items()
        if c.get("attention") == "none"
    }
    refs = {}
    if reference:
        refs = {
            json.dumps(setting(c), sort_keys=True, default=str): k
            for k, c in by_key.items()
            if all(_same(c.get(name), value) for name, value in reference.items())
        }
        if not refs:
            raise MissingBaseline(f"no variant in the grid matches reference {dict(reference)}")
    found = []
    for key, cell in by_key.items():
        if cell.get("attention") == "none":
            continue
        where = json.dumps(setting(cell), sort_keys=True, default=str)
        if where not in plain:
            shown = {
                k: v
                for k, v in setting(cell).items()
                if k == "backbone" or len({repr(c.get(k)) for c in by_key.values()}) > 1
            }
            raise MissingBaseline(
                f"variant {_describe(cell)} has no baseline in the grid (attention: none with "
                f"the same settings, {shown}); add it to the grid"
            )
        found.append(Comparison(key, plain[where], "baseline"))
        if where in refs and refs[where] != key:
            found.append(Comparison(key, refs[where], "reference"))
    return found


def _same(value: Any, wanted: Any) -> bool:
    """A config value equals a reference's, also as ``results.csv`` reads it back (``3`` as
    ``"3"`` or ``3.0``; a per-stage list ``[3, 5, 5, 7]`` as ``"3,5,5,7"``)."""
    from .columns import cell_text

    def text(v: Any) -> str:
        return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else cell_text(v)

    return value == wanted or text(value) == text(wanted)


def _describe(cell: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in cell.items() if is_attention_factor(k) and v is not None)


def value_of(result: Mapping[str, Any]) -> Optional[float]:
    """The compared metric of a trial's final result (None where it has none)."""
    for name in METRICS:
        value = result.get(name)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            return float(value)
    return None


def for_study(plan: Plan, comps: list[Comparison]) -> Plan:
    """``plan`` with its family sized to the study's comparisons (alpha split over them when
    ``plan.family`` is ``study``)."""
    return replace(plan, comparisons=max(len(comps), 1))


def state_of(comparison: Comparison, values: Mapping[tuple[str, int], Optional[float]], plan: Plan) -> State:
    """The comparison after the seeds with a value on both sides (``values[(cell key, seed)]``;
    None marks a trial that failed or was stopped early: the comparison stops there)."""
    differences: list[float] = []
    state = Decision("open", 0, math.nan, -math.inf, math.inf)
    for seed in range(plan.max_seeds):
        pair = (comparison.variant, seed), (comparison.other, seed)
        if not all(p in values for p in pair):
            break
        va, vb = (values[p] for p in pair)
        if va is None or vb is None:
            return State(comparison, state, f"seed {seed}: a trial failed or was stopped early")
        differences.append(va - vb)
        state = look(differences, plan)
        if state.decision != "open":
            break
    return State(comparison, state)


def seeds_wanted(
    comps: list[Comparison], keys: Iterable[str], values: Mapping[tuple[str, int], Optional[float]], plan: Plan
) -> dict[str, int]:
    """How many seeds each variant needs now: ``min``, and one past the paired seeds of every
    comparison of it that is still open (up to ``max``)."""
    wanted = {key: plan.min_seeds for key in keys}
    for comp in comps:
        state = state_of(comp, values, plan)
        if state.open and state.decision.n >= plan.min_seeds:
            n = min(state.decision.n + 1, plan.max_seeds)
            for key in (comp.variant, comp.other):
                wanted[key] = max(wanted[key], n)
    return wanted


def decisions(
    results: "pd.DataFrame", plan: Plan, reference: Optional[Mapping[str, Any]] = None, epochs: Optional[int] = None
) -> tuple["pd.DataFrame", dict[str, float]]:
    """Every comparison of a seed-budget sweep from its ``results.csv`` table: variant and other
    (the results' variant ids), kind, decision, paired seeds, mean difference and interval, seeds
    each side ran (``plan`` sized to the study's comparisons by :func:`for_study`); and the compute spent against ``max`` seeds for every variant (trials, and
    trial-epochs where ``epochs`` is given)."""
    import pandas as pd

    from .columns import config_columns

    columns = [c for c in config_columns(results) if c != "seed"]
    points, values, ids = [], {}, {}
    for _, row in results.iterrows():
        point = {c: (None if _missing(row[c]) else row[c]) for c in columns}
        key, seed = cell_key(point), int(row["seed"])
        points.append(point)
        ids[key] = row["variant"]
        if row["status"] == "completed":
            values[(key, seed)] = value_of(row.to_dict())
        elif row["status"] in ("stopped", "failed"):
            values[(key, seed)] = None
    comps = comparisons(points, reference) if points else []
    plan = for_study(plan, comps)
    ran = results.groupby("variant").size()
    rows = []
    for comp in comps:
        state = state_of(comp, values, plan)
        d = state.decision
        rows.append(
            {
                "variant": ids[comp.variant],
                "other": ids[comp.other],
                "kind": comp.kind,
                "decision": f"stopped ({state.stopped})" if state.stopped else d.decision,
                "n": d.n,
                "mean": d.mean,
                "low": d.low,
                "high": d.high,
                "sd": d.sd,
                "level": plan.alpha_at(d.n) if d.n >= plan.min_seeds else math.nan,
                "share": plan.share,
                "seeds_variant": int(ran.get(ids[comp.variant], 0)),
                "seeds_other": int(ran.get(ids[comp.other], 0)),
            }
        )
    n_cells = len(cells(points))
    spent = {"trials": float(len(results)), "trials_max": float(n_cells * plan.max_seeds)}
    if epochs:
        spent |= {
            "epochs": float(results["epochs_done"].fillna(0).sum()),
            "epochs_max": float(n_cells * plan.max_seeds * epochs),
        }
    return pd.DataFrame(rows), spent


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
