"""Seeds as a budget (``ablation.design.sequential``) against a fixed seed grid, simulated: error with no
true difference (per comparison and per study), power at true differences of 0.5, 1 and 2 SD,
and compute against every variant at ``max_seeds``, under normal, t(3) and collapse-contaminated
seed noise (``ablation.design.seed_noise``), for every futility threshold given; and the default
threshold chosen by the stated criterion.

Two designs: one comparison (alpha for it alone), and a study shaped like
``fashion_peers_adaptive`` (6 variants against none, 5 of them also against the reference:
11 comparisons, familywise alpha, the default). Paired differences have spread ``--sd`` in their
bulk. Power: the share of comparisons with a true difference decided with its sign; for the
study, the 5 variants are ``Δ`` above none and the reference is at none (so its own comparison
is null and left out). Compute: seeds trained (a shared side as many as its most demanding
comparison) over the trials of every variant at ``max_seeds``.

    python bench/adaptive_seeds.py [--studies 4000] [--out reports/benchmarks]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ablation.design.seed_noise import COLLAPSE_DROP, COLLAPSE_RATE, NOISES, study, truths, wrong
from ablation.design.sequential import FUTILITY, METHOD, Plan
from ablation.design.space import SeedBudget

#: The futility rule is chosen among those that lose at most this much power (one comparison,
#: normal noise, true difference 1 SD) against no futility stop: the one that spends the least
#: compute when there is no difference.
POWER_LOSS = 0.05
EFFECTS = (0.5, 1.0, 2.0)


def measure(plan: Plan, noise: str, sd: float, studies: int, shaped: bool) -> dict[str, float]:
    """Null error (per comparison, per study), power at each effect, compute, for one design."""
    variants = 6 if shaped else 1
    null = study(plan, [0.0] * variants, noise, sd, studies, seed=1, with_reference=shaped)
    bad = wrong(null.decisions, truths([0.0] * variants, shaped), plan.equivalence)
    row = {"error per comparison": float(bad.mean()), "error per study": float(np.any(bad, axis=1).mean())}
    computes = {"compute, no difference": null.trials.mean() / null.grid}
    for k, effect in enumerate(EFFECTS):
        differences = [effect * sd] * (variants - 1) + [0.0] if shaped else [effect * sd]
        found = study(plan, differences, noise, sd, studies, seed=2 + k, with_reference=shaped)
        truth = truths(differences, shaped)
        real = truth != 0
        right = np.where(truth > 0, found.decisions == "better", found.decisions == "worse")
        row[f"power {effect:g} SD"] = float(right[:, real].mean())
        if effect == 1.0:
            row["mean seeds at 1 SD"] = float(found.seeds[:, real].mean())
            row["futile at 1 SD"] = float((found.decisions[:, real] == "futile").mean())
            computes["compute at 1 SD"] = found.trials.mean() / found.grid
    return {**row, **{k: float(v) for k, v in computes.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4000)
    parser.add_argument("--sd", type=float, default=1.5)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--equivalence", type=float, default=0.5)
    parser.add_argument("--min-seeds", type=int, default=2)
    parser.add_argument("--max-seeds", type=int, default=10)
    parser.add_argument(
        "--futility",
        type=float,
        nargs="+",
        default=[0.05, 0.1, 0.2, 0.3],
        help="conditional-power thresholds to compare (besides 0: no futility stop)",
    )
    parser.add_argument(
        "--futility-from",
        type=int,
        nargs="+",
        default=[3, 5, 7],
        help="first looks at which a comparison may stop as futile",
    )
    parser.add_argument("--out", default="reports/benchmarks")
    args = parser.parse_args()
    started = time.time()

    def plan(futility: float, start: int | None = None) -> Plan:
        return Plan(
            args.alpha, args.equivalence, args.min_seeds, args.max_seeds, futility=futility, futility_from=start
        )

    rules = [(0.0, None)] + [(f, s) for s in args.futility_from for f in args.futility]
    choice = pd.DataFrame(
        [
            {
                "futility": f,
                "from seeds": "-" if s is None else s,
                **measure(plan(f, s), "normal", args.sd, args.studies, False),
            }
            for f, s in rules
        ]
    )
    off = choice.loc[0, "power 1 SD"]
    keeps = choice[off - choice["power 1 SD"] <= POWER_LOSS]
    best = keeps.loc[keeps["compute, no difference"].idxmin()]
    chosen = (float(best["futility"]), None if best["from seeds"] == "-" else int(best["from seeds"]))
    default = SeedBudget()
    shipped = (default.futility, plan(default.futility).futility_start)
    rows = []
    for shaped in (False, True):
        for noise in NOISES:
            for f, s in ((0.0, None), shipped):
                rows.append(
                    {
                        "design": "11-comparison study (familywise)" if shaped else "one comparison",
                        "noise": noise,
                        "futility": f"{f:g} from {plan(f, s).futility_start}" if f else "off",
                        **measure(plan(f, s), noise, args.sd, args.studies, shaped),
                    }
                )
    table = pd.DataFrame(rows)
    mc = np.sqrt(args.alpha * (1 - args.alpha) / args.studies)
    lines = [
        "# Seeds as a budget against a fixed grid (simulated)",
        "",
        f"Command: `python bench/adaptive_seeds.py {' '.join(sys.argv[1:])}` ({time.time() - started:.0f} s); "
        f"{args.studies} simulated studies per row and case (seeded).  ",
        f"Method: {METHOD}; {FUTILITY}. Plan: alpha {args.alpha} (one comparison: for it alone; the study: "
        f"familywise over its 11 comparisons, each boundary spending alpha / 11), equivalence ±{args.equivalence} "
        f"points, {args.min_seeds}-{args.max_seeds} seeds. Paired differences: spread {args.sd} points (1 SD) in "
        f"their bulk; noise normal, t(3) scaled to that spread, or contaminated (normal, each seed of each variant "
        f"collapsing {COLLAPSE_DROP:g} points below with chance {COLLAPSE_RATE:g}). Error: a better/worse decision "
        f"with no true difference (or equivalent beyond the margin); per study: at least one in the study (Monte "
        f"Carlo standard error at {args.alpha}: {mc:.4f}). Power: decided with the right sign. Compute: trials "
        f"against every variant at {args.max_seeds} seeds, with no true difference and at 1 SD.",
        "",
        "## Futility rules (one comparison, normal noise)",
        "",
        choice.to_markdown(index=False, floatfmt=".4f"),
        "",
        f"Criterion: among the rules that lose at most {POWER_LOSS * 100:g} points of power at a true 1 SD "
        f"difference against no futility stop ({off:.4f}), the one that spends the least compute with no true "
        f"difference: futility {chosen[0]:g} from {plan(*chosen).futility_start} seeds (power "
        f"{best['power 1 SD']:.4f}, compute with no difference {best['compute, no difference']:.4f}). "
        f"Shipped default (`budget.seeds.futility`, from half of max seeds): {shipped[0]:g} from {shipped[1]}.",
        "",
        "## Error, power and compute, by noise and design (futility off and the shipped default)",
        "",
        table.to_markdown(index=False, floatfmt=".4f"),
        "",
        "Simulated, not measured: real seed noise is what the three models try to bracket.",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "adaptive_seeds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
