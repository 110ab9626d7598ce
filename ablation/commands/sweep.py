"""`ablate sweep SPACE.yaml`: train every trial of a search space on Ray Tune, then report."""

from __future__ import annotations

import argparse
import sys

HELP = "run a search space as a Ray Tune sweep (local Ray, or a cluster with --address)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", help="search-space YAML file (see search_spaces/)")
    parser.add_argument(
        "--address",
        default=None,
        help="join a Ray cluster started with `ray start` (HOST:PORT, ray://HOST:PORT or auto; "
        "default: $RAY_ADDRESS, else a local Ray sized to this machine)",
    )
    parser.add_argument(
        "--storage",
        default="runs",
        help="parent folder of the run directory <storage>/<name>/ (on a cluster: a folder "
        "every node sees at the same path, e.g. NFS); default: runs",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep in the run directory: finished trials are kept, "
        "interrupted ones continue from their last checkpoint",
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        metavar="N",
        help="at most N trials at once (default: budget.max_concurrent, else as resources allow)",
    )
    parser.add_argument(
        "--carry",
        action="append",
        default=[],
        metavar="RUN",
        help="when the sweep starts, take the completed trials of the run directory RUN that are "
        "trials of this space (same config, seed included, and this machine's training setup) "
        "instead of training them again; repeatable",
    )
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    parser.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="TRACKER",
        help="also track in mlflow[=URI] (default store: sqlite:///RUN_DIR/mlflow.db) or tensorboard "
        "(event files in the trial folders); repeatable; needs pip install 'ablation[tracking]'",
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..design.space import load_space
    from ..run.sweep import run_sweep

    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    space = load_space(args.space)
    outcome = run_sweep(
        space,
        storage=args.storage,
        address=args.address,
        resume=args.resume,
        max_concurrent=args.max_concurrent,
        log=tuple(args.log),
        carry=tuple(args.carry),
    )
    counts = ", ".join(f"{n} {status}" for status, n in outcome.counts.items())
    print(f"sweep {space.name}: {counts} in {outcome.wall_time_s:.0f} s; results: {outcome.run_dir / 'results.csv'}")
    unfinished = outcome.counts.get("pending", 0) + outcome.counts.get("running", 0)
    if unfinished:
        print(
            f"sweep {space.name} stopped before the end; continue it with: "
            f"ablate sweep {args.space} --storage {args.storage} --resume",
            file=sys.stderr,
        )
        return 130
    if space.spec.latency.calibrate and outcome.counts.get("completed"):
        from ..run.calibrate import calibrate_run

        print(f"latency: {calibrate_run(outcome.run_dir)}")
    if not args.no_report:
        _report(outcome.run_dir)
    return 1 if outcome.counts.get("failed") else 0


def _report(run_dir) -> None:
    try:
        from ..analysis.report import write_report
    except ImportError as exc:
        if exc.name != "ablation.analysis.report":
            raise
        print("report module not available; results are in results.csv", file=sys.stderr)
        return
    print(f"report: {write_report(run_dir)}")
