"""Per-epoch metrics of every trial: the tidy table ``epochs.csv`` in the run directory.

One row per (trial, epoch), rewritten atomically by the sweep's driver as trials report, so
training curves can be drawn at any time from disk (Ray's own files are not read by reports).
``top1``/``top5``/``val_loss`` are on the validation (selection) split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..design.config import TrialConfig

EPOCHS_FILE = "epochs.csv"
EPOCH_COLUMNS: tuple[str, ...] = (
    "trial_id",
    "variant",
    "backbone",
    "attention",
    "seed",
    "epoch",
    "train_loss",
    "val_loss",
    "top1",
    "top5",
    "lr",
    "epoch_time_s",
)


def epoch_rows(trial_id: str, config: dict[str, Any], history: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of one trial: its ids, then each reported epoch's metrics."""
    ids = {
        "trial_id": trial_id,
        "variant": TrialConfig(**config).variant_key(),
        "backbone": config.get("backbone"),
        "attention": config.get("attention"),
        "seed": config.get("seed"),
    }
    return [{**ids, **{k: m.get(k) for k in EPOCH_COLUMNS if k not in ids}} for m in history if m.get("epoch")]


def epochs_table(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows as the table of the contract, sorted by trial and epoch."""
    frame = pd.DataFrame(list(rows), columns=list(EPOCH_COLUMNS))
    if len(frame):
        frame = frame.sort_values(["trial_id", "epoch"], ignore_index=True)
        frame["epoch"] = frame["epoch"].astype(int)
    return frame


def write_epochs(run_dir: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Rewrite ``run_dir/epochs.csv`` atomically; returns its path."""
    from .results import atomic_write_text

    path = Path(run_dir) / EPOCHS_FILE
    atomic_write_text(path, epochs_table(rows).to_csv(index=False))
    return path


def read_epochs(run_dir: str | Path) -> pd.DataFrame:
    """``run_dir/epochs.csv``, or an empty table with its columns where there is none."""
    path = Path(run_dir) / EPOCHS_FILE
    if not path.is_file():
        return epochs_table([])
    return pd.read_csv(path, keep_default_na=False, na_values=[""])
