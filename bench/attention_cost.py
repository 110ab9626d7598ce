"""Side-by-side cost of every attention module in ResNet-50 and MobileNetV2 at 224 px.

Params and FLOPs (fvcore multiply-adds, one image) come from ``ablation.profile``; CPU latency
is the median of forward passes at batch 1 and 32, measured in interleaved rounds (every
variant once per round) so that load on a shared machine hits all variants alike. Ratios are
to the plain backbone measured in the same run. Writes ``attention_cost.csv`` and ``.md``.

    nice -n 10 python bench/attention_cost.py [--threads 1] [--rounds 7] [--out reports/benchmarks]
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from ablation.attention import sca_kernel
from ablation.attention.sca import SCA
from ablation.models import build_model
from ablation.profile import profile_model

#: (attention, options, eager): eager runs SCA on PyTorch ops only, to show what its fused
#: inference kernel (ablation/attention/sca_kernel.c) saves.
VARIANTS: list[tuple[str, dict, bool]] = [
    ("none", {}, False), ("se", {}, False), ("eca", {}, False), ("cbam", {}, False), ("coord", {}, False),
    ("triplet", {}, False), ("sca", {}, False), ("sca", {"pool": "avgmax"}, False), ("sca", {}, True),
]
BACKBONES = ("resnet50", "mobilenet_v2")
#: Targets for SCA with default options in ResNet-50.
MAX_PARAMS_INCREASE, MAX_FLOPS_INCREASE = 0.0001, 0.01


def label(attention: str, options: dict, eager: bool) -> str:
    return attention + "".join(f" {k}={v}" for k, v in options.items()) + (" (eager ops)" if eager else "")


def build(backbone: str, attention: str, options: dict, eager: bool) -> torch.nn.Module:
    model = build_model(backbone, attention, **options).eval()
    if eager:
        for module in model.modules():
            if isinstance(module, SCA):
                module.forward = module.forward_eager
    return model


def latencies(models: dict, batch: int, size: int, rounds: int, runs: int) -> dict[str, dict[str, float]]:
    """Median wall and thread-CPU ms per variant over ``rounds`` interleaved rounds of ``runs`` passes
    (the order rotates from round to round).

    Thread CPU time leaves out the time the process waits for a core, so on a shared machine
    it gives steadier ratios; it covers all work only with one torch thread.
    """
    x = torch.randn(batch, 3, size, size)
    wall: dict[str, list[float]] = {k: [] for k in models}
    cpu: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for model in models.values():
            model(x)
        keys = list(models)
        for r in range(rounds):
            for key in keys[r % len(keys):] + keys[:r % len(keys)]:  # rotate: no variant always first
                model = models[key]
                for _ in range(runs):
                    start, start_cpu = time.perf_counter(), time.thread_time()
                    model(x)
                    cpu[key].append((time.thread_time() - start_cpu) * 1000)
                    wall[key].append((time.perf_counter() - start) * 1000)
    return {k: {"wall": statistics.median(wall[k]), "cpu": statistics.median(cpu[k])} for k in models}


def run_backbone(backbone: str, args: argparse.Namespace) -> list[dict]:
    models = {label(*variant): build(backbone, *variant) for variant in VARIANTS}
    rows = []
    for key, model in models.items():
        report = profile_model(model, args.size, latency=False)
        rows.append({"backbone": backbone, "variant": key, **{k: v for k, v in report.as_dict().items()
                                                               if not k.startswith("latency")}})
    lat = {b: latencies(models, b, args.size, args.rounds if b == 1 else args.rounds_large,
                        args.runs if b == 1 else 1) for b in args.batches}
    del models
    base = rows[0]
    for row in rows:
        row["params_ratio"] = row["params"] / base["params"]
        row["flops_ratio"] = row["flops"] / base["flops"]
        for b in args.batches:
            for kind, suffix in (("wall", "ms"), ("cpu", "cpu_ms")):
                row[f"latency_b{b}_{suffix}"] = lat[b][row["variant"]][kind]
                row[f"latency_b{b}_{suffix}_ratio"] = lat[b][row["variant"]][kind] / lat[b][base["variant"]][kind]
        row["threads"] = torch.get_num_threads()
        print(f"{backbone:13s} {row['variant']:18s} params x{row['params_ratio']:.5f} flops x{row['flops_ratio']:.4f} "
              + " ".join(f"b{b} {row[f'latency_b{b}_ms']:.1f} ms x{row[f'latency_b{b}_ms_ratio']:.3f} "
                         f"cpu x{row[f'latency_b{b}_cpu_ms_ratio']:.3f}" for b in args.batches),
              flush=True)
    return rows


def verdict(rows: list[dict], batches: list[int]) -> list[str]:
    """SCA (default options) in ResNet-50 against the issue's targets."""
    get = {(r["backbone"], r["variant"]): r for r in rows}
    sca, eca = get[("resnet50", "sca")], get[("resnet50", "eca")]
    dp, df = sca["params_ratio"] - 1, sca["flops_ratio"] - 1
    lines = [
        f"- params: +{dp:.4%} (target <= +{MAX_PARAMS_INCREASE:.2%}): {'met' if dp <= MAX_PARAMS_INCREASE else 'MISSED'}",
        f"- FLOPs: +{df:.3%} (target <= +{MAX_FLOPS_INCREASE:.0%}): {'met' if df <= MAX_FLOPS_INCREASE else 'MISSED'}",
    ]
    if 1 in batches:
        s, e = sca["latency_b1_cpu_ms_ratio"], eca["latency_b1_cpu_ms_ratio"]
        lines.append(f"- CPU latency ratio at batch 1 (thread CPU time): sca x{s:.3f} vs eca x{e:.3f} "
                     f"(target: sca <= eca): {'met' if s <= e else 'MISSED'}")
        s, e = sca["latency_b1_ms_ratio"], eca["latency_b1_ms_ratio"]
        k = get[("resnet50", "sca (eager ops)")]["latency_b1_cpu_ms_ratio"]
        lines.append(f"- for information, SCA on PyTorch ops only (no fused kernel): x{k:.3f}")
        lines.append(f"- for information, wall-clock at batch 1: sca x{s:.3f} vs eca x{e:.3f} (waits for a "
                     "core on a loaded machine make these noisy; the verdict uses CPU time)")
    return lines


