"""Run: Ray Tune trials and what they leave behind.

The sweep (``sweep.py``, with the seed searcher ``seed_search.py`` and the trials it carries
from earlier sweeps, ``carry.py``) runs each trial config:
build, profile (``profile.py``), train (``train.py``, resumable from ``checkpoint.py``); it
records each trial's row (``results.py``, ``epochs.py``, collapse flagged by ``collapse.py``)
through atomic storage (``atomic_storage.py``) and optional trackers (``tracking.py``);
``calibrate.py`` measures every variant's latency afterwards on one machine.

Public names are imported from their module on first use (so that importing one module of this
package does not import the others' libraries, such as Ray or matplotlib).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sweep import SweepOutcome, run_sweep
    from .seed_search import SeedSearcher
    from .carry import CARRIED_FILE, carry_trials, load_carried
    from .train import as_config, resolve_device, run_trial
    from .profile import profile_model
    from .results import RESULTS_FILE, SWEEP_FILE, TrialRecord, read_results, results_table, write_results
    from .epochs import EPOCHS_FILE, read_epochs
    from .collapse import is_collapsed
    from .calibrate import LATENCY_FILE, calibrate_run, read_latency

#: Public name -> the module of this package that defines it.
_HOMES: dict[str, str] = {
    "SweepOutcome": "sweep",
    "run_sweep": "sweep",
    "SeedSearcher": "seed_search",
    "CARRIED_FILE": "carry",
    "carry_trials": "carry",
    "load_carried": "carry",
    "as_config": "train",
    "resolve_device": "train",
    "run_trial": "train",
    "profile_model": "profile",
    "RESULTS_FILE": "results",
    "SWEEP_FILE": "results",
    "TrialRecord": "results",
    "read_results": "results",
    "results_table": "results",
    "write_results": "results",
    "EPOCHS_FILE": "epochs",
    "read_epochs": "epochs",
    "is_collapsed": "collapse",
    "LATENCY_FILE": "calibrate",
    "calibrate_run": "calibrate",
    "read_latency": "calibrate",
}
__all__ = [
    "CARRIED_FILE",
    "EPOCHS_FILE",
    "LATENCY_FILE",
    "RESULTS_FILE",
    "SWEEP_FILE",
    "SeedSearcher",
    "SweepOutcome",
    "TrialRecord",
    "as_config",
    "calibrate_run",
    "carry_trials",
    "is_collapsed",
    "load_carried",
    "profile_model",
    "read_epochs",
    "read_latency",
    "read_results",
    "resolve_device",
    "results_table",
    "run_sweep",
    "run_trial",
    "write_results",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
