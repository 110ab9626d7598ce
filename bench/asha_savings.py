"""ASHA against the full grid on one small Fashion-MNIST space: compute spent, and agreement.

The same space (resnet20 on a Fashion-MNIST subset; none, SE, ECA, CBAM and SCA with three
kernel sizes) runs twice on a local Ray: once as a full grid, once with ASHA stopping poor
trials at rungs. Reported:

- compute: training FLOPs spent (fvcore forward FLOPs x 3 x images x epochs trained, summed
  over trials) and trial-epochs, ASHA / full grid;
- agreement: the Spearman rank correlation, over ASHA's survivors (trials it ran to the end),
  between their final top-1 under ASHA and under the full grid; whether ASHA's best trial is
  the full grid's best; and the overlap of the survivors with the full grid's top-k.

    python bench/asha_savings.py --out reports/benchmarks/asha_savings.md
"""

from __future__ import annotations

import argparse
import os
import platform
from datetime import datetime, timezone
from pathlib import Path


def space_dict(name: str, scheduler: str, epochs: int, subset: int, data_dir: str | None) -> dict:
    return {
        "name": name,
        "base": {
            "dataset": "fashion-mnist",
            "data_dir": data_dir,
            "backbone": "resnet20",
            "subset": subset,
            "eval_subset": subset,
            "threads": 1,
            "device": "cpu",
            "latency_runs": 5,
        },
        "grid": [{"attention": ["none", "se", "eca", "cbam"]}, {"attention": ["sca"], "kernel_size": [3, 5, 7]}],
        "budget": {
            "epochs": epochs,
            "scheduler": scheduler,
            "grace_period": 1,
            "reduction_factor": 2,
            "max_failures": 0,
        },
        "resources": {"cpu": 1},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--subset", type=int, default=3000)
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the usual lookup)")
    parser.add_argument("--storage", default="runs/bench")
    parser.add_argument("--out", default="reports/benchmarks/asha_savings.md")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import ray
    from scipy.stats import spearmanr

    from ablation.run.results import read_results
    from ablation.design.space import parse_space
    from ablation.run.sweep import run_sweep

    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    tables = {}
    try:
        for scheduler in ("none", "asha"):
            space = parse_space(
                space_dict(f"asha_savings_{scheduler}", scheduler, args.epochs, args.subset, args.data_dir)
            )
            outcome = run_sweep(space, storage=args.storage, resume=True, verbose=0)
            tables[scheduler] = read_results(outcome.run_dir)
    finally:
        ray.shutdown()

    key = ["attention", "kernel_size"]
    full, asha = (
        tables[s].assign(kernel_size=tables[s]["kernel_size"].fillna(0)).set_index(key) for s in ("none", "asha")
    )
    images = _train_images(args.subset, args.data_dir)
    spent = {s: float((t["flops"] * 3 * t["epochs_done"] * images).sum()) for s, t in (("none", full), ("asha", asha))}
    epochs = {s: int(t["epochs_done"].sum()) for s, t in (("none", full), ("asha", asha))}
    survivors = asha[asha["status"] == "completed"].index
    rho = (
        spearmanr(asha.loc[survivors, "top1"], full.loc[survivors, "top1"]).statistic
        if len(survivors) > 1
        else float("nan")
    )
    k = len(survivors)
    top_full = set(full["top1"].nlargest(k).index)
    overlap = len(top_full & set(survivors))
    best_same = full["top1"].idxmax() == asha.loc[survivors, "top1"].idxmax()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 4))
    stopped = asha.index.difference(survivors)
    ax.scatter(full.loc[survivors, "top1"], asha.loc[survivors, "top1"], label="ASHA survivors (final)")
    ax.scatter(full.loc[stopped, "top1"], asha.loc[stopped, "top1"], marker="x", label="stopped (last rung)")
    lims = [min(full["top1"].min(), asha["top1"].min()) - 1, max(full["top1"].max(), asha["top1"].max()) + 1]
    ax.plot(lims, lims, lw=0.5, color="grey")
    ax.set_xlabel("full grid: final top-1 (%)")
    ax.set_ylabel("ASHA: top-1 when it ended (%)")
    ax.set_title(f"ASHA vs full grid (Spearman of survivors {rho:.2f})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    figure = out.with_suffix(".png")
    fig.savefig(figure, dpi=120)

    lines = [
        "# ASHA savings against the full grid",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} CPUs), "
        f"`python bench/asha_savings.py --epochs {args.epochs} --subset {args.subset}`.",
        f"Space: resnet20 on Fashion-MNIST ({args.subset} training images), attention none/se/eca/cbam and sca with "
        f"kernel 3/5/7 (7 trials), {args.epochs} epochs; ASHA grace period 1, reduction factor 2, on top-1.",
        "",
        "| | full grid | ASHA | ASHA / full |",
        "|---|---:|---:|---:|",
        f"| training FLOPs spent (fwd x 3 x images x epochs) | {spent['none']:.3g} | {spent['asha']:.3g} | {spent['asha'] / spent['none']:.2f} |",
        f"| trial-epochs trained | {epochs['none']} | {epochs['asha']} | {epochs['asha'] / epochs['none']:.2f} |",
        f"| trials run to the end | {int((full['status'] == 'completed').sum())} | {k} | |",
        "",
        f"Spearman rank correlation of ASHA's survivors' final top-1 (ASHA vs full grid): {rho:.3f}.",
        f"ASHA's best survivor is the full grid's best trial: {'yes' if best_same else 'no'}; "
        f"{overlap} of its {k} survivors are in the full grid's top {k}.",
        "",
        f"![ASHA vs full grid]({figure.name})",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out.write_text(text)


def _train_images(subset: int, data_dir: str | None) -> int:
    from ablation.data import build_data

    return build_data("fashion-mnist", data_dir, batch_size=1, subset=subset).train.num_images


if __name__ == "__main__":
    main()
