"""Trial throughput under Ray Tune against ``run_trial`` called directly, same trials, one run.

The same trials (resnet20 on digits, one per attention module, 1 thread each) run twice: one
after the other in this process with ``run_trial``, then as a sweep with ``run_sweep`` on a
local Ray that was started beforehand (its start-up is timed and shown separately), one trial
at a time so that both sides have the same CPUs. Two ratios (Tune / direct, target >= 0.9):

- training images/s inside a trial (``run_trial``'s own per-epoch measurement): the cost of
  reporting and checkpointing through Tune;
- end to end, training images over wall-clock seconds for all trials: adds Tune's scheduling,
  worker start-up and result handling.

    python bench/sweep_overhead.py --epochs 3 --rounds 2 --out reports/benchmarks/sweep_overhead.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ATTENTIONS = ("none", "se", "eca", "sca")


def space_dict(epochs: int, dataset: str) -> dict:
    return {
        "name": "sweep_overhead",
        "base": {"dataset": dataset, "backbone": "resnet20", "threads": 1, "device": "cpu", "latency_runs": 5},
        "grid": {"attention": list(ATTENTIONS)},
        "budget": {"epochs": epochs, "max_concurrent": 1, "max_failures": 0},
        "resources": {"cpu": 1},
    }


def direct(configs: list) -> tuple[float, list[float]]:
    """Wall seconds and per-epoch images/s of ``run_trial`` called in-process, one after another."""
    from ablation.run.train import run_trial

    def report(metrics: dict, checkpoint_dir: str) -> None:
        """Does nothing, but makes run_trial write its per-epoch checkpoint, as under Tune."""

    speeds = []
    start = time.perf_counter()
    for cfg in configs:
        result = run_trial(cfg, report=report)
        speeds += [m["images_per_s"] for m in result["history"]]
    return time.perf_counter() - start, speeds


def _train_images(cfg) -> int:
    from ablation.data import build_data

    return build_data(
        cfg.dataset, cfg.data_dir, batch_size=cfg.batch_size, subset=cfg.subset, seed=cfg.seed
    ).train.num_images


def under_tune(space, storage: Path) -> tuple[float, float, list[float]]:
    """Ray start-up seconds, sweep wall seconds and per-epoch images/s of the same trials."""
    import json

    import ray

    from ablation.run.sweep import run_sweep

    start = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - start
    try:
        start = time.perf_counter()
        outcome = run_sweep(space, storage=storage, check_files=False, verbose=0)
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    speeds = []
    for result in sorted(outcome.run_dir.glob("trial_*/result.json")):
        speeds += [json.loads(line)["images_per_s"] for line in result.read_text().splitlines() if line.strip()]
    return startup, wall, speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (load on a shared machine hits both)")
    parser.add_argument("--out", default="reports/benchmarks/sweep_overhead.md")
    args = parser.parse_args()

    from ablation.design.space import parse_space

    space = parse_space(space_dict(args.epochs, args.dataset))
    configs = space.configs()
    images = sum(_train_images(cfg) * cfg.epochs for cfg in configs)
    d_walls, d_speeds, t_starts, t_walls, t_speeds = [], [], [], [], []
    for _ in range(args.rounds):
        wall, speeds = direct(configs)
        d_walls.append(wall)
        d_speeds += speeds
        with tempfile.TemporaryDirectory() as storage:
            start, wall, speeds = under_tune(space, Path(storage))
        t_starts.append(start)
        t_walls.append(wall)
        t_speeds += speeds
    d_rate, t_rate = statistics.mean(d_speeds), statistics.mean(t_speeds)
    d_wall, t_wall, t_start = statistics.mean(d_walls), statistics.mean(t_walls), statistics.mean(t_starts)
    d_e2e, t_e2e = images / d_wall, images / t_wall
    lines = [
        "# Sweep overhead: Ray Tune vs run_trial called directly",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} CPUs), `python bench/sweep_overhead.py --epochs {args.epochs} --dataset {args.dataset} --rounds {args.rounds}`.",
        f"Trials: resnet20 on {args.dataset}, attention {', '.join(ATTENTIONS)}, {args.epochs} epochs, "
        f"1 thread, one trial at a time on both sides; {args.rounds} alternating rounds, means shown.",
        "",
        "| measure | direct | Ray Tune | ratio (Tune / direct) |",
        "|---|---:|---:|---:|",
        f"| training images/s inside a trial (mean over epochs) | {d_rate:.0f} | {t_rate:.0f} | {t_rate / d_rate:.3f} |",
        f"| end to end: training images / wall s | {d_e2e:.0f} | {t_e2e:.0f} | {t_e2e / d_e2e:.3f} |",
        f"| wall seconds for all trials (per round) | {', '.join(f'{w:.1f}' for w in d_walls)} | "
        f"{', '.join(f'{w:.1f}' for w in t_walls)} | |",
        "",
        f"Local Ray start-up (not in the sweep's wall time): {t_start:.1f} s. Target: ratio >= 0.9.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
