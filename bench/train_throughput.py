"""Training throughput per training path and per attention module, side by side in one run.

Every module (none, SE, ECA, CBAM, Coordinate, Triplet, SCA) in resnet20 on 28x28x1 images
(Fashion-MNIST's shape), batch 128, trained by the harness's own step (``ablation.run.train.TrainStep``:
SGD with Nesterov momentum, the lr schedule, the loss in fp32) on fixed random batches, in each of:

- ``eager``: the eager path (fp32, NCHW on the CPU; today's default);
- ``eager bf16 CL``: channels_last and bf16 autocast without compilation (not a training path:
  shown to say what compilation adds);
- ``fast``: the fast path (channels_last, bf16 autocast where the CPU has it natively, compiled;
  every attention module in fp32 under the autocast, see ``attention_in_fp32``);
- ``fast bf16 attn``: the fast path with the attention modules in bf16 too (the fast path before
  the fp32-attention fix): shown to say what keeping attention in fp32 costs.

Each round cycles through every (module, setup) pair 2 steps at a time, so load on a shared
machine hits all of them alike; images/s are medians over rounds, ratios medians of per-round
ratios. Achieved GFLOP/s (training: 3 x the forward's multiply-adds x 2)
are divided by the same thread count's GEMM peak measured in the same rounds (``torch.mm`` of
1024 x 1024 matrices, fp32 and bf16). No module has a kernel of its own here: whatever speeds one
up speeds every module up the same way.

    python bench/train_throughput.py --threads 1 --rounds 3 --out reports/benchmarks/train_throughput.md
"""

from __future__ import annotations

import argparse
import os
import dataclasses
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from ablation.models import build_model
from ablation.run.profile import profile_model
from ablation.provenance import cpu_model
from ablation.run.train import TrainStep, as_config
from ablation.design.train_path import cpu_has_native_bf16, train_setup

MODULES = ("none", "se", "eca", "cbam", "coord", "triplet", "sca")
#: Targets of issue 26 on this machine (ratios measured side by side).
TARGETS = {"none fast / eager": 1.9, "sca fast / eager": 2.2, "sca / none on fast": 0.75}


def setups(device: torch.device) -> dict[str, object]:
    """The setups compared: the two training paths and, between them, the fast path uncompiled."""
    fast = train_setup("fast", device)
    return {
        "eager": train_setup("eager", device),
        "eager bf16 CL": dataclasses.replace(fast, path="eager bf16 CL", compiled=False),
        "fast": fast,
        "fast bf16 attn": dataclasses.replace(fast, path="fast bf16 attn", attention_fp32=False),
    }


