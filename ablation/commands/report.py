"""`ablate report RUN_DIR`: rank a sweep's variants and write its report from disk alone."""
from __future__ import annotations

import argparse

HELP = "rank a sweep's variants (Optuna) and write its report (Markdown, HTML, LaTeX, CSV, PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run directory of a sweep (runs/<name>/, holding results.csv)")
    parser.add_argument("--out", help="report folder (default: reports/<name>)")
    parser.add_argument("--storage", help="Optuna storage URL for the study (default: sqlite:///RUN_DIR/optuna.db)")


def run(args: argparse.Namespace) -> int:
    from ..report import write_report

    out = write_report(args.run_dir, args.out, args.storage)
    print(f"report: {out / 'report.md'} and {out / 'report.html'}")
    return 0
