"""Why SCA trains badly: gate statistics per insertion and gradient norms of its branch
convolutions, at initialisation and through training, for several readings of SCA.

For each reading it trains resnet20 on digits (``run_trial``, the same loop as every trial) and
records, through hooks on every SCA insertion: the ratio ||SCA(x)|| / ||x|| (how much the
module scales the residual branch) and the mean gate value, averaged over the training batches
of each epoch (epoch 0: one pass over the training data before any step, i.e. at
initialisation), and the L2 norm of the gradient of each branch convolution's weight, averaged
over the steps of each epoch. Writes ``sca_mechanism.csv`` and ``sca_mechanism.md``.

    python bench/sca_mechanism.py [--epochs 10] [--out docs]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import torch

import ablation.models
from ablation.attention.sca import SCA
from ablation.run.train import run_trial

#: (name, SCA options) of the readings measured.
READINGS: list[tuple[str, dict]] = [
    ("hwc mul (old default)", {"branches": "hwc", "fuse": "mul", "gate": "sigmoid"}),
    ("hwc mean", {"branches": "hwc", "fuse": "mean", "gate": "sigmoid"}),
    ("hws mul", {"branches": "hws", "fuse": "mul", "gate": "sigmoid"}),
    ("hws mean", {"branches": "hws", "fuse": "mean", "gate": "sigmoid"}),
    ("hws mul 2sigmoid (default)", {"branches": "hws", "fuse": "mul", "gate": "2sigmoid"}),
    ("hws mul bn 2sigmoid", {"branches": "hws", "fuse": "mul", "norm": "bn", "gate": "2sigmoid"}),
    ("hws mean bn 2sigmoid", {"branches": "hws", "fuse": "mean", "norm": "bn", "gate": "2sigmoid"}),
]


class Probe:
    """Hooks on every SCA module of a model: norm ratios per insertion and branch gradient norms."""

    def __init__(self) -> None:
        self.ratios: dict[str, list[float]] = defaultdict(list)
        self.grads: dict[str, list[float]] = defaultdict(list)
        self.handles = []

    def attach(self, model: torch.nn.Module) -> torch.nn.Module:
        for name, module in model.named_modules():
            if isinstance(module, SCA):
                self.handles.append(module.register_forward_hook(self._ratio(name)))
                for branch in ("conv_h", "conv_w", "conv_c", "conv_s"):
                    conv = getattr(module, branch, None)
                    if conv is not None:
                        conv.weight.register_hook(self._grad(branch))
        return model

    def _ratio(self, name: str):
        def hook(module, inputs, output):
            if module.training:
                with torch.no_grad():
                    self.ratios[name].append(float(output.norm() / inputs[0].norm().clamp_min(1e-12)))

        return hook

    def _grad(self, branch: str):
        def hook(grad):
            self.grads[branch].append(float(grad.norm()))

        return hook

    def take(self) -> tuple[dict[str, float], dict[str, float]]:
        ratios = {k: sum(v) / len(v) for k, v in self.ratios.items() if v}
        grads = {k: sum(v) / len(v) for k, v in self.grads.items() if v}
        self.ratios.clear()
        self.grads.clear()
        return ratios, grads


def measure(name: str, options: dict, epochs: int, seed: int) -> list[dict]:
    """Train one reading with ``run_trial`` (build_model wrapped to attach the probe); per epoch:
    mean norm ratio per insertion and mean gradient norm per branch over the epoch's steps."""
    probe = Probe()
    real = ablation.models.build_model
    rows: list[dict] = []

    def report(metrics: dict, checkpoint_dir: str) -> None:
        ratios, grads = probe.take()
        for insertion, ratio in ratios.items():
            rows.append(
                {
                    "reading": name,
                    "epoch": metrics["epoch"],
                    "insertion": insertion,
                    "norm_ratio": ratio,
                    **{f"grad_{k}": v for k, v in grads.items()},
                    "train_loss": metrics["train_loss"],
                    "val_top1": metrics["top1"],
                }
            )

    ablation.models.build_model = lambda *a, **k: probe.attach(real(*a, **k))
    try:
        cfg = {
            "backbone": "resnet20",
            "attention": "sca",
            "dataset": "digits",
            "epochs": epochs,
            "seed": seed,
            "latency_runs": 1,
            **options,
        }
        result = run_trial(cfg, report=report)
    finally:
        ablation.models.build_model = real
    print(f"{name:24s} val top-1 {result['top1']:.2f}  test top-1 {result['test_top1']:.2f}", flush=True)
    for row in rows:
        row["final_test_top1"] = result["test_top1"]
    return rows


def init_figures(name: str, options: dict, seed: int) -> list[dict]:
    """Epoch 0: norm ratios and gradient norms of one forward/backward pass on a training batch
    of the freshly built model (before any optimiser step)."""
    from ablation.data import build_data
    from ablation.models import build_model

    torch.manual_seed(seed)
    data = build_data("digits", batch_size=128, seed=seed, val_split=0.1)
    model = build_model("resnet20", "sca", num_classes=10, in_channels=1, small_input=True, **options).train()
    probe = Probe()
    probe.attach(model)
    x, y = next(iter(data.train))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    ratios, grads = probe.take()
    return [
        {"reading": name, "epoch": 0, "insertion": k, "norm_ratio": v, **{f"grad_{b}": g for b, g in grads.items()}}
        for k, v in ratios.items()
    ]


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    grad_cols = sorted(c for c in rows if c.startswith("grad_"))
    table = rows.groupby(["reading", "epoch"], sort=False).agg(
        norm_ratio_min=("norm_ratio", "min"),
        norm_ratio_median=("norm_ratio", "median"),
        norm_ratio_max=("norm_ratio", "max"),
        **{c: (c, "first") for c in grad_cols},
        **{c: (c, "first") for c in ("train_loss", "val_top1") if c in rows},
    )
    return table.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs")
    args = parser.parse_args()
    started = time.time()
    rows = []
    for name, options in READINGS:
        rows += init_figures(name, options, args.seed)
        rows += measure(name, options, args.epochs, args.seed)
    frame = pd.DataFrame(rows)
    out = Path(args.out)
    frame.to_csv(out / "sca_mechanism.csv", index=False)
    table = summary(frame)
    text = [
        f"Command: `python bench/sca_mechanism.py {' '.join(sys.argv[1:])}` ({time.time() - started:.0f} s)",
        "",
        table.to_markdown(index=False, floatfmt=".4g"),
    ]
    (out / "sca_mechanism_table.md").write_text("\n".join(text) + "\n")
    print(table.to_string())


if __name__ == "__main__":
    main()
