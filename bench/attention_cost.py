"""Side-by-side cost of every attention module in ResNet-50 and MobileNetV2 at 224 px.

Params and FLOPs (fvcore multiply-adds, one image) come from ``ablation.run.profile``; CPU latency
is measured in interleaved rounds (every variant once per round, the order rotating) so that
load on a shared machine hits all variants alike: per round each variant's fastest of ``runs``
passes, divided by the plain backbone's in the same round; the ratio reported is the median of
those per-round ratios. The batch-1 verdict for SCA against ECA in ResNet-50 comes from a
second, tighter series of rounds of only the plain, ECA and SCA nets (a round of all variants
lasts seconds, and this shared machine changes speed within seconds), with a paired sign test.
Writes ``attention_cost.csv``/``.md`` and every round's times to ``attention_cost_rounds.csv``.

    nice -n 10 python bench/attention_cost.py [--threads 1] [--rounds 30] [--out reports/benchmarks]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from ablation.attention import sca_kernel
from ablation.attention.registry import option_defaults
from ablation.attention.sca import SCA
from ablation.run.calibrate import interleaved_rounds
from ablation.run.calibrate import summarize as summarize_clock
from ablation.design.execution import prepare
from ablation.models import build_model
from ablation.run.profile import profile_model

#: (attention, options, implementation): "" is the module as build_model makes it, on PyTorch
#: eager ops like every peer; for SCA, "fused kernel" is the ``fused-sca`` execution path (the
#: hand-fused C kernel, gating in place where build_model allows) and "fused kernel, new output"
#: the kernel writing a new tensor, to show what each part of that path saves. Only the eager
#: rows compare like with like.
VARIANTS: list[tuple[str, dict, str]] = [
    ("none", {}, ""),
    ("se", {}, ""),
    ("eca", {}, ""),
    ("cbam", {}, ""),
    ("coord", {}, ""),
    ("triplet", {}, ""),
    ("sca", {}, ""),
    ("sca", {"pool": "avgmax"}, ""),
    ("sca", {}, "fused kernel"),
    ("sca", {}, "fused kernel, new output"),
]
#: The variants of the batch-1 verdict, measured again in rounds of their own.
DUEL = ("none", "eca", "sca")
BACKBONES = ("resnet50", "mobilenet_v2")
#: Targets for SCA with default options in ResNet-50.
MAX_PARAMS_INCREASE, MAX_FLOPS_INCREASE = 0.0001, 0.01


def label(attention: str, options: dict, implementation: str) -> str:
    return (
        attention
        + "".join(f" {k}={v}" for k, v in options.items())
        + (f" ({implementation})" if implementation else "")
    )


def build(backbone: str, attention: str, options: dict, implementation: str) -> torch.nn.Module:
    model = build_model(backbone, attention, **options).eval()
    if implementation.startswith("fused kernel"):
        prepare(model, "fused-sca")
        for module in model.modules():
            if isinstance(module, SCA) and implementation.endswith("new output"):
                module.inplace = False
    return model


def latencies(models: dict, batch: int, size: int, rounds: int, runs: int) -> list[dict]:
    """Wall and thread-CPU ms of every variant in interleaved rounds (``ablation.run.calibrate``).

    Thread CPU time leaves out the time the process waits for a core, so on a shared machine
    it gives steadier ratios; it covers all work only with one torch thread.
    """
    x = torch.randn(batch, 3, size, size)
    return [{"batch": batch, **r} for r in interleaved_rounds(models, x, rounds, runs)]


def summarize(records: list[dict], base: str) -> dict[str, dict[str, float]]:
    """Per variant and clock: median ms over rounds, and the median over rounds of its time
    divided by ``base``'s in the same round (paired, so slow spells of the machine cancel)."""
    base_of = {r["variant"]: base for r in records}
    clocks = {kind: summarize_clock(records, base_of, kind) for kind in ("wall", "cpu")}
    return {
        v: {k: f for kind, by in clocks.items() for k, f in ((kind, by[v]["ms"]), (f"{kind}_ratio", by[v]["ratio"]))}
        for v in base_of
    }


