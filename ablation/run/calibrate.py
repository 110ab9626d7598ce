"""Latency calibration: every variant of a study timed on one device, on one execution path,
in interleaved rounds, as a ratio to its plain backbone.

Latency measured inside each trial is noisy (other trials train on the same cores) and is
taken at different moments for different variants. A calibration pass runs after the trials:
it rebuilds every variant (untrained weights: latency does not depend on their values) and the
plain backbone of each setting, then times them in rounds, every model once per round in a
rotating order; per round each model's time is the fastest of ``runs`` passes. A variant's
ratio is the median over rounds of its time divided by its plain backbone's time in the same
round (paired, so slow spells of a shared machine cancel); the spread is the interquartile
range of those per-round ratios. On the CPU with one thread the clock is the thread's CPU time
(it leaves out waiting for a core); otherwise wall time (with CUDA synchronisation on a GPU).
The result is ``latency.csv`` in the run directory; reports read it from there.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import pandas as pd

if TYPE_CHECKING:
    import torch

from ..errors import DataError

LATENCY_FILE = "latency.csv"


def interleaved_rounds(models: dict[str, Callable], inputs: torch.Tensor, rounds: int, runs: int) -> list[dict]:
    """Wall and thread-CPU ms of every model in ``rounds`` interleaved rounds (the order rotates
    from round to round, so no model is always first), the fastest of ``runs`` passes per round."""
    import torch

    sync = torch.cuda.synchronize if inputs.device.type == "cuda" else (lambda: None)
    records = []
    with torch.inference_mode():
        for model in models.values():  # warm-up (and compilation, for compiled models)
            model(inputs)
            model(inputs)
        keys = list(models)
        for r in range(rounds):
            for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
                wall, cpu = [], []
                for _ in range(runs):
                    sync()
                    start, start_cpu = time.perf_counter(), time.thread_time()
                    models[key](inputs)
                    sync()
                    cpu.append((time.thread_time() - start_cpu) * 1000)
                    wall.append((time.perf_counter() - start) * 1000)
                records.append({"round": r, "variant": key, "wall_ms": min(wall), "cpu_ms": min(cpu)})
    return records


def _quantile(values: list[float], q: float) -> float:
    return float(pd.Series(values).quantile(q))


def summarize(records: list[dict], base_of: dict[str, str], clock: str = "cpu") -> dict[str, dict[str, float]]:
    """Per model: median ms over rounds, and the median (with quartiles) over rounds of its time
    divided by its base model's (``base_of[model]``) in the same round."""
    by_round = {(r["round"], r["variant"]): r[f"{clock}_ms"] for r in records}
    out: dict[str, dict[str, float]] = {}
    for variant in dict.fromkeys(r["variant"] for r in records):
        mine = [r for r in records if r["variant"] == variant]
        ratios = [r[f"{clock}_ms"] / by_round[(r["round"], base_of[variant])] for r in mine]
        out[variant] = {
            "ms": statistics.median(r[f"{clock}_ms"] for r in mine),
            "ratio": statistics.median(ratios),
            "ratio_q25": _quantile(ratios, 0.25),
            "ratio_q75": _quantile(ratios, 0.75),
        }
    return out


def variant_configs(results: pd.DataFrame, base: dict[str, Any]) -> dict[str, tuple[dict, dict]]:
    """Per variant with a completed trial: its trial config (dict) and the data shape it ran on."""
    from ..design.columns import is_attention_factor
    from ..design.config import TrialConfig

    done = results[results["status"] == "completed"].drop_duplicates("variant")
    shape_keys = ("num_classes", "in_channels", "input_size")
    missing = [k for k in shape_keys if k not in done or done[k].isna().any()]
    if missing:
        raise DataError(
            f"results.csv lacks {missing} (trials made before they were recorded); "
            f"re-run the sweep to calibrate its latency"
        )
    out = {}
    for _, row in done.iterrows():
        cfg = dict(base)
        for key in row.index:
            value = row[key]
            if (key in TrialConfig.model_fields or is_attention_factor(key)) and not (
                value is None or (isinstance(value, float) and pd.isna(value))
            ):
                cfg[key] = value
        if isinstance(cfg.get("stages"), str):
            cfg["stages"] = [int(s) for s in cfg["stages"].split(",")]
        if isinstance(cfg.get("kernel_size"), str) and "," in cfg["kernel_size"]:  # per stage
            cfg["kernel_size"] = [int(k) for k in cfg["kernel_size"].split(",")]
        for key in ("kernel_size", "reduction", "seed", "epochs"):
            if cfg.get(key) is not None and not isinstance(cfg[key], list):
                cfg[key] = int(cfg[key])
        out[row["variant"]] = (TrialConfig(**cfg).model_dump(), {k: int(row[k]) for k in shape_keys})
    return out


def _build(cfg: dict, shape: dict) -> torch.nn.Module:
    from ..models import build_model
    from ..design.space import trial_config

    config = trial_config(cfg)
    options, cfg = config.attention_kwargs(), config.model_dump()
    small = cfg["small_input"] if cfg.get("small_input") is not None else shape["input_size"] <= 64
    return build_model(
        cfg["backbone"],
        cfg["attention"],
        cfg["position"],
        cfg["stages"],
        num_classes=shape["num_classes"],
        in_channels=shape["in_channels"],
        small_input=small,
        width_mult=cfg["width_mult"],
        **options,
    ).eval()


