"""`ablate train [CONFIG.yaml] key=value ...`: train one trial and print (or save) its metrics."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from ..design.config import parse_overrides
from ..errors import ConfigError

HELP = "train one trial (a YAML config and/or key=value overrides); write its metrics as JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "settings",
        nargs="*",
        metavar="CONFIG.yaml | key=value",
        help="a YAML file of trial-config keys, then key=value overrides "
        "(e.g. backbone=resnet20 attention=sca kernel_size=5 dataset=fashion-mnist epochs=3)",
    )
    parser.add_argument("--out", metavar="FILE.json", help="write the final metrics (with history) as JSON")
    parser.add_argument("--checkpoint-dir", metavar="DIR", help="keep the latest epoch's checkpoint in DIR")
    parser.add_argument("--resume", metavar="DIR", help="continue from a checkpoint directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


def load_settings(settings: list[str]) -> dict[str, Any]:
    """Merge YAML files and ``key=value`` pairs, left to right (later wins)."""
    config: dict[str, Any] = {}
    for item in settings:
        if "=" in item:
            try:
                config.update(parse_overrides([item]))
            except (ValueError, yaml.YAMLError) as exc:
                raise ConfigError(f"bad override {item!r}: {exc}") from None
            continue
        path = Path(item)
        if not path.is_file():
            raise ConfigError(f"{item!r} is neither key=value nor an existing YAML file")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of trial-config keys, got {type(loaded).__name__}")
        config.update(loaded)
    return config


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..run.train import as_config, run_trial

    cfg = as_config(load_settings(args.settings))
    console = Console(stderr=True, quiet=args.quiet)
    with Progress(
        TextColumn("epoch {task.fields[epoch]}/" + str(cfg.epochs)),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("train", total=None, epoch=0)

        def progress(epoch: int, step: int, steps: int) -> None:
            if step == 1:
                bar.reset(task, total=steps, epoch=epoch)
            bar.update(task, completed=step)

        def report(metrics: dict, checkpoint_dir: str) -> None:
            if args.checkpoint_dir:
                shutil.copytree(checkpoint_dir, args.checkpoint_dir, dirs_exist_ok=True)
            bar.console.print(
                f"epoch {metrics['epoch']:>3}  train_loss {metrics['train_loss']:.4f}  val_loss {metrics['val_loss']:.4f}  "
                f"val top1 {metrics['top1']:.2f}  top5 {metrics['top5']:.2f}  {metrics['images_per_s']:.0f} img/s  "
                f"{metrics['epoch_time_s']:.1f}s",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )

        result = run_trial(cfg, report=report, resume_from=args.resume, progress=progress)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    summary = {
        k: result[k]
        for k in (
            "top1",
            "top5",
            "val_loss",
            "test_top1",
            "test_top5",
            "best_top1",
            "best_epoch",
            "epochs_done",
            "train_time_s",
            "params",
            "flops",
            "flops_convfc",
            "latency_ms",
        )
        if k in result
    }
    print(json.dumps(summary))
    return 0
