"""`ablate validate SPACE.yaml`: check a search space, list its trials and estimate their cost."""

from __future__ import annotations

import argparse
from functools import lru_cache
from typing import Any, Optional

from ..design.config import TrialConfig
from ..errors import DataError
from ..design.space import SearchSpace, load_space

HELP = "check a search-space file; print its trials and their estimated training cost"

#: Training FLOPs per image = forward x 3 (the backward pass costs about twice the forward).
TRAIN_FLOPS_FACTOR = 3
#: (classes, channels, input size) of data sets whose files may be absent where a space is
#: validated (e.g. a cluster's ImageNet): forward FLOPs are still shown, training FLOPs not.
NOMINAL_SHAPES: dict[str, tuple[int, int, int]] = {
    "imagefolder": (1000, 3, 224),
    "fashion-mnist": (10, 1, 28),
    "cifar10": (10, 3, 32),
    "cifar100": (100, 3, 32),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", help="search-space YAML file (see search_spaces/)")
    parser.add_argument(
        "--no-cost", action="store_true", help="skip the FLOPs estimate (no data set or model is loaded)"
    )


def run(args: argparse.Namespace) -> int:
    space = load_space(args.space)
    costs = None if args.no_cost else trial_costs(space.configs())
    print_space(space, costs)
    return 0


@lru_cache(maxsize=None)
def _data_shape(dataset: str, data_dir: Optional[str], subset: Any, seed: int) -> tuple[int, int, int, int]:
    """(train images, classes, channels, input size) of a data set, as a trial would load it."""
    from ..data import build_data

    data = build_data(dataset, data_dir, batch_size=1, subset=subset, seed=seed)
    return data.train.num_images, data.num_classes, data.in_channels, data.input_size


@lru_cache(maxsize=None)
def _forward_flops(model_key: str, num_classes: int, in_channels: int, input_size: int) -> float:
    """fvcore forward FLOPs (multiply-adds) of one image through the trial's model."""
    from ..models import build_model
    from ..run.profile import profile_model

    cfg = TrialConfig.model_validate_json(model_key)
    small_input = cfg.small_input if cfg.small_input is not None else input_size <= 64
    model = build_model(
        cfg.backbone,
        cfg.attention,
        cfg.position,
        cfg.stages,
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        width_mult=cfg.width_mult,
        **cfg.attention_kwargs(),
    )
    # one thread: a single traced image gains nothing from more, and on a busy machine threads that
    # wait on each other made the count take seconds per model
    return float(profile_model(model, input_size, in_channels, threads=1, latency=False).flops)


def trial_cost(cfg: TrialConfig) -> dict[str, Any]:
    """Estimated training cost of one trial: forward FLOPs x 3 x epochs x training images.

    Returns ``forward_flops, train_images, train_flops``; where the data set's files are missing,
    the last two are None (the reason under ``note``) and ``forward_flops`` is at the set's
    nominal shape, if it has one.
    """
    model_key = cfg.model_copy(update={"seed": 0, "data_dir": None}).model_dump_json()
    try:
        images, classes, channels, size = _data_shape(cfg.dataset, cfg.data_dir, cfg.subset, cfg.seed)
    except DataError as exc:
        nominal = NOMINAL_SHAPES.get(cfg.dataset)
        flops = _forward_flops(model_key, *nominal) if nominal else None
        return {"forward_flops": flops, "train_images": None, "train_flops": None, "note": str(exc)}
    flops = _forward_flops(model_key, classes, channels, size)
    return {
        "forward_flops": flops,
        "train_images": images,
        "train_flops": flops * TRAIN_FLOPS_FACTOR * cfg.epochs * images,
        "note": "",
    }


def trial_costs(configs: list[TrialConfig]) -> list[dict[str, Any]]:
    """:func:`trial_cost` of each config."""
    return [trial_cost(c) for c in configs]


def _si(value: Optional[float]) -> str:
    if value is None:
        return "?"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def print_space(space: SearchSpace, costs: Optional[list[dict[str, Any]]]) -> None:
    """Print the space's summary, a table of its trials and the cost estimate."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    spec = space.spec
    console.print(f"[bold]{spec.name}[/bold]: {' '.join(spec.description.split())}")
    budget = spec.budget
    sched = (
        "none"
        if budget.scheduler == "none"
        else (f"asha (grace {budget.grace_period}, reduction {budget.reduction_factor:g})")
    )
    seeds = space.seed_budget
    console.print(
        f"{'at most ' if seeds else ''}{space.num_trials} trials, {budget.epochs} epochs each, "
        f"scheduler {sched}, {spec.resources.cpu:g} CPU / {spec.resources.gpu:g} GPU per trial, "
        f"max failures {budget.max_failures}"
    )
    if seeds:
        console.print(
            f"seeds as a budget: {seeds.min_} per variant, then one more where a comparison is open, "
            f"up to {seeds.max_} (alpha {seeds.alpha:g}, equivalence ±{seeds.equivalence:g} points"
            + (f", reference {seeds.reference}" if seeds.reference else "")
            + ")"
        )
    keys = space.varying_keys()
    configs = space.configs()
    if spec.sample is not None:
        ranges = Table(title=f"sampled by Optuna ({spec.sample.num_samples} samples, seed {spec.sample.seed})")
        ranges.add_column("key")
        ranges.add_column("range")
        for key, dist in spec.sample.params.items():
            kind = next(k for k in ("choice", "int", "float", "log") if dist.model_dump(by_alias=True)[k] is not None)
            ranges.add_row(key, f"{kind} {dist.model_dump(by_alias=True)[kind]}")
        console.print(ranges)
    table = Table(title="range corners (validated)" if space.sampled else "trials")
    table.add_column("#", justify="right")
    fixed = [k for k in ("backbone", "attention", "dataset") if k not in keys]
    for key in keys + fixed:
        table.add_column(key)
    if costs is not None:
        table.add_column("fwd FLOPs", justify="right")
        table.add_column("train FLOPs", justify="right")
    for i, cfg in enumerate(configs):
        cells = [str(i)] + [_cell(getattr(cfg, k, None)) for k in keys + fixed]
        if costs is not None:
            cells += [_si(costs[i]["forward_flops"]), _si(costs[i]["train_flops"])]
        table.add_row(*cells)
    console.print(table)
    if costs is None:
        return
    known = [c["train_flops"] for c in costs if c["train_flops"] is not None]
    notes = sorted({c["note"] for c in costs if c["note"]})
    scale = spec.sample.num_samples / len(configs) if spec.sample is not None else 1.0
    what = "mean over the corners x samples" if space.sampled else "sum over trials"
    if known:
        total = sum(known) / len(known) * len(configs) * scale if space.sampled else sum(known)
        console.print(
            f"estimated training cost: {_si(total)}FLOPs ({what}; forward FLOPs from fvcore, "
            f"multiply-adds, x{TRAIN_FLOPS_FACTOR} for forward+backward x epochs x training images; "
            f"evaluation not included)"
        )
    for note in notes:
        console.print(
            f"training cost unknown where data is missing (forward FLOPs at the data set's nominal shape): {note}",
            markup=False,
        )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
