"""The harness against a bare loop on real data: where does a trial's time go?

One thread, Fashion-MNIST (a study's training subset; every validation and test image), resnet20,
batch 128, the eager path. Side by side in each round:

- ``bare``: a plain loop over the same training tensors, pre-normalised and held in memory:
  shuffled slices, forward, cross-entropy, backward, SGD step; nothing else;
- ``run_trial``: the real trial (what ``ablate train`` runs): its own training images/s, and its
  whole wall time (loading the data set, building the model, measuring cost and latency,
  training, evaluating; without Ray no checkpoint is written);

and, to find where a gap goes, the parts of an epoch timed on their own: the loader (batches
cut, cropped, flipped and normalised), the harness's training step on batches made up front
(lr schedule, fp32 loss, loss checks), the validation pass, and the cost measurement (FLOPs and
latency) every trial makes once.

Then what validation costs on each training path (``--paths``, default eager and fast), side by
side: one epoch's training steps on the same batches (the paths alternating step by step, the
compiling first step apart) and one pass over the validation split as ``evaluate`` runs it (the
path's precision and memory format, the model eager), and, to see whether compiling evaluation
too would pay, a pass by ``torch.compile`` of the model in eval mode (the first pass compiles,
its time shown apart). The load average is printed with the figures.

    python bench/harness_overhead.py --data-dir /work/shared/data/fashion-mnist --out reports/benchmarks/harness_overhead.md
"""

from __future__ import annotations

import argparse
import os
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
    return dict(
        backbone=args.backbone,
        dataset=args.dataset,
        data_dir=args.data_dir,
        subset=args.subset,
        eval_subset=args.eval_subset,
        batch_size=args.batch_size,
        lr=0.1,
        seed=0,
        threads=1,
        device="cpu",
        latency_runs=10,
        epochs=args.epochs,
    )


def _data_and_model(cfg: dict):
    data = build_data(
        cfg["dataset"],
        cfg["data_dir"],
        batch_size=cfg["batch_size"],
        subset=cfg["subset"],
        eval_subset=cfg["eval_subset"],
        seed=cfg["seed"],
        val_split=0.1,
    )
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg["backbone"], num_classes=data.num_classes, in_channels=data.in_channels, small_input=True)
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
    return {
        "rates": [m["images_per_s"] for m in result["history"]],
        "epoch_s": [m["epoch_time_s"] for m in result["history"]],
        "wall_s": wall,
        "images": result["train_images"] * cfg["epochs"],
        "splits": (result["train_images"], result["val_images"], result["test_images"]),
    }


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
    return {
        "bare steps": bare_s,
        "train steps": train_s,
        "loader": loader_s,
        "validation": eval_s,
        "cost (once)": cost_s,
    }


def load() -> str:
    """This machine's load averages (1, 5, 15 minutes)."""
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


@torch.inference_mode()
def _compiled_eval(step: TrainStep, runner, loader) -> None:
    """``evaluate``'s pass with ``runner`` (a compiled model) in place of the eager model."""
    step.model.eval()
    for x, y in loader:
        x, y = step.inputs(x, y)
        logits = step.forward(x, runner).float()
        F.cross_entropy(logits, y, reduction="sum"), logits.topk(5, dim=1)


