"""Why does MobileNetV2 with SCA train worse on the fast path? Each part of the fast path alone.

MobileNetV2 (width 0.5, small-input stem) with an attention module on Fashion-MNIST batches
(28x28x1, batch 128, the harness's step: ``ablation.run.train.TrainStep``), from one initialisation,
in each setup:

- ``eager``: fp32 NCHW, the reference;
- ``bf16``: bf16 autocast alone (eager ops, NCHW);
- ``channels_last``: channels_last alone (fp32, eager ops);
- ``compiled``: torch.compile alone (fp32, NCHW);
- ``fast``: all three (the fast path).

Part 1, one step on one batch (dropout off, so that the setups see the same network): the loss,
each parameter group's gradient (all its parameters as one vector) against the reference's
(relative error ``|g - g_ref| / |g_ref|``), the attention gates (after the sigmoid; share near 0
or 1) and BatchNorm's batch variance in the eager setups (a compiled model is not hooked).
Part 2, ``--steps`` steps of the real schedule (warm-up over the first epoch, lr 0.1) on the same
batches in every setup: the training loss per step, and the largest loss seen.

    ABLATION_DATA_DIR=/work/shared/data python bench/fast_path_numerics.py --attention sca --steps 80
"""

from __future__ import annotations

import argparse
import copy
import time
from collections import defaultdict
from typing import Any, Optional

import torch
from torch import nn

from ablation.attention.sca import SCA
from ablation.data import build_data
from ablation.models import build_model
from ablation.run.train import TrainStep, as_config
from ablation.design.train_path import TrainSetup

SETUPS: dict[str, TrainSetup] = {
    "eager": TrainSetup("eager", None, False, False),
    "bf16": TrainSetup("bf16", torch.bfloat16, False, False),
    "channels_last": TrainSetup("channels_last", None, True, False),
    "compiled": TrainSetup("compiled", None, False, True),
    "fast": TrainSetup("fast", torch.bfloat16, True, True),
}


def param_groups_of(model: nn.Module) -> dict[str, str]:
    """Each parameter's group for the gradient table: attention, depthwise conv, conv, BN, classifier."""
    attention = [n for n, m in model.named_modules() if n and type(m).__module__.startswith("ablation.attention")]
    out = {}
    for mn, m in model.named_modules():
        for pn, _ in m.named_parameters(recurse=False):
            name = f"{mn}.{pn}" if mn else pn
            out[name] = "attention" if any(name.startswith(a + ".") for a in attention) else group_of(m)
    return out


