"""`ablate plan [SPACE] --pilot DIR`: which budget of a pilot decides the most per CPU-hour, and
what a space will cost before it starts (``ablation.analysis.plan``)."""

from __future__ import annotations

import argparse
import os

HELP = (
    "from a pilot sweep: each budget's trial time, convergence, seed spread and CPU-hours per decision, the "
    "budget to run; with SPACE, the space's trials and wall-clock hours on this machine"
)


def _relative(text: str) -> tuple[str, float]:
    name, eq, value = text.partition("=")
    try:
        ratio = float(value)
    except ValueError:
        ratio = -1.0
    if not eq or not name or not ratio > 0:
        raise argparse.ArgumentTypeError(
            f"--relative-cost takes MODULE=RATIO or BACKBONE:MODULE=RATIO with a ratio "
            f"> 0 (trial time relative to the pilot's baseline), e.g. cbam=1.7; got {text!r}"
        )
    return name, ratio


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", nargs="?", metavar="SPACE", help="a search-space file to cost (optional)")
    parser.add_argument(
        "--pilot",
        required=True,
        metavar="DIR",
        help="the pilot: a sweep's run directory or a report folder (results.csv, epochs.csv)",
    )
    parser.add_argument("--out", metavar="DIR", help="write plan.md and plan.csv (and cost.csv with SPACE) here")
    parser.add_argument("--baseline", default="none", help="the pilot's baseline attention (default: none)")
    parser.add_argument(
        "--effect",
        type=float,
        default=1.0,
        help="target difference in points of test top-1 a decision must detect (default 1)",
    )
    parser.add_argument(
        "--flat",
        type=float,
        default=0.2,
        help="a budget is flat when every baseline seed gained less than this many points of "
        "validation top-1 over its last 3 epochs (default 0.2)",
    )
    parser.add_argument("--alpha", type=float, help="the study's familywise alpha (default: SPACE's, else 0.05)")
    parser.add_argument("--comparisons", type=int, help="comparisons alpha is split over (default: SPACE's, else 1)")
    parser.add_argument("--cores", type=float, help="cores of the machine the space runs on (default: this one's)")
    parser.add_argument(
        "--relative-cost",
        type=_relative,
        action="append",
        default=[],
        metavar="MODULE=RATIO",
        help="trial time of a module the pilot lacks relative to its baseline (repeatable; "
        "BACKBONE:MODULE=RATIO for a backbone the pilot lacks)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ConfigError
    from ..analysis.plan import cost_frame, load_pilot, plan_frame, plan_pilot, space_cost, to_markdown
    from ..run.results import atomic_write_text

    if args.effect is not None and not args.effect > 0:
        raise ConfigError(f"--effect must be > 0 points, got {args.effect:g}")
    if not args.flat > 0:
        raise ConfigError(f"--flat must be > 0 points, got {args.flat:g}")
    if args.alpha is not None and not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha must be in (0, 1), got {args.alpha:g}")
    if args.comparisons is not None and args.comparisons < 1:
        raise ConfigError(f"--comparisons must be >= 1, got {args.comparisons}")
    if args.cores is not None and not args.cores > 0:
        raise ConfigError(f"--cores must be > 0, got {args.cores:g}")
    cores = args.cores or os.cpu_count() or 1
    space = None
    if args.space:
        from ..design.space import load_space

        space = load_space(args.space)
    pilot = load_pilot(args.pilot, args.baseline)
    alpha, comparisons = 0.05, 1
    if space is not None:
        from ..analysis.plan import space_family

        alpha, comparisons = space_family(space)
    alpha = args.alpha if args.alpha is not None else alpha
    comparisons = args.comparisons if args.comparisons is not None else comparisons
    plan = plan_pilot(pilot, args.effect, alpha / comparisons, args.flat, cores)
    cost = space_cost(space, pilot, plan, cores, dict(args.relative_cost)) if space is not None else None
    text = to_markdown(plan, cost, Path(args.pilot).resolve().name)  # the folder, not this machine's path
    print(text, end="")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "plan.md", text)
        atomic_write_text(out / "plan.csv", plan_frame(plan).to_csv(index=False))
        if cost is not None:
            atomic_write_text(out / "cost.csv", cost_frame(cost).to_csv(index=False))
        print(f"plan: {out / 'plan.md'}, {out / 'plan.csv'}" + (f", {out / 'cost.csv'}" if cost is not None else ""))
    return 0