def validation_by_path(cfg: dict, paths: list[str]) -> dict[str, dict[str, float]]:
    """Seconds per epoch of each path's training steps (alternating step by step on the same
    batches) and of one validation pass, eager as ``evaluate`` runs it and compiled."""
    steps, batches = {}, None
    out: dict[str, dict[str, float]] = {}
    for path in paths:
        data, model = _data_and_model(cfg)
        conf = as_config({**cfg, "train_path": path})
        steps[path] = TrainStep(
            model, conf, torch.device("cpu"), total_steps=len(data.train) * cfg["epochs"], warmup_steps=30
        )
        if batches is None:
            data.train.set_epoch(2)
            batches = [(x, y) for x, y in data.train]
        step = steps[path]
        step.model.train()
        start = time.perf_counter()
        step.train(*step.inputs(*batches[0]))  # compiles on a compiled path
        out[path] = {"first step (compiles)": time.perf_counter() - start, "train steps": 0.0}
    assert batches is not None
    for x, y in batches:
        for path in paths:
            step = steps[path]
            xi, yi = step.inputs(x, y)
            start = time.perf_counter()
            loss = step.train(xi, yi)
            _check_finite(loss[None], 1, 1)
            out[path]["train steps"] += time.perf_counter() - start
    for path in paths:
        step = steps[path]
        for name in ("validation", "validation again"):
            start = time.perf_counter()
            evaluate(step, data.val)
            out[path][name] = time.perf_counter() - start
        runner = torch.compile(step.model)
        for name in ("compiled validation, first pass (compiles)", "compiled validation"):
            start = time.perf_counter()
            _compiled_eval(step, runner, data.val)
            out[path][name] = time.perf_counter() - start
        step.model.train()
        out[path]["setup"] = step.setup.describe()  # type: ignore[assignment]
    out["images"] = {"train": len(batches) * cfg["batch_size"], "val": data.val.num_images}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet20")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--subset", type=int, default=5000, help="training images")
    parser.add_argument("--eval-subset", type=int, default=None, help="validation and test images each (default all)")
    parser.add_argument("--paths", default="eager,fast", help="training paths whose validation cost is measured")
    parser.add_argument(
        "--validation-only",
        action="store_true",
        help="measure only the validation cost by path (no bare loop, no run_trial)",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="per measurement; the first is warm-up")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write a markdown report here")
    args = parser.parse_args()

    torch.set_num_threads(1)
    cfg = trial_config(args)
    paths = args.paths.split(",")
    rows, split, splits, by_path = [], [], None, []
    for r in range(1, args.rounds + 1):
        before = load()
        by_path.append(validation_by_path(cfg, paths))
        by_path[-1]["load"] = {"before": before, "after": load()}  # type: ignore[dict-item]
        print(f"round {r}: validation by path {by_path[-1]}", flush=True)
        if args.validation_only:
            continue
        ref = statistics.mean(bare(cfg)[1:])
        ours = harness(cfg)
        rate, splits = statistics.mean(ours["rates"][1:]), ours["splits"]
        whole = ours["images"] / ours["wall_s"]
        rows.append((r, ref, rate, rate / ref, whole, whole / ref))
        split.append(parts(cfg))
        print(
            f"round {r}: bare {ref:.1f} img/s; run_trial training {rate:.1f} img/s (x{rate / ref:.3f}), "
            f"whole trial {whole:.1f} img/s (x{whole / ref:.3f}); parts {split[-1]}",
            flush=True,
        )
    if args.validation_only:
        if args.out:  # replace (or add) the report's validation section, keep the rest as it was run
            old = args.out.read_text() if args.out.is_file() else ""
            kept = old.split(VALIDATION_HEADING)[0].rstrip("\n")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text((kept + "\n\n" if kept else "") + "\n".join(validation_section(args, by_path, paths)))
        return
    ratio = statistics.median(row[3] for row in rows)
    whole_ratio = statistics.median(row[5] for row in rows)
    part = {k: statistics.median(p[k] for p in split) for k in split[0]}
    print(f"median: training x{ratio:.3f} of bare (target >= 0.95), whole trial x{whole_ratio:.3f}")
    if args.out:
        write_report(args, rows, ratio, whole_ratio, part, splits, by_path, paths)


VALIDATION_HEADING = "## What validation costs, by training path"