def gemm_gflops(dtype: torch.dtype, n: int = 1024, reps: int = 5) -> float:
    """Best GFLOP/s of ``reps`` products of two n x n matrices (this thread count's GEMM peak)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


class Runner:
    """One module on one setup: its training step on fixed batches, compiled (if so) up front."""

    def __init__(self, attention: str, setup: object, batch: int, device: torch.device) -> None:
        torch.manual_seed(0)
        model = build_model("resnet20", attention, num_classes=10, in_channels=1, small_input=True)
        cfg = as_config({"backbone": "resnet20", "attention": attention, "batch_size": batch, "device": "cpu"})
        self.step = TrainStep(model, cfg, device, total_steps=10**6, warmup_steps=0, setup=setup)
        gen = torch.Generator().manual_seed(0)
        self.x, self.y = self.step.inputs(
            torch.randn(batch, 1, 28, 28, generator=gen), torch.randint(0, 10, (batch,), generator=gen)
        )
        self.step.model.train()
        start = time.perf_counter()
        for _ in range(2):  # the first step compiles on the fast path; the second warms the caches
            self.step.train(self.x, self.y)
        self.warmup_s = time.perf_counter() - start

    def images_per_s(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self.step.train(self.x, self.y)
        return steps * len(self.y) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", default=list(MODULES))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per (module, setup) per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write a markdown report here")
    args = parser.parse_args()
    args.load = os.getloadavg()

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    started = time.perf_counter()
    chosen = setups(device)
    macs = {
        a: profile_model(
            build_model("resnet20", a, num_classes=10, in_channels=1, small_input=True), 28, 1, latency=False
        ).flops
        for a in args.modules
    }
    runners = {}
    for a in args.modules:
        for name, setup in chosen.items():
            runners[a, name] = Runner(a, setup, args.batch_size, device)
            print(f"ready {a:8s} {name:14s} warm-up (incl. compile) {runners[a, name].warmup_s:.1f} s", flush=True)
    rates: dict[tuple[str, str], list[float]] = {k: [] for k in runners}
    peaks: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for r in range(1, args.rounds + 1):
        peaks["fp32"].append(gemm_gflops(torch.float32))
        peaks["bf16"].append(gemm_gflops(torch.bfloat16))
        order = list(runners) if r % 2 else list(reversed(runners))
        seconds = dict.fromkeys(runners, 0.0)
        for _ in range(args.steps // 2):  # every pair sampled across the whole round, 2 steps at a time
            for key in order:
                seconds[key] += 2 * args.batch_size / runners[key].images_per_s(2)
        for key in order:
            rates[key].append((args.steps // 2) * 2 * args.batch_size / seconds[key])
        print(f"round {r}: " + ", ".join(f"{a}/{s} {rates[a, s][-1]:.0f}" for a, s in runners), flush=True)
    peak = {k: statistics.median(v) for k, v in peaks.items()}
    rate = {k: statistics.median(v) for k, v in rates.items()}

    def ratio(a: tuple[str, str], b: tuple[str, str]) -> float:
        """Median over rounds of the per-round ratio (both measured in the same round)."""
        return statistics.median(x / y for x, y in zip(rates[a], rates[b]))

    rows = []
    for a in args.modules:
        row: dict[str, object] = {"module": a, "MMACs/img": macs[a] / 1e6}
        for name, setup in chosen.items():
            gflops = rate[a, name] * 6 * macs[a] / 1e9
            ref = peak["bf16"] if setup.dtype == torch.bfloat16 else peak["fp32"]
            row[f"{name} img/s"] = rate[a, name]
            row[f"{name} GFLOP/s (of peak)"] = f"{gflops:.1f} ({gflops / ref:.0%})"
        row["fast / eager"] = ratio((a, "fast"), (a, "eager"))
        if a != "none":
            row["fast / fast bf16 attn"] = ratio((a, "fast"), (a, "fast bf16 attn"))
        row["x none, eager"] = ratio((a, "eager"), ("none", "eager")) if "none" in args.modules else float("nan")
        row["x none, fast"] = ratio((a, "fast"), ("none", "fast")) if "none" in args.modules else float("nan")
        rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    checks = _targets(ratio, args.modules)
    for name, (value, target) in checks.items():
        print(f"{name}: {value:.2f} (target >= {target}: {'met' if value >= target else 'NOT met'})")
    if args.out:
        _write(args, chosen, table, peak, checks, runners, time.perf_counter() - started)


def _targets(ratio: Callable, modules: list[str]) -> dict[str, tuple[float, float]]:
    found = {}
    if "none" in modules:
        found["none fast / eager"] = ratio(("none", "fast"), ("none", "eager"))
    if "sca" in modules:
        found["sca fast / eager"] = ratio(("sca", "fast"), ("sca", "eager"))
    if {"none", "sca"} <= set(modules):
        found["sca / none on fast"] = ratio(("sca", "fast"), ("none", "fast"))
    return {k: (v, TARGETS[k]) for k, v in found.items()}


def _write(
    args: argparse.Namespace, chosen: dict, table: pd.DataFrame, peak: dict, checks: dict, runners: dict, seconds: float
) -> None:
    compile_s = [runners[k].warmup_s for k in runners if k[1] == "fast"]
    lines = [
        "# Training throughput per path and per module",
        "",
        f"Command: `python bench/train_throughput.py --threads {args.threads} --rounds {args.rounds} --steps "
        f"{args.steps} --batch-size {args.batch_size}{' --modules ' + ' '.join(args.modules) if list(args.modules) != list(MODULES) else ''} "
        f"--out {args.out}` ({seconds / 60:.1f} min).",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu_model()}, torch {torch.__version__}, "
        f"{args.threads} thread(s); native bf16 on this CPU: {'yes' if cpu_has_native_bf16() else 'no'}. "
        "resnet20 on 28x28x1, 10 classes, batch "
        f"{args.batch_size}, the harness's training step on fixed random batches; images/s are the median of "
        f"{args.rounds} rounds of {args.steps} steps per (module, setup), taken 2 steps at a time in turn so that "
        "every pair is sampled across the whole round; ratios are medians of per-round ratios. Load average "
        f"(1 min) {args.load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} CPUs: where it "
        "exceeds the threads used, other jobs shared the machine, absolute figures are depressed and noisy and "
        "the ratios, measured side by side in the same rounds, are what the report is for.",
        "",
        "Setups: " + "; ".join(f"`{name}`: {s.describe()}" for name, s in chosen.items()) + ".",
        "",
        f"GEMM peak on {args.threads} thread(s) (median of rounds, best of 5 `torch.mm` 1024x1024): "
        f"fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s. A setup's GFLOP/s are divided by the "
        "peak of its precision.",
        "",
        table.to_markdown(index=False, floatfmt=".2f"),
        "",
        "Targets (issue 26): "
        + "; ".join(f"{k} {v:.2f} (>= {t}: {'met' if v >= t else 'NOT met'})" for k, (v, t) in checks.items())
        + ".",
        "",
        f"Compilation (first two steps of each `fast` model, Inductor's cache as found): median "
        f"{statistics.median(compile_s):.0f} s, range {min(compile_s):.0f}-{max(compile_s):.0f} s.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
