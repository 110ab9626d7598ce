"""Hand-made results tables in the layout of ``results.csv`` (no training needed)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ablation.results import CONFIG_COLUMNS, ID_COLUMNS, METRIC_COLUMNS


def trial_row(trial: int, status: str = "completed", **values: Any) -> dict[str, Any]:
    """One results.csv row; config keys default to a resnet20 run, metrics to empty."""
    row: dict[str, Any] = {c: None for c in (*ID_COLUMNS, *CONFIG_COLUMNS, *METRIC_COLUMNS)}
    row.update(trial_id=f"t{trial:03d}", status=status, error="", backbone="resnet20", attention="none",
               position="standard", dataset="synthetic", width_mult=1.0, epochs=2, seed=0)
    row["epochs_done"] = 2 if status == "completed" else 0
    row.update(values)
    config = {c: row[c] for c in CONFIG_COLUMNS if c != "seed"}
    row["variant"] = "|".join(f"{k}={config[k]}" for k in sorted(config))
    return row


def write_run(run_dir: Path, rows: list[dict[str, Any]], name: str = "handmade", finished: bool = True) -> Path:
    """Write ``results.csv`` and ``sweep.json`` as a sweep would."""
    run_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(run_dir / "results.csv", index=False)
    (run_dir / "sweep.json").write_text(json.dumps({
        "name": name, "description": "a hand-made table", "n_trials": len(rows), "wall_time_s": 12.5,
        "started": "2026-01-01T00:00:00+0000", "finished": "2026-01-01T00:00:12+0000" if finished else None,
    }))
    return run_dir
