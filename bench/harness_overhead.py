"""The harness against a bare loop on real data: where does a trial's time go?

One thread, Fashion-MNIST (a study's subset), resnet20, batch 128, the eager path. Side by side
in each round:

- ``bare``: a plain loop over the same training tensors, pre-normalised and held in memory:
  shuffled slices, forward, cross-entropy, backward, SGD step; nothing else;
- ``run_trial``: the real trial (what ``ablate train`` runs): its own training images/s, and its
  whole wall time (loading the data set, building the model, measuring cost and latency,
  training, evaluating; without Ray no checkpoint is written);

and, to find where a gap goes, the parts of an epoch timed on their own: the loader (batches
cut, cropped, flipped and normalised), the harness's training step on batches made up front
(lr schedule, fp32 loss, loss checks), the validation pass, and the cost measurement (FLOPs and
latency) every trial makes once.

    python bench/harness_overhead.py --data-dir /work/shared/data/fashion-mnist --out reports/benchmarks/harness_overhead.md
"""
from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from ablation.data import build_data
from ablation.models import build_model
from ablation.provenance import cpu_model
from ablation.run.train import TrainStep, _check_finite, as_config, evaluate, measure_cost, run_trial


def trial_config(args: argparse.Namespace) -> dict:
    return dict(backbone=args.backbone, dataset=args.dataset, data_dir=args.data_dir, subset=args.subset,
                batch_size=args.batch_size, lr=0.1, seed=0, threads=1, device="cpu", latency_runs=10,
                epochs=args.epochs)


def _data_and_model(cfg: dict):
    data = build_data(cfg["dataset"], cfg["data_dir"], batch_size=cfg["batch_size"], subset=cfg["subset"],
                      seed=cfg["seed"], val_split=0.1)
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg["backbone"], num_classes=data.num_classes, in_channels=data.in_channels,
                        small_input=True)
    return data, model


