"""Hand-made results tables in the layout of ``results.csv`` (no training needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ablation.run.results import CONFIG_COLUMNS, ID_COLUMNS, METRIC_COLUMNS


def trial_row(trial: int, status: str = "completed", **values: Any) -> dict[str, Any]:
    """One results.csv row; config keys default to a resnet20 run, metrics to empty."""
    row: dict[str, Any] = {c: None for c in (*ID_COLUMNS, *CONFIG_COLUMNS, *METRIC_COLUMNS)}
    row.update(
        trial_id=f"t{trial:03d}",
        status=status,
        error="",
        backbone="resnet20",
        attention="none",
        position="standard",
        dataset="synthetic",
        width_mult=1.0,
        epochs=2,
        seed=0,
    )
    row["epochs_done"] = 2 if status == "completed" else 0
    row.update(values)
    config = {c: row[c] for c in CONFIG_COLUMNS if c != "seed"}
    row["variant"] = "|".join(f"{k}={config[k]}" for k in sorted(config))
    return row


def write_run(run_dir: Path, rows: list[dict[str, Any]], name: str = "handmade", finished: bool = True) -> Path:
    """Write ``results.csv`` and ``sweep.json`` as a sweep would."""
    run_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(run_dir / "results.csv", index=False)
    (run_dir / "sweep.json").write_text(
        json.dumps(
            {
                "name": name,
                "description": "a hand-made table",
                "n_trials": len(rows),
                "wall_time_s": 12.5,
                "started": "2026-01-01T00:00:00+0000",
                "finished": "2026-01-01T00:00:12+0000" if finished else None,
            }
        )
    )
    return run_dir


HARDWARE = {
    "host": "box",
    "ray_node": "",
    "cpu_model": "Test CPU 3000",
    "cpu_capability": "AVX2",
    "cpu_isa": "fma avx2",
    "mkl_version": "2024.2 build 20240605",
    "onednn_version": "3.12.0",
    "gpu": "none",
    "torch_version": "2.14.1",
    "cuda_version": "none",
    "torch_threads": 1,
}
#: The machine a report is written on when it is the trials' (see ``ablation.provenance.fingerprint_here``).
SAME_MACHINE = {
    k: HARDWARE[k] for k in ("cpu_model", "cpu_capability", "cpu_isa", "mkl_version", "onednn_version", "torch_version")
}


def study_rows(seeds=(0, 1, 2), collapse: tuple = (), **extra: Any) -> list[dict[str, Any]]:
    """A study as a sweep writes it today: val and test accuracies, data shape, provenance, and a
    collapsed flag; resnet20 and mobilenet_v2 with none and SCA k=3, 5 (mobilenet_v2 also k=7).
    ``collapse`` names (backbone, kernel_size, seed) trials that collapsed."""
    rows, i = [], 0
    for backbone, flops, kernels in (("resnet20", 40e6, (3, 5)), ("mobilenet_v2", 8e6, (5, 7))):
        for seed in seeds:
            for k in (None, *kernels):
                collapsed = (backbone, k, seed) in collapse
                top1 = 10.5 if collapsed else 88 + (k or 4) * 0.2 + seed * 0.3
                rows.append(
                    trial_row(
                        i,
                        backbone=backbone,
                        seed=seed,
                        attention="sca" if k else "none",
                        kernel_size=k,
                        top1=top1 + 0.5,
                        top5=99.0,
                        val_loss=0.3,
                        train_loss=2.3 if collapsed else 0.2,
                        test_top1=top1,
                        test_top5=99.0,
                        test_loss=0.31,
                        collapsed=collapsed,
                        val_split=0.1,
                        latency_path="eager",
                        params=flops / 100 + (21 if k else 0),
                        flops=flops * (1.01 if k else 1),
                        latency_ms=1.5,
                        train_time_s=10.0,
                        images_per_s=500.0,
                        num_classes=10,
                        in_channels=1,
                        input_size=8,
                        **{**HARDWARE, **extra},
                    )
                )
                i += 1
    return rows


def write_epochs_for(run_dir: Path, rows: list[dict[str, Any]], epochs: int = 2, rise: float = 1.0) -> pd.DataFrame:
    """An ``epochs.csv`` for completed ``rows``: val top-1 rises ``rise`` points an epoch to the
    row's top1, loss falls."""
    from ablation.run.epochs import EPOCHS_FILE, epochs_table

    table = epochs_table(
        {
            "trial_id": r["trial_id"],
            "variant": r["variant"],
            "backbone": r["backbone"],
            "attention": r["attention"],
            "seed": r["seed"],
            "epoch": e,
            "train_loss": r["train_loss"] * (epochs + 1 - e),
            "val_loss": 0.3,
            "top1": r["top1"] - rise * (epochs - e),
            "top5": 99.0,
            "lr": 0.1,
            "epoch_time_s": 1.0,
        }
        for r in rows
        if r["status"] == "completed"
        for e in range(1, epochs + 1)
    )
    table.to_csv(run_dir / EPOCHS_FILE, index=False)
    return table
