"""The results table of a sweep (``results.csv``) and its summary (``sweep.json``).

Rows are built from Ray Tune trials (live, in the driver, or loaded from a run directory) and
written atomically (temp file + rename), so a reader never sees a half-written file and a crash
during a write leaves the previous version. Columns follow ``docs/contracts.md``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import pandas as pd

from .collapse import is_collapsed
from ..design.columns import CONFIG_COLUMNS, ID_COLUMNS, LAST_METRICS, METRIC_COLUMNS, NOT_VARIANT_COLUMNS
from ..design.config import TrialConfig

RESULTS_FILE = "results.csv"
SWEEP_FILE = "sweep.json"


@dataclass
class TrialRecord:
    """One trial as the results table sees it: its config, state and per-epoch reports."""

    trial_id: str
    config: dict[str, Any]
    status: str
    error: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)


def record_from_trial(trial: Any, tune_status: Optional[str] = None) -> TrialRecord:
    """A record from a Ray Tune ``Trial``; ``tune_status`` overrides its (lagging) status in callbacks."""
    from ..design.space import trial_config

    config = trial_config(trial.config["point"]).model_dump()
    history = _with_last_result(_read_history(trial), getattr(trial, "last_result", None) or {})
    status = _status(tune_status or trial.status, history, config["epochs"])
    error = _read_error(trial) if status == "failed" else ""
    return TrialRecord(trial.trial_id, config, status, error, history)


def records_from_run_dir(run_dir: str | Path, failed: Iterable[str] = ()) -> list[TrialRecord]:
    """Records of every trial of the sweep stored in ``run_dir`` (Ray's experiment state);
    trial ids in ``failed`` are recorded as failed whatever the state says."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(Path(run_dir).resolve()))
    failed = set(failed)
    return [record_from_trial(t, "ERROR" if t.trial_id in failed else None) for t in analysis.trials]


def _status(tune_status: str, history: list[dict[str, Any]], epochs: int) -> str:
    if tune_status == "ERROR":
        return "failed"
    if tune_status == "TERMINATED":
        done = history[-1].get("epoch", 0) if history else 0
        return "completed" if done >= epochs else "stopped"
    return "running" if tune_status == "RUNNING" else "pending"


def _trial_dirs(trial: Any) -> list[Path]:
    return [Path(p) for p in (trial.local_path, trial.path) if p]


def _read_history(trial: Any) -> list[dict[str, Any]]:
    """The trial's reports, from Tune's ``result.json`` (one JSON object per line)."""
    for d in _trial_dirs(trial):
        path = d / "result.json"
        if path.exists():
            rows = []
            for line in path.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a crash mid-write
                    continue
            return merge_by_epoch(rows)
    return []


def merge_by_epoch(*histories: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One report per epoch, in epoch order; where histories share an epoch, the later one wins."""
    by_epoch = {r.get("epoch", r.get("training_iteration")): r for rows in histories for r in rows}
    return [by_epoch[k] for k in sorted(by_epoch, key=lambda k: (k is None, k or 0))]


def _with_last_result(history: list[dict[str, Any]], last: dict[str, Any]) -> list[dict[str, Any]]:
    """``history`` completed by the last result Tune keeps in its experiment state: a driver killed
    while copying files can leave ``result.json`` behind the state (older, or cut), and the state
    is what says the trial finished."""
    epoch = last.get("epoch")
    if epoch is None or any(r.get("epoch") == epoch for r in history):
        return history
    return merge_by_epoch(history, [last])


def _read_error(trial: Any) -> str:
    """The last line of Tune's ``error.txt`` (the exception and its message)."""
    for d in _trial_dirs(trial):
        path = d / "error.txt"
        if path.exists():
            lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
            if lines:
                return lines[-1]
    return "failed (no error file found)"


def _defaults(attention: str) -> dict[str, Any]:
    """The options an attention module used without being given them: the table says which
    reading every trial ran, even after a default changes."""
    from ..attention.registry import option_defaults

    try:
        return option_defaults(attention)
    except Exception:  # a user's module that no longer imports: its row keeps what the config says
        return {}


def row(record: TrialRecord) -> dict[str, Any]:
    """The table row of one trial: ids, config, final and best metrics, cost figures."""
    cfg = record.config
    out: dict[str, Any] = {
        "trial_id": record.trial_id,
        "variant": TrialConfig(**cfg).variant_key(),
        "status": record.status,
        "error": record.error,
    }
    out.update({k: v for k, v in cfg.items() if k not in CONFIG_COLUMNS})
    out.update({k: cfg.get(k) for k in CONFIG_COLUMNS})
    out["stages"] = ",".join(str(s) for s in cfg["stages"]) if cfg.get("stages") else None
    if isinstance(cfg.get("kernel_size"), list):  # per stage, written as stages are: 3,5,5,7
        out["kernel_size"] = ",".join(str(k) for k in cfg["kernel_size"])
    out.update({k: v for k, v in _defaults(cfg.get("attention", "none")).items() if out.get(k) is None})
    history = record.history
    if history:
        last = history[-1]
        best = max(history, key=lambda m: _num(m.get("top1")))
        out.update({k: last.get(k) for k in LAST_METRICS})
        out["epochs_done"] = last.get("epoch", last.get("training_iteration"))
        out["best_top1"] = best.get("top1")
        out["best_epoch"] = best.get("epoch")
        out["train_time_s"] = sum(_num(m.get("epoch_time_s"), 0.0) for m in history)
        out["compile_time_s"] = sum(_num(m.get("compile_time_s"), 0.0) for m in history)
        speeds = [m["images_per_s"] for m in history if m.get("images_per_s") is not None]
        out["images_per_s"] = sum(speeds) / len(speeds) if speeds else None
        if record.status == "completed":
            out["collapsed"] = is_collapsed(last.get("top1"), last.get("train_loss"), last.get("num_classes"))
    else:
        out["epochs_done"] = 0
    return out


def _num(value: Any, default: float = -math.inf) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else default


def results_table(records: Iterable[TrialRecord]) -> pd.DataFrame:
    """The results table: contract columns plus every other config key whose value varies."""
    rows = [row(r) for r in records]
    frame = pd.DataFrame(rows)
    fixed = set(ID_COLUMNS) | set(CONFIG_COLUMNS) | set(METRIC_COLUMNS)
    extra = [
        c
        for c in TrialConfig.model_fields
        if c not in fixed and c not in NOT_VARIANT_COLUMNS and c in frame and frame[c].astype(str).nunique() > 1
    ]
    extra += sorted(c for c in frame if c not in fixed and c not in TrialConfig.model_fields)  # a user module's options
    columns = [*ID_COLUMNS, *extra, *CONFIG_COLUMNS, *METRIC_COLUMNS]
    frame = frame.reindex(columns=columns)
    if len(frame):
        frame = frame.sort_values("trial_id", ignore_index=True)
    for column in frame.columns:
        values = [r[column] for r in rows if r.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            frame[column] = frame[column].astype("Int64")
    return frame


def write_results(run_dir: str | Path, records: Iterable[TrialRecord]) -> Path:
    """Rewrite ``run_dir/results.csv`` atomically; returns its path."""
    path = Path(run_dir) / RESULTS_FILE
    atomic_write_text(path, results_table(records).to_csv(index=False))
    return path


def read_results(run_dir: str | Path) -> pd.DataFrame:
    """Read a run directory's ``results.csv``."""
    return pd.read_csv(Path(run_dir) / RESULTS_FILE, keep_default_na=False, na_values=[""])


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    path = Path(path)
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
    return path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
