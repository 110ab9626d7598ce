"""What a report says was decided, and what it could not see: the Δ table with its family, the
seed budget's minimum detectable effects, and the summary's lines (decided comparisons, the
rest with the difference they would have detected, and "best" only where it is decided).

Plain data (DataFrames and sentences) for ``ablation.analysis.report`` to lay out.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

from .detectable import METHOD as MDE_METHOD, mde
from .familywise import holm
from .tables import short_label


def delta_frame(deltas: pd.DataFrame) -> pd.DataFrame:
    """The fixed-seed Δ table: difference, interval at its tested level, p, Holm p, decision, MDE."""
    d = deltas
    return pd.DataFrame(
        {
            "variant": d["label"],
            "baseline": d["baseline"],
            "Δ top-1": d["delta_top1"].map("{:+.2f}".format),
            "interval": [
                ("-" if math.isnan(lo) else f"[{lo:+.2f}, {hi:+.2f}]") for lo, hi in zip(d["ci_low"], d["ci_high"])
            ],
            "level": d["level"].map(lambda v: "-" if math.isnan(v) else f"{1 - v:.2%}"),
            "p": d["p_value"].map(_p),
            "Holm p": d["p_holm"].map(_p),
            "test": d["test"],
            "beyond seed noise": d["significant"].map({True: "yes", False: "no", None: "-"}),
            "MDE (80%)": d["mde"].map(lambda v: "-" if math.isnan(v) else f"{v:.2f}"),
        }
    )


def delta_note(family_text: str) -> str:
    """The Δ table's paragraph: pairing, the family, the MDE."""
    return (
        "Seeds are paired where both variants ran the same seeds (paired t-test), else Welch's t-test. "
        + family_text
        + f" MDE (80%): {MDE_METHOD}, at the family's first-step level (alpha / m): a difference "
        "that large or larger would most likely have been seen."
    )


def budget_mde(found: pd.DataFrame) -> list[float]:
    """Each seed-budget comparison's MDE: a fixed t-test of its paired seeds, with their observed
    spread, at its share of the family's alpha (``alpha / m``; the interim looks' stricter
    levels would make it larger still)."""
    return [
        mde(sd / math.sqrt(n), n - 1, share) if n >= 2 else math.nan
        for sd, n, share in zip(found["sd"], found["n"], found["share"])
    ]


def decided_lines(rows: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """Summary lines from comparisons with ``variant, other, decision, mean, low, high, mde``:
    what was decided (better, worse, equivalent), and for the rest the difference they would
    have detected."""
    lines = []
    for kind, word in (("better", "than"), ("worse", "than"), ("equivalent", "to")):
        chosen = rows[rows["decision"] == kind]
        if not chosen.empty:
            lines.append(
                f"decided {kind}: "
                + "; ".join(
                    f"{labels.get(r['variant'], r['variant'])} {word} {labels.get(r['other'], r['other'])} "
                    f"({r['mean']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}])"
                    for _, r in chosen.iterrows()
                )
            )
    rest = rows[~rows["decision"].isin(["better", "worse", "equivalent"])]
    if not rest.empty:
        lines.append(
            "not decided: "
            + "; ".join(
                f"{labels.get(r['variant'], r['variant'])} against {labels.get(r['other'], r['other'])} "
                f"({r['mean']:+.2f}): "
                + (
                    "no test (one seed)"
                    if math.isnan(r["mde"])
                    else f"no difference of {r['mde']:.2f} points or more detected"
                )
                for _, r in rest.iterrows()
            )
        )
    return lines


def fixed_rows(deltas: pd.DataFrame) -> pd.DataFrame:
    """The Δ table as comparisons for :func:`decided_lines`."""
    if deltas.empty:
        return pd.DataFrame(columns=["variant", "other", "decision", "mean", "low", "high", "mde"])
    decision = [
        "better" if s and d > 0 else "worse" if s else "undecided"
        for s, d in zip(deltas["significant"].fillna(False), deltas["delta_top1"])
    ]
    return pd.DataFrame(
        {
            "variant": deltas["label"],
            "other": deltas["baseline"],
            "decision": decision,
            "mean": deltas["delta_top1"],
            "low": deltas["ci_low"],
            "high": deltas["ci_high"],
            "mde": deltas["mde"],
        }
    )


def best_lines(
    variants: pd.DataFrame, results: pd.DataFrame, metric: str, accuracy: str, chosen: str, alpha: float, family: str
) -> list[str]:
    """Per backbone: the best variant by validation top-1 (``chosen`` says how it was chosen),
    named *best* only where its paired
    difference to the runner-up on the reported metric (``metric``, the test split where there
    is one: independent of the selection) is decided, Holm over the backbones at ``alpha``."""
    done = results[results["status"] == "completed"]
    pairs = []
    for backbone, group in variants.sort_values(["val_top1_mean", "flops"], ascending=[False, True]).groupby(
        "backbone", sort=False
    ):
        if len(group) < 2:
            pairs.append((backbone, group.iloc[0], None, math.nan, math.nan, math.nan, math.nan))
            continue
        top, second = group.iloc[0], group.iloc[1]
        a = done[done["variant"] == top["variant"]].set_index("seed")[metric].astype(float)
        b = done[done["variant"] == second["variant"]].set_index("seed")[metric].astype(float)
        shared = a.index.intersection(b.index)
        d = (a[shared] - b[shared]).to_numpy()
        if len(d) < 2:
            pairs.append((backbone, top, second, float(a.mean() - b.mean()), math.nan, math.nan, math.nan))
            continue
        se = d.std(ddof=1) / math.sqrt(len(d))
        p = (1.0 if d.mean() == 0 else 0.0) if se == 0 else float(2 * stats.t.sf(abs(d.mean() / se), len(d) - 1))
        pairs.append((backbone, top, second, float(d.mean()), se, len(d) - 1, p))
    found = holm([p for *_, p in pairs], alpha, family)
    lines = []
    for (backbone, top, second, diff, se, df, p), decided, level in zip(pairs, found.decided, found.levels):
        name = short_label(top["label"], backbone)
        figures = f"{top['top1_mean']:.2f}% (n={int(top['n'])})"
        if second is None:
            lines.append(f"only variant on {backbone}: {name}, {figures}")
            continue
        runner = short_label(second["label"], backbone)
        if math.isnan(p):
            lines.append(
                f"no best on {backbone} ({chosen}): {name} leads {runner}, with too few paired seeds to "
                f"test the difference ({diff:+.2f} on {accuracy})"
            )
        elif decided and diff > 0:
            half = stats.t.isf(level / 2, df) * se
            lines.append(
                f"best on {backbone} ({chosen}): {name}, {figures}, ahead of the runner-up {runner} by "
                f"{diff:+.2f} [{diff - half:+.2f}, {diff + half:+.2f}] on {accuracy}, decided"
            )
        else:
            detectable = mde(se, df, found.detection_level)
            against = " (against the selection's order)" if decided else ""
            lines.append(
                f"no best on {backbone} ({chosen}): {name}, {figures}, leads {runner}, but on {accuracy} "
                f"the difference, {diff:+.2f}{against}, is not decided in its favour"
                + ("" if math.isnan(detectable) else f" (no difference of {detectable:.2f} points or more detected)")
            )
    if found.size:
        control = f"Holm over the {found.size} backbones" if family == "study" and found.size > 1 else ""
        lines.append(
            f"'best' needs its paired difference to the runner-up on {accuracy} decided (t-test, "
            + (control + ", familywise " if control else "")
            + f"alpha {alpha:g})"
        )
    return lines


def _p(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"