def calibrate(
    results: pd.DataFrame,
    base: dict[str, Any],
    *,
    path: str = "eager",
    rounds: int = 15,
    runs: int = 3,
    batch: int = 1,
    threads: int = 1,
    device: str = "cpu",
) -> pd.DataFrame:
    """The calibration table: one row per variant (``variant``, ``ms``, ``ratio``, ``ratio_q25``,
    ``ratio_q75``) plus how it was measured (path, device, batch, threads, rounds, clock, the CPU and what decides
    its numerics)."""
    import torch

    from ..design.execution import check_path, prepare
    from ..provenance import cpu_fingerprint

    check_path(path)
    configs = variant_configs(results, base)
    target = torch.device(device)
    models: dict[str, Callable] = {}
    base_of: dict[str, str] = {}
    shapes: dict[str, dict] = {}
    for variant, (cfg, shape) in configs.items():
        plain = {**cfg, "attention": "none", "seed": 0}  # options that do not apply are dropped in _build
        plain_key = "plain " + "|".join(f"{k}={plain[k]}" for k in ("backbone", "width_mult", "small_input"))
        plain_key += f"|{shape['in_channels']}x{shape['input_size']}|{shape['num_classes']}"
        base_of[variant], base_of[plain_key] = plain_key, plain_key
        shapes[plain_key] = shapes[variant] = shape
        if plain_key not in models:
            models[plain_key] = prepare(_build(plain, shape).to(target), path)
        models[variant] = prepare(_build(cfg, shape).to(target), path)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    clock = "cpu" if target.type == "cpu" and threads == 1 else "wall"
    try:
        records = []
        for size in sorted({(s["in_channels"], s["input_size"]) for s in shapes.values()}):
            group = {k: m for k, m in models.items() if (shapes[k]["in_channels"], shapes[k]["input_size"]) == size}
            x = torch.randn(batch, size[0], size[1], size[1], device=target)
            records += interleaved_rounds(group, x, rounds, runs)
    finally:
        torch.set_num_threads(before)
    summary = summarize(records, base_of, clock)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    gpu = torch.cuda.get_device_name(target) if target.type == "cuda" else "none"
    rows = [
        {
            "variant": v,
            **summary[v],
            "plain_ms": summary[base_of[v]]["ms"],
            "path": path,
            "device": str(target),
            "gpu": gpu,
            **cpu_fingerprint(),
            "batch": batch,
            "threads": threads,
            "rounds": rounds,
            "runs": runs,
            "clock": clock,
            "torch_version": str(torch.__version__),
            "measured": when,
        }
        for v in configs
    ]
    return pd.DataFrame(rows)


def calibrate_run(
    run_dir: str | Path,
    *,
    path: Optional[str] = None,
    rounds: Optional[int] = None,
    batch: Optional[int] = None,
    threads: Optional[int] = None,
    device: str = "cpu",
) -> Path:
    """Calibrate the completed variants of the sweep in ``run_dir`` and write ``latency.csv``;
    unset settings come from the space's ``latency`` section (in ``sweep.json``)."""
    import json

    from .results import RESULTS_FILE, SWEEP_FILE, atomic_write_text, read_results

    run_dir = Path(run_dir)
    if not (run_dir / RESULTS_FILE).is_file():
        raise DataError(f"{run_dir / RESULTS_FILE}: not found; give the run directory of a sweep")
    info_path = run_dir / SWEEP_FILE
    space = json.loads(info_path.read_text()).get("space", {}) if info_path.is_file() else {}
    spec = space.get("latency", {})
    table = calibrate(
        read_results(run_dir),
        space.get("base", {}),
        path=path or spec.get("path", "eager"),
        rounds=rounds or spec.get("rounds", 15),
        batch=batch or spec.get("batch", 1),
        threads=threads or spec.get("threads", 1),
        device=device,
    )
    out = run_dir / LATENCY_FILE
    atomic_write_text(out, table.to_csv(index=False))
    return out


def read_latency(run_dir: str | Path) -> Optional[pd.DataFrame]:
    """The calibration table of ``run_dir``, or None where no calibration ran."""
    path = Path(run_dir) / LATENCY_FILE
    return pd.read_csv(path) if path.is_file() else None


def with_latency(variants: pd.DataFrame, table: Optional[pd.DataFrame]) -> pd.DataFrame:
    """``variants`` with the calibrated figures: ``latency_ms`` replaced by the calibrated ms and
    ``latency_ratio``/``_q25``/``_q75`` added (NaN for variants the calibration did not see);
    unchanged where there is no calibration."""
    if table is None:
        return variants
    figures = table.set_index("variant")
    out = variants.copy()
    out["latency_ms"] = out["variant"].map(figures["ms"])
    for column in ("ratio", "ratio_q25", "ratio_q75"):
        out[f"latency_{column}"] = out["variant"].map(figures[column])
    return out
