"""Start-up time of the `ablate` command and import time of the libraries behind it.

Each command runs ``--runs`` times in a fresh interpreter (``python -m ablation.cli``), the
commands taking turns so that a change in the machine's load hits them alike; printed are the
medians of wall-clock seconds and of CPU seconds (user + system of the child: less sensitive to
other jobs on a shared machine than wall time, but it counts threads that spin). With
``--against DIR`` the same commands also run on the code in DIR (e.g. a checkout before a change),
in the same rounds, with the ratio of the medians. Import times are measured inside a fresh
interpreter around one ``import`` statement, so the interpreter's own start is not in them; a
library that another on the list imports is counted again in each.

    python bench/startup.py [--runs 5] [--against /path/to/other/checkout] [--out reports/benchmarks/startup.md]

Targets (issue 25): ``ablate --help`` <= 1.5 s, ``ablate validate search_spaces/quick.yaml`` <= 6 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What is timed, as arguments to the interpreter: ``ablate`` commands, the interpreter's own start,
#: and the libraries that ``validate search_spaces/quick.yaml`` needs imported without doing any work
#: (its floor: torch, fvcore, torchvision for resnet20, timm for SE and ECA; no scikit-learn since the
#: digits are read without it).
COMMANDS: dict[str, list[str]] = {
    "`python -c pass`": ["-c", "pass"],
    "`ablate --help`": ["-m", "ablation.cli", "--help"],
    "`ablate list`": ["-m", "ablation.cli", "list"],
    "`ablate validate --no-cost search_spaces/quick.yaml`": [
        "-m",
        "ablation.cli",
        "validate",
        "--no-cost",
        "search_spaces/quick.yaml",
    ],
    "`ablate validate search_spaces/quick.yaml`": ["-m", "ablation.cli", "validate", "search_spaces/quick.yaml"],
    "validate's libraries imported, no work": [
        "-c",
        "import ablation.models, ablation.run.profile, ablation.data, torchvision.models, timm.layers",
    ],
}
#: Libraries whose import time is shown: those some `ablate` command needs.
LIBRARIES = (
    "torch",
    "torchvision",
    "timm",
    "fvcore.nn",
    "sklearn.datasets",
    "pydantic",
    "pandas",
    "scipy.stats",
    "ray.tune",
    "optuna",
    "mlflow",
    "matplotlib.pyplot",
)
IMPORT = (
    "import sys, time; t = time.perf_counter(); c = time.process_time(); import {0}; "
    "print(time.perf_counter() - t, time.process_time() - c)"
)


def timed(argv: list[str], code_root: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv`` in ``code_root`` (first on the path; `-m` puts the
    working directory before ``PYTHONPATH``)."""
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=code_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_time(library: str) -> tuple[float, float]:
    """Wall and CPU seconds of ``import library`` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", IMPORT.format(library)], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"import {library} failed: {done.stderr.strip()[-500:]}")
    wall, cpu = done.stdout.split()[-2:]
    return float(wall), float(cpu)


def commit(root: Path) -> str:
    """The checked-out commit of ``root`` (with ``+changes`` when its tracked files differ from it)."""
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "no git checkout"
    dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD"], capture_output=True).returncode != 0
    return head.stdout.strip() + ("+changes" if dirty else "")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command and import (default 5)")
    parser.add_argument("--against", type=Path, help="another checkout of this project to time side by side")
    parser.add_argument("--no-imports", action="store_true", help="skip the libraries' import times")
    parser.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    args = parser.parse_args()

    roots = {"this": ROOT} | ({"against": args.against.resolve()} if args.against else {})
    load_before = load()
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {(c, r): [] for c in COMMANDS for r in roots}
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            for side, root in roots.items():
                runs[name, side].append(timed([sys.executable, *argv], root))
    imports = {lib: [] for lib in ([] if args.no_imports else LIBRARIES)}
    for _ in range(args.runs):
        for lib in imports:
            imports[lib].append(import_time(lib))
    load_after = load()

    def med(values: list[tuple[float, float]], i: int) -> float:
        return statistics.median(v[i] for v in values)

    against = f", against: {args.against} at {commit(args.against)}" if args.against else ""
    lines = [
        f"`python bench/startup.py {' '.join(sys.argv[1:])}` ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()}, {os.cpu_count()} CPUs, load average {load_before} before, {load_after} after; "
        f"medians of {args.runs} runs; this code: {commit(ROOT)}{against})",
        "",
    ]
    head = "| command | wall s | CPU s |" + (" against: wall s | CPU s | ratio wall | ratio CPU |" * bool(args.against))
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for name in COMMANDS:
        this = [med(runs[name, "this"], i) for i in (0, 1)]
        row = f"| {name} | {this[0]:.2f} | {this[1]:.2f} |"
        if args.against:
            other = [med(runs[name, "against"], i) for i in (0, 1)]
            row += f" {other[0]:.2f} | {other[1]:.2f} | {this[0] / other[0]:.3f} | {this[1] / other[1]:.3f} |"
        lines.append(row)
    if imports:
        lines += ["", "| import | wall s | CPU s |", "|---|---|---|"]
        lines += [f"| `{lib}` | {med(v, 0):.2f} | {med(v, 1):.2f} |" for lib, v in imports.items()]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# Start-up time\n\n{text}\n")


if __name__ == "__main__":
    main()