def group_of(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        return "depthwise conv" if module.groups > 1 else "conv"
    if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        return "batchnorm"
    return "classifier" if isinstance(module, nn.Linear) else type(module).__name__


class GateProbe:
    """Records the attention gates (sigmoid outputs) of every SCA forward, eager models only."""

    def __init__(self) -> None:
        self.stats: list[dict[str, Any]] = []
        self.original = SCA._activate

    def __enter__(self) -> "GateProbe":
        probe, original = self, self.original

        def activate(module: SCA, branch: str, z: torch.Tensor) -> torch.Tensor:
            g = original(module, branch, z)
            if torch.compiler.is_compiling():  # compiled setups are not probed
                return g
            s = torch.sigmoid(z.detach().float())
            probe.stats.append(
                {
                    "dtype": str(g.dtype).removeprefix("torch."),
                    "near0": (s < 0.01).float().mean().item(),
                    "near1": (s > 0.99).float().mean().item(),
                    "mean": s.mean().item(),
                }
            )
            return g

        SCA._activate = activate  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        SCA._activate = self.original  # type: ignore[method-assign]


def bn_variances(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """Hooks recording each BatchNorm2d's batch variance per channel (input in fp32) and its input dtype."""
    out: dict[str, torch.Tensor] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):

            def hook(mod: nn.Module, args: tuple, _out: Any, name: str = name) -> None:
                x = args[0].detach().float()
                out[name] = x.var(dim=(0, 2, 3), unbiased=False)
                out[name + ":dtype"] = args[0].dtype  # type: ignore[assignment]

            handles.append(m.register_forward_hook(hook))
    return out, handles


def one_step(
    name: str, setup: TrainSetup, init: dict, cfg: Any, x: torch.Tensor, y: torch.Tensor, build: Any
) -> dict[str, Any]:
    """One training step from ``init``: loss, gradients by parameter, gate and BN records."""
    model = build()
    model.load_state_dict(init)
    step = TrainStep(model, cfg, torch.device("cpu"), total_steps=10**6, warmup_steps=0, setup=setup)
    step.model.train()
    for m in model.modules():  # no dropout: one batch's gradients compare only if every setup drops nothing
        if isinstance(m, nn.Dropout):
            m.eval()
    bn, handles = bn_variances(model) if not setup.compiled else ({}, [])
    with GateProbe() as probe:
        xi, yi = step.inputs(x, y)
        loss = torch.nn.functional.cross_entropy(step.forward(xi, step.runner).float(), yi)
        loss.backward()
    for h in handles:
        h.remove()
    grads = {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.grad is not None}
    return {"loss": loss.item(), "grads": grads, "gates": probe.stats, "bn": bn}


def train_curve(
    setup: TrainSetup, init: dict, cfg: Any, batches: list, steps_per_epoch: int, epochs: int, build: Any
) -> tuple[list[float], float, float]:
    """Training losses of ``len(batches)`` steps on the real schedule; seconds with and without compile."""
    model = build()
    model.load_state_dict(init)
    step = TrainStep(
        model, cfg, torch.device("cpu"), total_steps=epochs * steps_per_epoch, warmup_steps=steps_per_epoch, setup=setup
    )
    step.model.train()
    losses, start, first = [], time.perf_counter(), 0.0
    for i, (x, y) in enumerate(batches):
        losses.append(step.train(*step.inputs(x, y)).item())
        if i == 0:
            first = time.perf_counter() - start
    return losses, time.perf_counter() - start, first


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attention", default="sca")
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated, from: " + ", ".join(SETUPS))
    parser.add_argument("--steps", type=int, default=80, help="training steps in part 2 (0: skip)")
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=6, help="the schedule's length (as the parity study)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.setups.split(",")
    cfg = as_config({"backbone": "mobilenet_v2", "attention": args.attention, "width_mult": 0.5, "device": "cpu"})
    data = build_data("fashion-mnist", args.data_dir, batch_size=128, subset=args.subset, seed=args.seed, val_split=0.1)

    def build() -> nn.Module:
        return build_model(
            "mobilenet_v2", args.attention, num_classes=10, in_channels=1, small_input=True, width_mult=0.5
        )

    torch.manual_seed(args.seed)
    model = build()
    init = copy.deepcopy(model.state_dict())
    groups = param_groups_of(model)
    data.train.set_epoch(0)
    batches = []
    for x, y in data.train:
        batches.append((x, y))
        if len(batches) >= max(1, args.steps):
            break
    steps_per_epoch = len(data.train)
    print(
        f"# MobileNetV2-0.5 + {args.attention}, Fashion-MNIST {data.train.num_images} training images "
        f"({steps_per_epoch} steps/epoch), seed {args.seed}, {args.threads} thread(s), torch {torch.__version__}"
    )

    print("\n## Part 1: one step on one batch from the same initialisation")
    x, y = batches[0]
    ref = None
    rows = []
    for name in names:
        r = one_step(name, SETUPS[name], init, cfg, x, y, build)
        ref = ref or r
        diff: dict[str, float] = defaultdict(float)
        norm: dict[str, float] = defaultdict(float)
        for pname, g in r["grads"].items():
            gr = ref["grads"][pname]
            diff[groups.get(pname, "?")] += (g - gr).square().sum().item()
            norm[groups.get(pname, "?")] += gr.square().sum().item()
        err = {k: [(diff[k] / max(norm[k], 1e-30)) ** 0.5] for k in diff}  # the group's gradient as one vector
        gates = r["gates"]
        bn_err = [
            ((r["bn"][k] - ref["bn"][k]).abs() / ref["bn"][k].clamp_min(1e-12)).max().item()
            for k in r["bn"]
            if not k.endswith(":dtype") and k in ref["bn"]
        ]
        bn_dtypes = sorted({str(v).removeprefix("torch.") for k, v in r["bn"].items() if k.endswith(":dtype")})
        rows.append(
            (
                name,
                r["loss"],
                {k: max(v) for k, v in err.items()},
                (
                    gates
                    and {
                        "dtype": gates[0]["dtype"],
                        "near0": max(s["near0"] for s in gates),
                        "near1": max(s["near1"] for s in gates),
                    }
                ),
                max(bn_err) if bn_err else None,
                bn_dtypes,
            )
        )
    kinds = sorted({k for row in rows for k in row[2]})
    print(
        "| setup | loss | "
        + " | ".join(f"grad rel. err. {k}" for k in kinds)
        + " | gate dtype | max share of gates < 0.01 / > 0.99 | BN input dtype | max BN batch-var rel. err. |"
    )
    print("|---" * (len(kinds) + 6) + "|")
    for name, loss, err, gates, bn_err, bn_dtypes in rows:
        cells = " | ".join(f"{err.get(k, float('nan')):.2e}" for k in kinds)
        gate = f"{gates['dtype']} | {gates['near0']:.3f} / {gates['near1']:.3f}" if gates else "- | -"
        print(
            f"| {name} | {loss:.5f} | {cells} | {gate} | {', '.join(bn_dtypes) or '-'} | "
            f"{'-' if bn_err is None else f'{bn_err:.2e}'} |"
        )

    if args.steps <= 0:
        return 0
    print(f"\n## Part 2: {len(batches)} steps of the schedule ({args.epochs} epochs, warm-up 1 epoch), same batches")
    curves = {}
    for name in names:
        losses, seconds, first = train_curve(SETUPS[name], init, cfg, batches, steps_per_epoch, args.epochs, build)
        curves[name] = losses
        print(
            f"- {name}: {seconds:.0f} s ({first:.0f} s first step); max loss {max(losses):.3f} at step "
            f"{losses.index(max(losses)) + 1}; mean of the last 10 {sum(losses[-10:]) / 10:.3f}"
        )
    every = max(1, len(batches) // 16)
    print("\n| step | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for i in range(0, len(batches), every):
        print(f"| {i + 1} | " + " | ".join(f"{curves[n][i]:.3f}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
