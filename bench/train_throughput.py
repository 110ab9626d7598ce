"""Training throughput of ``run_trial``'s loop against a bare reference loop, side by side.

Both train the same model (same backbone, seed and data set) with the same batch size and
thread count. The reference loop is written plainly below: pre-normalised images held in
memory, shuffled slices, forward, cross-entropy, backward, SGD step; no augmentation, schedule,
loss checks or metrics. ``run_trial`` adds all of those, so the ratio (target >= 0.95) is the
cost of the harness. Rounds alternate the two loops so that load on a shared machine hits both.

    python bench/train_throughput.py --rounds 3 --out reports/benchmarks/train_throughput.md
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from ablation.data import build_data
from ablation.models import build_model
from ablation.train import run_trial


def reference_images_per_s(cfg: dict, epochs: int) -> list[float]:
    """Images/s of each epoch of a bare training loop over the same data held in memory."""
    torch.manual_seed(cfg["seed"])
    data = build_data(cfg["dataset"], batch_size=cfg["batch_size"], seed=cfg["seed"])
    mean, std = data.train.mean, data.train.std
    images = (data.train.images.float() / 255 - mean) / std
    labels = data.train.labels
    model = build_model(cfg["backbone"], num_classes=data.num_classes, in_channels=data.in_channels,
                        small_input=data.input_size <= 64)
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=5e-4)
    bs, n = cfg["batch_size"], len(labels)
    rates = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n)
        start, seen = time.perf_counter(), 0
        for b in range(n // bs):
            idx = order[b * bs : (b + 1) * bs]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(idx)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def harness_images_per_s(cfg: dict, epochs: int) -> list[float]:
    """Images/s of each epoch of ``run_trial`` (its own training-phase measurement)."""
    result = run_trial(dict(cfg, epochs=epochs, latency_runs=1, device="cpu"))
    return [m["images_per_s"] for m in result["history"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet20")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="per measurement; the first is warm-up")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, help="write a markdown report here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cfg = dict(backbone=args.backbone, dataset=args.dataset, batch_size=args.batch_size, lr=0.1, seed=0,
               threads=args.threads)
    rows = []
    for r in range(1, args.rounds + 1):
        ref = statistics.mean(reference_images_per_s(cfg, args.epochs)[1:])
        ours = statistics.mean(harness_images_per_s(cfg, args.epochs)[1:])
        rows.append((r, ref, ours, ours / ref))
        print(f"round {r}: reference {ref:.1f} img/s, run_trial {ours:.1f} img/s, ratio {ours / ref:.3f}", flush=True)
    ratio = statistics.median(row[3] for row in rows)
    print(f"median ratio run_trial / reference: {ratio:.3f} (target >= 0.95)")
    if args.out:
        write_report(args, rows, ratio)


def write_report(args: argparse.Namespace, rows: list[tuple], ratio: float) -> None:
    lines = [
        "# Training throughput: `run_trial` vs a bare loop",
        "",
        f"Command: `python bench/train_throughput.py --backbone {args.backbone} --dataset {args.dataset} "
        f"--batch-size {args.batch_size} --epochs {args.epochs} --rounds {args.rounds} --threads {args.threads} "
        f"--out {args.out}`",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()} CPU, torch {torch.__version__}, "
        f"{args.threads} threads. Images/s are training images per second, the mean of epochs 2..{args.epochs} "
        "(epoch 1 is warm-up); rounds alternate the two loops.",
        "",
        "| round | reference img/s | run_trial img/s | ratio |",
        "|---|---|---|---|",
        *(f"| {r} | {ref:.1f} | {ours:.1f} | {q:.3f} |" for r, ref, ours, q in rows),
        "",
        f"**Median ratio: {ratio:.3f}** (target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'}).",
        "",
        "The reference loop holds pre-normalised images and does no augmentation, schedule, loss check or",
        "metric bookkeeping; `run_trial` crops (and, where the data set allows, flips) every batch with",
        "tensor ops, steps the lr schedule, checks the loss and keeps metrics.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
