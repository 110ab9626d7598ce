"""`ablate profile`: parameters, FLOPs and latency of one backbone with one attention variant."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional, Union

from ..errors import ConfigError
from ..design.execution import EXECUTION_PATHS

HELP = "print params, FLOPs (multiply-adds), attention's share and latency of one model"


#: The two FLOP counts, told apart under the table.
CONVENTION = (
    "flops counts every op (BN, activations, residual adds, pooling too); flops_convfc counts conv and "
    "fully connected layers only, the papers' and torchvision's convention"
)


def _stages(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--stages takes comma-separated integers such as 3,4, got {text!r}") from None


def _kernel_size(text: str) -> Union[int, list[int]]:
    """``5``, or ``3,5,5,7`` (one per stage with attention)."""
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--kernel-size takes an integer, or one per stage with attention such as 3,5,5,7; got {text!r}"
        ) from None
    return sizes if "," in text else sizes[0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..models import BACKBONES

    parser.add_argument("--backbone", default="resnet50", help=f"one of {', '.join(BACKBONES)} (default resnet50)")
    parser.add_argument(
        "--attention",
        default="none",
        help="attention module (default none): a name (see `ablate list`) or an import path "
        "package.module:Class of your own",
    )
    parser.add_argument("--position", default="standard", help="where in each block (default standard)")
    parser.add_argument("--stages", type=_stages, help="comma-separated stages that get attention (default all)")
    parser.add_argument(
        "--kernel-size", type=_kernel_size, help="attention kernel size, or one per stage with attention (e.g. 3,5,5,7)"
    )
    parser.add_argument("--branches", help="sca branches, letters from hwcs")
    parser.add_argument("--pool", help="sca pooling: avg, max or avgmax")
    parser.add_argument("--fuse", help="sca gate fusion: mul or mean")
    parser.add_argument("--norm", help="sca gate normalisation: none or bn")
    parser.add_argument("--gate", help="sca gate: sigmoid or 2sigmoid")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of your own module (repeatable; values read as YAML)",
    )
    parser.add_argument("--reduction", type=int, help="channel reduction (se, cbam, coord)")
    parser.add_argument("--width-mult", type=float, default=1.0, help="MobileNetV2 width multiplier")
    parser.add_argument("--small-input", action="store_true", help="stem for 28-32 px images")
    parser.add_argument("--in-channels", type=int, default=3, help="input channels (default 3)")
    parser.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    parser.add_argument("--input-size", type=int, default=224, help="image side in pixels (default 224)")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size for latency (default 1)")
    parser.add_argument("--runs", type=int, default=20, help="timed forward passes (default 20)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="latency device (default cpu)")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    parser.add_argument(
        "--path",
        default="eager",
        choices=EXECUTION_PATHS,
        help="execution path for latency: eager PyTorch ops (default), torch.compile, or eager with "
        "SCA's hand-fused CPU kernel",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    from ..design.config import parse_overrides

    from ..attention.registry import coerce_options

    given = {k: getattr(args, k) for k in ("kernel_size", "branches", "pool", "fuse", "norm", "gate", "reduction")}
    try:
        own = parse_overrides(args.option)
    except ValueError as exc:
        raise ConfigError(f"--option: {exc}") from None
    return {k: v for k, v in given.items() if v is not None} | coerce_options(args.attention, own)


def run(args: argparse.Namespace) -> int:
    from ..models import build_model, placement_keys
    from ..run.profile import profile_model

    for name in ("input_size", "batch_size", "runs", "in_channels", "num_classes"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    model = build_model(
        args.backbone,
        args.attention,
        args.position,
        args.stages,
        num_classes=args.num_classes,
        in_channels=args.in_channels,
        small_input=args.small_input,
        width_mult=args.width_mult,
        **_options(args),
    )
    report = profile_model(
        model,
        args.input_size,
        args.in_channels,
        batch_size=args.batch_size,
        runs=args.runs,
        device=args.device,
        threads=args.threads,
        latency=not args.no_latency,
        path=args.path,
    )
    placement = {"position": args.position, "stages": args.stages}  # shown where the backbone takes them
    figures = {
        "backbone": args.backbone,
        "attention": args.attention,
        **{k: placement[k] for k in placement_keys(args.backbone)},
        **_options(args),
        "input_size": args.input_size,
        **report.as_dict(),
        "latency_path": args.path,
    }
    if report.uncounted:
        print(
            f"warning: fvcore has no FLOP handle for {report.as_dict()['uncounted_ops']}: those ops are counted "
            f"as 0 FLOPs, so the FLOPs above are a lower bound",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps({**figures, "attention_flops_by_module": report.attention_flops_by_module}, indent=2))
    else:
        print_table(figures)
    return 0


def _fmt(key: str, value: Any) -> str:
    if key in ("params", "attention_params") and isinstance(value, int):
        return f"{value:,} ({value / 1e6:.3f} M)"
    if key in ("flops", "flops_convfc", "attention_flops") and isinstance(value, int):
        return f"{value:,} ({value / 1e9:.4f} G)"
    if key == "stages":
        return "all" if value is None else ",".join(map(str, value))
    if key == "latency_ms":
        return "not measured" if value is None else f"{value:.2f}"
    return str(value)


def print_table(figures: dict[str, Any], title: Optional[str] = None) -> None:
    """A two-column rich table of ``figures``."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or "model cost (FLOPs = multiply-adds, one image)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, _fmt(key, value))
    console = Console()
    console.print(table)
    if "flops_convfc" in figures:
        console.print(CONVENTION, soft_wrap=True, markup=False, highlight=False)
