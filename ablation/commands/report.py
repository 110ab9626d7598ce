"""`ablate report RUN_DIR`: rank a sweep's variants and write its report from disk alone."""

from __future__ import annotations

import argparse

from ..design.execution import EXECUTION_PATHS

HELP = "rank a sweep's variants (Optuna) and write its report (Markdown, HTML, LaTeX, CSV, PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run directory of a sweep (runs/<name>/, holding results.csv)")
    parser.add_argument("--out", help="report folder (default: reports/<name>)")
    parser.add_argument(
        "--storage",
        help="Optuna storage URL for the study (default: sqlite:///RUN_DIR/optuna.db, copied into the report folder)",
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="first time every completed variant side by side (interleaved rounds, ratio to the "
        "plain backbone) and write RUN_DIR/latency.csv; settings from the space's latency section",
    )
    parser.add_argument(
        "--path", choices=EXECUTION_PATHS, help="execution path of the calibration (default: the space's)"
    )
    parser.add_argument(
        "--rounds", type=int, help="interleaved rounds of the calibration, >= 3 (default: the space's, 15 unless set)"
    )
    parser.add_argument("--device", default="cpu", help="device of the calibration (default: cpu)")
    parser.add_argument(
        "--against",
        metavar="EARLIER",
        help="an earlier run (run directory or report folder) of the same variants and seeds with a setting "
        "changed: its data is kept in RUN_DIR/against/ and the report compares each variant and seed in both",
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..analysis.report import write_report

    if args.rounds is not None and args.rounds < 3:
        raise ConfigError(f"--rounds must be >= 3, got {args.rounds}")
    if args.against:
        from ..analysis.setting_change import keep_against

        keep_against(args.run_dir, args.against)
    if args.calibrate:
        from ..run.calibrate import calibrate_run
        from ..run.train import resolve_device

        resolve_device(args.device)
        print(f"latency: {calibrate_run(args.run_dir, path=args.path, rounds=args.rounds, device=args.device)}")
    out = write_report(args.run_dir, args.out, args.storage)
    print(f"report: {out / 'report.md'} and {out / 'report.html'}")
    return 0