def validation_section(args: argparse.Namespace, by_path: list[dict], paths: list[str]) -> list[str]:
    """The report's section on what validation costs per path, every round side by side."""
    images = by_path[0]["images"]
    keys = [
        "train steps",
        "validation",
        "validation again",
        "compiled validation, first pass (compiles)",
        "compiled validation",
    ]
    lines = [
        VALIDATION_HEADING,
        "",
        f"Command: `python bench/harness_overhead.py --dataset {args.dataset} --data-dir {args.data_dir} --subset "
        f"{args.subset}{f' --eval-subset {args.eval_subset}' if args.eval_subset else ''} --paths {args.paths} "
        f"--batch-size {args.batch_size} --rounds {args.rounds}{' --validation-only' if args.validation_only else ''} "
        f"--out {args.out}`",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu_model()}, torch {torch.__version__}, one thread; "
        f"{args.backbone}, batch {args.batch_size}; seconds for one epoch's {images['train']} training images (the "
        "paths alternating step by step on the same batches; the first, compiling step apart) and for one pass over "
        f"the {images['val']} validation images: `validation` as `evaluate` runs it in a trial (the path's precision "
        "and memory format, the model eager; timed twice), and `compiled validation` by `torch.compile` of the "
        "model in eval mode (its first pass compiles). Load average (1/5/15 min) before and after each round: "
        + "; ".join(f"round {i + 1}: {r['load']['before']} -> {r['load']['after']}" for i, r in enumerate(by_path))
        + " (2 cores, shared).",
        "",
        "| round | path | setup | first step (compiles) s | "
        + " | ".join(f"{k} s" for k in keys)
        + " | validation / train steps | compiled validation / train steps |",
        "|---" * (len(keys) + 6) + "|",
    ]
    for i, r in enumerate(by_path):
        for path in paths:
            p = r[path]
            lines.append(
                f"| {i + 1} | {path} | {p['setup']} | {p['first step (compiles)']:.1f} | "
                + " | ".join(f"{p[k]:.1f}" for k in keys)
                + f" | {min(p['validation'], p['validation again']) / p['train steps']:.3f} | "
                f"{p['compiled validation'] / p['train steps']:.3f} |"
            )
    train_n, val_n = STUDY_EPOCH
    lines += [
        "",
        f"Per image (ms), and what validation costs in an epoch of the shipped Fashion studies ({train_n:,} "
        f"training images, now all {val_n:,} validation images): validation's time over the training steps' time.",
        "",
        "| round | path | training step ms/img | validation ms/img | compiled validation ms/img | "
        f"validation / training, {train_n:,}+{val_n:,} epoch | the same, compiled validation |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(by_path):
        for path in paths:
            p = r[path]
            train = 1000 * p["train steps"] / images["train"]
            val = 1000 * min(p["validation"], p["validation again"]) / images["val"]
            compiled = 1000 * p["compiled validation"] / images["val"]
            lines.append(
                f"| {i + 1} | {path} | {train:.1f} | {val:.2f} | {compiled:.2f} | "
                f"{val * val_n / (train * train_n):.3f} | {compiled * val_n / (train * train_n):.3f} |"
            )
    return lines + [""]


#: An epoch of the shipped Fashion studies: (training images, validation images).
STUDY_EPOCH = (5000, 6000)


def write_report(
    args: argparse.Namespace,
    rows: list[tuple],
    ratio: float,
    whole_ratio: float,
    part: dict[str, float],
    splits: tuple[int, int, int],
    by_path: list[dict],
    paths: list[str],
) -> None:
    steps = part["train steps"]
    lines = [
        "# The harness against a bare loop on real data",
        "",
        f"Command: `python bench/harness_overhead.py --dataset {args.dataset} --data-dir {args.data_dir} --subset "
        f"{args.subset}{f' --eval-subset {args.eval_subset}' if args.eval_subset else ''} --paths {args.paths} --batch-size {args.batch_size} --epochs {args.epochs} --rounds {args.rounds} --out {args.out}`",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu_model()}, torch {torch.__version__}, one "
        f"thread; {args.backbone}, batch {args.batch_size}, `subset: {args.subset}` with `val_split: 0.1` (as the "
        f"shipped Fashion studies), which gives {splits[0]} training, {splits[1]} validation and {splits[2]} test "
        f"images (`subset` counts training images; `eval_subset`: {args.eval_subset or 'all'}); the eager path. Images/s are training images per second, the mean of epochs 2..{args.epochs} (epoch 1 is warm-up). "
        "The machine was shared with other jobs, so absolute figures are depressed; the two loops alternate "
        "within each round.",
        "",
        "| round | bare img/s | run_trial training img/s | ratio | run_trial whole trial img/s | ratio |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r} | {ref:.1f} | {ours:.1f} | {q:.3f} | {whole:.1f} | {wq:.3f} |"
            for r, ref, ours, q, whole, wq in rows
        ),
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
        *validation_section(args, by_path, paths),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