def bare(cfg: dict) -> list[float]:
    """Images/s of each epoch of a bare loop over the trial's training tensors, held normalised."""
    data, model = _data_and_model(cfg)
    images = (data.train.images.float() / 255 - data.train.mean) / data.train.std
    labels = data.train.labels
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=5e-4)
    bs, n = cfg["batch_size"], len(labels)
    rates = []
    for _ in range(cfg["epochs"]):
        model.train()
        order = torch.randperm(n)
        start = time.perf_counter()
        for b in range(n // bs):
            idx = order[b * bs : (b + 1) * bs]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        rates.append((n // bs) * bs / (time.perf_counter() - start))
    return rates


def harness(cfg: dict) -> dict:
    """``run_trial``: its training images/s per epoch, epoch times and whole wall time."""
    start = time.perf_counter()
    result = run_trial(cfg)
    wall = time.perf_counter() - start
    return {"rates": [m["images_per_s"] for m in result["history"]],
            "epoch_s": [m["epoch_time_s"] for m in result["history"]], "wall_s": wall,
            "images": result["train_images"] * cfg["epochs"],
            "splits": (result["train_images"], result["val_images"], result["test_images"])}


def parts(cfg: dict) -> dict[str, float]:
    """Seconds per epoch of each part of a trial's epoch on its own, and of the one-off cost
    measurement. The harness's training step and a bare step (same model, same batches) alternate
    step by step, so that load on a shared machine hits both alike."""
    data, model = _data_and_model(cfg)
    _, bare_model = _data_and_model(cfg)
    conf = as_config(cfg)
    step = TrainStep(model, conf, torch.device("cpu"), total_steps=len(data.train) * cfg["epochs"], warmup_steps=30)
    opt = torch.optim.SGD(bare_model.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=5e-4)
    start = time.perf_counter()
    data.train.set_epoch(2)
    batches = [step.inputs(x, y) for x, y in data.train]
    loader_s = time.perf_counter() - start
    step.model.train()
    bare_model.train()
    losses = torch.zeros(len(batches))
    train_s = bare_s = 0.0
    for i, (x, y) in enumerate(batches):
        start = time.perf_counter()
        losses[i] = step.train(x, y)
        _check_finite(losses[i : i + 1], i + 1, 1)  # what train_epoch adds on the CPU, every step
        train_s += time.perf_counter() - start
        start = time.perf_counter()
        loss = F.cross_entropy(bare_model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        bare_s += time.perf_counter() - start
    start = time.perf_counter()
    evaluate(step, data.val)
    eval_s = time.perf_counter() - start
    start = time.perf_counter()
    measure_cost(model, conf, data, torch.device("cpu"))
    cost_s = time.perf_counter() - start
    return {"bare steps": bare_s, "train steps": train_s, "loader": loader_s, "validation": eval_s,
            "cost (once)": cost_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet20")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="per measurement; the first is warm-up")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write a markdown report here")
    args = parser.parse_args()

    torch.set_num_threads(1)
    cfg = trial_config(args)
    rows, split, splits = [], [], None
    for r in range(1, args.rounds + 1):
        ref = statistics.mean(bare(cfg)[1:])
        ours = harness(cfg)
        rate, splits = statistics.mean(ours["rates"][1:]), ours["splits"]
        whole = ours["images"] / ours["wall_s"]
        rows.append((r, ref, rate, rate / ref, whole, whole / ref))
        split.append(parts(cfg))
        print(f"round {r}: bare {ref:.1f} img/s; run_trial training {rate:.1f} img/s (x{rate / ref:.3f}), "
              f"whole trial {whole:.1f} img/s (x{whole / ref:.3f}); parts {split[-1]}", flush=True)
    ratio = statistics.median(row[3] for row in rows)
    whole_ratio = statistics.median(row[5] for row in rows)
    part = {k: statistics.median(p[k] for p in split) for k in split[0]}
    print(f"median: training x{ratio:.3f} of bare (target >= 0.95), whole trial x{whole_ratio:.3f}")
    if args.out:
        write_report(args, rows, ratio, whole_ratio, part, splits)


def write_report(args: argparse.Namespace, rows: list[tuple], ratio: float, whole_ratio: float,
                 part: dict[str, float], splits: tuple[int, int, int]) -> None:
    steps = part["train steps"]
    lines = [
        "# The harness against a bare loop on real data",
        "",
        f"Command: `python bench/harness_overhead.py --dataset {args.dataset} --data-dir {args.data_dir} --subset "
        f"{args.subset} --batch-size {args.batch_size} --epochs {args.epochs} --rounds {args.rounds} --out {args.out}`",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu_model()}, torch {torch.__version__}, one "
        f"thread; {args.backbone}, batch {args.batch_size}, `subset: {args.subset}` with `val_split: 0.1` (as the "
        f"shipped Fashion studies), which gives {splits[0]} training, {splits[1]} validation and {splits[2]} test "
        f"images (the subset count applies to each split); the eager path. Images/s are training images per second, the mean of epochs 2..{args.epochs} (epoch 1 is warm-up). "
        "The machine was shared with other jobs, so absolute figures are depressed; the two loops alternate "
        "within each round.",
        "",
        "| round | bare img/s | run_trial training img/s | ratio | run_trial whole trial img/s | ratio |",
        "|---|---|---|---|---|---|",
        *(f"| {r} | {ref:.1f} | {ours:.1f} | {q:.3f} | {whole:.1f} | {wq:.3f} |" for r, ref, ours, q, whole, wq in rows),
        "",
        f"**Median ratio of the training loop: {ratio:.3f}** (target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'}); "
        f"of the whole trial (every second `run_trial` takes, over the images it trains): {whole_ratio:.3f}.",
        "",
        "Where an epoch's time goes (each part timed on its own, median over rounds; seconds, and as a share of "
        "the harness's training steps' time). `bare steps` and `train steps` alternate step by step on the same "
        f"batches ({args.subset} images' worth): the bare loop's step against the harness's (lr schedule, weight "
        "decay groups, loss kept and checked every step). `loader`: cutting, cropping, flipping and normalising an "
        "epoch's batches. `validation`: one pass over the validation split. `cost`: FLOPs and latency, once per "
        "trial.",
        "",
        "| part | s | x training steps |",
        "|---|---|---|",
        *(f"| {k} | {v:.2f} | {v / steps:.3f} |" for k, v in part.items()),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
