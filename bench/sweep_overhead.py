"""Trial throughput under Ray Tune against ``run_trial`` called directly, same trials, one run.

The same trials (resnet20 on digits, one per attention module, 1 thread each) run twice: one
after the other in this process with ``run_trial``, then as a sweep with ``run_sweep`` on a
local Ray that was started beforehand (its start-up is timed and shown separately), one trial
at a time so that both sides have the same CPUs. Two ratios (Tune / direct, target >= 0.9):

- training images/s inside a trial (``run_trial``'s own per-epoch measurement): the cost of
  reporting and checkpointing through Tune;
- end to end, training images over wall-clock seconds for all trials: adds Tune's scheduling,
  worker start-up and result handling.

    python bench/sweep_overhead.py --epochs 3 --out reports/benchmarks/sweep_overhead.md
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


def direct(configs: list) -> tuple[float, list[float], int]:
    """Wall seconds, per-epoch images/s and training images of ``run_trial`` called in-process."""
    from ablation.train import run_trial

    def report(metrics: dict, checkpoint_dir: str) -> None:
        """Does nothing, but makes run_trial write its per-epoch checkpoint, as under Tune."""

    speeds, images = [], 0
    start = time.perf_counter()
    for cfg in configs:
        result = run_trial(cfg, report=report)
        speeds += [m["images_per_s"] for m in result["history"]]
        images += _train_images(cfg) * result["epochs_done"]
    return time.perf_counter() - start, speeds, images


def _train_images(cfg) -> int:
    from ablation.data import build_data

    return build_data(cfg.dataset, cfg.data_dir, batch_size=cfg.batch_size, subset=cfg.subset,
                      seed=cfg.seed).train.num_images


def under_tune(space, storage: Path) -> tuple[float, float, list[float], int]:
    """Ray start-up seconds, sweep wall seconds, per-epoch images/s and training images."""
    import json

    import ray

    from ablation.sweep import run_sweep

    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - start
    try:
        start = time.perf_counter()
        outcome = run_sweep(space, storage=storage, check_files=False, verbose=0)
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    speeds, images = [], 0
    for result in sorted(outcome.run_dir.glob("trial_*/result.json")):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        speeds += [r["images_per_s"] for r in rows]
    for cfg in space.configs():
        images += _train_images(cfg) * cfg.epochs
    return startup, wall, speeds, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--out", default="reports/benchmarks/sweep_overhead.md")
    args = parser.parse_args()

    from ablation.space import parse_space

    space = parse_space(space_dict(args.epochs, args.dataset))
    configs = space.configs()
    d_wall, d_speeds, d_images = direct(configs)
    with tempfile.TemporaryDirectory() as storage:
        t_start, t_wall, t_speeds, t_images = under_tune(space, Path(storage))
    assert d_images == t_images
    d_rate, t_rate = statistics.mean(d_speeds), statistics.mean(t_speeds)
    d_e2e, t_e2e = d_images / d_wall, t_images / t_wall
    lines = [
        "# Sweep overhead: Ray Tune vs run_trial called directly",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} CPUs), `python bench/sweep_overhead.py --epochs {args.epochs} --dataset {args.dataset}`.",
        f"Trials: resnet20 on {args.dataset}, attention {', '.join(ATTENTIONS)}, {args.epochs} epochs, "
        "1 thread, one trial at a time on both sides.",
        "",
        "| measure | direct | Ray Tune | ratio (Tune / direct) |",
        "|---|---:|---:|---:|",
        f"| training images/s inside a trial (mean over epochs) | {d_rate:.0f} | {t_rate:.0f} | {t_rate / d_rate:.3f} |",
        f"| end to end: training images / wall s | {d_e2e:.0f} | {t_e2e:.0f} | {t_e2e / d_e2e:.3f} |",
        f"| wall seconds for all trials | {d_wall:.1f} | {t_wall:.1f} | |",
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