def sign_test(records: list[dict], a: str, b: str) -> tuple[int, int, float]:
    """Rounds where ``a`` took less CPU time than ``b``, rounds compared, and the two-sided
    binomial p-value of that count under "neither is faster"."""
    cpu = {(r["round"], r["variant"]): r["cpu_ms"] for r in records}
    rounds = sorted({r["round"] for r in records})
    wins = sum(cpu[(i, a)] < cpu[(i, b)] for i in rounds)
    n = len(rounds)
    tail = sum(math.comb(n, k) for k in range(0, min(wins, n - wins) + 1)) / 2**n
    return wins, n, min(1.0, 2 * tail)


def run_backbone(backbone: str, args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """Rows of figures per variant, and the raw latency records of every round."""
    models = {label(*variant): build(backbone, *variant) for variant in VARIANTS}
    rows = []
    for key, model in models.items():
        report = profile_model(model, args.size, latency=False)
        rows.append(
            {
                "backbone": backbone,
                "variant": key,
                **{k: v for k, v in report.as_dict().items() if not k.startswith("latency")},
            }
        )
    records = [
        {"backbone": backbone, **r}
        for b in args.batches
        for r in latencies(
            models, b, args.size, args.rounds if b == 1 else args.rounds_large, args.runs if b == 1 else 1
        )
    ]
    if 1 in args.batches and args.duel_rounds:
        duel = {k: models[k] for k in DUEL}
        records += [
            {"backbone": backbone, **r, "batch": "1 duel"}
            for r in latencies(duel, 1, args.size, args.duel_rounds, args.runs)
        ]
    del models
    base = rows[0]
    lat = {b: summarize([r for r in records if r["batch"] == b], base["variant"]) for b in args.batches}
    for row in rows:
        row["params_ratio"] = row["params"] / base["params"]
        row["flops_ratio"] = row["flops"] / base["flops"]
        for b in args.batches:
            for kind, suffix in (("wall", "ms"), ("cpu", "cpu_ms")):
                row[f"latency_b{b}_{suffix}"] = lat[b][row["variant"]][kind]
                row[f"latency_b{b}_{suffix}_ratio"] = lat[b][row["variant"]][f"{kind}_ratio"]
        row["threads"] = torch.get_num_threads()
        print(
            f"{backbone:13s} {row['variant']:18s} params x{row['params_ratio']:.5f} flops x{row['flops_ratio']:.4f} "
            + " ".join(
                f"b{b} {row[f'latency_b{b}_ms']:.1f} ms x{row[f'latency_b{b}_ms_ratio']:.3f} "
                f"cpu x{row[f'latency_b{b}_cpu_ms_ratio']:.3f}"
                for b in args.batches
            ),
            flush=True,
        )
    return rows, records


def verdict(rows: list[dict], records: list[dict], batches: list[int]) -> list[str]:
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
        lines.append(
            f"- CPU latency ratio at batch 1 (thread CPU time, median of per-round ratios), all "
            f"variants' rounds: sca x{s:.3f} vs eca x{e:.3f}"
        )
        duel = [r for r in records if r["backbone"] == "resnet50" and r["batch"] == "1 duel"]
        if duel:
            ratio = summarize(duel, "none")
            s, e = ratio["sca"]["cpu_ratio"], ratio["eca"]["cpu_ratio"]
            wins, n, p = sign_test(duel, "sca", "eca")
            lines.append(
                f"- the same in {n} rounds of none/eca/sca only: sca x{s:.3f} vs eca x{e:.3f} (target: "
                f"sca <= eca): {'met' if s <= e else 'MISSED'}; sca took less CPU time than eca in "
                f"{wins} of {n} rounds (two-sided sign test p = {p:.3f})"
            )
        for impl, what in (
            ("fused kernel", "its hand-fused C kernel (the fused-sca path; peers have no such kernel)"),
            ("fused kernel, new output", "the fused kernel writing a new output instead of gating in place"),
        ):
            lines.append(
                f"- for information, SCA with {what}: "
                f"x{get[('resnet50', f'sca ({impl})')]['latency_b1_cpu_ms_ratio']:.3f}"
            )
        s, e = sca["latency_b1_ms_ratio"], eca["latency_b1_ms_ratio"]
        lines.append(
            f"- for information, wall-clock at batch 1: sca x{s:.3f} vs eca x{e:.3f} (waits for a "
            "core on a loaded machine make these noisy; the verdict uses CPU time)"
        )
    return lines


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write(rows: list[dict], records: list[dict], args: argparse.Namespace, started: float, loads: tuple) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "attention_cost.csv", rows)
    write_csv(out / "attention_cost_rounds.csv", records)
    lat_cols = [f"latency_b{b}_{s}" for b in args.batches for s in ("ms", "ms_ratio", "cpu_ms", "cpu_ms_ratio")]
    head = [
        "backbone",
        "variant",
        "params",
        "params_ratio",
        "flops",
        "flops_ratio",
        "attention_params",
        "attention_flops",
        *lat_cols,
    ]
    fmt = {
        "params_ratio": "{:.5f}",
        "flops_ratio": "{:.4f}",
        **{c: "{:.3f}" if c.endswith("ratio") else "{:.1f}" for c in lat_cols},
    }
    lines = [
        f"# Attention cost: params, FLOPs and CPU latency at {args.size} px",
        "",
        f"Command: `nice -n 10 python bench/attention_cost.py {' '.join(sys.argv[1:])}`  ",
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch thread(s); wall time {time.time() - started:.0f} s; "
        f"load average at start/end {loads[0]:.1f}/{loads[1]:.1f} (shared machine).  ",
        "FLOPs are fvcore multiply-adds for one image (elementwise ops one per element, see "
        "`ablation/run/profile.py`). Latency: interleaved rounds, every variant once per round in a rotating "
        f"order (batch 1: {args.rounds} rounds, the fastest of {args.runs} passes per round; larger batches: "
        f"{args.rounds_large} rounds x 1 pass; for the batch-1 verdict, {args.duel_rounds} more rounds of "
        "none/eca/sca only); ms columns are medians over rounds, ratio columns the median "
        "over rounds of the variant's time divided by the plain backbone's in the same round. Every round's "
        "times are in `attention_cost_rounds.csv`. Thread CPU time leaves out waiting for a core on this "
        "shared machine, so its ratios are the steadier ones. "
        "Every module, SCA included, runs on PyTorch eager ops (the default execution path); the rows "
        "`sca (fused kernel)` and `sca (fused kernel, new output)` are for information only: SCA on its "
        "hand-fused C kernel (`ablation/attention/sca_kernel.c`, "
        f"{'built and used' if sca_kernel.library() is not None else 'NOT available: eager ops'} in this run), "
        "gating in place where `build_model` allows it, or writing a new tensor.",
        "",
        "## SCA (default options: "
        + ", ".join(f"{k}={v}" for k, v in option_defaults("sca").items())
        + ") in ResNet-50",
        "",
        *verdict(rows, records, args.batches),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(
                fmt.get(c, "{}").format(row[c])
                if c in fmt
                else f"{row[c]:,}"
                if isinstance(row[c], int)
                else str(row[c])
                for c in head
            )
            + " |"
        )
    (out / "attention_cost.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds at batch 1")
    parser.add_argument("--runs", type=int, default=2, help="passes per round at batch 1")
    parser.add_argument(
        "--duel-rounds", type=int, default=60, help="rounds of none/eca/sca only at batch 1, for the verdict (0: skip)"
    )
    parser.add_argument("--rounds-large", type=int, default=4, help="interleaved rounds at larger batches")
    parser.add_argument("--out", default="reports/benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started, load0 = time.time(), os.getloadavg()[0]
    rows, records = [], []
    for backbone in BACKBONES:
        more_rows, more_records = run_backbone(backbone, args)
        rows += more_rows
        records += more_records
    write(rows, records, args, started, (load0, os.getloadavg()[0]))
    print("\n".join(verdict(rows, records, args.batches)))


if __name__ == "__main__":
    main()