def write(rows: list[dict], args: argparse.Namespace, started: float, loads: tuple) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "attention_cost.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lat_cols = [f"latency_b{b}_{s}" for b in args.batches for s in ("ms", "ms_ratio", "cpu_ms", "cpu_ms_ratio")]
    head = ["backbone", "variant", "params", "params_ratio", "flops", "flops_ratio", "attention_params",
            "attention_flops", *lat_cols]
    fmt = {"params_ratio": "{:.5f}", "flops_ratio": "{:.4f}", **{c: "{:.3f}" if c.endswith("ratio") else "{:.1f}" for c in lat_cols}}
    lines = [
        f"# Attention cost: params, FLOPs and CPU latency at {args.size} px", "",
        f"Command: `nice -n 10 python bench/attention_cost.py {' '.join(sys.argv[1:])}`  ",
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch thread(s); wall time {time.time() - started:.0f} s; "
        f"load average at start/end {loads[0]:.1f}/{loads[1]:.1f} (shared machine).  ",
        "FLOPs are fvcore multiply-adds for one image (elementwise ops one per element, see "
        "`ablation/profile.py`). Latency: median wall-clock and thread-CPU ms of forward passes in "
        "interleaved rounds "
        f"(batch 1: {args.rounds} rounds x {args.runs} passes; larger batches: {args.rounds_large} rounds x 1 pass); "
        "ratios are to the plain backbone in the same run. Thread CPU time leaves out waiting for a "
        "core on this shared machine, so its ratios are the steadier ones. "
        f"SCA runs its fused inference kernel (`ablation/attention/sca_kernel.c`, "
        f"{'built and used' if sca_kernel.library() is not None else 'NOT available: eager ops'} in this run); "
        "`sca (eager ops)` is the same module on PyTorch ops only.", "",
        "## SCA (default options: kernel_size=3, branches=hwc, pool=avg, fuse=mul) in ResNet-50", "",
        *verdict(rows, args.batches), "",
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
    ]
    for row in rows:
        lines.append("| " + " | ".join(fmt.get(c, "{}").format(row[c]) if c in fmt else f"{row[c]:,}"
                                       if isinstance(row[c], int) else str(row[c]) for c in head) + " |")
    (out / "attention_cost.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds at batch 1")
    parser.add_argument("--runs", type=int, default=2, help="passes per round at batch 1")
    parser.add_argument("--rounds-large", type=int, default=4, help="interleaved rounds at larger batches")
    parser.add_argument("--out", default="reports/benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started, load0 = time.time(), os.getloadavg()[0]
    rows = [row for backbone in BACKBONES for row in run_backbone(backbone, args)]
    write(rows, args, started, (load0, os.getloadavg()[0]))
    print("\n".join(verdict(rows, args.batches)))


if __name__ == "__main__":
    main()
