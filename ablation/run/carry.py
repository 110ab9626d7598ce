"""Trials carried over from earlier sweeps: finished work a new sweep does not train again.

A study often repeats trials another sweep already finished: a follow-up that ran a few seeds of
a new budget, then a full study of that budget. ``ablate sweep SPACE --carry RUN`` takes every
completed trial of the run directory ``RUN`` whose trial config is exactly one of ``SPACE``'s
(seed included) and, on this machine, whose training setup is the one this machine gives: the
same computation, so training it again would only spend CPU-hours. Carried trials are kept in
the new run directory (``carried.json``: config and every epoch's report), so the run stays
self-contained and resumable; they go into ``results.csv`` and ``epochs.csv`` with their
original trial ids, count as finished for a seed budget (``ablation.run.seed_search``) and are
left out of a grid. ``sweep.json`` and the report name where they came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..design.space import SearchSpace, trial_config
from ..errors import ConfigError
from .results import RESULTS_FILE, TrialRecord, merge_by_epoch, read_results, write_json

CARRIED_FILE = "carried.json"


def _history(trial_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for line in (trial_dir / "result.json").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash mid-write
            continue
    return merge_by_epoch(rows)


def _completed(run_dir: Path) -> list[TrialRecord]:
    """The completed trials of ``run_dir``, from its results table and its trial folders."""
    if not (run_dir / RESULTS_FILE).is_file():
        raise ConfigError(f"--carry {run_dir}: no {RESULTS_FILE} there; give the run directory of a sweep")
    table = read_results(run_dir)
    records = []
    for trial_id in table.loc[table["status"] == "completed", "trial_id"].astype(str):
        folder = run_dir / f"trial_{trial_id}"
        if not (folder / "params.json").is_file() or not (folder / "result.json").is_file():
            raise ConfigError(f"--carry {run_dir}: trial {trial_id} has no params.json and result.json in {folder}")
        point = json.loads((folder / "params.json").read_text())["point"]
        records.append(TrialRecord(trial_id, trial_config(point).model_dump(), "completed", "", _history(folder)))
    return records


def _setup_here(config: dict[str, Any]) -> str:
    from ..design.train_path import train_setup
    from .train import resolve_device

    cfg = trial_config(config)
    return train_setup(cfg.train_path, resolve_device(cfg.device), cfg.amp, cfg.channels_last).describe()


def carry_trials(runs: Iterable[str | Path], space: SearchSpace, check_setup: bool = True) -> list[TrialRecord]:
    """The completed trials of ``runs`` that are trials of ``space`` (the first run's where two
    runs hold the same one); with ``check_setup``, only those trained the way this machine trains.
    ``ConfigError`` naming the run for a folder that is not a sweep's, or if none is carried."""
    wanted = {_identity(c.model_dump()) for c in space.configs()}
    carried: dict[str, TrialRecord] = {}
    for run in runs:
        run_dir = Path(run).expanduser().resolve()
        if not run_dir.is_dir():
            raise ConfigError(f"--carry {run}: no such run directory")
        for record in _completed(run_dir):
            identity = _identity(record.config)
            recorded = str((record.history[-1] if record.history else {}).get("train_setup") or "")
            if identity not in wanted or identity in carried:
                continue
            if check_setup and recorded and recorded != _setup_here(record.config):
                continue
            carried[identity] = record
    if not carried:
        raise ConfigError(
            f"--carry {', '.join(map(str, runs))}: no completed trial there has a trial config of "
            f"{space.name!r} (every key, seed included) and this machine's training setup; nothing to carry"
        )
    return list(carried.values())


def _identity(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def keys_of(records: Iterable[TrialRecord]) -> set[str]:
    """The identities (full trial configs) of ``records``, to leave out of a grid."""
    return {_identity(r.config) for r in records}


def is_carried(point: dict[str, Any], carried: set[str]) -> bool:
    """Whether the trial of grid ``point`` is among the ``carried`` identities."""
    return _identity(trial_config(point).model_dump()) in carried


def save_carried(run_dir: Path, runs: Iterable[str | Path], records: list[TrialRecord]) -> None:
    """Keep ``records`` in ``run_dir/carried.json`` with the folders they came from."""
    write_json(
        Path(run_dir) / CARRIED_FILE,
        {
            "from": [str(Path(r).expanduser().resolve()) for r in runs],
            "trials": [
                {"trial_id": r.trial_id, "config": r.config, "history": r.history}
                for r in sorted(records, key=lambda r: r.trial_id)
            ],
        },
    )


def load_carried(run_dir: Path) -> list[TrialRecord]:
    """The trials carried into ``run_dir`` when its sweep started (none if it carried none)."""
    path = Path(run_dir) / CARRIED_FILE
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return [TrialRecord(t["trial_id"], t["config"], "completed", "", t["history"]) for t in data["trials"]]


def carried_summary(run_dir: Path) -> dict[str, Any]:
    """What ``sweep.json`` says of the carried trials: the runs' names and the trial ids."""
    path = Path(run_dir) / CARRIED_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {"from": [Path(p).name for p in data["from"]], "trial_ids": [t["trial_id"] for t in data["trials"]]}
